"""Plain records passed between the stages of the loop.

Every record is a frozen dataclass of plain values plus one domain ``payload`` the core
never looks into (a frame dict, a path, a float ...). Payloads must be picklable: records
travel to workers and back and are stored in the run directory by the manifest.

Stage flow and the record each stage hands on::

    train   -> TrainResult            (one per committee member)
    explore -> ExploredBatch          (one per condition; holds Candidates)
    select  -> Selection              (trust-window counts + the Candidates to label)
    label   -> LabelResult            (one per selected Candidate; ok or quarantined)

Deviations are in the domain's own unit (eV/Å for a force committee, the unit of y in the
toy); the core only compares them with the selector's trust window.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Mapping


def derive_seed(base: int, key: str) -> int:
    """A 63-bit seed from the loop seed and a task key: the same on every (re-)run."""
    digest = hashlib.blake2b(f"{base}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


@dataclass(frozen=True)
class Condition:
    """One point of the exploration grid (e.g. a temperature/pressure/structure triple).

    name:   short human label, used in logs and reports ("T300-P1").
    params: the explorer's own parameters for this point (JSON-friendly values).
    """

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskContext:
    """What a task knows about itself; passed as the last argument of every stage call.

    key:       stable manifest key, e.g. ``"iter-003/label/000017"``.
    iteration: loop iteration (0-based).
    index:     position within the stage: committee member, condition or label number.
    seed:      63-bit seed derived from (loop seed, key); use it for every random choice so
               that a re-run after a crash computes exactly the same thing.
    workdir:   absolute directory private to this task, created before the call, on a file
               system the workers share. A re-run of an unrecorded task gets the same
               directory back (possibly with partial files): tasks must overwrite, not append.
    attempt:   0 for the first call; the labelling wrapper increments it on each retry.
    """

    key: str
    iteration: int
    index: int
    seed: int
    workdir: str
    attempt: int = 0


@dataclass(frozen=True)
class TrainResult:
    """One trained committee member.

    member:      index in the committee (0 .. n_models-1).
    model_paths: files the model lives in (weights, frozen model ...), absolute paths,
                 written by the trainer inside its ``ctx.workdir``.
    metrics:     scalar learning metrics (e.g. ``{"rmse_f_val": 0.05}``), JSON-friendly.
    """

    member: int
    model_paths: tuple[str, ...]
    metrics: Mapping[str, float] = field(default_factory=dict)

    def summary(self) -> dict:
        return {"member": self.member, "model_paths": list(self.model_paths), "metrics": dict(self.metrics)}


@dataclass(frozen=True)
class Candidate:
    """One explored item (a frame, a point) with the committee's disagreement on it.

    deviation: committee deviation of the item, in the domain's unit; >= 0, finite.
    payload:   the item itself (picklable): what the labeler gets.
    key:       unique id ``"<explore task key>/<item number>"``; set by the loop, explorers
               leave it empty.
    meta:      optional JSON-friendly extras (time step, condition name, energies ...).
    """

    deviation: float
    payload: Any
    key: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExploredBatch:
    """What one exploration task found under one condition.

    condition:  the condition explored.
    candidates: every item considered for selection, in trajectory order.
    meta:       JSON-friendly extras (trajectory path, steps done, whether it blew up).
    """

    condition: Condition
    candidates: tuple[Candidate, ...]
    meta: Mapping[str, Any] = field(default_factory=dict)

    def summary(self) -> dict:
        return {"condition": self.condition.name, "n": len(self.candidates), "meta": dict(self.meta)}


@dataclass(frozen=True)
class Selection:
    """The selector's verdict on the explored batches of one iteration.

    n_explored:  items seen; n_accurate + n_candidate + n_failed == n_explored.
    n_accurate:  deviation < lo: the model is trusted there.
    n_candidate: lo <= deviation < hi: worth labelling (before de-duplication and cap).
    n_failed:    deviation >= hi: too far off to be physical, not labelled.
    selected:    the candidates to label this iteration (after de-duplication and cap).
    threshold:   accurate fraction at which the loop counts as converged.
    """

    n_explored: int
    n_accurate: int
    n_candidate: int
    n_failed: int
    selected: tuple[Candidate, ...]
    threshold: float

    @property
    def accurate_fraction(self) -> float:
        return self.n_accurate / self.n_explored if self.n_explored else 0.0

    @property
    def converged(self) -> bool:
        return self.n_explored > 0 and self.accurate_fraction >= self.threshold

    def summary(self) -> dict:
        return {"n_explored": self.n_explored, "n_accurate": self.n_accurate,
                "n_candidate": self.n_candidate, "n_failed": self.n_failed,
                "n_selected": len(self.selected), "accurate_fraction": self.accurate_fraction,
                "converged": self.converged}


@dataclass(frozen=True)
class LabelResult:
    """The reference label of one candidate, or why there is none.

    key:           the label task's manifest key.
    candidate_key: ``Candidate.key`` of the item labelled.
    ok:            True when ``payload`` holds a finite label.
    payload:       the labelled datum (what trainers receive), None when not ok.
    reason:        why it failed (the last attempt's error), None when ok.
    attempts:      reference calls made (1 + retries used).
    errors:        one message per failed attempt, oldest first.
    """

    key: str
    candidate_key: str
    ok: bool
    payload: Any = None
    reason: str | None = None
    attempts: int = 1
    errors: tuple[str, ...] = ()

    def summary(self) -> dict:
        return {"candidate": self.candidate_key, "ok": self.ok, "reason": self.reason,
                "attempts": self.attempts, "errors": list(self.errors)}


@dataclass(frozen=True)
class TaskOutput:
    """A task's return value with where and how long it ran (filled in by the worker)."""

    value: Any
    seconds: float
    worker: str
