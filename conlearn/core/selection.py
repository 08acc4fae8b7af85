"""The generic trust-window selector (DP-GEN's ``model_devi_f_trust_lo/hi``), domain-free.

An explored item with committee deviation ``d`` is

* accurate  when ``d < lo``           (the committee agrees: nothing to learn),
* candidate when ``lo <= d < hi``     (uncertain but physical: label it),
* failed    when ``d >= hi`` or NaN   (the model is lost there: the item is unphysical).

The iteration has converged when accurate / explored >= ``threshold``.
Candidates pass through an optional de-duplication hook, then at most ``max_select`` of
them are kept (a seeded random choice, the largest deviations first, or a seeded random
choice balanced over the exploration tasks the candidates come from).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Callable, Literal, Sequence

from .records import Candidate, ExploredBatch, Selection, TaskContext
from .registry import SELECTORS

Dedup = Callable[[Sequence[Candidate]], Sequence[Candidate]]


@SELECTORS.register("trust-window")
@dataclass(frozen=True)
class TrustWindowSelector:
    """Select candidates with ``lo <= deviation < hi``.

    lo, hi:     trust window, in the unit of ``Candidate.deviation``; 0 <= lo < hi.
    threshold:  accurate fraction counted as converged (e.g. 0.99).
    max_select: cap on items labelled per iteration (None: no cap).
    order:      how the cap picks: "random" (seeded by ``ctx.seed``, DP-GEN's choice,
                spreads labels over the whole window), "largest" (largest deviation first)
                or "balanced" (round-robin over the exploration tasks, i.e. conditions,
                random within each: a condition with few candidates still gets its share
                instead of being drowned by one with many).
    dedup:      optional picklable hook ``candidates -> kept candidates`` (e.g. drop frames
                too similar to one another); it sees candidates in key order, before the cap.
    """

    lo: float
    hi: float
    threshold: float = 0.99
    max_select: int | None = None
    order: Literal["random", "largest", "balanced"] = "random"
    dedup: Dedup | None = None

    def __post_init__(self) -> None:
        if not (0 <= self.lo < self.hi):
            raise ValueError(f"trust window needs 0 <= lo < hi, got lo={self.lo}, hi={self.hi}")
        if not (0 < self.threshold <= 1):
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if self.max_select is not None and self.max_select < 0:
            raise ValueError(f"max_select must be >= 0 or None, got {self.max_select}")
        if self.order not in ("random", "largest", "balanced"):
            raise ValueError(f"order must be 'random', 'largest' or 'balanced', got {self.order!r}")

    def classify(self, deviation: float) -> str:
        """'accurate', 'candidate' or 'failed' for one deviation."""
        if math.isnan(deviation) or deviation >= self.hi:
            return "failed"
        return "accurate" if deviation < self.lo else "candidate"

    def select(self, batches: Sequence[ExploredBatch], ctx: TaskContext) -> Selection:
        counts = {"accurate": 0, "candidate": 0, "failed": 0}
        window: list[Candidate] = []
        for batch in batches:
            for cand in batch.candidates:
                verdict = self.classify(float(cand.deviation))
                counts[verdict] += 1
                if verdict == "candidate":
                    window.append(cand)
        window.sort(key=lambda c: c.key)
        kept = list(self.dedup(window)) if self.dedup is not None else window
        return Selection(n_explored=sum(counts.values()), n_accurate=counts["accurate"],
                         n_candidate=counts["candidate"], n_failed=counts["failed"],
                         selected=tuple(self._cap(kept, ctx.seed)), threshold=self.threshold)

    def _cap(self, kept: list[Candidate], seed: int) -> list[Candidate]:
        if self.max_select is None or len(kept) <= self.max_select:
            return kept
        if self.order == "largest":
            return sorted(kept, key=lambda c: (-c.deviation, c.key))[: self.max_select]
        rng = random.Random(seed)
        if self.order == "balanced":
            groups: dict[str, list[int]] = {}
            for i, c in enumerate(kept):  # key = "<explore task key>/<item>"
                groups.setdefault(c.key.rsplit("/", 1)[0], []).append(i)
            queues = [rng.sample(g, len(g)) for _, g in sorted(groups.items())]
            chosen = []
            while len(chosen) < self.max_select:
                for q in queues:
                    if q and len(chosen) < self.max_select:
                        chosen.append(q.pop())
            return [kept[i] for i in sorted(chosen)]
        chosen = rng.sample(range(len(kept)), self.max_select)
        return [kept[i] for i in sorted(chosen)]
