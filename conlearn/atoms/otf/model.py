"""The on-the-fly model: a GP, its spline-mapped mean for MD, and its exact uncertainty.

The GP is the full ``GaussianProcess``, or with ``gp.sparse`` the DTC ``SparseGP`` over at
most ``n_inducing`` inducing local energies (same methods; its std is the DTC epistemic
std, see :mod:`conlearn.atoms.gp.sparse`).

MD forces come from the mapped mean (:mod:`conlearn.atoms.gp.mapping`), re-mapped after
every update; a frame outside the tables falls back to the exact mean.  The uncertainty
is always the exact posterior std of the GP (``force_std``), evaluated
when the loop asks for it (every ``check_every`` steps).

The force noise ``noise`` (eV/Å) is the part of a label the model cannot represent; on a
noise-free reference it is the model's misfit.  The likelihood of the training labels
underestimates it (they were chosen early and where the GP was unsure, and a flexible
kernel interpolates them), so frames labelled by an audit -- out of sample, not chosen by
the model -- set a floor under it: :func:`calibrated_noise`.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from scipy.optimize import minimize_scalar

from ..gp.calculator import GPCalculator, MappedGPCalculator
from ..gp.gp import GaussianProcess
from ..gp.io import model_from_dict, model_to_dict
from ..gp.kernels import NBodyKernel
from ..gp.mapping import MappedGP, map_gp
from ..gp.sparse import SparseGP
from .config import GPSpec


def calibrated_noise(audits: list) -> float:
    """The noise ``s`` (eV/Å) that maximises ``sum log N(err; 0, std^2 + s^2)`` over the
    force components of audited frames: the noise at which the predictive std of an
    observed force is calibrated on out-of-sample errors (0 when the epistemic std alone
    already covers them).

    audits: ``(err, std)`` pairs of arrays ``[n_atoms, 3]`` eV/Å: the error of the mean the
    model had on an audited frame (before training on it) and its epistemic std there.
    """
    err = np.concatenate([np.ravel(e) for e, _ in audits])
    var = np.concatenate([np.ravel(s) for _, s in audits]) ** 2

    def nll(log_s):
        v = var + np.exp(2 * log_s)
        return float(np.sum(np.log(v) + err**2 / v))

    # beyond the largest |err| the likelihood only decreases; a grid, then Brent around its best
    grid = np.linspace(np.log(1e-6), np.log(max(float(np.abs(err).max()), 1e-6)) + 0.1, 121)
    best = int(np.argmin([nll(g) for g in grid]))
    lo, hi = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    res = minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(res.x)) if best > 0 else 0.0


class OTFModel:
    """GP + mapped mean.  ``calc`` is the ASE calculator MD runs on (updated in place).
    ``audits``: ``(err, std)`` of each audited frame (:func:`calibrated_noise`)."""

    def __init__(self, gp: GaussianProcess | SparseGP, spec: GPSpec,
                 mapped: MappedGP | None = None, audits: list | None = None):
        self.gp, self.spec, self.mapped = gp, spec, mapped
        self.audits = [] if audits is None else audits
        self.calc = (MappedGPCalculator(mapped, gp) if spec.mapping.enabled
                     else GPCalculator(gp, std=False))

    @classmethod
    def from_spec(cls, spec: GPSpec) -> "OTFModel":
        """An empty model: the full GP, or the sparse one when ``spec.sparse`` is set."""
        kernels = [NBodyKernel(k.body, k.sigma, k.length) for k in spec.kernels]
        args = (kernels, spec.r_cut2, spec.r_cut3, spec.cutoff, spec.noise, spec.energy_noise)
        sparse = getattr(spec, "sparse", None)  # absent from the batch loop's spec
        kw = {"stress_noise": getattr(spec, "stress_noise", 1e-3)}
        gp = (GaussianProcess(*args, **kw) if sparse is None else
              SparseGP(*args, select=sparse.select, n_inducing=sparse.n_inducing, seed=sparse.seed, **kw))
        return cls(gp, spec, map_gp(gp))

    @property
    def empty(self) -> bool:
        return self.gp.n_labels == 0

    def force_std(self, atoms: Atoms) -> np.ndarray:
        """Exact posterior (epistemic) std of every force component ``[n_atoms, 3]`` eV/Å."""
        return self.gp.force_std(self.gp.environments(atoms))

    def add(self, atoms: Atoms, indices, forces: np.ndarray, energy: float | None,
            stress: np.ndarray | None = None) -> None:
        """Train on ``forces [n_atoms, 3]`` (eV/Å) of atoms ``indices`` and, when the spec
        asks for them, the frame ``energy`` (eV) and ``stress`` (``[6]`` Voigt or 3x3,
        eV/Å^3, ASE sign; periodic frames).  A sparse GP takes its new inducing
        environments from those atoms only (by its rule, up to its cap)."""
        indices = np.asarray(indices, dtype=np.int64)
        sparse = getattr(self.spec, "sparse", None)
        if isinstance(self.gp, SparseGP) and sparse is not None and sparse.grow and \
                self.gp.n_inducing is not None and self.gp.n_latent >= self.gp.n_inducing:
            self.gp.n_inducing += sparse.grow  # saved with the model: a resume keeps it
        self.gp.add(self.gp.environments(atoms, indices), forces=forces[indices])
        # no inducing candidates below: "all"/"random" would pick the atoms above twice
        extra = {"inducing": []} if isinstance(self.gp, SparseGP) else {}
        if self.spec.energy_labels and energy is not None:
            self.gp.add(self.gp.environments(atoms), energy=np.array([energy]), **extra)
        if getattr(self.spec, "stress_labels", False) and stress is not None and atoms.pbc.all():
            self.gp.add(self.gp.environments(atoms), stress=np.asarray(stress).reshape(1, -1), **extra)

    def audit(self, err: np.ndarray, std: np.ndarray) -> float:
        """Record an audited frame's out-of-sample error of the mean ``err`` and the
        epistemic std ``std`` (``[n_atoms, 3]`` eV/Å, before training on it); returns the
        noise that frame alone calls for (eV/Å)."""
        self.audits.append((np.asarray(err, dtype=np.float64), np.asarray(std, dtype=np.float64)))
        return calibrated_noise(self.audits[-1:])

    @property
    def noise_floor(self) -> float:
        """eV/Å: ``optimize.noise_min``, or the audits' calibrated noise when larger."""
        floor = self.spec.optimize.noise_min
        return max(floor, calibrated_noise(self.audits)) if self.audits else floor

    def optimize(self):
        """Maximum likelihood fit with the force noise at least :attr:`noise_floor`."""
        o = self.spec.optimize
        return self.gp.optimize(noise_min=self.noise_floor, length_bounds=o.length_bounds,
                                maxiter=o.maxiter)

    def raise_noise(self) -> bool:
        """Lift the force noise to :attr:`noise_floor` (refactorising) if it is below."""
        if self.gp.noise >= self.noise_floor:
            return False
        theta = self.gp.hyperparameters
        theta[-1] = self.noise_floor
        self.gp.set_hyperparameters(theta)
        return True

    def remap(self) -> None:
        """Re-map the mean and point the calculator at the new tables."""
        m = self.spec.mapping
        if m.enabled:
            self.mapped = map_gp(self.gp, {2: m.spacing2, 3: m.spacing3}, m.r_min)
            self.calc.mapped = self.mapped
        self.calc.reset()

    def to_dict(self) -> dict:
        return {"gp": model_to_dict(self.gp),
                "mapped": self.mapped.to_dict() if self.mapped is not None else None,
                "audits": [[e, s] for e, s in self.audits]}

    @classmethod
    def from_dict(cls, d: dict, spec: GPSpec) -> "OTFModel":
        mapped = MappedGP.from_dict(d["mapped"]) if d.get("mapped") is not None else None
        return cls(model_from_dict(d["gp"]), spec, mapped,
                   [(np.asarray(e), np.asarray(s)) for e, s in d.get("audits", [])])
