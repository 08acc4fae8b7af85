"""The four loop components of CG concurrent learning (:class:`conlearn.core.loop.BatchLoop`).

* :class:`CGTrainer`: one committee member per task, force matching on every labelled frame
  (Δ: the ML part on ``F - F_pair`` over a fixed pair baseline); warm start from the
  member's previous model with ``reuse`` settings.
* :class:`CGExplorer`: CG MD (:func:`conlearn.cg.md.cg_md`) driven by the committee mean from
  a condition's starting configuration; every saved frame's deviation is the committee's
  ``max_i sqrt(<|F_i - F̄_i|²>)`` (kJ/mol/nm). A blow-up (NaN, overlapping beads, a bead with
  more neighbours than ``sel``) ends the trajectory with one failed item (deviation inf).
* the selector is the core :class:`~conlearn.core.selection.TrustWindowSelector`;
* :class:`RestrainedLabeler`: all-atom MD restrained to the bead configuration, label = mean
  mapped force (:func:`conlearn.cg.allatom.restrained_mean_force`); :class:`ToyLabeler`:
  the mW oracle's exact forces (tests, the synthetic liquid).

A labelled frame (what trainers receive) is ``{"R": [N, 3] nm, "F": [N, 3] kJ/mol/nm,
"box": [3] nm, "stderr": [N, 3] kJ/mol/nm}``. All components are frozen dataclasses of plain
settings (picklable); models travel as file paths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..core.records import Candidate, Condition, ExploredBatch, TaskContext, TrainResult
from .model import BeadNet, BeadNetSpec, delta_model, load_committee, load_model, save_model
from .train import FitSettings, baseline_forces, fit_forces, fm_residual, frame_arrays


@dataclass(frozen=True)
class CGTrainer:
    """Trainer protocol: ``model_kind`` "delta" (``pair_path`` + ML) or "ml".

    net: BeadNetSpec fields; fit / reuse: FitSettings fields from scratch / warm-started.
    """

    model_kind: str
    net: dict
    fit: dict
    reuse: dict
    pair_path: str | None = None

    def train(self, data: Sequence[Any], previous: TrainResult | None, ctx: TaskContext) -> TrainResult:
        from .baseline import load_baseline

        data = list(data)
        pair = load_baseline(self.pair_path) if self.model_kind == "delta" else None
        if previous is not None:
            old = load_model(previous.model_paths[0])
            net = old.ml if self.model_kind == "delta" else old
            settings = FitSettings(**self.reuse)
        else:
            net = BeadNet(BeadNetSpec(**{**self.net, "seed": ctx.seed % (2**31)}))
            geo, F = frame_arrays(data)
            net.set_stats(geo)
            net.set_scale(geo, F - baseline_forces(pair, data))
            settings = FitSettings(**self.fit)
        metrics = fit_forces(net, data, settings, seed=ctx.seed, baseline=pair)
        model = delta_model(pair, net) if pair is not None else net
        path = save_model(model, Path(ctx.workdir) / "model")
        metrics["fm_residual_train"] = fm_residual(model, data)
        return TrainResult(member=ctx.index, model_paths=(str(path),), metrics=metrics)


@dataclass(frozen=True)
class CGExplorer:
    """Explorer protocol: committee-mean Langevin MD under a condition.

    Condition params: ``R0`` [N, 3] nm, ``box`` [3] nm, ``masses`` [N] amu, ``temperature`` K,
    ``n_steps``, ``dt_fs``, ``friction_per_ps``, ``save_every``.
    """

    min_distance: float = 0.1  # nm; closer beads: the run blew up
    continue_trajectories: bool = True  # the next iteration starts where this trajectory ended

    def follow(self, condition: Condition, previous: ExploredBatch) -> Condition:
        """The condition with ``R0`` where the previous iteration's trajectory ended (when it
        ran to the end and ``continue_trajectories``); else unchanged."""
        last = previous.meta.get("last")
        if not self.continue_trajectories or not previous.meta.get("ok") or last is None:
            return condition
        return Condition(condition.name, {**condition.params, "R0": last})

    def explore(self, models: Sequence[TrainResult], condition: Condition, ctx: TaskContext) -> ExploredBatch:
        from ..atoms.neighbors import NeighborError
        from .md import cg_md

        p = condition.params
        committee = load_committee([m.model_paths[0] for m in models])
        box = np.asarray(p["box"], dtype=float)
        try:
            out = cg_md(committee, np.asarray(p["R0"], dtype=float), box, np.asarray(p["masses"], dtype=float),
                        int(p["n_steps"]), float(p["dt_fs"]), float(p["temperature"]),
                        float(p["friction_per_ps"]), ctx.seed % (2**31), int(p["save_every"]),
                        min_distance=self.min_distance, save_forces=False)
            frames, ok, reason, steps = out["positions"], bool(out["ok"]), out["reason"], int(out["steps"])
        except NeighborError as err:  # overlapping beads or more neighbours than sel
            frames, ok, reason, steps = np.zeros((0, len(p["R0"]), 3)), False, str(err), -1
        cands = []
        for k, R in enumerate(frames):
            devi = committee.evaluate(R, box)[2]
            cands.append(Candidate(deviation=devi if math.isfinite(devi) else math.inf,
                                   payload={"R": np.mod(R, box), "box": box},
                                   meta={"condition": condition.name, "frame": k}))
        if not ok:
            last = frames[-1] if len(frames) else np.asarray(p["R0"], dtype=float)
            cands.append(Candidate(deviation=math.inf, payload={"R": np.mod(last, box), "box": box},
                                   meta={"condition": condition.name, "failed": reason}))
        meta = {"ok": ok, "reason": reason, "steps": steps, "n_frames": len(frames)}
        if ok and len(frames):
            meta["last"] = np.mod(frames[-1], box).tolist()
        return ExploredBatch(condition=condition, candidates=tuple(cands), meta=meta)


@dataclass(frozen=True)
class ToyLabeler:
    """Labeler protocol over the mW oracle (``conlearn.cg.toy.MW`` fields in ``params``)."""

    params: dict = field(default_factory=dict)

    def label(self, candidate: Candidate, ctx: TaskContext) -> dict:
        from .toy import MW

        R, box = np.asarray(candidate.payload["R"]), np.asarray(candidate.payload["box"])
        F = MW(**self.params).energy_forces(R, box)[1].numpy()
        return {"R": R, "F": F, "box": box, "stderr": np.zeros_like(F)}


@dataclass(frozen=True)
class RestrainedLabeler:
    """Labeler protocol: the mean mapped force of all-atom MD restrained to the beads.

    spec: AllAtomSpec fields; mapping: the Mapping (plain arrays, picklable);
    k_restraint kJ/mol/nm², n_steps / equil_steps: all-atom steps.
    """

    spec: dict
    mapping: Any
    k_restraint: float
    n_steps: int
    equil_steps: int

    def label(self, candidate: Candidate, ctx: TaskContext) -> dict:
        from .allatom import AllAtomSpec, restrained_mean_force

        R, box = np.asarray(candidate.payload["R"]), np.asarray(candidate.payload["box"])
        out = restrained_mean_force(AllAtomSpec(**self.spec), self.mapping, R, box, self.k_restraint,
                                    self.n_steps, ctx.seed % (2**31), self.equil_steps)
        return {"R": R, "F": np.asarray(out["mean_force"]), "box": box, "stderr": np.asarray(out["stderr"])}
