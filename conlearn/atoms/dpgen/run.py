"""Build and run an atomistic concurrent-learning loop from a RunConfig (``conlearn run``).

Stage 0 gathers the initial data: already-labelled frames from ``initial.data`` (read
once and recorded in the run's manifest as ``init/data``, so a resume never re-reads
them) and the perturbed, strained structures labelled through the executor, each recorded
(``init/label/NNNNNN``). Then the generic :class:`~conlearn.core.loop.BatchLoop` iterates
train → explore → select → label with the components of ``model_kind`` (DeepPot committee
or one GP). Everything is recorded as it finishes, so re-running the same command resumes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ...configfile import check_recorded_config
from ...core.loop import BatchLoop, LoopSettings
from ...core.manifest import Manifest, atomic_write_bytes
from ...core.records import Candidate, Condition, derive_seed
from ...core.selection import TrustWindowSelector
from ...core.tasks import label_recorded
from ..dataset import load_systems
from ..frames import atoms_to_frame, system_to_frames
from ..initial import build_structures, perturbed_frames
from ..labeler import ASELabeler
from ..reference import ReferenceSpec
from .config import RunConfig
from .explorer import MDExplorer
from .trainer import DeepPotTrainer

OTF_LABELS = "labelled.extxyz"  # the labelled frames of an on-the-fly run directory


def structures(cfg: RunConfig) -> dict[str, object]:
    """name -> ASE Atoms of every configured structure."""
    return dict(build_structures(cfg.structures))


def initial_candidates(cfg: RunConfig) -> list[Candidate]:
    out = []
    for s, (name, atoms) in enumerate(structures(cfg).items()):
        frames = perturbed_frames(atoms, cfg.initial.n_frames_per_structure, cell_strain=cfg.initial.cell_strain,
                                  atom_displacement=cfg.initial.atom_displacement,
                                  seed=derive_seed(cfg.loop.seed, f"init/{name}"))
        for k, f in enumerate(frames):
            f.setdefault("meta", {}).update(structure=name, initial=k)
            out.append(Candidate(deviation=0.0, payload=f, key=f"init/{name}/{k:04d}"))
    return out


def read_labelled(path: str | Path, type_map: list[str]) -> list[dict]:
    """Labelled frames (energy eV, forces [n, 3] eV/Å, virial eV when present) from one
    ``initial.data`` entry, in file order, each with ``meta`` ``{"source", "index"}``.

    ``path``: an on-the-fly run directory (its ``labelled.extxyz``), a file ASE reads, a
    deepmd system directory or a directory of them. A frame without energy or forces, or
    an element not in ``type_map``, is a :class:`~conlearn.atoms.system.DataError` naming the file.
    """
    p = Path(path)
    source = p / OTF_LABELS if p.is_dir() and (p / OTF_LABELS).is_file() else p
    frames = []
    for system in load_systems([source]):
        frames += system_to_frames(system, type_map, what="the run's type_map", source=source)
    for k, f in enumerate(frames):
        f["meta"] = {"source": str(source), "index": k}
    return frames


def seed_data(cfg: RunConfig, man: Manifest, log=print) -> list[dict]:
    """The frames of ``initial.data``: read and recorded (``init/data``) on the first run,
    replayed from the manifest on a resume (a run keeps the data it started with)."""
    paths = [str(p) for p in cfg.initial.data]
    rec = man.get("init/data")
    if rec is not None:
        if rec.meta.get("paths") != paths:
            raise ValueError(f"{man.run_dir} was seeded from {rec.meta.get('paths')}, the config now lists "
                             f"{paths} in initial.data; use a new run directory")
        return man.load("init/data")
    if not paths:
        return []
    frames, counts = [], []
    for p in paths:
        got = read_labelled(p, list(cfg.type_map))
        frames += got
        counts.append(len(got))
    man.record("init/data", frames, {"paths": paths, "n_frames": counts})
    log(f"initial data: {len(frames)} labelled frames from {len(paths)} path(s)")
    return frames


def label_initial(cfg: RunConfig, run_dir: Path, executor, log=print) -> list[dict]:
    """The initial data, in order: the frames of ``initial.data`` (recorded as they are),
    then the perturbed structures labelled by the reference (recorded one by one; the
    quarantined ones are left out)."""
    labeler = ASELabeler(ReferenceSpec.model_validate(cfg.reference))
    cands = initial_candidates(cfg)
    with Manifest(run_dir) as man:
        seeds = seed_data(cfg, man, log)
        labels = label_recorded(man, executor, labeler, cands, seed=cfg.loop.seed, retries=cfg.loop.label_retries,
                                timeout_s=cfg.loop.label_timeout_s, log=log, what="frames")
    bad = [r for r in labels if not r.ok]
    for r in bad:
        log(f"initial frame {r.candidate_key} quarantined: {r.reason}")
    return seeds + [r.payload for r in labels if r.ok]


def conditions_for(cfg: RunConfig):
    """``iteration -> [Condition]``: structures × temperatures × pressures of the stage."""
    structs = structures(cfg)

    def grid(iteration: int) -> list[Condition]:
        st = cfg.stage_for(iteration)
        names = list(structs) if st.structures == "all" else list(st.structures)
        unknown = [n for n in names if n not in structs]
        if unknown:
            raise ValueError(f"exploration structures {unknown} not among {list(structs)}")
        out = []
        for name in names:
            atoms = structs[name]
            periodic = bool(np.all(atoms.pbc))
            for T in st.temperatures:
                for P in (st.pressures if periodic else [None]):
                    label = f"{name}-T{T:g}" + ("" if P is None else f"-P{P:g}")
                    out.append(Condition(label, {
                        "structure": atoms_to_frame(atoms), "temperature": T, "pressure": P,
                        "n_steps": st.n_steps, "dt_fs": st.dt_fs, "trj_freq": st.trj_freq}))
            # slabs: pressures do not apply, each temperature appears once
        return list({c.name: c for c in out}.values())

    return grid


def deeppot_components(cfg: RunConfig):
    """``(trainer, explorer, n_models)`` of a DeepPot committee."""
    t = cfg.training
    trainer = DeepPotTrainer(model=cfg.model_section(), numb_steps=t.numb_steps,
                             reuse_numb_steps=t.reuse_numb_steps, reuse_start_lr=t.reuse_start_lr,
                             learning_rate=t.learning_rate.model_dump(), loss=t.loss.model_dump(), disp_freq=t.disp_freq,
                             final_numb_steps=t.final_numb_steps, final_from_scratch=t.final_from_scratch)
    s = cfg.selection
    explorer = MDExplorer(stop_devi_f=cfg.md.stop_devi_f, drive=cfg.md.drive,
                          payload_window=(s.trust_lo, s.trust_hi),
                          continue_trajectories=cfg.md.continue_trajectories)
    return trainer, explorer, t.n_models


def gp_components(cfg: RunConfig):
    """``(trainer, explorer, 1)``: one GP; its predicted std is the deviation."""
    from ..gp.batch import GPExplorer, GPTrainer

    return GPTrainer.from_spec(cfg.gp), GPExplorer(), 1


MODEL_KINDS = {"deeppot": deeppot_components, "gp": gp_components}


def build_loop(cfg: RunConfig, run_dir: Path, executor, initial_data: list, observers=()) -> BatchLoop:
    trainer, explorer, n_models = MODEL_KINDS[cfg.model_kind](cfg)
    s = cfg.selection
    selector = TrustWindowSelector(lo=s.trust_lo, hi=s.trust_hi, threshold=s.converge_fraction,
                                   max_select=s.max_select, order=s.order, min_gap=s.min_gap)
    settings = LoopSettings(n_models=n_models, max_iterations=cfg.loop.max_iterations,
                            label_retries=cfg.loop.label_retries, label_timeout_s=cfg.loop.label_timeout_s,
                            seed=cfg.loop.seed, label_last=cfg.loop.label_last)
    return BatchLoop(trainer=trainer, explorer=explorer, selector=selector,
                     labeler=ASELabeler(ReferenceSpec.model_validate(cfg.reference)),
                     conditions=conditions_for(cfg), initial_data=initial_data, run_dir=run_dir,
                     executor=executor, settings=settings, observers=observers)


def run(cfg: RunConfig, run_dir: str | Path, executor, observers=(), log=print):
    """Initial labels, then the loop; writes ``run_dir/summary.json``; returns the LoopReport."""
    structures(cfg)  # every structure read and checked (overlapping atoms) before anything is written
    run_dir = Path(run_dir).resolve()
    check_same_config(cfg, run_dir / "config.json")
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(run_dir / "config.json", cfg.model_dump_json(indent=1).encode())
    t0 = time.perf_counter()
    initial = label_initial(cfg, run_dir, executor, log=log)
    report = build_loop(cfg, run_dir, executor, initial, observers).run()
    summary = run_summary(report, n_initial=len(initial), wall_s=time.perf_counter() - t0)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    return report


RESUMABLE_CHANGES = ("loop.max_iterations", "heldout")  # may differ on a re-run: more iterations, another check


def check_same_config(cfg: RunConfig, path: Path) -> None:
    """A re-run into a run directory must use the config that run began with: recorded tasks
    are replayed, so a changed trust window, reference or model would silently mix two runs.
    Only ``loop.max_iterations`` (to extend a run) and ``heldout`` may change."""
    check_recorded_config(cfg, path, RESUMABLE_CHANGES)


def run_summary(report, n_initial: int, wall_s: float) -> dict:
    explored = sum(it.selection.n_explored for it in report.iterations)
    labelled = report.n_labelled
    return {
        "converged": report.converged,
        "iterations": len(report.iterations),
        "explored_frames": explored,
        "labelled_frames": labelled,
        "initial_frames": n_initial,
        "labelled_fraction": labelled / explored if explored else None,
        "quarantined": [q.summary() for q in report.quarantined],
        "overhead_fraction": report.timing.overhead_fraction,
        "timing": report.timing.summary(),
        "models": [m.model_paths[0] for m in report.models],
        "wall_s": wall_s,
        "per_iteration": [it.summary() for it in report.iterations],
    }
