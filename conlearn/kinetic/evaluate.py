"""Accuracy of a closure against the kinetic solver, Euler and NS (run's last stage, benchmark).

Errors are relative L2 norms ||a - ref|| / ||ref|| of rho, u, T at t_end, with ref the kinetic
solution on ``refine`` x finer cells averaged back onto the cells (u as momentum/density).
Cases of a run: Sod and the benchmark wave (:mod:`conlearn.kinetic.initial`) at ``report.kn``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..core.manifest import Manifest, atomic_write_bytes
from ..core.records import TaskContext
from ..core.tasks import run_task
from . import initial as ini
from .components import cells
from .simulate import simulate
from .velocity import velocity_grid

SOLVERS = ("ml", "euler", "ns")
FIELDS = ("rho", "u", "T")


def reference(spec: dict, kn: float, nx: int, t_end: float, refine: int = 4, grid=None) -> dict:
    """Kinetic rho, u, T [nx] on refine x finer cells, averaged (mass, momentum, energy) onto nx cells."""
    xf = cells(refine * nx)
    out = simulate("kinetic", xf, *ini.initial_profiles(spec, xf), kn, t_end, spec["bc"],
                   **({"grid": grid} if grid is not None else {}))
    r, u, T = (out[k].reshape(nx, refine) for k in FIELDS)
    m, E = r * u, 0.5 * r * u * u + 1.5 * r * T
    R, Mo, En = r.mean(1), m.mean(1), E.mean(1)
    U = Mo / R
    return {"rho": R, "u": U, "T": (En - 0.5 * R * U * U) / (1.5 * R), "wall_s": out["wall_s"]}


def rel_errors(a: dict, ref: dict) -> dict:
    return {k: float(np.linalg.norm(np.asarray(a[k]) - ref[k]) / np.linalg.norm(ref[k])) for k in FIELDS}


def evaluate_case(model, spec: dict, kn: float, nx: int, t_end: float, refine: int = 4, nv=None, vmax=None) -> dict:
    """Profiles, errors, wall and CPU times (this process) of the kinetic solve (same cells), ML,
    Euler and NS on one case.

    model: a MomentClosure or a closure/run directory."""
    from .mlsolver import load_closure

    if isinstance(model, (str, Path)):
        model = load_closure(model)
    grid = velocity_grid(nv, vmax) if nv is not None else None
    x = cells(nx)
    rho, u, T = ini.initial_profiles(spec, x)
    ref = reference(spec, kn, nx, t_end, refine, grid)
    kw = {"grid": grid} if grid is not None else {}
    runs, cpu = {}, {}
    for name, m, opts in (("kinetic", "kinetic", kw), ("ml", model, {}), ("euler", "euler", {}), ("ns", "ns", {})):
        c0 = time.process_time()
        runs[name] = simulate(m, x, rho, u, T, kn, t_end, spec["bc"], **opts)
        cpu[name] = time.process_time() - c0
    return {"kn": float(kn), "x": x.tolist(), "initial": {k: v.tolist() for k, v in zip(FIELDS, (rho, u, T))},
            "reference": {k: ref[k].tolist() for k in FIELDS},
            "profiles": {s: {k: np.asarray(o[k]).tolist() for k in FIELDS} for s, o in runs.items()},
            "errors": {s: rel_errors(o, ref) for s, o in runs.items()},
            "wall_s": {s: float(o["wall_s"]) for s, o in runs.items()}, "cpu_s": cpu,
            "min_rho_T": {s: float(min(np.min(o["rho"]), np.min(o["T"]))) for s, o in runs.items()},
            "deviation": float(runs["ml"].get("deviation", 0.0))}


def _case(model_dir: str, spec: dict, kn: float, nx: int, t_end: float, nv, vmax, ctx: TaskContext) -> dict:
    return evaluate_case(model_dir, spec, kn, nx, t_end, 4, nv, vmax)


def evaluate_run(cfg, run_dir: Path, executor, log=print) -> dict:
    """Evaluate the run's model on Sod and the wave at report.kn (tasks recorded as eval/<name>),
    write evaluation.json and return {name: case}."""
    cases = {f"{name}-{i}": (spec, kn) for name, spec in (("sod", ini.sod()), ("wave", ini.benchmark_wave()))
             for i, kn in enumerate(cfg.report.kn)}
    model_dir = str(run_dir / "model")
    results = {}
    with Manifest(run_dir) as man:
        pending = {}
        for name, (spec, kn) in cases.items():
            key = f"eval/{name}-Kn{kn:g}"
            if key in man:
                results[name] = man.load(key)
                continue
            ctx = TaskContext(key=key, iteration=-1, index=0, seed=0, workdir=str(man.workdir(key)))
            pending[executor.submit(run_task, _case, ctx, model_dir, spec, kn, cfg.grid.nx, cfg.grid.t_end,
                                    cfg.velocity.nv, cfg.velocity.vmax, kind="explore", key=key)] = (key, name)
        if pending:
            log(f"evaluating the model on {len(pending)} cases")
        for fut in executor.as_completed(list(pending)):
            (key, name), out = pending[fut], fut.result()
            man.record(key, out.value, meta={"seconds": out.seconds, "errors": out.value["errors"]})
            results[name] = out.value
    results = {name: results[name] for name in cases}
    atomic_write_bytes(run_dir / "evaluation.json", json.dumps(results).encode())
    return results
