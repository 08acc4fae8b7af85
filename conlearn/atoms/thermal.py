"""Initial velocities for MD: Maxwell-Boltzmann momenta drawn from a numpy Generator.

One function for the DP-GEN explorer and the on-the-fly loop, independent of the ASE
version (ASE 3.29 renamed its own helper and deprecated the old name).
"""

from __future__ import annotations

import numpy as np
from ase import Atoms, units
from ase.md.velocitydistribution import Stationary


def thermalize(atoms: Atoms, temperature_K: float, rng: np.random.Generator) -> None:
    """Maxwell-Boltzmann momenta at ``temperature_K`` from ``rng``, zero total momentum."""
    sd = np.sqrt(atoms.get_masses() * units.kB * temperature_K)[:, None]
    atoms.set_momenta(rng.standard_normal((len(atoms), 3)) * sd)
    Stationary(atoms)
