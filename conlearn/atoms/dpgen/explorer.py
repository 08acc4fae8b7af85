"""MD exploration with a DeepPot committee (DP-GEN's ``model_devi`` stage).

Dynamics are driven by the committee mean (the committee is evaluated as one batched model
at every step) or, as DP-GEN drives LAMMPS with ``graph.000``, by member 0; every
``trj_freq`` steps the frame is recorded with its force deviation ε_f = max_i sqrt(<|f_i - f̄_i|²>) (eV/Å) and virial deviation
(eV/atom). Ensembles: NVT (Langevin, BAOAB) and NPT (BAOAB with a Langevin-Hoover
barostat, hydrostatic), both from ASE. Structures not periodic in all three directions
are run NVT. A trajectory stops early ("blew up") when atoms overlap, a neighbour count
exceeds ``sel``, or ε_f exceeds ``stop_devi_f``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from ase.io import write

from ...core.records import Candidate, Condition, ExploredBatch, TaskContext, TrainResult
from ..calculator import DeepPotCalculator
from ..deeppot.model import load_model
from ..frames import atoms_to_frame, frame_to_atoms
from ..neighbors import NeighborError
from ..md import langevin_md

@dataclass(frozen=True)
class MDExplorer:
    """Explorer protocol over MD. Condition params (all JSON values)::

        structure: frame dict (positions Å, cell Å, numbers, pbc) — the starting point
        temperature: K;  pressure: GPa or None (NVT);  n_steps;  dt_fs;  trj_freq

    drive: ``"committee"`` — the committee mean drives the dynamics and, the whole committee
        being evaluated at every step anyway (as one batched model), every ``trj_freq``-th
        frame is recorded at no extra cost; ``"first"`` — member 0 drives (DP-GEN's
        ``graph.000``) and the committee is evaluated only on recorded frames.
    continue_trajectories: each iteration's trajectory of a condition starts from the last
        frame (positions and cell) of that condition's trajectory in the previous iteration,
        with fresh Maxwell-Boltzmann velocities, unless it blew up: the iterations add up to
        one long trajectory per condition instead of many short ones from the perfect lattice.
    payload_window: ``(lo, hi)`` eV/Å: frames whose ε_f lies outside it are recorded with
        their deviations but without their coordinates (they can never be labelled: below
        the trust window they are accurate, above it failed), which keeps the manifest small.
    """

    stop_devi_f: float = 2.0
    write_trajectory: bool = True
    drive: str = "committee"
    payload_window: tuple[float, float] | None = None
    continue_trajectories: bool = False

    def __post_init__(self) -> None:
        if self.drive not in ("committee", "first"):
            raise ValueError(f"drive must be 'committee' or 'first', not {self.drive!r}")

    def follow(self, condition: Condition, previous: ExploredBatch) -> Condition:
        """The condition started from ``previous``'s last frame (see ``continue_trajectories``)."""
        last = previous.meta.get("last_frame")
        if not self.continue_trajectories or last is None or previous.meta.get("blew_up"):
            return condition
        start = {k: np.asarray(v) for k, v in last.items()}
        return Condition(condition.name, {**condition.params, "structure": start})

    def explore(self, models: Sequence[TrainResult], condition: Condition, ctx: TaskContext) -> ExploredBatch:
        p = condition.params
        committee = [load_model(r.model_paths[0]) for r in models]
        judge = DeepPotCalculator(committee)
        atoms = frame_to_atoms(p["structure"])
        atoms.calc = judge if self.drive == "committee" else DeepPotCalculator(committee[0])
        rng = np.random.default_rng(ctx.seed)
        dyn, npt = langevin_md(atoms, p, rng)
        trj_freq, n_steps = int(p.get("trj_freq", 10)), int(p["n_steps"])
        candidates, traj, blew_up = [], [], None
        lo, hi = self.payload_window or (-np.inf, np.inf)
        t0 = time.perf_counter()

        def record() -> None:
            nonlocal blew_up
            step = dyn.nsteps
            if atoms.calc is judge:
                atoms.get_forces()  # current (cached after the step) committee results
                res = judge.results
            else:
                res = judge.predict([atoms])[0]
            devi = {k: float(res[k]) for k in res if "devi" in k}
            eps = devi["max_devi_f"]
            meta = {"condition": condition.name, "step": step, "temperature": float(atoms.get_temperature()), **devi}
            frame = atoms_to_frame(atoms, meta=meta) if lo <= eps < hi else None
            candidates.append(Candidate(deviation=eps, payload=frame, meta=meta))
            if self.write_trajectory:
                traj.append(atoms.copy())
            if not np.isfinite(eps) or eps > self.stop_devi_f:
                blew_up = f"max_devi_f {eps:.3g} eV/Å > {self.stop_devi_f} at step {step}"

        try:
            record()
            while dyn.nsteps < n_steps and blew_up is None:
                dyn.run(min(trj_freq, n_steps - dyn.nsteps))
                record()
        except NeighborError as err:  # overlapping atoms or sel overflow: the model failed here
            blew_up = f"step {dyn.nsteps}: {err}"
        meta = {"n_steps": int(dyn.nsteps), "n_frames": len(candidates), "ensemble": "npt" if npt else "nvt",
                "wall_s": time.perf_counter() - t0, "blew_up": blew_up,
                "last_frame": {"numbers": atoms.numbers.tolist(), "positions": atoms.positions.tolist(),
                               "cell": atoms.cell.array.tolist(), "pbc": atoms.pbc.tolist()}}
        if self.write_trajectory and traj:
            out = Path(ctx.workdir)
            write(out / "traj.extxyz", traj)
            devi = np.array([[c.meta["step"], c.meta["max_devi_f"], c.meta["avg_devi_f"], c.meta["min_devi_f"],
                              c.meta.get("max_devi_v", np.nan)] for c in candidates])
            np.savetxt(out / "model_devi.out", devi, fmt="%12.6g",
                       header="step max_devi_f avg_devi_f min_devi_f max_devi_v  (eV/Å, eV/atom)")
            (out / "meta.json").write_text(json.dumps(meta))
            meta["trajectory"] = str(out / "traj.extxyz")
        return ExploredBatch(condition=condition, candidates=tuple(candidates), meta=meta)
