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
                instead of being drowned by one with many), or "balanced-largest"
                (round-robin over conditions, largest deviation first within each, items
                of one task at least ``min_gap`` items apart: the rare, most uncertain
                events of every condition are labelled, not their neighbours in time).
    min_gap:    for "balanced-largest", the smallest distance in item number (trajectory
                frames) between two picks of one exploration task.
    dedup:      optional picklable hook ``candidates -> kept candidates`` (e.g. drop frames
                too similar to one another); it sees candidates in key order, before the cap.
    """

    lo: float
    hi: float
    threshold: float = 0.99
    max_select: int | None = None
    order: Literal["random", "largest", "balanced", "balanced-largest"] = "random"
    dedup: Dedup | None = None
    min_gap: int = 0

    def __post_init__(self) -> None:
        if not (0 <= self.lo < self.hi):
            raise ValueError(f"trust window needs 0 <= lo < hi, got lo={self.lo}, hi={self.hi}")
        if not (0 < self.threshold <= 1):
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if self.max_select is not None and self.max_select < 0:
            raise ValueError(f"max_select must be >= 0 or None, got {self.max_select}")
        orders = ("random", "largest", "balanced", "balanced-largest")
        if self.order not in orders:
            raise ValueError(f"order must be one of {orders}, got {self.order!r}")
        if self.min_gap < 0:
            raise ValueError(f"min_gap must be >= 0, got {self.min_gap}")

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
        if self.order.startswith("balanced"):
            return [kept[i] for i in sorted(self._balanced(kept, rng))]
        chosen = rng.sample(range(len(kept)), self.max_select)
        return [kept[i] for i in sorted(chosen)]

    def _balanced(self, kept: list[Candidate], rng: random.Random) -> list[int]:
        """Round-robin over exploration tasks (key ``"<task key>/<item>"``)."""
        groups: dict[str, list[int]] = {}
        for i, c in enumerate(kept):
            groups.setdefault(c.key.rsplit("/", 1)[0], []).append(i)
        largest = self.order == "balanced-largest"
        queues = [sorted(g, key=lambda i: (kept[i].deviation, kept[i].key)) if largest else rng.sample(g, len(g))
                  for _, g in sorted(groups.items())]
        taken: list[list[int]] = [[] for _ in queues]  # item numbers picked per task

        def item(i: int) -> int:
            tail = kept[i].key.rsplit("/", 1)[-1]
            return int(tail) if tail.isdigit() else i

        chosen: list[int] = []
        while len(chosen) < self.max_select and any(queues):
            for q, t in zip(queues, taken):
                while q and len(chosen) < self.max_select:
                    i = q.pop()  # the last: largest deviation, or a random one
                    if largest and any(abs(item(i) - j) < self.min_gap for j in t):
                        continue
                    chosen.append(i)
                    t.append(item(i))
                    break
        return chosen
