"""deepmd-kit's energy loss and learning-rate schedule.

``lr(step) = start_lr · r^(step // decay_steps)`` with ``r`` chosen so that ``lr`` reaches
``stop_lr`` at ``numb_steps``; each prefactor moves from its start to its limit value as
``p = limit + (start - limit) · lr / start_lr``. The loss per batch is
``p_e/N · <ΔE²> + p_f · <ΔF²> + p_v/N · <ΔW²>`` (N atoms per frame; eV, eV/Å, eV).
"""

from __future__ import annotations

import math

import torch

from .config import LearningRateConfig, LossConfig


class ExpDecay:
    """Staircase exponential decay from ``start_lr`` to ``stop_lr`` over ``numb_steps``."""

    def __init__(self, cfg: LearningRateConfig, numb_steps: int):
        self.start, self.stop = cfg.start_lr, cfg.stop_lr
        self.decay_steps = min(cfg.decay_steps, max(1, numb_steps))
        n_decays = max(1.0, numb_steps / self.decay_steps)
        self.rate = math.exp(math.log(self.stop / self.start) / n_decays)

    def __call__(self, step: int) -> float:
        return max(self.start * self.rate ** (step // self.decay_steps), self.stop)


def prefactors(cfg: LossConfig, lr: float, start_lr: float) -> tuple[float, float, float]:
    """(p_e, p_f, p_v) at learning rate ``lr``."""
    c = lr / start_lr
    mix = lambda s, l: l + (s - l) * c  # noqa: E731,E741
    return (mix(cfg.start_pref_e, cfg.limit_pref_e), mix(cfg.start_pref_f, cfg.limit_pref_f),
            mix(cfg.start_pref_v, cfg.limit_pref_v))


def energy_loss(pred: dict, batch, prefs: tuple[float, float, float]) -> tuple[torch.Tensor, dict]:
    """Loss and RMSEs (``rmse_e`` per atom, ``rmse_f``, ``rmse_v`` per atom) of one batch."""
    pe, pf, pv = prefs
    natoms = batch.n_atoms
    loss = pred["energy"].new_zeros(())
    rmse = {}
    if batch.energy is not None:
        l2 = torch.mean((pred["energy"] - batch.energy) ** 2)
        loss = loss + pe / natoms * l2 if pe else loss
        rmse["rmse_e"] = l2.detach().sqrt() / natoms
    if batch.forces is not None:
        l2 = torch.mean((pred["forces"] - batch.forces) ** 2)
        loss = loss + pf * l2 if pf else loss
        rmse["rmse_f"] = l2.detach().sqrt()
    if batch.virial is not None and pred.get("virial") is not None:
        l2 = torch.mean((pred["virial"] - batch.virial) ** 2)
        loss = loss + pv / natoms * l2 if pv else loss
        rmse["rmse_v"] = l2.detach().sqrt() / natoms
    return loss, {k: float(v) for k, v in rmse.items()}
