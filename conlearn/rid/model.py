"""The free-energy model of RiD: an ensemble of M MLPs A_m(s), trained vectorised over members.

Features: (cos s_j, sin s_j) for a periodic CV, (s_j − shift_j) / scale_j otherwise. Each
member is a tanh MLP (:func:`conlearn.nn.mlp.fitting_layers`, residual where widths match)
with its own weights; the M members are stacked ([M, n_in, n_out] weights) and evaluated by
batched matrix products, so training M members costs one forward/backward pass.

    A_m(s)        kJ/mol, [M, n]
    F_m(s) = −∇_s A_m(s)   kJ/mol/rad (per CV unit), [M, n, d]    (autograd)
    ε(s)   = sqrt((1/d) Σ_j Var_m F_mj(s))                         [n] (population variance over m)

Training fits every member's F_m to the labelled mean forces (mean squared error over labels
and CV components); members differ by their random initial weights and by the random part of
the labels each holds out for early stopping. A warm start
continues from the previous iteration's weights. Files: ``<name>.pt`` (tensors only, read with
``torch.load(weights_only=True)``) and ``<name>.json`` (settings); nothing executes on load.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..core.manifest import atomic_write_bytes
from ..nn.derivatives import gradient
from ..nn.mlp import fitting_layers


VERSION = 1
DTYPE = torch.float64


@dataclass(frozen=True)
class FitSettings:
    """One training: ``n_steps`` full-batch Adam steps, learning rate decaying exponentially
    from ``lr`` to ``lr_final``; early stopping on a ``validation`` fraction of the labels
    (per member), checked every ``check_every`` steps (see :meth:`Ensemble.fit`)."""

    n_steps: int = 2000
    lr: float = 3e-3
    lr_final: float = 1e-4
    validation: float = 0.0
    check_every: int = 20


class Ensemble:
    """M stacked MLPs A_m(s) over d CVs (see the module docstring)."""

    def __init__(self, periodic: Sequence[bool], n_members: int = 4, neurons: Sequence[int] = (64, 64, 64),
                 seed: int = 0, shift: Sequence[float] | None = None, scale: Sequence[float] | None = None,
                 energy_scale: float = 10.0, n_trained: int = 0, a_ref: float = 0.0):
        self.periodic = tuple(bool(p) for p in periodic)
        self.d, self.n_members, self.neurons = len(self.periodic), int(n_members), tuple(int(n) for n in neurons)
        self.shift = torch.tensor(shift if shift is not None else [0.0] * self.d, dtype=DTYPE)
        self.scale = torch.tensor(scale if scale is not None else [1.0] * self.d, dtype=DTYPE)
        self.energy_scale = float(energy_scale)
        self.n_trained = int(n_trained)  # labels seen by the last training (0: untrained)
        self.a_ref = float(a_ref)  # ⟨A⟩ at the lowest labelled point (the bias's zero), kJ/mol
        gen = torch.Generator().manual_seed(int(seed) % (2 ** 63))
        widths = [self.n_features, *self.neurons, 1]
        self.params: dict[str, torch.Tensor] = {}
        for k, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            self.params[f"w{k}"] = torch.randn(self.n_members, a, b, generator=gen, dtype=DTYPE) / math.sqrt(a + b)
            self.params[f"b{k}"] = torch.randn(self.n_members, 1, b, generator=gen, dtype=DTYPE) * (
                1.0 if k < len(self.neurons) else 0.0)
        self.residual = [a == b for a, b in zip(widths[:-2], widths[1:-1])]

    @property
    def n_features(self) -> int:
        return sum(2 if p else 1 for p in self.periodic)

    def features(self, s: torch.Tensor) -> torch.Tensor:
        """[..., d] -> [..., n_features]."""
        cols = []
        for j, p in enumerate(self.periodic):
            if p:
                cols += [torch.cos(s[..., j]), torch.sin(s[..., j])]
            else:
                cols.append((s[..., j] - self.shift[j]) / self.scale[j])
        return torch.stack(cols, dim=-1)

    def energies(self, s: torch.Tensor) -> torch.Tensor:
        """A_m(s) [M, n] kJ/mol (up to a constant) at s [n, d] (or per member, [M, n, d])."""
        x = self.features(s)
        if x.ndim == 2:
            x = x.unsqueeze(0).expand(self.n_members, -1, -1)
        p = self.params
        x = fitting_layers(x, lambda k, v: torch.baddbmm(p[f"b{k}"], v, p[f"w{k}"]), self.residual)
        last = len(self.neurons)
        return self.energy_scale * torch.baddbmm(p[f"b{last}"], x, p[f"w{last}"]).squeeze(-1)

    def energies_and_forces(self, s, create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(A [M, n], F = −∇_s A [M, n, d]) at s [n, d] (array or tensor)."""
        s = torch.as_tensor(np.asarray(s, dtype=float) if not isinstance(s, torch.Tensor) else s, dtype=DTYPE)
        if not s.requires_grad:
            s = s.detach().requires_grad_(True)
        per_member = s.unsqueeze(0).expand(self.n_members, -1, -1)  # one backward gives every member's ∇A
        A = self.energies(per_member)
        return A, -gradient(A, per_member, create_graph=create_graph)

    def deviation(self, s) -> np.ndarray:
        """ε(s) [n] kJ/mol/rad at s [n, d]."""
        _, F = self.energies_and_forces(s)
        return deviation_of(F).detach().numpy()

    # -- training --------------------------------------------------------------------------
    def fit(self, s: np.ndarray, force: np.ndarray, settings: FitSettings, seed: int = 0) -> dict[str, float]:
        """Fit every member's −∇A to ``force`` [n, d] at ``s`` [n, d]; returns RMSE metrics.

        Each member holds out its own random ``settings.validation`` fraction of the labels
        (at least 10 labels are needed for a split) and keeps the weights of its lowest
        validation error, checked every ``settings.check_every`` steps (including the starting
        weights): mean forces are noisy, and a long (or warm-started) training fits the noise.
        """
        s_t = torch.as_tensor(np.asarray(s, dtype=float))
        f_t = torch.as_tensor(np.asarray(force, dtype=float))
        if self.n_trained == 0:  # first training: fix the normalisation from the data
            self._set_normalisation(s_t, f_t)
        train, val = self._split(len(s_t), settings.validation, seed)
        params = [t.requires_grad_(True) for t in self.params.values()]
        opt = torch.optim.Adam(params, lr=settings.lr)
        gamma = (settings.lr_final / settings.lr) ** (1.0 / max(settings.n_steps, 1))
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma)
        norm = 1.0 / float(f_t.pow(2).mean().clamp_min(1e-12))
        best = {k: v.detach().clone() for k, v in self.params.items()}
        best_val = self._val_error(s_t, f_t, val)
        for step in range(1, settings.n_steps + 1):
            opt.zero_grad(set_to_none=True)
            _, F = self.energies_and_forces(s_t, create_graph=True)
            loss = (((F - f_t).pow(2).mean(-1) * train).sum(1) / train.sum(1)).sum() * norm
            loss.backward()
            opt.step()
            sched.step()
            if val is not None and (step % settings.check_every == 0 or step == settings.n_steps):
                err = self._val_error(s_t, f_t, val)
                better = err < best_val
                for k, v in self.params.items():
                    best[k][better] = v.detach()[better]
                best_val = torch.where(better, err, best_val)
        self.params = best if val is not None else {k: v.detach() for k, v in self.params.items()}
        for t in params:
            t.requires_grad_(False)
        self.n_trained = len(s_t)
        A, F = self.energies_and_forces(s_t)
        self.a_ref = float(A.detach().mean(0).min())
        per_member = (F.detach() - f_t).pow(2).mean(dim=(1, 2)).sqrt()
        mean_err = (F.detach().mean(0) - f_t).pow(2).mean().sqrt()
        out = {"rmse_f_members": float(per_member.mean()), "rmse_f_mean": float(mean_err), "n_labels": float(len(s_t))}
        if val is not None:
            out["rmse_f_val"] = float(best_val.mean().sqrt())
        return out

    def _split(self, n: int, fraction: float, seed: int):
        """(train mask [M, n] float, validation mask [M, n] bool or None): a random split per member."""
        n_val = int(round(fraction * n))
        if n < 10 or n_val < 1:
            return torch.ones(self.n_members, n, dtype=DTYPE), None
        gen = torch.Generator().manual_seed(int(seed) % (2 ** 63))
        order = torch.stack([torch.randperm(n, generator=gen) for _ in range(self.n_members)])
        val = torch.zeros(self.n_members, n, dtype=torch.bool).scatter_(1, order[:, :n_val], True)
        return (~val).to(DTYPE), val

    def _val_error(self, s: torch.Tensor, f: torch.Tensor, val) -> torch.Tensor:
        """Mean squared force error [M] of each member on its validation labels (inf without)."""
        if val is None:
            return torch.full((self.n_members,), math.inf, dtype=DTYPE)
        _, F = self.energies_and_forces(s)
        return ((F.detach() - f).pow(2).mean(-1) * val).sum(1) / val.sum(1)

    def _set_normalisation(self, s: torch.Tensor, f: torch.Tensor) -> None:
        for j, p in enumerate(self.periodic):
            if not p:
                self.shift[j] = s[:, j].mean()
                self.scale[j] = s[:, j].std().clamp_min(1e-3) if len(s) > 1 else 1.0
        self.energy_scale = max(float(f.pow(2).mean().sqrt()), 1.0)

    # -- files -----------------------------------------------------------------------------
    def meta(self) -> dict:
        return {"version": VERSION, "periodic": list(self.periodic), "n_members": self.n_members,
                "neurons": list(self.neurons), "shift": self.shift.tolist(), "scale": self.scale.tolist(),
                "energy_scale": self.energy_scale, "n_trained": self.n_trained, "a_ref": self.a_ref}

    def save(self, path: str | Path) -> tuple[str, str]:
        """Write ``path`` (.pt, tensors) and its .json; return both paths (absolute)."""
        import io

        path = Path(path).with_suffix(".pt").resolve()
        buf = io.BytesIO()
        torch.save({k: v.detach().clone() for k, v in self.params.items()}, buf)
        atomic_write_bytes(path, buf.getvalue())
        atomic_write_bytes(path.with_suffix(".json"), json.dumps(self.meta(), indent=1).encode())
        return str(path), str(path.with_suffix(".json"))

    @classmethod
    def load(cls, path: str | Path) -> "Ensemble":
        """Read a saved ensemble (``.pt`` or ``.json`` path); executes nothing from the files."""
        path = Path(path)
        meta = json.loads(path.with_suffix(".json").read_text())
        if meta.get("version") != VERSION:
            raise ValueError(f"{path}: ensemble file version {meta.get('version')}, this code reads {VERSION}")
        ens = cls(meta["periodic"], meta["n_members"], meta["neurons"], shift=meta["shift"], scale=meta["scale"],
                  energy_scale=meta["energy_scale"], n_trained=meta["n_trained"], a_ref=meta.get("a_ref", 0.0))
        state = torch.load(path.with_suffix(".pt"), weights_only=True)
        if set(state) != set(ens.params):
            raise ValueError(f"{path}: tensors {sorted(state)} do not match the settings {sorted(ens.params)}")
        ens.params = {k: state[k].to(DTYPE) for k in ens.params}
        return ens


def deviation_of(F: torch.Tensor) -> torch.Tensor:
    """ε [n] from member forces F [M, n, d]: sqrt((1/d) Σ_j Var_m F_mj), population variance."""
    return F.var(dim=0, unbiased=False).mean(dim=-1).sqrt()


class FreeEnergy:
    """The ensemble-mean free energy, on numpy arrays.

    A(s):          [n, d] -> [n] kJ/mol, shifted by ``offset`` (a run's: min 0 on its grid).
    mean_force(s): [n, d] -> [n, d] kJ/mol/rad, −∇⟨A⟩.
    deviation(s):  [n, d] -> [n] ε kJ/mol/rad.
    """

    def __init__(self, ensemble: Ensemble, offset: float = 0.0):
        self.ensemble, self.offset = ensemble, float(offset)
        self.d, self.periodic = ensemble.d, ensemble.periodic

    def A(self, s) -> np.ndarray:
        with torch.no_grad():
            A = self.ensemble.energies(torch.as_tensor(np.asarray(s, dtype=float).reshape(-1, self.d)))
        return A.mean(0).numpy() - self.offset

    def mean_force(self, s) -> np.ndarray:
        _, F = self.ensemble.energies_and_forces(np.asarray(s, dtype=float).reshape(-1, self.d))
        return F.mean(0).detach().numpy()

    def deviation(self, s) -> np.ndarray:
        return self.ensemble.deviation(np.asarray(s, dtype=float).reshape(-1, self.d))


FINAL = "free_energy"  # DIR/free_energy.pt + .json: the run's final ensemble


def load_run_free_energy(run_dir: str | Path) -> FreeEnergy:
    """The final ensemble of a RiD run directory, A shifted by the run's recorded offset."""
    path = Path(run_dir) / f"{FINAL}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the run in {run_dir} has not finished (or is not a RiD run)")
    meta = json.loads(path.read_text())
    return FreeEnergy(Ensemble.load(path), offset=meta.get("offset", 0.0))
