"""Build and run a CG concurrent-learning loop from a CGConfig (``conlearn run``, ``workflow: cg``).

Stages, each recorded in the run's manifest as it finishes (a re-run after kill -9 replays
them and recomputes nothing recorded):

1. ``init/reference``: the passive reference trajectory, mapped to beads (all-atom OpenMM,
   or the mW oracle); its first part is the initial training data, the rest is held out.
2. ``init/pair``: the force-matched baseline (MS-CG: pair, or pair + three-body with
   ``baseline.angular``) on the training frames.
3. the :class:`~conlearn.core.loop.BatchLoop`: train (committee) -> explore (CG MD) ->
   select (trust window) -> label (restrained mean forces) -> ...
4. ``eval/reference``, ``eval/pair``, ``eval/<model kind>``: held-out residuals, structure,
   dynamics and cost (:mod:`conlearn.cg.evaluate`); then ``summary.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..configfile import check_recorded_config
from ..core.loop import BatchLoop, LoopSettings
from ..core.manifest import Manifest, atomic_write_bytes
from ..core.records import Condition, derive_seed
from ..core.selection import TrustWindowSelector
from .components import CGExplorer, CGTrainer, RestrainedLabeler, ToyLabeler
from .config import CGConfig
from .reference import reference_trajectory, split_frames

RESUMABLE_CHANGES = ("loop.max_iterations", "evaluation")


def record_once(man: Manifest, key: str, compute, log=print, meta=lambda v: {}):
    """The recorded value of ``key``, or ``compute()`` recorded under it (with its seconds)."""
    if key in man:
        return man.load(key)
    t0 = time.perf_counter()
    value = compute()
    man.record(key, value, {**meta(value), "seconds": time.perf_counter() - t0})
    log(f"{key}: recorded")
    return value


def fit_pair(cfg: CGConfig, train: dict, path: Path) -> dict:
    from .pair import force_match_pair

    table = force_match_pair(train["R"], train["F"], train["box"], cfg.baseline.rcut, cfg.baseline.n_basis,
                             angular=cfg.baseline.angular_tuple())
    path.parent.mkdir(parents=True, exist_ok=True)
    table.save(path)
    return {"path": str(path), "fit_residual": float(table.fit_residual)}


def conditions(cfg: CGConfig, ref: dict, train: dict) -> list[Condition]:
    start = np.mod(train["R"][-1], train["box"])
    return [Condition(f"T{T:g}", {"R0": start.tolist(), "box": train["box"].tolist(), "masses": ref["masses"].tolist(),
                                  "temperature": T, "n_steps": cfg.md.n_steps, "dt_fs": cfg.md.dt_fs,
                                  "friction_per_ps": cfg.md.friction_per_ps, "save_every": cfg.md.save_every})
            for T in cfg.md.temperatures]


def labeler(cfg: CGConfig, ref: dict):
    if cfg.system.liquid == "mw":
        return ToyLabeler()
    lab = cfg.labeling
    return RestrainedLabeler(spec=ref["spec"], mapping=ref["mapping"], k_restraint=lab.k_restraint,
                             n_steps=lab.n_steps, equil_steps=lab.equil_steps)


def build_loop(cfg: CGConfig, run_dir: Path, executor, ref: dict, train: dict, pair: dict, observers=()) -> BatchLoop:
    m, s, lp = cfg.model, cfg.selection, cfg.loop
    trainer = CGTrainer(model_kind=m.kind, net=m.net.model_dump(), fit=m.fit.model_dump(), reuse=m.reuse.model_dump(),
                        pair_path=pair["path"] if m.kind == "delta" else None)
    selector = TrustWindowSelector(lo=s.trust_lo, hi=s.trust_hi, threshold=s.converge_fraction,
                                   max_select=s.max_select, order="balanced")
    settings = LoopSettings(n_models=m.committee, max_iterations=lp.max_iterations, label_retries=lp.label_retries,
                            label_timeout_s=lp.label_timeout_s, seed=lp.seed)
    initial = [{"R": r, "F": f, "box": train["box"]} for r, f in zip(train["R"], train["F"])]
    explorer = CGExplorer(continue_trajectories=cfg.md.continue_trajectories)
    return BatchLoop(trainer=trainer, explorer=explorer, selector=selector, labeler=labeler(cfg, ref),
                     conditions=conditions(cfg, ref, train), initial_data=initial, run_dir=run_dir,
                     executor=executor, settings=settings, observers=observers)


def evaluate_models(cfg: CGConfig, man: Manifest, ref: dict, heldout: dict, pair: dict, model_paths, log=print) -> dict:
    """``{name: metrics}`` of the pair baseline and the learned model (recorded one by one).
    The learned model is the committee's member 0: production MD needs no deviation, and one
    member costs a quarter of four."""
    from .evaluate import model_metrics, reference_metrics
    from .model import load_model
    from .baseline import load_baseline

    ev = cfg.evaluation
    refm = record_once(man, "eval/reference", lambda: reference_metrics(heldout["R"], heldout["box"], ref["dt_ps"],
                                                                        ref["masses"], ev.r_max), log)
    md = {"masses": ref["masses"], "temperature": cfg.system.temperature, "dt_fs": ev.dt_fs,
          "friction_per_ps": ev.friction_per_ps, "n_steps": ev.n_steps, "equil_steps": ev.equil_steps,
          "save_every": ev.save_every, "ml_every": ev.ml_every}
    models = {"pair": lambda: load_baseline(pair["path"]), cfg.model.kind: lambda: load_model(model_paths[0])}
    out = {}
    for name, make in models.items():
        key = f"eval/{name}"
        out[name] = record_once(man, key, lambda: model_metrics(make(), heldout, refm, md,
                                                                derive_seed(cfg.loop.seed, key) % (2**31)), log)
    return {"reference": refm, "models": out}


def run(cfg: CGConfig, run_dir: str | Path, executor, observers=(), log=print) -> dict:
    """Reference, baseline, loop, evaluation; writes and returns ``summary.json``'s dict
    (``wall_s``: this call; ``compute_s``: every recorded stage's seconds, over all calls)."""
    run_dir = Path(run_dir).resolve()
    check_recorded_config(cfg, run_dir / "config.json", RESUMABLE_CHANGES)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(run_dir / "config.json", cfg.model_dump_json(indent=1).encode())
    t0 = time.perf_counter()
    with Manifest(run_dir) as man:
        ref = record_once(man, "init/reference", lambda: reference_trajectory(cfg, log), log)
        train, heldout = split_frames(cfg, ref)
        pair = record_once(man, "init/pair", lambda: fit_pair(cfg, train, man.workdir("init/pair") / "pair.npz"),
                           log, meta=lambda v: {"fit_residual": v["fit_residual"]})
    report = build_loop(cfg, run_dir, executor, ref, train, pair, observers).run()
    with Manifest(run_dir) as man:
        ev = evaluate_models(cfg, man, ref, heldout, pair, [m.model_paths[0] for m in report.models], log)
    with Manifest(run_dir) as man:
        compute_s = sum(float(r.meta.get("seconds") or 0.0) for r in man.records())
    summary = run_summary(cfg, report, ref, train, pair, ev, time.perf_counter() - t0)
    summary["compute_s"] = compute_s
    atomic_write_bytes(run_dir / "summary.json", json.dumps(summary, indent=1).encode())
    return summary


def _plain(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k != "curves"}


def run_summary(cfg, report, ref, train, pair, ev, wall_s: float) -> dict:
    refm = ev["reference"]
    return {
        "workflow": "cg",
        "liquid": cfg.system.liquid,
        "model_kind": cfg.model.kind,
        "converged": report.converged,
        "iterations": len(report.iterations),
        "initial_frames": int(len(train["R"])),
        "labels": report.n_labelled,
        "explored_frames": sum(it.selection.n_explored for it in report.iterations),
        "quarantined": [q.summary() for q in report.quarantined],
        "wall_s": wall_s,
        "reference": {"diffusion": refm["diffusion"], "density": refm["density"], "adf_peak": refm["adf_peak"],
                      "steps_per_s": ref.get("steps_per_s"), "ps_per_s": ref.get("ps_per_s")},
        "pair_fit_residual": pair["fit_residual"],
        "metrics": {name: _plain(m) for name, m in ev["models"].items()},
        "models": [m.model_paths[0] for m in report.models],
        "per_iteration": [it.summary() for it in report.iterations],
    }
