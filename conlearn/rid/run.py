"""Build and run a RiD loop from a RidConfig: config -> components -> BatchLoop.

Train (the whole ensemble, one task) -> explore (one task per walker, biased MD) -> select
(clusters of untrusted frames) -> label (restrained MD per representative), repeated; then
the final ensemble, ``fes_grid.npz`` (2 CVs) and ``summary.json`` are written. Everything goes
through the run's manifest, so re-running the same command after a kill resumes.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

from ..configfile import check_recorded_config
from ..core.loop import BatchLoop, LoopSettings
from ..core.manifest import atomic_write_bytes
from .config import RidConfig
from .explore import BiasedExplorer, walkers
from .label import RestrainedLabeler
from .model import FitSettings
from .outputs import RunRecords, per_iteration, step_counts, write_final
from .select import ClusterSelector, TrustLevels
from .train import EnsembleTrainer

RESUMABLE_CHANGES = ("loop.max_iterations",)


def components(cfg: RidConfig, engine):
    """(trainer, explorer, selector, labeler) of the config."""
    periodic = tuple(c.periodic for c in engine.cvs)
    t = cfg.training
    trainer = EnsembleTrainer(periodic, cfg.model.n_members, tuple(cfg.model.neurons),
                              fit=FitSettings(t.n_steps, t.lr, t.lr_final, t.validation),
                              reuse=FitSettings(t.reuse_n_steps, t.reuse_lr, t.lr_final, t.validation),
                              trust=TrustLevels(**cfg.trust.model_dump()))
    if t.final_n_steps:
        if t.final_from_scratch:
            final = replace(trainer, fit=FitSettings(t.final_n_steps, t.lr, t.lr_final, t.validation), from_scratch=True)
        else:
            final = replace(trainer, reuse=FitSettings(t.final_n_steps, t.reuse_lr, t.lr_final, t.validation))
        trainer = replace(trainer, final_trainer=final)
    explorer = BiasedExplorer(engine, cfg.explore.n_steps, cfg.explore.frame_every)
    s = cfg.select
    selector = ClusterSelector(periodic, s.cluster_distance, s.max_select, s.converge_fraction, s.max_candidates)
    lab = cfg.label
    labeler = RestrainedLabeler(engine, cfg.kappa(len(periodic)), lab.n_steps, lab.frame_every, lab.equilibration,
                                lab.n_blocks, lab.max_error, lab.rerun_factor)
    return trainer, explorer, selector, labeler


def run(cfg: RidConfig, run_dir: str | Path, executor, observers=(), log=print) -> dict:
    """Run or resume the loop into ``run_dir``; write and return the summary."""
    engine = cfg.build_engine()
    run_dir = Path(run_dir).resolve()
    check_recorded_config(cfg, run_dir / "config.json", RESUMABLE_CHANGES)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(run_dir / "config.json", cfg.model_dump_json(indent=1).encode())
    t0 = time.perf_counter()
    trainer, explorer, selector, labeler = components(cfg, engine)
    settings = LoopSettings(n_models=1, max_iterations=cfg.loop.max_iterations, label_retries=cfg.loop.label_retries,
                            label_timeout_s=cfg.loop.label_timeout_s, seed=cfg.loop.seed,
                            label_last=cfg.loop.label_last)
    report = BatchLoop(trainer=trainer, explorer=explorer, selector=selector, labeler=labeler,
                       conditions=walkers(cfg.explore.n_walkers), initial_data=[], run_dir=run_dir,
                       executor=executor, settings=settings, observers=observers).run()
    write_final(report.models[0].model_paths[0], run_dir)
    rr = RunRecords(run_dir)
    counts, iters = step_counts(rr), per_iteration(rr)
    summary = {"workflow": "rid", "converged": report.converged, "iterations": len(report.iterations),
               **counts, "md_steps_total": counts["md_steps_explore"] + counts["md_steps_label"],
               "cvs": [c.name for c in engine.cvs], "temperature": engine.temperature,
               "wall_s": time.perf_counter() - t0, "per_iteration": iters}
    atomic_write_bytes(run_dir / "summary.json", json.dumps(summary, indent=1).encode())
    log(f"rid: {summary['iterations']} iterations, {counts['labels']} labels ({counts['labels_dropped']} dropped), "
        f"{summary['md_steps_total']} MD steps, {summary['wall_s']:.1f} s")
    return summary
