"""Build and run a kinetic concurrent-learning loop from a KineticConfig (``conlearn run``).

Stage 0 labels the initial trajectories (the config's explicit initial conditions, then
``initial.n_random`` seeded random ones), each recorded in the run's manifest
(``init/label/NNNNNN``). Then :class:`~conlearn.core.loop.BatchLoop` iterates train (the
ensemble) -> explore (random initial data, the ensemble's moment solvers) -> select (trust
window on the ensemble deviation) -> label (BGK). The last members are written to
``model/`` (closure.json + member-<k>.pt), then evaluated against the kinetic solver, Euler
and NS on Sod and the benchmark wave at ``report.kn`` (each case recorded as ``eval/<name>``,
all written to ``evaluation.json``). Re-running the same command resumes.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..configfile import check_recorded_config
from ..core.loop import BatchLoop, LoopSettings
from ..core.manifest import Manifest, atomic_write_bytes
from ..core.records import Candidate, Condition, derive_seed
from ..core.selection import TrustWindowSelector
from ..core.tasks import label_recorded
from . import initial as ini
from .closure import save_ensemble
from .components import ClosureTrainer, KineticLabeler, MomentExplorer, ensemble
from .config import KineticConfig
from .training import TrainSettings

MODEL_DIR = "model"
EVALUATION = "evaluation.json"
RESUMABLE_CHANGES = ("loop.max_iterations", "report")


def labeler(cfg: KineticConfig) -> KineticLabeler:
    g = cfg.grid
    return KineticLabeler(nx=g.nx, t_end=g.t_end, n_snapshots=g.n_snapshots, degree=cfg.closure.degree,
                          nv=cfg.velocity.nv, vmax=cfg.velocity.vmax)


def initial_conditions(cfg: KineticConfig) -> list[dict]:
    """{"spec", "kn"} of every initial trajectory: explicit ones, then the seeded random ones."""
    out = [{"spec": c.spec(), "kn": c.kn} for c in cfg.initial.conditions]
    rng = np.random.default_rng(derive_seed(cfg.loop.seed, "init/random"))
    for _ in range(cfg.initial.n_random):
        spec = ini.random_spec(rng, cfg.explore.wave_fraction)
        out.append({"spec": spec, "kn": ini.sample_kn(rng, *cfg.explore.kn_range)})
    return out


def label_initial(cfg: KineticConfig, run_dir: Path, executor, log=print) -> list[dict]:
    """Label (or replay from the manifest) the initial trajectories; the quarantined are left out."""
    lab, conds = labeler(cfg), initial_conditions(cfg)
    cands = [Candidate(deviation=0.0, payload=params, key=f"init/{i:04d}") for i, params in enumerate(conds)]
    with Manifest(run_dir) as man:
        labels = label_recorded(man, executor, lab, cands, seed=cfg.loop.seed, retries=cfg.loop.label_retries,
                                timeout_s=cfg.loop.label_timeout_s, meta=lambda i: {"kn": conds[i]["kn"]},
                                log=log, what="trajectories")
    for r in labels:
        if not r.ok:
            log(f"initial trajectory {r.candidate_key} quarantined: {r.reason}")
    return [r.payload for r in labels if r.ok]


def conditions_for(cfg: KineticConfig):
    """``iteration -> [Condition]``: seeded random initial data and Knudsen numbers."""
    e = cfg.explore

    def grid(iteration: int) -> list[Condition]:
        rng = np.random.default_rng(derive_seed(cfg.loop.seed, f"explore/{iteration}"))
        out = []
        for i in range(e.n_conditions):
            spec = ini.random_spec(rng, e.wave_fraction)
            kn = ini.sample_kn(rng, *e.kn_range)
            out.append(Condition(f"{spec['kind']}-{i:03d}-Kn{kn:.3g}", {"spec": spec, "kn": kn}))
        return out

    return grid


def build_loop(cfg: KineticConfig, run_dir: Path, executor, initial_data: list, observers=()) -> BatchLoop:
    c, s = cfg.closure, cfg.selection
    settings = TrainSettings(degree=c.degree, hidden=tuple(c.hidden),
                             decoder_hidden=tuple(c.decoder_hidden), ae_steps=c.ae_steps, steps=c.steps,
                             reuse_steps=c.reuse_steps, lr=c.lr, batch=c.batch, linear=c.linear,
                             hyperbolic=c.hyperbolic, trust_quantile=c.trust_quantile,
                             trust_margin=c.trust_margin)
    explorer = MomentExplorer(nx=cfg.grid.nx, t_end=cfg.grid.t_end, **cfg.solver.model_dump(exclude={"flux", "scheme", "w_implicit", "implicit_cfl", "rarefied_cfl", "kernel"}))
    selector = TrustWindowSelector(lo=s.trust_lo, hi=s.trust_hi, threshold=s.converge_fraction,
                                   max_select=s.max_select, order=s.order)
    loop = LoopSettings(n_models=c.n_models, max_iterations=cfg.loop.max_iterations,
                        label_retries=cfg.loop.label_retries, label_timeout_s=cfg.loop.label_timeout_s,
                        seed=cfg.loop.seed, label_last=cfg.loop.label_last)
    final = ClosureTrainer(replace(settings, reuse_steps=c.final_steps)) if c.final_steps > 0 else None
    return BatchLoop(trainer=ClosureTrainer(settings, final), explorer=explorer, selector=selector, labeler=labeler(cfg),
                     conditions=conditions_for(cfg), initial_data=initial_data, run_dir=run_dir,
                     executor=executor, settings=loop, observers=observers)


def run(cfg: KineticConfig, run_dir: str | Path, executor, observers=(), log=print) -> dict:
    """Initial labels, the loop, the final model and its evaluation; writes and returns summary.json."""
    run_dir = Path(run_dir).resolve()
    check_recorded_config(cfg, run_dir / "config.json", RESUMABLE_CHANGES)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(run_dir / "config.json", cfg.model_dump_json(indent=1).encode())
    t0 = time.perf_counter()
    initial = label_initial(cfg, run_dir, executor, log=log)
    report = build_loop(cfg, run_dir, executor, initial, observers).run()
    model = ensemble(report.models, **cfg.solver.model_dump())
    save_ensemble(model.members, run_dir / MODEL_DIR, model.settings)
    from .evaluate import evaluate_run

    evaluation = evaluate_run(cfg, run_dir, executor, log=log)
    summary = run_summary(report, len(initial), evaluation, time.perf_counter() - t0)
    atomic_write_bytes(run_dir / "summary.json", json.dumps(summary, indent=1).encode())
    return summary


def run_summary(report, n_initial: int, evaluation: dict, wall_s: float) -> dict:
    explored = sum(it.selection.n_explored for it in report.iterations)
    return {
        "converged": report.converged,
        "iterations": len(report.iterations),
        "initial_trajectories": n_initial,
        "labelled_trajectories": n_initial + report.n_labelled,
        "explored": explored,
        "quarantined": [q.summary() for q in report.quarantined],
        "model": MODEL_DIR,
        "wall_s": wall_s,
        "timing": report.timing.summary(),
        "errors": {name: case["errors"] for name, case in evaluation.items()},
        "per_iteration": [it.summary() for it in report.iterations],
    }
