"""The loop's components for the kinetic domain (picklable: module-level classes of plain settings).

* :class:`ClosureTrainer` trains one ensemble member on every labelled trajectory (warm start
  from the member's previous model);
* :class:`MomentExplorer` runs the ensemble's moment solvers from one initial condition and
  returns it as one candidate whose deviation is the ensemble's disagreement on rho, u, T at
  t_end (:func:`conlearn.kinetic.mlsolver.deviation`; a failed solve counts as FAILED_DEVIATION);
* :class:`KineticLabeler` solves BGK from the candidate's initial condition and returns the
  snapshots as training data (:func:`conlearn.kinetic.data.snapshot_payload`).

Candidate payloads and condition params are ``{"spec": initial-data spec, "kn": Kn}``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..core.records import Candidate, Condition, ExploredBatch, TaskContext, TrainResult
from .bgk import kinetic_solve
from .closure import Member
from .data import snapshot_payload
from .initial import initial_profiles
from .mlsolver import MomentClosure, deviation, solve_stack
from .stack import StackedClosure
from .training import TrainSettings, train_member
from .velocity import velocity_grid

FAILED_DEVIATION = 1e3  # a member that cannot finish the solve: label there first


def cells(nx: int) -> np.ndarray:
    return (np.arange(nx) + 0.5) / nx


@dataclass(frozen=True)
class ClosureTrainer:
    """settings: the training; final_trainer: the loop's final training after the last iteration
    (:class:`conlearn.core.loop.BatchLoop`: every member once more on all the data, warm start), or None."""

    settings: TrainSettings
    final_trainer: Optional["ClosureTrainer"] = None

    def train(self, data, previous: Optional[TrainResult], ctx: TaskContext) -> TrainResult:
        prev = Member.load(previous.model_paths[0]) if previous is not None else None
        member, metrics = train_member(list(data), self.settings, ctx.seed, prev)
        path = member.save(Path(ctx.workdir) / "member.pt")
        return TrainResult(member=ctx.index, model_paths=(str(path),), metrics=metrics)


@dataclass(frozen=True)
class MomentExplorer:
    """nx: cells; t_end: solve time; wave_speed, cfl: the moment solver's settings."""

    nx: int = 100
    t_end: float = 0.1
    wave_speed: float = 3.0
    cfl: float = 0.45
    w_damping: float = 2.0

    def explore(self, models, condition: Condition, ctx: TaskContext) -> ExploredBatch:
        spec, kn = condition.params["spec"], float(condition.params["kn"])
        x = cells(self.nx)
        rho, u, T = initial_profiles(spec, x)
        stack = StackedClosure([Member.load(m.model_paths[0]) for m in models])
        try:
            runs, failed = solve_stack(stack, x, rho, u, T, kn, self.t_end, spec["bc"], wave_speed=self.wave_speed,
                                       cfl=self.cfl, w_damping=self.w_damping), ""
        except FloatingPointError as err:
            runs, failed = [], str(err)
        dev = FAILED_DEVIATION if failed else min(deviation(runs), FAILED_DEVIATION)
        meta = {"kn": kn, "kind": spec["kind"], "failed": failed,
                "fallbacks": int(runs[0]["fallbacks"]) if runs else -1,
                "solve_s": float(runs[0]["wall_s"]) if runs else -1.0}
        cand = Candidate(deviation=float(dev), payload=dict(condition.params), meta=meta)
        return ExploredBatch(condition=condition, candidates=(cand,), meta=meta)


@dataclass(frozen=True)
class KineticLabeler:
    """Labels an initial condition with the BGK solver: n_snapshots equally spaced in (0, t_end].

    nv, vmax: a fixed velocity grid (None: fitted to the initial state); degree: the closure's D."""

    nx: int = 100
    t_end: float = 0.1
    n_snapshots: int = 8
    degree: int = 4
    nv: Optional[int] = None
    vmax: Optional[float] = None

    def label(self, candidate: Candidate, ctx: TaskContext) -> dict:
        return label_condition(candidate.payload, **asdict(self))


def label_condition(params: dict, nx: int, t_end: float, n_snapshots: int, degree: int,
                    nv: Optional[int] = None, vmax: Optional[float] = None) -> dict:
    """The training payload of the kinetic trajectory of ``params`` ({"spec", "kn"})."""
    spec, kn = params["spec"], float(params["kn"])
    x = cells(nx)
    rho, u, T = initial_profiles(spec, x)
    grid = velocity_grid(nv, vmax) if nv is not None else None
    times = np.linspace(t_end / n_snapshots, t_end, n_snapshots)
    out = kinetic_solve(x, rho, u, T, kn, t_end, spec["bc"], grid=grid, save_times=times)
    return snapshot_payload(out, degree, {**spec, "kn": kn})


def ensemble(models, **solver) -> MomentClosure:
    """The MomentClosure of TrainResults (their first model path each); solver: wave_speed, cfl, w_damping,
    flux, scheme."""
    return MomentClosure([Member.load(m.model_paths[0]) for m in models], **solver)
