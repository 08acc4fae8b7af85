"""The on-the-fly model: a GP, its spline-mapped mean for MD, and its exact uncertainty.

MD forces come from the mapped mean (:mod:`conlearn.atoms.gp.mapping`), re-mapped after
every update; a frame outside the tables falls back to the exact mean.  The uncertainty
is always the exact posterior std of the GP (``GaussianProcess.force_std``), evaluated
when the loop asks for it (every ``check_every`` steps).
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from ..gp.calculator import GPCalculator, MappedGPCalculator
from ..gp.gp import GaussianProcess
from ..gp.io import gp_from_dict, gp_to_dict
from ..gp.kernels import NBodyKernel
from ..gp.mapping import MappedGP, map_gp
from .config import GPSpec


class OTFModel:
    """GP + mapped mean.  ``calc`` is the ASE calculator MD runs on (updated in place)."""

    def __init__(self, gp: GaussianProcess, spec: GPSpec, mapped: MappedGP | None = None):
        self.gp, self.spec, self.mapped = gp, spec, mapped
        self.calc = (MappedGPCalculator(mapped, gp) if spec.mapping.enabled
                     else GPCalculator(gp, std=False))

    @classmethod
    def from_spec(cls, spec: GPSpec) -> "OTFModel":
        gp = GaussianProcess([NBodyKernel(k.body, k.sigma, k.length) for k in spec.kernels],
                             spec.r_cut2, spec.r_cut3, spec.cutoff, spec.noise, spec.energy_noise)
        return cls(gp, spec, map_gp(gp))

    @property
    def empty(self) -> bool:
        return self.gp.n_labels == 0

    def force_std(self, atoms: Atoms) -> np.ndarray:
        """Exact posterior std of every force component ``[n_atoms, 3]`` eV/Å."""
        return self.gp.force_std(self.gp.environments(atoms))

    def add(self, atoms: Atoms, indices, forces: np.ndarray, energy: float | None) -> None:
        """Train on ``forces [n_atoms, 3]`` (eV/Å) of atoms ``indices`` and, when the spec
        asks for it, the frame ``energy`` (eV)."""
        indices = np.asarray(indices, dtype=np.int64)
        self.gp.add(self.gp.environments(atoms, indices), forces=forces[indices])
        if self.spec.energy_labels and energy is not None:
            self.gp.add(self.gp.environments(atoms), energy=np.array([energy]))

    def optimize(self):
        o = self.spec.optimize
        return self.gp.optimize(noise_min=o.noise_min, length_bounds=o.length_bounds,
                                maxiter=o.maxiter)

    def remap(self) -> None:
        """Re-map the mean and point the calculator at the new tables."""
        m = self.spec.mapping
        if m.enabled:
            self.mapped = map_gp(self.gp, {2: m.spacing2, 3: m.spacing3}, m.r_min)
            self.calc.mapped = self.mapped
        self.calc.reset()

    def to_dict(self) -> dict:
        return {"gp": gp_to_dict(self.gp),
                "mapped": self.mapped.to_dict() if self.mapped is not None else None}

    @classmethod
    def from_dict(cls, d: dict, spec: GPSpec) -> "OTFModel":
        mapped = MappedGP.from_dict(d["mapped"]) if d.get("mapped") is not None else None
        return cls(gp_from_dict(d["gp"]), spec, mapped)
