"""Virial <-> stress, in one place so that the sign convention lives in one place.

conlearn stores the virial ``W = -dE/d eps`` in eV (deepmd's convention); ASE's stress is
``dE/d eps / V`` in eV/Å^3. So ``stress = -W / V`` and ``W = -stress * V``. Both functions
take ``[..., 3, 3]`` arrays and a scalar volume or one volume per leading entry.
"""

from __future__ import annotations

import numpy as np


def _per_matrix(volume) -> np.ndarray:
    return np.asarray(volume, dtype=np.float64)[..., None, None]


def virial_to_stress(virial, volume) -> np.ndarray:
    """Stress ``[..., 3, 3]`` eV/Å^3 (ASE's sign) of a virial ``[..., 3, 3]`` eV."""
    return -np.asarray(virial, dtype=np.float64) / _per_matrix(volume)


def stress_to_virial(stress, volume) -> np.ndarray:
    """Virial ``[..., 3, 3]`` eV of a stress ``[..., 3, 3]`` eV/Å^3 (ASE's sign)."""
    return -np.asarray(stress, dtype=np.float64) * _per_matrix(volume)
