"""Committee selection vs random selection at the same label budget, same exploration.

Takes a finished run (default: runs the Al/EMT demo first). From the frames that run
explored, the committee picked L frames to label; here L frames are also drawn uniformly at
random from the same explored frames (every frame of the trajectory files) and labelled by
the same reference. Models are then trained from scratch with identical settings on
initial data + committee picks and on initial data + random picks, and scored on the same
held-out reference MD at every exploration condition (reference frames computed once).

By default each model trains as many steps as one member of the run did in all
(``numb_steps + reuse_numb_steps x (iterations - 1) + final_numb_steps``), so that neither
side is limited by training. Training runs in parallel worker processes (one thread each).
``--random-factors 1 4 16`` (the default) also trains on 4L and 16L random frames: how many
more random labels it takes to match the committee's picks. ``--floor K`` also trains, per
draw, one model on everything labelled here (initial + committee picks + the largest random
set) for K times the steps: a reference point for the best worst-condition error this
network reaches on this exploration, hence the largest random/committee ratio any selection
of L frames could show.

    python benchmarks/selection_vs_random.py [--run runs/demo] [--steps N] [--seeds 2] [--workers 2]
                                             [--random-factors 1 4 16] [--floor K]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ase.io import read  # noqa: E402

from conlearn.atoms.deeppot.model import load_model  # noqa: E402
from conlearn.atoms.dpgen.config import RunConfig  # noqa: E402
from conlearn.atoms.dpgen.heldout import frame_errors, reference_frames  # noqa: E402
from conlearn.atoms.dpgen.report import load_run  # noqa: E402
from conlearn.atoms.dpgen.run import conditions_for  # noqa: E402
from conlearn.atoms.dpgen.trainer import DeepPotTrainer  # noqa: E402
from conlearn.atoms.frames import atoms_to_frame  # noqa: E402
from conlearn.atoms.labeler import label_frames  # noqa: E402
from conlearn.atoms.reference import build_reference  # noqa: E402
from conlearn.core.records import TaskContext  # noqa: E402
from conlearn.exec import LocalProcessExecutor  # noqa: E402


def collect(run: Path):
    d = load_run(run)
    initial = [r.payload for r in d["init"] if r.ok]
    explored, picked = [], []
    for st in d["iterations"].values():
        for b in st.get("explore", []):  # every recorded frame, from the trajectory files
            path = b.meta.get("trajectory")
            if path and Path(path).exists():
                explored += [atoms_to_frame(a) for a in read(path, ":")]
            else:
                explored += [c.payload for c in b.candidates if c.payload is not None]
        picked += [r.payload for r in st.get("label", []) if r.ok]
    return initial, explored, picked


def run_steps(cfg: RunConfig, n_iterations: int) -> int:
    """Training steps one member of the run went through in all."""
    t = cfg.training
    return t.numb_steps + t.reuse_numb_steps * (n_iterations - 1) + (t.final_numb_steps or 0)


def train(cfg: RunConfig, data: list, steps: int, out: Path, seed: int) -> str:
    t = cfg.training
    tr = DeepPotTrainer(model=cfg.model_section(), numb_steps=steps, learning_rate=dict(t.learning_rate),
                        loss=dict(t.loss), disp_freq=max(1, steps // 20))
    res = tr.train(data, None, TaskContext(key=out.name, iteration=0, index=0, seed=seed, workdir=str(out)))
    return res.model_paths[0]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default="runs/demo")
    ap.add_argument("--steps", type=int, default=None,
                    help="training steps of each model, from scratch (default: a run member's total)")
    ap.add_argument("--seeds", type=int, default=2, help="random draws (and training seeds) averaged")
    ap.add_argument("--workers", type=int, default=2, help="parallel training processes")
    ap.add_argument("--random-factors", type=int, nargs="+", default=[1, 4, 16],
                    help="random sets of f x L frames (f = 1 is the same budget)")
    ap.add_argument("--floor", type=int, default=0, metavar="K",
                    help="also train on all labelled frames for K x the steps (0: skip)")
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    run = Path(a.run)
    if not (run / "summary.json").exists():
        from conlearn.demo import run_demo

        run_demo(run)
    cfg = RunConfig.model_validate(json.loads((run / "config.json").read_text()))
    summary = json.loads((run / "summary.json").read_text())
    steps = a.steps or run_steps(cfg, summary["iterations"])
    initial, explored, picked = collect(run)
    L = len(picked)
    print(f"run {run}: {len(initial)} initial frames, {len(explored)} explored, committee picked {L}; "
          f"{steps} training steps per model")
    t0 = time.perf_counter()
    sets = {}
    names = ["committee"] + [f"random x{f}" if f != 1 else "random" for f in a.random_factors]
    biggest = names[1 + int(np.argmax(a.random_factors))]
    for s in range(a.seeds):
        rng = np.random.default_rng(1000 + s)
        order = rng.permutation(len(explored))  # the larger random sets contain the smaller
        sets[("committee", s)] = initial + picked
        for f, name in zip(a.random_factors, names[1:]):
            sets[(name, s)] = initial + label_frames([explored[i] for i in order[:f * L]], cfg.reference)
        if a.floor:
            sets[("all labelled", s)] = sets[(biggest, s)] + picked
    if a.floor:
        names.append("all labelled")
    step_of = {k: steps * (a.floor if k[0] == "all labelled" else 1) for k in sets}
    out = run / "bench_selection"
    shutil.rmtree(out, ignore_errors=True)  # a trainer resumes from a checkpoint it finds: start clean
    with LocalProcessExecutor(a.workers) as ex:
        keys = list(sets)
        keys.sort(key=lambda k: -step_of[k])  # longest first: the pool stays busy
        paths = ex.map(train, [cfg] * len(keys), [sets[k] for k in keys], [step_of[k] for k in keys],
                       [out / f"{n.replace(' ', '')}-{s}" for n, s in keys], [17 + s for _, s in keys],
                       kind="train")
    print(f"trained {len(keys)} models in {time.perf_counter() - t0:.0f} s", flush=True)
    conds = conditions_for(cfg)(10**6)
    ref = build_reference(cfg.reference)
    frames = {c.name: reference_frames(c, ref, 10, 400, 999 + k) for k, c in enumerate(conds)}
    rows = {k: {name: frame_errors([load_model(p)], fr)["force_rmse"] for name, fr in frames.items()}
            for k, p in zip(keys, paths)}
    worst = {k: max(v.items(), key=lambda kv: kv[1]) for k, v in rows.items()}
    for s in range(a.seeds):
        print(f"draw {s}: " + "; ".join(
            f"{n}: worst {worst[(n, s)][0]} {worst[(n, s)][1]:.4f} eV/Å, mean {np.mean(list(rows[(n, s)].values())):.4f}"
            for n in names), flush=True)
    print(f"\n{'condition':30s} " + " ".join(f"{n:>11s}" for n in names) + "   (force RMSE eV/Å, mean over draws)")
    for cname in frames:
        print(f"{cname:30s} " + " ".join(f"{np.mean([rows[(n, s)][cname] for s in range(a.seeds)]):11.4f}"
                                         for n in names))
    w = {n: float(np.mean([worst[(n, s)][1] for s in range(a.seeds)])) for n in names}
    m = {n: float(np.mean([np.mean(list(rows[(n, s)].values())) for s in range(a.seeds)])) for n in names}
    sizes = {"committee": L, **{n: f * L for f, n in zip(a.random_factors, names[1:])}}
    if a.floor:
        sizes["all labelled"] = sizes[biggest] + L
    print(f"\n{'selection':12s} {'labels':>7s} {'steps':>6s} {'worst-condition RMSE':>21s} "
          f"{'mean-condition RMSE':>20s}  (eV/Å)")
    for n in names:
        print(f"{n:12s} {sizes[n]:7d} {step_of[(n, 0)]:6d} {w[n]:21.4f} {m[n]:20.4f}")
    if "random" in w:
        print(f"random / committee = {w['random'] / w['committee']:.2f} at the same budget (target >= 2)")
        if a.floor:
            print(f"random / all labelled = {w['random'] / w['all labelled']:.2f}: the ratio a selection of {L} "
                  f"frames would show if it did as well as {sizes['all labelled']} frames trained {a.floor}x longer")
    match = [n for n in names[1:] if n != "all labelled" and w[n] <= w["committee"]]
    if match:
        print(f"random matches the committee's worst-condition RMSE with {sizes[match[0]]} labels "
              f"({sizes[match[0]] / L:.0f}x)")
    else:
        print(f"no random set matches the committee's worst-condition RMSE, up to {sizes[biggest]} labels "
              f"({sizes[biggest] / L:.0f}x the committee's {L})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
