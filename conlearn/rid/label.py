"""RiD labels: the mean force at a CV point s* from restrained MD.

Under the restraint ½ Σ_j κ_j wrap(s_j − s*_j)², the restrained free energy
A_κ(s*) = −kT ln ∫ exp(−β[A(s) + ½ Σ κ_j wrap(s_j − s*_j)²]) ds has the exact gradient

    −∂A_κ/∂s*_j = κ_j ⟨wrap(s_j − s*_j)⟩          (kJ/mol/rad)

and A_κ → A as κ grows (for a harmonic A = ½ k_w (s − s0)², the label is
−k_w (s* − s0) κ/(κ + k_w)). The average is the arithmetic mean of the *wrapped* differences
(for periodic CVs that is what the wrapped restraint makes exact, unlike a circular mean),
over the frames after the first ``equilibration`` fraction; its standard error comes from
``n_blocks`` block means. A label whose largest component error exceeds ``max_error`` is run
again ``rerun_factor`` times longer (once, with a new seed; that run alone gives the label);
if still too noisy it is dropped: :class:`LabelDropped` is raised and the loop records the
item as quarantined with the reason (never silently kept). The steps of every run, kept or
dropped, are written to the task directory (``md.json``) for the run's step count.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.records import Candidate, TaskContext, derive_seed
from .cv import wrap
from .engine import Engine

MD_FILE = "md.json"  # {"n_steps": ...} in a label's task directory


class LabelDropped(RuntimeError):
    """A mean force still too noisy after the longer rerun (the loop quarantines the item)."""


def block_standard_error(x: np.ndarray, n_blocks: int) -> np.ndarray:
    """Standard error of the mean of x [n, d] from ``n_blocks`` contiguous block means ([d])."""
    n = len(x) // n_blocks * n_blocks
    if n_blocks < 2 or n < n_blocks:
        raise ValueError(f"need at least {n_blocks} >= 2 frames for the block error, got {len(x)}")
    means = x[:n].reshape(n_blocks, -1, x.shape[-1]).mean(axis=1)
    return means.std(axis=0, ddof=1) / np.sqrt(n_blocks)


def mean_force(cv: np.ndarray, center: np.ndarray, kappa: np.ndarray, periodic, equilibration: float = 0.2,
               n_blocks: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(κ ⟨wrap(s − s*)⟩ [d], its block standard error [d]) from restrained frames cv [n, d]."""
    cv = np.asarray(cv, dtype=float)
    kept = cv[int(round(equilibration * len(cv))):]
    dev = wrap(kept - np.asarray(center, dtype=float), periodic)
    kappa = np.asarray(kappa, dtype=float)
    return kappa * dev.mean(axis=0), kappa * block_standard_error(dev, n_blocks)


@dataclass(frozen=True)
class RestrainedLabeler:
    """The RiD :class:`~conlearn.core.protocols.Labeler`: candidate payload ``{"s": [d],
    "state": engine state or None}`` -> label ``{"s", "mean_force", "error", "kappa",
    "n_steps", "reran", "iteration"}`` (kJ/mol/rad, [d] each).

    kappa:        restraint constants [d], kJ/mol/unit².
    n_steps:      MD steps of one restrained run; frame_every: steps between frames.
    equilibration: fraction of the frames discarded at the start.
    n_blocks:     blocks of the standard error.
    max_error:    largest accepted error of a component, kJ/mol/rad.
    rerun_factor: the rerun is this many times longer.
    """

    engine: Engine
    kappa: tuple[float, ...]
    n_steps: int = 2000
    frame_every: int = 1
    equilibration: float = 0.2
    n_blocks: int = 10
    max_error: float = 1.0
    rerun_factor: int = 4

    def run(self, center: np.ndarray, start, n_steps: int, seed: int):
        res = self.engine.restrained_md(center, np.asarray(self.kappa), n_steps, self.frame_every, seed, start)
        periodic = tuple(c.periodic for c in self.engine.cvs)
        f, err = mean_force(res.cv, center, self.kappa, periodic, self.equilibration, self.n_blocks)
        return f, err, res.n_steps

    def label(self, candidate: Candidate, ctx: TaskContext) -> dict:
        center = np.asarray(candidate.payload["s"], dtype=float)
        start = candidate.payload.get("state")
        f, err, steps = self.run(center, start, self.n_steps, ctx.seed)
        reran = bool(np.max(err) > self.max_error)
        if reran:
            f, err, more = self.run(center, start, self.n_steps * self.rerun_factor, derive_seed(ctx.seed, "rerun"))
            steps += more
        Path(ctx.workdir, MD_FILE).write_text(json.dumps({"n_steps": int(steps)}))
        if np.max(err) > self.max_error:
            raise LabelDropped(f"mean-force error {np.max(err):.3g} > max_error {self.max_error:g} kJ/mol/rad "
                               f"after a {self.rerun_factor}x longer rerun ({steps} MD steps) at s* = "
                               f"{np.round(center, 3).tolist()}")
        return {"s": center, "mean_force": f, "error": err, "kappa": np.asarray(self.kappa, dtype=float),
                "n_steps": int(steps), "reran": reran, "iteration": ctx.iteration}
