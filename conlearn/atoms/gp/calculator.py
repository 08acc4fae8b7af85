"""ASE calculators over a ``GaussianProcess``: energy, forces, stress and their uncertainty."""

from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from ..stress import virial_to_stress
from .gp import GaussianProcess


class GPCalculator(Calculator):
    """Posterior mean of a GP force field, with its epistemic uncertainty.

    Results: ``energy``/``free_energy`` (eV, sum of predicted local energies), ``energies``
    ``[n_atoms]`` eV, ``forces`` ``[n_atoms, 3]`` eV/Å, ``force_std`` ``[n_atoms, 3]`` eV/Å
    (posterior standard deviation of each force component, label noise excluded) and
    ``energies_std`` ``[n_atoms]`` eV.  For cells periodic in all three directions also
    ``stress`` ``[6]`` eV/Å^3 (ASE sign and Voigt order, the exact strain derivative of the
    predicted energy; it shares the kernel pass of the forces) and, with ``stress_std``,
    its posterior std ``stress_std`` ``[6]`` eV/Å^3 (off by default: its prior is a double
    sum over all cluster pairs of the frame, about the cost of the force std again).  The
    energy is zero when atoms are farther apart than the cutoffs; add reference atomic
    energies outside (e.g. ASE's ``SumCalculator``).
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(self, gp: GaussianProcess, std: bool = True, stress_std: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        self.gp = gp
        self.std = std
        self.stress_std = stress_std

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        periodic = bool(self.atoms.pbc.all())
        out = self.gp.predict(self.gp.environments(self.atoms), std=self.std, stress=periodic,
                              stress_std=self.std and self.stress_std)
        self.results = {
            "energy": float(out["energy"][0]),
            "free_energy": float(out["energy"][0]),
            "energies": out["local_energies"],
            "forces": out["forces"],
        }
        if periodic:
            self.results["stress"] = out["stress"][0]
        if self.std:
            self.results["force_std"] = out["force_std"]
            self.results["energies_std"] = out["local_energy_std"]
            if "stress_std" in out:
                self.results["stress_std"] = out["stress_std"][0]

    def max_force_std(self) -> float:
        """Largest per-component force std of the last calculation, eV/Å (OTF trigger)."""
        return float(np.max(self.results["force_std"])) if "force_std" in self.results else np.nan


class MappedGPCalculator(Calculator):
    """The GP mean through its spline map (:mod:`conlearn.atoms.gp.mapping`): cost per
    frame independent of the training set.

    Results: ``energy``/``free_energy`` eV, ``energies`` ``[n_atoms]`` eV, ``forces``
    ``[n_atoms, 3]`` eV/Å, ``stress`` ``[6]`` eV/Å^3 (ASE Voigt order, periodic cells; the
    virial of the spline cluster forces, ``-sum_edges dphi/dr r_e (x) r_e / r_e`` over V,
    the exact strain derivative of the mapped energy, and with a fallback frame the exact
    GP's stress) and ``mapped`` (False when a frame left the tables and ``gp``'s exact mean
    was used).  No uncertainty: ask the GP (``gp.force_std``, ``gp.predict(...,
    stress=True)``) when needed.
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(self, mapped, gp: GaussianProcess | None = None, **kwargs):
        super().__init__(**kwargs)
        self.mapped, self.gp = mapped, gp
        self.n_exact = 0  # frames that needed the exact GP

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        from ase.stress import full_3x3_to_voigt_6_stress

        from .environment import atoms_environments

        super().calculate(atoms, properties, system_changes)
        m = self.mapped
        envs = atoms_environments(self.atoms, m.r_cut2, m.r_cut3, cutoff=m.cutoff)
        mapped = m.covers(envs)
        if mapped:
            out = m.predict(envs)
        elif self.gp is not None:
            self.n_exact += 1
            out = self.gp.predict(envs, std=False, stress=bool(self.atoms.pbc.all()))
        else:
            raise ValueError(f"a distance of this frame is below the mapped range {m.r_min} Å "
                             "and no exact GP was given to fall back on")
        self.results = {"energy": float(out["energy"][0]), "free_energy": float(out["energy"][0]),
                        "energies": out["local_energies"], "forces": out["forces"],
                        "mapped": mapped}
        if mapped and self.atoms.pbc.all():
            stress = virial_to_stress(out["virial"], self.atoms.get_volume())
            self.results["stress"] = full_3x3_to_voigt_6_stress(stress)
        elif "stress" in out:
            self.results["stress"] = out["stress"][0]
