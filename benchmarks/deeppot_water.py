"""DeepPot-SE on liquid water: conlearn vs deepmd-kit (PyTorch backend), same run, same machine.

Train on data_0..2 with deepmd-kit's example hyper-parameters (sel 46/92, rcut 6.0,
rcut_smth 0.5, embedding 25/50/100, axis 16, fitting 240x3, float64) for the same
wall-clock budget of training loop each (start-up is measured and shown, not charged),
then test on data_3 and time inference (energy + forces, one 192-atom frame).

Both tools use the same loss and a learning rate decaying 1e-3 -> 1e-5 over the steps
each can make in the budget (their rates are measured first by a short calibration run;
``--quick``: no calibration, a 30 s budget, fewer repeats).

Parts (``--parts train,small,large``):

* train: the above, on ``--device`` (cpu or cuda; deepmd-kit on the same device);
* small: one 192-atom frame (data_3), energy + forces per MD-like step (positions wiggled a
  little each step, forces copied to the host): the normal path (host neighbour list and
  graph per call) and the fast path (:class:`conlearn.atoms.deeppot.fast.FastEvaluator`:
  device Verlet list, fixed shapes, a CUDA graph on CUDA; also without the graph), exact and
  compressed, float64 and float32, a committee of 4, deepmd-kit's uncompressed model;
* large: data_3's frame replicated ``--copies`` times (128: 24,576 atoms): Verlet build
  (neighbour search + packing), ms/step, µs/atom/step, peak memory (CUDA: allocator peak;
  CPU: the process's RSS high-water mark so far), whole and chunked (``--chunk`` centres per
  pass), and deepmd-kit's ``DeepPot.eval`` on the same box.

Timing: median of ``--repeat`` calls after warm-up; wall time on CUDA (synchronised), CPU
time of this process on the CPU. The timed model is the example architecture with untrained
weights (``--model`` for a trained one): timing does not depend on the weights.

    python benchmarks/deeppot_water.py [--budget 600] [--threads 1] [--skip-deepmd]
    python benchmarks/deeppot_water.py --quick --device cuda [--parts small,large]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = ROOT.parent / "shared" / "data" / "water"
if not DATA.is_dir():  # the GPU machine sees only the working tree: a copy beside this script
    DATA = HERE / "data_gpu" / "water"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import deepmd_ref  # noqa: E402
import deeppot_speed as speed  # noqa: E402
from deeppot_speed import fast_checks, large_table, markdown, profile_part, small_table  # noqa: E402


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


def run_conlearn(cfg: dict, budget: float, threads: int, work: Path, rate: float | None = None) -> dict:
    """Train for ``budget`` s (``rate`` steps/s sets the schedule; measured first when None)."""
    rate = rate or conlearn_rate(cfg, threads)
    c = with_steps(cfg, rate * budget)
    c["training"]["max_wall_s"] = budget
    work.mkdir(parents=True, exist_ok=True)
    # '1e-05' is a string to a YAML 1.1 reader (conlearn's config loader): write '1.0e-05'
    text = re.sub(r'(?<=[\s\[:,])(-?\d+)(e[-+]?\d+)', r'\1.0\2', json.dumps(c, indent=1))
    (work / "input.json").write_text(text)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
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
    from conlearn.atoms.deeppot.model import default_device, load_model

    torch.set_num_threads(threads)
    t_inf = time_inference(load_model(work / "out" / "model.pt", default_device()),
                           load_systems(DATA / "data_3")[0], n=10)
    return {"steps": meta["steps"], "steps_per_s": meta["steps"] / meta["wall_s"],
            "startup_s": wall - meta["wall_s"], "force_rmse": res["force_rmse"],
            "energy_rmse_per_atom": res["energy_rmse_per_atom"], "inference_s": t_inf,
            "numb_steps": c["training"]["numb_steps"]}


def run_deepmd(cfg: dict, budget: float, threads: int, work: Path, rate: float | None = None) -> dict | None:
    """deepmd-kit's row (``rate`` steps/s sets the schedule; measured first when None)."""
    if deepmd_ref.ensure_installed() is None:
        return None
    if rate is None:
        c = with_steps(cfg, 100000)
        c["training"].update(disp_freq=5, save_freq=100000)
        rate = deepmd_ref.train(c, work / "calib", 40, threads=threads, budget_from_first_step=True,
                                extra_env={"NUM_WORKERS": 0})["steps_per_s"]
    c = with_steps(cfg, rate * budget)
    tr = deepmd_ref.train(c, work / "main", budget, threads=threads, budget_from_first_step=True,
                          extra_env={"NUM_WORKERS": 0})
    if tr["checkpoint"] is None:  # the training rate stands; no model to test
        print("deepmd-kit wrote no checkpoint within the budget")
        nan = float("nan")
        return {"steps": int(tr["steps"]), "steps_per_s": tr["steps_per_s"], "startup_s": tr["first_step_wall_s"],
                "force_rmse": nan, "energy_rmse_per_atom": nan, "inference_s": nan,
                "numb_steps": c["training"]["numb_steps"]}
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


def train_rows(a, work: Path) -> dict:
    cfg = base_input()
    guess = (25.0, 17.0) if a.device.startswith("cuda") else (1.5, 0.6)  # steps/s: schedule only
    rows = {"conlearn": run_conlearn(cfg, a.budget, a.threads, work / "conlearn", guess[0] if a.quick else None)}
    print(json.dumps(rows["conlearn"]), flush=True)
    rows["deepmd-kit"] = None if a.skip_deepmd else run_deepmd(cfg, a.budget, a.threads, work / "deepmd",
                                                              guess[1] if a.quick else None)
    print(f"\nDeepPot-SE water, {a.budget:.0f} s training budget each, {a.threads} thread(s), float64, {a.device}")
    print(table(rows))
    return rows


def dp_checkpoint(a, work: Path):
    """A deepmd-kit checkpoint of the water architecture (the training run's, else 10 steps)."""
    if a.skip_deepmd or deepmd_ref.ensure_installed() is None:
        return None
    ck = deepmd_ref._latest_checkpoint(work / "deepmd" / "main")
    if ck:
        return ck
    cfg = with_steps(base_input(), 10)
    cfg["training"].update(disp_freq=5, save_freq=10)
    return deepmd_ref.train(cfg, work / "deepmd" / "ten", 300, threads=a.threads).get("checkpoint")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=float, default=None, help="training-loop seconds per tool (600; --quick 30)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", default="runs/bench_deeppot_water")
    ap.add_argument("--skip-deepmd", action="store_true")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (conlearn and deepmd-kit)")
    ap.add_argument("--quick", action="store_true", help="no calibration runs, fewer repeats")
    ap.add_argument("--parts", default="train,small,large", help="comma list of check, train, small, large, profile")
    ap.add_argument("--copies", type=int, default=128, help="copies of the 192-atom frame in the large box")
    ap.add_argument("--chunk", type=int, default=4096, help="centre atoms per pass in the chunked rows")
    ap.add_argument("--chunk-all", action="store_true", help="chunk every large-box row (small memory)")
    ap.add_argument("--repeat", type=int, default=None)
    ap.add_argument("--model", default=None, help="a conlearn model.pt to time (default: untrained example)")
    a = ap.parse_args(argv)
    if not DATA.is_dir():
        print(f"water data not found at {DATA}")
        return 1
    import torch

    torch.set_num_threads(a.threads)
    a.budget = a.budget or (30.0 if a.quick else 600.0)
    repeat = a.repeat or (10 if a.quick else 30)
    if a.device.startswith("cuda"):
        os.environ["CUDA_VISIBLE_DEVICES"] = os.environ.get("CUDA_VISIBLE_DEVICES") or "0"
        print(f"device {torch.cuda.get_device_name(0)}, torch {torch.__version__}", flush=True)
    speed.MODEL_PATH = a.model
    work = Path(a.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    parts = a.parts.split(",")
    results = {"device": a.device, "threads": a.threads, "quick": a.quick}
    from conlearn.atoms.dataset import load_systems
    from conlearn.atoms.deeppot.compress import min_neighbor_distance

    rmin = min_neighbor_distance(load_systems([DATA / f"data_{i}" for i in range(3)]), 6.0)
    if "profile" in parts:
        results["profile"] = profile_part(a.device, rmin, a.copies)
    if "check" in parts:
        results["check"] = fast_checks(a.device, rmin)
        print("fast path vs normal path:", "ALL OK" if all(r["ok"] for r in results["check"]) else "MISMATCH")
    if "train" in parts:
        results["train"] = train_rows(a, work)
        if not a.quick:
            print(inference_variants(work / "conlearn" / "out" / "model.pt", a.threads, results["train"].get("deepmd-kit")))
    dp_ckpt = dp_checkpoint(a, work) if ("small" in parts or "large" in parts) else None
    if "small" in parts:
        results["small"] = small_table(a.device, repeat, rmin, dp_ckpt)
        print(f"\n192-atom water, E+F per MD step, {a.device}, {a.threads} thread(s) (ms; forces to the host)")
        print(markdown(results["small"], [("variant", "variant", ""), ("normal path ms", "normal_ms", ".2f"),
                                          ("fast path ms", "fast_ms", ".2f"), ("fast, no CUDA graph ms", "fast_eager_ms", ".2f"),
                                          ("Verlet rebuild ms", "build_ms", ".2f")]))
    if "large" in parts:
        results["large"] = large_table(a.device, a.copies, max(3, repeat // 3), rmin, a.chunk, dp_ckpt,
                                       a.chunk_all)
        print(f"\n{192 * a.copies}-atom water box, E+F per step, {a.device}, {a.threads} thread(s)")
        print(markdown(results["large"], [("variant", "variant", ""), ("chunk", "chunk", ""), ("atoms", "atoms", "d"),
                                          ("Verlet build ms", "build_ms", ".1f"), ("ms/step", "ms", ".1f"),
                                          ("µs/atom/step", "us_atom", ".3f"), ("peak GiB", "peak_gib", ".2f")]))
    (work / f"results_{a.device.replace(':', '')}.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
