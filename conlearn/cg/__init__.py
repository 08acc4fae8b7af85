"""ML coarse-grained MD: mappings, pair baselines (force matching, IBI), ML and Δ bead models,
and their concurrent learning (``workflow: cg``; Khot & Savoie, JCP 159, 054102, 2023).

Units are OpenMM's throughout: nm, ps, kJ/mol, kJ/mol/nm, amu, K. See docs/cg.md.

``load_model(path)`` reads a saved bead model (``model.json``: ML-only, Δ or pair) as a
BeadPotential; ``BeadCalculator(model)`` wraps any of them as an ASE calculator over bead
systems (Å, eV). Heavy imports (torch) are paid only when these are used.
"""

from __future__ import annotations


def load_model(path):
    """A saved bead model (``model.json`` or its directory): BeadNet, DeltaModel or PairTable."""
    from .model import load_model as _load

    return _load(path)


def load_calculator(path):
    """An ASE calculator over the bead model saved at ``path``."""
    from .calculator import BeadCalculator

    return BeadCalculator(load_model(path))


__all__ = ["load_model", "load_calculator"]
