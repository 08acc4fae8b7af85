"""The all-atom reference: OpenMM SPC/E water and methanol boxes (signatures; bodies next)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AllAtomSpec:
    """An all-atom liquid: ``liquid`` "spce" or "methanol", ``n_molecules`` molecules."""

    liquid: str = "spce"
    n_molecules: int = 236
    temperature: float = 300.0
    dt_fs: float = 2.0
    cutoff_nm: float = 0.9
    friction_per_ps: float = 1.0
    platform: str = "CPU"
    threads: int = 1


def run_allatom(spec: AllAtomSpec, n_steps: int, save_every: int, seed: int, start=None) -> dict:
    """positions/forces [T, n_atoms, 3], box [3], masses, molecule_of_atom, steps, wall_s, state."""
    raise NotImplementedError


def restrained_mean_force(spec: AllAtomSpec, mapping, bead_positions, box, k_restraint: float,
                          n_steps: int, seed: int, equil_steps: int) -> dict:
    """mean_force [N, 3], stderr [N, 3], steps."""
    raise NotImplementedError
