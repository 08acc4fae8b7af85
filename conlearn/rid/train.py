"""The RiD trainer: the whole ensemble in one task (the loop runs it with n_models = 1).

Data are the labels of :class:`~conlearn.rid.label.RestrainedLabeler` (``s`` [d],
``mean_force`` [d] kJ/mol/rad). Iteration 0 has no labels: the untrained ensemble is written
(the explorer then runs unbiased MD and trusts no frame). A later iteration starts from the
previous ensemble (warm start, ``reuse`` settings) when there is one. The trust levels of the
iteration (adaptive, from the labels per past iteration) ride along in the metrics as
``e0``/``e1`` (and ``trust_at_max``) for the explorer and selector. Labels are noisy: a long
warm-started training drifts, so the final training (``final_trainer``) may start from scratch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..core.records import TaskContext, TrainResult
from .model import Ensemble, FitSettings
from .select import TrustLevels


def labels_per_iteration(data: Sequence[dict], iteration: int) -> list[int]:
    """How many labels each iteration before ``iteration`` added."""
    counts = [0] * iteration
    for p in data:
        if 0 <= p["iteration"] < iteration:
            counts[p["iteration"]] += 1
    return counts


@dataclass(frozen=True)
class EnsembleTrainer:
    """The RiD :class:`~conlearn.core.protocols.Trainer` (plain settings, picklable).

    periodic:  per CV.  n_members, neurons: the ensemble.
    fit:       the first training; reuse: warm-started trainings.
    trust:     the trust levels and their adaptive schedule.
    from_scratch: ignore ``previous`` (new weights, ``fit`` settings).
    final_trainer: None, or a trainer run once more on all data after the last iteration.
    """

    periodic: tuple[bool, ...]
    n_members: int = 4
    neurons: tuple[int, ...] = (32, 32, 32)
    fit: FitSettings = FitSettings(2000)
    reuse: FitSettings = FitSettings(500, lr=1e-3)
    trust: TrustLevels = TrustLevels()
    from_scratch: bool = False
    final_trainer: "EnsembleTrainer | None" = field(default=None)

    def train(self, data: Sequence[dict], previous: TrainResult | None, ctx: TaskContext) -> TrainResult:
        data = [p for p in data if p is not None]
        ens = Ensemble.load(previous.model_paths[0]) if previous is not None and not self.from_scratch else None
        warm = ens is not None and ens.n_trained > 0
        if not warm:
            ens = Ensemble(self.periodic, self.n_members, self.neurons, seed=ctx.seed)
        metrics: dict[str, float] = {"n_labels": float(len(data))}
        if data:
            s = np.array([p["s"] for p in data], dtype=float)
            f = np.array([p["mean_force"] for p in data], dtype=float)
            metrics.update(ens.fit(s, f, self.reuse if warm else self.fit, seed=ctx.seed))
        e0, e1 = self.trust.at(labels_per_iteration(data, ctx.iteration))
        metrics.update(e0=e0, e1=e1, warm=float(warm), trust_at_max=float(e0 >= self.trust.e0 * self.trust.max_scale))
        paths = ens.save(Path(ctx.workdir) / "ensemble.pt")
        return TrainResult(member=ctx.index, model_paths=paths, metrics=metrics)
