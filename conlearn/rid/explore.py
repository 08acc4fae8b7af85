"""The RiD explorer: one walker of MD biased by −σ(ε)⟨A⟩, every frame scored by ε.

A walker whose MD diverges (NaN coordinates) is retried once with another seed; failing again,
it gives no frames this iteration (recorded in the batch meta under ``failed``), restarts next
iteration from where it was, and the iteration cannot count as converged.

A condition is a walker (``{"walker": w, "start": state or None}``); ``follow`` continues each
walker from where its previous iteration ended. The trust levels (e0, e1) come from the
trained ensemble's metrics and are written to the batch meta for the selector. An untrained
ensemble (iteration 0) gives no bias and trusts nothing (every frame's ε is taken as ≥ e1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..core.records import Candidate, Condition, ExploredBatch, TaskContext, TrainResult, derive_seed
from .bias import EnsembleBias
from .engine import Engine
from .model import Ensemble


def walkers(n: int) -> list[Condition]:
    """The exploration conditions: ``n`` walkers starting from the engine's initial states."""
    return [Condition(f"walker-{w:02d}", {"walker": w, "start": None}) for w in range(n)]


@dataclass(frozen=True)
class BiasedExplorer:
    """The RiD :class:`~conlearn.core.protocols.Explorer`: ``n_steps`` MD steps per walker and
    iteration, a frame every ``frame_every`` steps."""

    engine: Engine
    n_steps: int = 10000
    frame_every: int = 50

    def explore(self, models: Sequence[TrainResult], condition: Condition, ctx: TaskContext) -> ExploredBatch:
        model = models[0]
        e0, e1 = float(model.metrics["e0"]), float(model.metrics["e1"])
        ens = Ensemble.load(model.model_paths[0])
        trained = ens.n_trained > 0
        bias = EnsembleBias(ens, e0, e1) if trained else None
        start = condition.params.get("start")
        res, errors = None, []
        for attempt in range(2):  # a diverged walker is retried once with another seed, then skipped
            try:
                res = self.engine.biased_md(bias, self.n_steps, self.frame_every,
                                            derive_seed(ctx.seed, f"attempt-{attempt}") if attempt else ctx.seed,
                                            start)
                break
            except (ValueError, TypeError):  # a wrong setting, not a divergence: stop the run
                raise
            except Exception as err:  # FloatingPointError, OpenMMException (NaN coordinates) ...
                errors.append(f"try {attempt + 1}: {type(err).__name__}: {err}")
        if res is None:  # no frames; the walker starts again from where it was; no convergence now
            meta = {"n_steps": 0, "e0": e0, "e1": e1, "biased": trained, "trust_at_max": False,
                    "last": start, "max_eps": 0.0, "failed": errors}
            return ExploredBatch(condition=condition, candidates=(), meta=meta)
        eps = ens.deviation(res.cv)
        if not trained:
            eps = np.maximum(eps, e1)
        frames = res.frames if res.frames is not None else [None] * len(res.cv)
        cands = tuple(Candidate(deviation=float(eps[i]), payload={"s": np.asarray(res.cv[i], dtype=float),
                                                                   "state": frames[i]})
                      for i in range(len(res.cv)))
        meta = {"n_steps": int(res.n_steps), "e0": e0, "e1": e1, "biased": trained,
                "trust_at_max": bool(model.metrics.get("trust_at_max", 1.0)),
                "last": np.asarray(res.last).tolist(), "max_eps": float(eps.max()) if len(eps) else 0.0,
                **({"failed": errors} if errors else {})}
        return ExploredBatch(condition=condition, candidates=cands, meta=meta)

    def follow(self, condition: Condition, previous: ExploredBatch) -> Condition:
        return Condition(condition.name, {**condition.params, "start": previous.meta["last"]})
