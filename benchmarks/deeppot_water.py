"""DeepPot-SE on liquid water: conlearn vs deepmd-kit (PyTorch backend), same run, same machine.

Train on data_0..2 with deepmd-kit's example hyper-parameters (sel 46/92, rcut 6.0,
rcut_smth 0.5, embedding 25/50/100, axis 16, fitting 240x3, float64) for the same
wall-clock budget of training loop each (start-up is measured and shown, not charged),
then test on data_3 and time inference (energy + forces, one 192-atom frame).

Both tools use the same loss and a learning rate decaying 1e-3 -> 1e-5 over the steps
each can make in the budget (their rates are measured first by a short calibration run).

    python benchmarks/deeppot_water.py [--budget 600] [--threads 1] [--skip-deepmd]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = ROOT.parent / "shared" / "data" / "water"
sys.path.insert(0, str(HERE))

import deepmd_ref  # noqa: E402


def base_input() -> dict:
    cfg = json.loads((ROOT / "examples" / "water" / "input.json").read_text())
    cfg.pop("_comment", None)
    cfg["training"]["training_data"]["systems"] = [str(DATA / f"data_{i}") for i in range(3)]
    cfg["training"]["validation_data"]["systems"] = [str(DATA / "data_3")]
    cfg["learning_rate"].update(start_lr=1e-3, stop_lr=1e-5)
    return cfg


def with_steps(cfg: dict, steps: int) -> dict:
    cfg = copy.deepcopy(cfg)
    steps = max(20, int(steps))
    cfg["training"].update(numb_steps=steps, disp_freq=max(10, steps // 50), save_freq=max(10, steps // 50))
    cfg["learning_rate"]["decay_steps"] = max(1, steps // 20)
    return cfg


def conlearn_rate(cfg: dict, threads: int) -> float:
    """Training steps/s of conlearn on this input (in-process, after warm-up)."""
    import tempfile

    import torch

    from conlearn.atoms.deeppot.config import TrainConfig
    from conlearn.atoms.deeppot.train import Trainer

    torch.set_num_threads(threads)
    c = with_steps(cfg, 1000)
    with tempfile.TemporaryDirectory() as tmp:
        tr = Trainer(TrainConfig.model_validate(c), tmp, log=lambda m: None)
        for _ in range(3):
            tr.train_step(1e-3)
        t = time.perf_counter()
        for _ in range(15):
            tr.train_step(1e-3)
        return 15 / (time.perf_counter() - t)


def run_conlearn(cfg: dict, budget: float, threads: int, work: Path) -> dict:
    rate = conlearn_rate(cfg, threads)
    c = with_steps(cfg, rate * budget)
    c["training"]["max_wall_s"] = budget
    work.mkdir(parents=True, exist_ok=True)
    (work / "input.json").write_text(json.dumps(c, indent=1))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "conlearn.cli", "--threads", str(threads), "train",
                    str(work / "input.json"), "-o", str(work / "out")], env=env, check=True,
                   stderr=open(work / "train.log", "w"))
    wall = time.perf_counter() - t0
    import torch

    meta = torch.load(work / "out" / "model.pt", weights_only=False)["metadata"]
    res = json.loads(subprocess.run(
        [sys.executable, "-m", "conlearn.cli", "--threads", str(threads), "test", "-m",
         str(work / "out" / "model.pt"), "-d", str(DATA / "data_3"), "--json"],
        env=env, check=True, capture_output=True, text=True).stdout)
    from conlearn.atoms.dataset import load_systems
    from conlearn.atoms.deeppot.evaluate import time_inference
    from conlearn.atoms.deeppot.model import load_model

    torch.set_num_threads(threads)
    t_inf = time_inference(load_model(work / "out" / "model.pt"), load_systems(DATA / "data_3")[0], n=10)
    return {"steps": meta["steps"], "steps_per_s": meta["steps"] / meta["wall_s"],
            "startup_s": wall - meta["wall_s"], "force_rmse": res["force_rmse"],
            "energy_rmse_per_atom": res["energy_rmse_per_atom"], "inference_s": t_inf,
            "numb_steps": c["training"]["numb_steps"]}


def run_deepmd(cfg: dict, budget: float, threads: int, work: Path) -> dict | None:
    if deepmd_ref.ensure_installed() is None:
        return None
    c = with_steps(cfg, 100000)
    c["training"].update(disp_freq=5, save_freq=100000)
    calib = deepmd_ref.train(c, work / "calib", 40, threads=threads,
                             budget_from_first_step=True, extra_env={"NUM_WORKERS": 0})
    c = with_steps(cfg, calib["steps_per_s"] * budget)
    tr = deepmd_ref.train(c, work / "main", budget, threads=threads, budget_from_first_step=True,
                          extra_env={"NUM_WORKERS": 0})
    if tr["checkpoint"] is None:
        print("deepmd-kit wrote no checkpoint within the budget")
        return None
    te = deepmd_ref.test(tr["checkpoint"], DATA / "data_3", threads=threads)
    t_inf = deepmd_ref.time_inference(tr["checkpoint"], DATA / "data_3", n_frames=10, threads=threads)
    ck_step = int(Path(tr["checkpoint"]).stem.split("-")[-1]) if "-" in Path(tr["checkpoint"]).stem else tr["steps"]
    return {"steps": ck_step, "steps_per_s": tr["steps_per_s"], "startup_s": tr["first_step_wall_s"],
            "force_rmse": te["force_rmse"], "energy_rmse_per_atom": te["energy_rmse_per_atom"],
            "inference_s": t_inf, "numb_steps": c["training"]["numb_steps"]}


def table(rows: dict) -> str:
    head = f"{'':10s} {'steps':>7s} {'steps/s':>8s} {'start-up s':>10s} {'F RMSE eV/Å':>12s} {'E RMSE meV/atom':>16s} {'infer s/frame':>14s}"
    lines = [head, "-" * len(head)]
    for name, r in rows.items():
        if r is None:
            lines.append(f"{name:10s} (not run)")
            continue
        lines.append(f"{name:10s} {r['steps']:7d} {r['steps_per_s']:8.2f} {r['startup_s']:10.1f} "
                     f"{r['force_rmse']:12.4f} {1000 * r['energy_rmse_per_atom']:16.2f} {r['inference_s']:14.4f}")
    a, b = rows.get("conlearn"), rows.get("deepmd-kit")
    if a and b:
        lines.append(f"force RMSE ratio conlearn/deepmd = {a['force_rmse'] / b['force_rmse']:.3f}; "
                     f"inference speed-up = {b['inference_s'] / a['inference_s']:.2f}x; "
                     f"training speed-up = {a['steps_per_s'] / b['steps_per_s']:.2f}x")
    return "\n".join(lines)


def inference_variants(model_path: Path, threads: int, deepmd: dict | None) -> str:
    """The trained conlearn model's inference (E+F, one 192-atom frame of data_3) exact,
    compressed (``conlearn compress``, min distance from the training data) and in float32:
    median CPU ms per frame (see benchmarks/deeppot_compress.py, which also checks accuracy)."""
    import torch

    import deeppot_compress as dc
    from conlearn.atoms.dataset import load_systems
    from conlearn.atoms.deeppot.compress import compress_model, min_neighbor_distance
    from conlearn.atoms.deeppot.model import load_model

    torch.set_num_threads(threads)
    exact = load_model(model_path)
    rmin = min_neighbor_distance(load_systems([DATA / f"data_{i}" for i in range(3)]), exact.spec.rcut)
    f32 = dc.as_float32(exact)
    test = load_systems(DATA / "data_3")[0]
    lines = ["variant              CPU ms/frame  vs exact" + ("  vs deepmd-kit wall" if deepmd else "")]
    base = None
    for name, m in (("exact float64", exact), ("compressed float64", compress_model(exact, min_dist=rmin)),
                    ("exact float32", f32), ("compressed float32", compress_model(f32, min_dist=rmin))):
        cpu, wall = dc.time_ef(m, test, 10)
        base = base or cpu
        extra = f"  {deepmd['inference_s'] / wall:8.2f}x" if deepmd else ""
        lines.append(f"{name:20s} {1e3 * cpu:12.1f} {base / cpu:8.2f}x{extra}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=float, default=600.0, help="training-loop seconds per tool")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", default="runs/bench_deeppot_water")
    ap.add_argument("--skip-deepmd", action="store_true")
    a = ap.parse_args(argv)
    if not DATA.is_dir():
        print(f"water data not found at {DATA}")
        return 1
    work = Path(a.work).resolve()
    cfg = base_input()
    rows = {"conlearn": run_conlearn(cfg, a.budget, a.threads, work / "conlearn")}
    print(json.dumps(rows["conlearn"]), flush=True)
    rows["deepmd-kit"] = None if a.skip_deepmd else run_deepmd(cfg, a.budget, a.threads, work / "deepmd")
    print(f"\nDeepPot-SE water, {a.budget:.0f} s training budget each, {a.threads} thread(s), float64")
    print(table(rows))
    print(inference_variants(work / "conlearn" / "out" / "model.pt", a.threads, rows.get("deepmd-kit")))
    (work / "results.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
