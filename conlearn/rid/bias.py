"""The RiD bias: V(s) = −σ(ε(s)) · (⟨A⟩(s) − A_ref), switched on only where the ensemble agrees.

σ(ε) = 1 for ε ≤ e0, 0 for ε ≥ e1, and ½(1 + cos(π (ε − e0)/(e1 − e0))) between (the trust
levels e0 < e1, kJ/mol/rad). A_ref (``offset``; by default the ensemble's ⟨A⟩ at its lowest
labelled point) fixes the constant of ⟨A⟩, which is arbitrary for the fit but not for the bias:
in the switching band the force σ'(ε) (⟨A⟩ − A_ref) ∇ε scales with it (an unshifted network
constant of a few hundred kJ/mol gave |dV/ds| > 400 kJ/mol/rad there). With the shift, the
bias lowers each trusted point by its free energy above the lowest labelled one. The gradient
dV/ds (including the σ' term) comes from autograd through the ensemble's forces.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from .model import DTYPE, Ensemble, deviation_of


def switch(eps, e0: float, e1: float):
    """σ(ε) (torch or numpy, elementwise): 1 below e0, 0 above e1, a cosine between."""
    if not e0 < e1:
        raise ValueError(f"trust levels need e0 < e1, got e0={e0}, e1={e1}")
    if isinstance(eps, torch.Tensor):
        t = ((eps - e0) / (e1 - e0)).clamp(0.0, 1.0)
        return 0.5 * (1.0 + torch.cos(math.pi * t))
    t = np.clip((np.asarray(eps, dtype=float) - e0) / (e1 - e0), 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(math.pi * t))


class EnsembleBias:
    """A :class:`~conlearn.rid.engine.Bias` from an ensemble and trust levels (e0, e1)."""

    def __init__(self, ensemble: Ensemble, e0: float, e1: float, offset: float | None = None):
        switch(0.0, e0, e1)  # checks e0 < e1
        self.ensemble, self.e0, self.e1 = ensemble, float(e0), float(e1)
        self.offset = float(ensemble.a_ref if offset is None else offset)
        self.d, self.periodic = ensemble.d, ensemble.periodic

    @classmethod
    def from_file(cls, path: str | Path, e0: float, e1: float, offset: float | None = None) -> "EnsembleBias":
        """Load the ensemble (``torch.load(weights_only=True)``) from ``path`` (.pt or .json)."""
        return cls(Ensemble.load(path), e0, e1, offset)

    def terms(self, s) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(V [n], ε [n], σ [n]) at s [n, d] as tensors, differentiable in ``s``."""
        A, F = self.ensemble.energies_and_forces(s, create_graph=True)
        eps = deviation_of(F)
        sig = switch(eps, self.e0, self.e1)
        return -sig * (A.mean(0) - self.offset), eps, sig

    def energy_and_grad(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """s [n, d] -> (V [n] kJ/mol, dV/ds [n, d] kJ/mol/rad)."""
        s_t = torch.as_tensor(np.asarray(s, dtype=float).reshape(-1, self.d), dtype=DTYPE).requires_grad_(True)
        V, _, _ = self.terms(s_t)
        (g,) = torch.autograd.grad(V.sum(), s_t)
        return V.detach().numpy(), g.numpy()
