"""Force matching of a bead network on mapped forces (MS-CG's objective, learned).

A labelled frame is a dict ``{"R": [N, 3] nm, "F": [N, 3] kJ/mol/nm, "box": [3] nm}`` (plus
``"stderr"`` ``[N, 3]`` for restrained mean forces). The loss is the mean squared force error
``<|F - F_model|²>`` over beads and components ((kJ/mol/nm)²), minimised by Adam in float64
with an exponentially decaying learning rate; batches are drawn from a generator seeded by
``seed``, so a training is a pure function of (data, start model, settings, seed).
A Δ model trains its ML part on ``F - F_pair``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..atoms.graph import collate, frame_graph
from .model import TYPE_MAP, BeadNet


@dataclass(frozen=True)
class FitSettings:
    """Adam on the force loss: ``n_steps`` steps of ``batch_frames`` frames, learning rate
    decaying exponentially from ``lr`` to ``lr_end``."""

    n_steps: int = 400
    batch_frames: int = 4
    lr: float = 3e-3
    lr_end: float = 1e-4


def frame_arrays(frames) -> tuple[list, np.ndarray]:
    """``([(R, box), ...], F [T, N, 3])`` of labelled frames."""
    geo = [(np.asarray(f["R"], dtype=np.float64), np.asarray(f["box"], dtype=np.float64)) for f in frames]
    return geo, np.stack([np.asarray(f["F"], dtype=np.float64) for f in frames])


def baseline_forces(pair, frames) -> np.ndarray:
    """``[T, N, 3]`` kJ/mol/nm of a baseline potential on labelled frames (zeros without one)."""
    geo, F = frame_arrays(frames)
    if pair is None:
        return np.zeros_like(F)
    return np.stack([pair.energy_forces(torch.as_tensor(r), torch.as_tensor(b))[1].detach().numpy()
                     for r, b in geo])


def fit_forces(net: BeadNet, frames, settings: FitSettings, seed: int, baseline=None,
               log=None) -> dict:
    """Train ``net`` in place on ``frames`` (targets ``F - F_baseline``); returns metrics:
    ``loss_first``/``loss_last`` (mean over the first/last 10 % of steps, (kJ/mol/nm)²)."""
    geo, F = frame_arrays(frames)
    target = torch.as_tensor(F - baseline_forces(baseline, frames))
    rc, sel = net.spec.rcut, net.spec.sel
    graphs = [frame_graph(r, np.diag(b), np.ones(3, bool), np.zeros(len(r), np.int64), rcut=rc, sel=[sel],
                          type_map=TYPE_MAP, frame=k) for k, (r, b) in enumerate(geo)]
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=settings.lr)
    gamma = (settings.lr_end / settings.lr) ** (1.0 / max(1, settings.n_steps))
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma)
    gen = torch.Generator().manual_seed(int(seed) % (2**63))
    nb = min(settings.batch_frames, len(graphs))
    losses = []
    for step in range(settings.n_steps):
        idx = torch.randperm(len(graphs), generator=gen)[:nb].tolist()
        g = collate([graphs[k] for k in idx], 1)
        _, f = net.forces_graph(g, create_graph=True)
        loss = ((f - target[idx].reshape(-1, 3)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if log is not None and (step % 100 == 0 or step == settings.n_steps - 1):
            log(f"step {step}: loss {losses[-1]:.4g}")
    k = max(1, len(losses) // 10)
    return {"loss_first": float(np.mean(losses[:k])), "loss_last": float(np.mean(losses[-k:])),
            "n_frames": float(len(graphs)), "steps": float(settings.n_steps)}


def predict_forces(model, frames) -> np.ndarray:
    """``[T, N, 3]`` kJ/mol/nm of any bead potential on the frames."""
    geo, _ = frame_arrays(frames)
    return np.stack([model.energy_forces(torch.as_tensor(r), torch.as_tensor(b))[1].detach().numpy()
                     for r, b in geo])


def fm_residual(model, frames) -> float:
    """Force-matching residual ``Σ|F - F_model|² / Σ|F|²`` (dimensionless) on labelled frames."""
    _, F = frame_arrays(frames)
    return float(((F - predict_forces(model, frames)) ** 2).sum() / (F ** 2).sum())
