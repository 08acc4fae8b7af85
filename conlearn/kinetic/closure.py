"""One member of the ML moment closure, and the ensemble a run produces.

A member holds

* the encoder: moment coefficients C [M, 2, D + 1] (:mod:`conlearn.kinetic.moments`; rows 0, 1
  fixed: stress and heat flux; rows 2.. learned by the autoencoder);
* the decoder: an MLP w -> (ghat, hhat) - Maxwellian on the xi grid (for reconstructions and
  the report; the solver does not need it);
* the closure: an MLP w -> Hermite moments mu [2, D + 2] of the normalised distributions,
  ``mu = e0 + (net(z) - net(0) - net'(0) z) * scale`` with z = (w - w_eq)/w_scale, then
  projected onto the moments the state already fixes (mass, momentum, energy of the local
  frame and w itself), so a Maxwellian state gives exactly the Maxwellian closure and the
  closure is consistent with its inputs. With ``linear`` False the learned part is of second
  order in w - w_eq: to first order the closure is the projection (Grad-like) one, whose
  linearised system is hyperbolic at equilibrium; a fitted linear part (``linear`` True) is
  more accurate on coarse grids but Burnett-like (complex characteristic speeds near
  equilibrium, measured), so its solutions oscillate more as the grid is refined.
  All inputs and outputs are Galilean and scale invariant.

Files: ``<dir>/member-<k>.pt`` (torch state dict of tensors, read with weights_only=True) and
``<dir>/closure.json`` (sizes and settings); no pickled objects.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import moments as mom

META = "closure.json"
FORMAT = 1


def mlp_forward(layers: list[tuple[np.ndarray, np.ndarray]], z: np.ndarray) -> np.ndarray:
    """tanh MLP (linear last layer): layers [(weight [out, in], bias [out])], z [N, in] -> [N, out]."""
    for W, b in layers[:-1]:
        z = np.tanh(z @ W.T + b)
    W, b = layers[-1]
    return z @ W.T + b


def mlp_at_zero(layers: list) -> tuple[np.ndarray, np.ndarray]:
    """(value [out], Jacobian [out, in]) of the MLP at z = 0."""
    J = np.eye(layers[0][0].shape[1])
    h = np.zeros(layers[0][0].shape[1])
    for W, b in layers[:-1]:
        h = np.tanh(W @ h + b)
        J = (1.0 - h * h)[:, None] * (W @ J)
    W, b = layers[-1]
    return W @ h + b, W @ J


@dataclass
class Member:
    """One closure (numpy, for the solver). Shapes: M moments, D encoder degree, n = D + 2.

    C [M, 2, D+1]; w_scale, w_lo, w_hi [M]; mu_scale [2, n]; closure, decoder: MLP layers.
    """

    C: np.ndarray
    w_scale: np.ndarray
    w_lo: np.ndarray
    w_hi: np.ndarray
    mu_scale: np.ndarray
    closure: list
    decoder: list = field(default_factory=list)
    ghat_scale: float = 1.0
    linear: bool = False

    def __post_init__(self) -> None:
        M, _, d1 = self.C.shape
        self.n = d1 + 1
        self.L = mom.functionals(self.C, self.n)
        self.w_eq = mom.apply(self.L["w"], mom.equilibrium(self.n))
        self._stack = np.concatenate([self.L[k] for k in ("a", "A0", "A1", "A2", "B0", "B1")])
        A = np.concatenate([mom.constraint_rows(self.n), self.L["w"]]).reshape(M + 3, -1)
        self._A = A
        self._P = A.T @ np.linalg.inv(A @ A.T)           # [2n, M + 3]
        self._net0, self._jac0 = mlp_at_zero(self.closure)
        if self.linear:
            self._jac0 = np.zeros_like(self._jac0)

    @classmethod
    def random(cls, degree: int = 4, seed: int = 0, amplitude: float = 0.0,
               hidden: int = 16, w_range: float = 0.5) -> "Member":
        """An untrained member: random learned moment rows (in the moment space), closure MLP
        weights scaled by ``amplitude`` (0: the Maxwellian-projected closure, Grad-like) and
        the clip range +-w_range. For tests and as the untrained baseline."""
        from .training import _free_basis

        rng = np.random.default_rng(seed)
        M, n = mom.n_moments(degree), degree + 2
        B = _free_basis(degree)
        learned = (rng.normal(size=(M - 2, len(B))) @ B).reshape(M - 2, 2, degree + 1)
        C = np.concatenate([mom.fixed_coefficients(degree), learned])
        layers = [(rng.normal(size=(hidden, M)), rng.normal(size=hidden) * 0.1),
                  (rng.normal(size=(2 * n, hidden)) * amplitude / np.sqrt(hidden), np.zeros(2 * n))]
        w_eq = mom.apply(mom.functionals(C, n)["w"], mom.equilibrium(n))
        return cls(C=C, w_scale=np.full(M, 0.1), w_lo=w_eq - w_range, w_hi=w_eq + w_range,
                   mu_scale=np.full((2, n), 0.1), closure=layers)

    @property
    def n_moments(self) -> int:
        return self.C.shape[0]

    def clip(self, w: np.ndarray) -> np.ndarray:
        """w [N, M] clipped to the range met in training (the closure is not used outside it)."""
        return np.clip(w, self.w_lo, self.w_hi)

    def mu(self, w: np.ndarray) -> np.ndarray:
        """Closure Hermite moments [N, 2, n] of the normalised moments w [N, M] (clipped first)."""
        w = self.clip(w)
        z = (w - self.w_eq) / self.w_scale
        d = (mlp_forward(self.closure, z) - self._net0 - z @ self._jac0.T).reshape(-1, 2, self.n) * self.mu_scale
        mu = mom.equilibrium(self.n) + d
        b = np.concatenate([np.broadcast_to(mom.CONSTRAINT_VALUES, (len(w), 3)), w], axis=1)
        r = mu.reshape(len(w), -1) @ self._A.T - b
        return mu - (r @ self._P.T).reshape(mu.shape)

    def coefficients(self, w: np.ndarray) -> dict[str, np.ndarray]:
        """The closure terms [N, M] of the moment system at w [N, M] (keys as moments.functionals)."""
        vals = mom.apply(self._stack, self.mu(w)).reshape(len(w), 6, -1)
        return dict(zip(("a", "A0", "A1", "A2", "B0", "B1"), np.moveaxis(vals, 1, 0)))

    def decode(self, w: np.ndarray, xi: np.ndarray | None = None) -> np.ndarray:
        """Decoded (ghat, hhat) [N, 2, n_xi] of moments w [N, M]."""
        z = (w - self.w_eq) / self.w_scale
        d = mlp_forward(self.decoder, z) * self.ghat_scale
        return mom.maxwell_hat(xi) + d.reshape(len(w), 2, -1)

    def moment_functions(self, xi: np.ndarray) -> np.ndarray:
        """(phi_k, psi_k)(xi) [M, 2, n_xi]: the moment functions of the encoder."""
        return mom.poly_values(self.C, xi)

    # -- files --------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        import torch

        d = {"C": self.C, "w_scale": self.w_scale, "w_lo": self.w_lo, "w_hi": self.w_hi,
             "mu_scale": self.mu_scale, "ghat_scale": np.array(self.ghat_scale), "linear": np.array(float(self.linear))}
        for name, layers in (("closure", self.closure), ("decoder", self.decoder)):
            for i, (W, b) in enumerate(layers):
                d[f"{name}.{i}.weight"], d[f"{name}.{i}.bias"] = W, b
        return {k: torch.as_tensor(np.asarray(v, float)) for k, v in d.items()}

    @classmethod
    def from_state_dict(cls, sd: dict) -> "Member":
        a = {k: v.detach().cpu().numpy().astype(float) for k, v in sd.items()}

        def layers(name):
            n = sum(1 for k in a if k.startswith(name + ".") and k.endswith(".weight"))
            return [(a[f"{name}.{i}.weight"], a[f"{name}.{i}.bias"]) for i in range(n)]

        return cls(C=a["C"], w_scale=a["w_scale"], w_lo=a["w_lo"], w_hi=a["w_hi"], mu_scale=a["mu_scale"],
                   closure=layers("closure"), decoder=layers("decoder"), ghat_scale=float(a["ghat_scale"]),
                   linear=bool(a.get("linear", 0.0)))

    def save(self, path: str | Path) -> Path:
        import torch

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        torch.save(self.state_dict(), tmp)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Member":
        import torch

        return cls.from_state_dict(torch.load(Path(path), weights_only=True))


def save_ensemble(members: list[Member], directory: str | Path, settings: dict) -> Path:
    """Write member-<k>.pt and closure.json (``settings``: solver settings, e.g. wave_speed, cfl)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    files = [members[k].save(directory / f"member-{k}.pt").name for k in range(len(members))]
    meta = {"format": FORMAT, "members": files, "n_moments": members[0].n_moments,
            "degree": members[0].C.shape[2] - 1, "solver": dict(settings)}
    tmp = directory / f".{META}.tmp"
    tmp.write_text(json.dumps(meta, indent=1))
    tmp.replace(directory / META)
    return directory


def model_directory(path: str | Path) -> Path:
    """The closure directory of ``path``: itself, or the model recorded in a run directory's summary.json."""
    p = Path(path)
    if (p / META).is_file():
        return p
    summary = p / "summary.json"
    if summary.is_file():
        rel = json.loads(summary.read_text()).get("model")
        if rel and (p / rel / META).is_file():
            return p / rel
    raise FileNotFoundError(f"{p}: neither a closure directory (no {META}) nor a finished kinetic run "
                            "(summary.json naming a model)")


def load_members(path: str | Path) -> tuple[list[Member], dict]:
    d = model_directory(path)
    meta = json.loads((d / META).read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{d / META}: unknown closure format {meta.get('format')!r} (expected {FORMAT})")
    return [Member.load(d / f) for f in meta["members"]], meta
