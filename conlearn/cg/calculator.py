"""The ASE adapter for bead potentials: any BeadPotential as an ASE ``Calculator``.

ASE works in Å and eV; bead potentials in nm and kJ/mol. The calculator converts both ways:
positions and the (orthorhombic, periodic) cell Å -> nm, energy kJ/mol -> eV, forces
kJ/mol/nm -> eV/Å. A :class:`~conlearn.cg.model.BeadCommittee` also reports its deviation
``max_devi_f`` (eV/Å). Bead systems are ``ase.Atoms`` of any symbol (``"X"`` is usual).
"""

from __future__ import annotations

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes

KJ_PER_EV = 96.485332123  # kJ/mol per eV
NM = 10.0  # Å per nm


class BeadCalculator(Calculator):
    """ASE calculator over ``potential`` (``energy_forces(R nm, box nm) -> (kJ/mol, kJ/mol/nm)``)."""

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, potential, **kwargs):
        super().__init__(**kwargs)
        self.potential = potential

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        cell = self.atoms.cell.array
        if not self.atoms.pbc.all() or np.abs(cell - np.diag(np.diag(cell))).max() > 1e-12:
            raise ValueError("bead systems need a periodic orthorhombic cell")
        R = torch.as_tensor(self.atoms.positions / NM, dtype=torch.float64)
        box = torch.as_tensor(np.diag(cell) / NM, dtype=torch.float64)
        evaluate = getattr(self.potential, "evaluate", None)
        if evaluate is not None:  # a committee: mean and deviation
            e, f, devi, _ = evaluate(R, box)
            self.results["max_devi_f"] = devi / KJ_PER_EV / NM
        else:
            e, f = self.potential.energy_forces(R, box)
        energy = float(e) / KJ_PER_EV
        self.results.update(energy=energy, free_energy=energy,
                            forces=np.asarray(f.detach().cpu().numpy(), dtype=np.float64) / KJ_PER_EV / NM)
