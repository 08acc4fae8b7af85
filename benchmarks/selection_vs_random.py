"""Committee selection vs random selection at the same label budget, same exploration.

Takes a finished run (default: runs the Al/EMT demo first). From the frames that run
explored, the committee picked L frames to label; here L frames are also drawn uniformly at
random from the same explored frames and labelled by the same reference. Two models are then
trained from scratch with identical settings (initial data + committee picks, initial data
+ random picks) and tested on held-out reference MD at every exploration condition.

    python benchmarks/selection_vs_random.py [--run runs/demo] [--steps 3000] [--seeds 2]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ase.io import read  # noqa: E402

from conlearn.atoms.deeppot.model import load_model  # noqa: E402
from conlearn.atoms.dpgen.config import RunConfig  # noqa: E402
from conlearn.atoms.dpgen.heldout import heldout_errors  # noqa: E402
from conlearn.atoms.dpgen.report import load_run  # noqa: E402
from conlearn.atoms.dpgen.run import conditions_for  # noqa: E402
from conlearn.atoms.dpgen.trainer import DeepPotTrainer  # noqa: E402
from conlearn.atoms.frames import atoms_to_frame  # noqa: E402
from conlearn.atoms.labeler import label_frames  # noqa: E402
from conlearn.atoms.reference import build_reference  # noqa: E402
from conlearn.core.records import TaskContext  # noqa: E402


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


def train(cfg: RunConfig, data: list, steps: int, out: Path, seed: int) -> Path:
    t = cfg.training
    tr = DeepPotTrainer(model=cfg.model_section(), numb_steps=steps, learning_rate=dict(t.learning_rate),
                        loss=dict(t.loss), disp_freq=max(1, steps // 20))
    res = tr.train(data, None, TaskContext(key=out.name, iteration=0, index=0, seed=seed, workdir=str(out)))
    return Path(res.model_paths[0])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default="runs/demo")
    ap.add_argument("--steps", type=int, default=3000, help="training steps of each model (from scratch)")
    ap.add_argument("--seeds", type=int, default=2, help="random draws (and training seeds) averaged")
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    run = Path(a.run)
    if not (run / "summary.json").exists():
        from conlearn.demo import run_demo

        run_demo(run)
    cfg = RunConfig.model_validate(json.loads((run / "config.json").read_text()))
    initial, explored, picked = collect(run)
    L = len(picked)
    print(f"run {run}: {len(initial)} initial frames, {len(explored)} explored, committee picked {L}")
    conds = conditions_for(cfg)(10**6)
    ref = build_reference(cfg.reference)
    rows = []
    for s in range(a.seeds):
        rng = np.random.default_rng(1000 + s)
        random_pick = [explored[i] for i in rng.choice(len(explored), size=L, replace=False)]
        random_lab = label_frames(random_pick, cfg.reference)
        res = {}
        for name, data in (("committee", initial + picked), ("random", initial + random_lab)):
            model = train(cfg, data, a.steps, run / "bench_selection" / f"{name}-{s}", seed=17 + s)
            err = heldout_errors([load_model(model)] * 2, conds, ref, n_frames=10, n_steps=400, seed=999)
            worst = max(err.items(), key=lambda kv: kv[1]["force_rmse"])
            res[name] = (worst[0], worst[1]["force_rmse"], float(np.mean([e["force_rmse"] for e in err.values()])))
        rows.append(res)
        print(f"draw {s}: " + "; ".join(f"{k}: worst {v[0]} {v[1]:.4f} eV/Å, mean {v[2]:.4f}" for k, v in res.items()),
              flush=True)
    c = np.mean([r["committee"][1] for r in rows])
    r = np.mean([r["random"][1] for r in rows])
    print(f"\n{'selection':12s} {'labels':>7s} {'worst-condition force RMSE eV/Å':>32s}")
    print(f"{'committee':12s} {L:7d} {c:32.4f}")
    print(f"{'random':12s} {L:7d} {r:32.4f}")
    print(f"random / committee = {r / c:.2f} (target >= 2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
