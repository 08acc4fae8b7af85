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
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = ROOT.parent / "shared" / "data" / "water"
if not DATA.is_dir():  # the GPU machine sees only the working tree: a copy beside this script
    DATA = HERE / "data_gpu" / "water"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

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


# --------------------------------------------------------------------------- inference
def base_model(precision: str, device: str):
    """The water example's architecture; ``--model`` weights when given, else statistics from
    data_0 and untrained weights (timing does not depend on the weights)."""
    from dataclasses import asdict

    import torch

    from conlearn.atoms.dataset import load_systems, remap_types
    from conlearn.atoms.deeppot.model import DeepPot, DeepPotSpec, load_model

    if MODEL_PATH:
        m = load_model(MODEL_PATH)
    else:
        c = base_input()["model"]
        d, f = c["descriptor"], c["fitting_net"]
        m = DeepPot(DeepPotSpec(type_map=c["type_map"], sel=d["sel"], rcut=d["rcut"], rcut_smth=d["rcut_smth"],
                                neuron=d["neuron"], axis_neuron=d["axis_neuron"], fitting_neuron=f["neuron"],
                                fitting_resnet_dt=f["resnet_dt"], seed=d["seed"]))
        s0 = load_systems(DATA / "data_0")[0]
        types = remap_types(s0, m.type_map)
        g = m.graph([(s0.coords[k], s0.cells[k], s0.pbc, types) for k in range(5)])
        m.descriptor.set_stats(m.descriptor.stat_sums(g))
        with torch.no_grad():
            m.bias_atom_e.fill_(float(s0.energies.mean()) / s0.n_atoms)
    if precision != m.spec.precision:
        out = DeepPot(DeepPotSpec(**{**asdict(m.spec), "precision": precision}))
        out.load_state_dict({k: v.to(out.dtype) if v.is_floating_point() else v for k, v in m.state_dict().items()})
        m = out
    return m.to(device).eval()


def variant(name: str, device: str, rmin: float, seed: int = 0):
    """``"exact float64"``, ``"compressed float32"``, ...: the model on ``device``."""
    import torch

    from conlearn.atoms.deeppot.compress import compress_model

    kind, precision = name.split()
    m = base_model(precision, device)
    if seed:  # another committee member: same architecture, perturbed weights
        with torch.no_grad():
            g = torch.Generator().manual_seed(seed)
            for prm in m.parameters():
                prm.add_(1e-2 * torch.randn(prm.shape, generator=g, dtype=torch.float64).to(prm))
    return compress_model(m, min_dist=rmin) if kind == "compressed" else m


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def median_ms(fn, repeat: int, device: str, warm: int = 3) -> float:
    """Median ms of ``fn(k)``: wall time on CUDA (synchronised), CPU time of this process on
    the CPU (on a shared machine wall time measures the other users too)."""
    import statistics

    clock = time.perf_counter if device.startswith("cuda") else time.process_time
    for k in range(warm):
        fn(k)
    sync(device)
    ts = []
    for k in range(repeat):
        t0 = clock()
        fn(warm + k)
        sync(device)
        ts.append(clock() - t0)
    return 1e3 * statistics.median(ts)


def md_like(pos, k: int, amp: float = 0.02):
    """Positions of 'step k': a small deterministic wiggle (Å), as between MD steps."""
    import numpy as np

    return pos + amp * np.sin(0.7 * k + np.arange(pos.size).reshape(pos.shape))


def small_table(device: str, repeat: int, rmin: float, dp_ckpt) -> list[dict]:
    """192 atoms (data_3 frame 0): E+F per step, normal path (host neighbour list and graph
    every call) and fast path (device Verlet list, fixed shapes, CUDA graph on CUDA), forces
    copied to the host as an MD engine needs them; then a committee of 4; then deepmd-kit."""
    import torch

    from conlearn.atoms.dataset import load_systems, remap_types
    from conlearn.atoms.deeppot.committee import StackedCommittee
    from conlearn.atoms.deeppot.fast import FastEvaluator

    s3 = load_systems(DATA / "data_3")[0]
    pos0, cell = s3.coords[0], s3.cells[0]
    rows = []
    for name in ("exact float64", "compressed float64", "exact float32", "compressed float32"):
        m = variant(name, device, rmin)
        types = remap_types(s3, m.type_map)
        normal = median_ms(lambda k: m.evaluate(m.graph([(md_like(pos0, k), cell, s3.pbc, types)]),
                                                virial=False)["forces"].cpu(), repeat, device)
        fe = FastEvaluator(m, types, cell)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fast = median_ms(lambda k: fe.compute(md_like(pos0, k))["forces"].cpu(), repeat, device)
        pos_t = torch.as_tensor(pos0, dtype=m.dtype, device=device)
        build = median_ms(lambda k: fe._build(pos_t), repeat, device)  # a rebuild, same shapes
        row = {"variant": name, "normal_ms": normal, "fast_ms": fast, "build_ms": build,
               "builds": fe.n_builds, "captures": fe.n_captures,
               "warnings": [str(w.message)[:200] for w in caught]}
        if device.startswith("cuda"):
            fe2 = FastEvaluator(m, types, cell, cuda_graph=False)
            row["fast_eager_ms"] = median_ms(lambda k: fe2.compute(md_like(pos0, k))["forces"].cpu(), repeat, device)
        rows.append(row)
        print(json.dumps(row), flush=True)
        m = fe = None
    members = [variant("exact float64", device, rmin, seed=k) for k in range(4)]
    types = remap_types(s3, members[0].type_map)
    sc = StackedCommittee(members)
    normal = median_ms(lambda k: sc.evaluate(members[0].graph([(md_like(pos0, k), cell, s3.pbc, types)]),
                                             virial=False)["forces"].cpu(), repeat, device)
    fe = FastEvaluator(members, types, cell)
    fast = median_ms(lambda k: fe.compute(md_like(pos0, k))["forces"].cpu(), repeat, device)
    rows.append({"variant": "committee of 4, exact float64", "normal_ms": normal, "fast_ms": fast})
    print(json.dumps(rows[-1]), flush=True)
    if dp_ckpt:
        try:
            t = deepmd_ref.time_inference(dp_ckpt, DATA / "data_3", n_frames=repeat, stat="median")
            rows.append({"variant": "deepmd-kit uncompressed float64", "normal_ms": 1e3 * t})
        except Exception as err:  # noqa: BLE001 - a failed reference row is reported, not fatal
            rows.append({"variant": "deepmd-kit uncompressed float64", "error": str(err)[-300:]})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def fast_checks(device: str, rmin: float) -> list[dict]:
    """The fast path (CUDA graph on CUDA) against the normal path on ``device``: data_3 frame 0,
    the same with atoms moved 0.3 Å (a rebuild into the captured shapes), frame 5 (another
    rebuild), for exact and compressed float64 and a committee of 3: max |ΔE|/atom, |ΔF|."""
    import numpy as np

    from conlearn.atoms.dataset import load_systems, remap_types
    from conlearn.atoms.deeppot.committee import StackedCommittee
    from conlearn.atoms.deeppot.fast import FastEvaluator

    s3 = load_systems(DATA / "data_3")[0]
    rng = np.random.default_rng(0)
    frames = [s3.coords[0], s3.coords[0] + rng.normal(scale=0.3, size=s3.coords[0].shape), s3.coords[5]]
    rows = []
    for name in ("exact float64", "compressed float64", "committee float64"):
        members = [variant(name.replace("committee", "exact"), device, rmin, seed=k)
                   for k in range(3 if name.startswith("committee") else 1)]
        m = members[0]
        types = remap_types(s3, m.type_map)
        fe = FastEvaluator(members, types, s3.cells[0])
        de = df = 0.0
        for pos in frames:
            got = fe.compute(pos, virial=True)
            g = m.graph([(pos, s3.cells[0], s3.pbc, types)])
            ref = (StackedCommittee(members).evaluate(g) if len(members) > 1 else
                   {k: v.unsqueeze(0) for k, v in m.evaluate(g).items()})
            de = max(de, float((got["energy"] - ref["energy"][:, 0].detach()).abs().max()) / len(types))
            df = max(df, float((got["forces"] - ref["forces"]).abs().max()))
        rows.append({"variant": name, "max_dE_atom": de, "max_dF": df, "builds": fe.n_builds,
                     "captures": fe.n_captures, "ok": de < 1e-10 and df < 1e-10})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def profile_part(device: str, rmin: float, copies: int) -> dict:
    """What limits each case: torch.profiler over 5 steps of the 192-atom fast path without
    the CUDA graph (kernel launches, device time vs wall time) and of the large box (top ops)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from conlearn.atoms.dataset import load_systems, remap_types
    from conlearn.atoms.deeppot.fast import FastEvaluator

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    out = {}
    s3 = load_systems(DATA / "data_3")[0]
    cases = [("192 atoms, exact float64, no graph", s3.coords[0], s3.cells[0], 1, None, False)]
    if copies > 1:
        pos, _, cell, _ = replicated(copies)
        cases.append((f"{192 * copies} atoms, exact float64", pos, cell, copies, None, False))
    for name, pos, cell, reps, chunk, graph in cases:
        m = variant("exact float64", device, rmin)
        types = torch.as_tensor(remap_types(s3, m.type_map)).repeat(reps).numpy()
        fe = FastEvaluator(m, types, cell, chunk=chunk, cuda_graph=graph if device.startswith("cuda") else None)
        for k in range(2):
            fe.compute(md_like(pos, k, 0.01))["forces"].cpu()
        sync(device)
        t0 = time.perf_counter()
        with profile(activities=acts) as prof:
            for k in range(5):
                fe.compute(md_like(pos, k, 0.01))["forces"].cpu()
            sync(device)
        wall = (time.perf_counter() - t0) / 5
        ev = prof.key_averages()
        dev_attr = "device_time_total" if hasattr(ev[0], "device_time_total") else "cuda_time_total"
        self_dev = lambda e: getattr(e, "self_" + dev_attr, 0)  # noqa: E731 - µs over 5 steps
        kernels = sum(e.count for e in ev if self_dev(e) > 0 and not e.key.startswith("aten::"))
        dev_total = sum(self_dev(e) for e in ev) / 5 / 1e3  # ms per step
        on_gpu = device.startswith("cuda")
        top = sorted(ev, key=lambda e: -(self_dev(e) if on_gpu else e.self_cpu_time_total))[:8]
        out[name] = {"wall_ms_per_step": 1e3 * wall, "device_ms_per_step": dev_total, "kernels_per_step": kernels / 5,
                     "top": [(e.key[:60], self_dev(e) / 5e3, e.self_cpu_time_total / 5e3, e.count // 5)
                             for e in top]}
        print(json.dumps({name: out[name]}), flush=True)
        fe = m = None
    return out


def replicated(copies: int):
    """data_3 frame 0 replicated ``copies`` times (a power of 2: 128 -> 8x4x4): pos, types, cell."""
    import numpy as np

    from conlearn.atoms.dataset import load_systems

    s3 = load_systems(DATA / "data_3")[0]
    e = int(round(np.log2(copies)))
    reps = [2 ** (e // 3 + (k < e % 3)) for k in range(3)]
    shifts = np.array(list(np.ndindex(*reps)), dtype=np.float64) @ s3.cells[0]
    pos = (s3.coords[0][None] + shifts[:, None]).reshape(-1, 3)
    return pos, np.tile(s3.types, len(shifts)), s3.cells[0] * np.array(reps)[:, None], s3


def peak_gib(device: str) -> float:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    with open("/proc/self/status") as f:  # CPU: the process's RSS high-water mark so far
        return next(int(x.split()[1]) for x in f if x.startswith("VmHWM")) / 2**20


def large_table(device: str, copies: int, repeat: int, rmin: float, chunk: int, dp_ckpt) -> list[dict]:
    """The replicated box: per variant the Verlet build (neighbour search + packing) and one
    E+F step (ms, µs/atom/step), peak memory; chunked rows; deepmd-kit's uncompressed model."""
    import torch

    from conlearn.atoms.dataset import remap_types
    from conlearn.atoms.deeppot.fast import FastEvaluator

    pos0, _, cell, s3 = replicated(copies)
    rows = []
    plan = [("exact float64", None), ("exact float32", None), ("compressed float64", None),
            ("compressed float32", None), ("exact float64", chunk), ("compressed float32", chunk)]
    for name, ch in plan:
        m = variant(name, device, rmin)
        types = torch.as_tensor(remap_types(s3, m.type_map)).repeat(copies).numpy()
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        fe = FastEvaluator(m, types, cell, chunk=ch, cuda_graph=False)
        pos_t = torch.as_tensor(pos0, dtype=m.dtype, device=device)
        try:
            build = median_ms(lambda k: fe._build(pos_t), max(1, repeat // 2), device, warm=1)
            step = median_ms(lambda k: fe.compute(md_like(pos0, k, 0.01))["forces"].cpu(), repeat, device, warm=1)
            rows.append({"variant": name, "chunk": ch, "atoms": len(types), "build_ms": build, "ms": step,
                         "us_atom": 1e3 * step / len(types), "peak_gib": peak_gib(device)})
        except torch.cuda.OutOfMemoryError as err:
            rows.append({"variant": name, "chunk": ch, "atoms": len(types), "error": "out of memory: " + str(err)[:120]})
        print(json.dumps(rows[-1]), flush=True)
        fe = m = None
    if dp_ckpt:
        rows.append(deepmd_large(dp_ckpt, pos0, cell, s3.types, copies, repeat))
        print(json.dumps(rows[-1]), flush=True)
    return rows


_DP_LARGE = r"""
import json, sys, time, statistics
import numpy as np
from deepmd.infer import DeepPot
ckpt, npz, n = sys.argv[1], np.load(sys.argv[2]), int(sys.argv[3])
coord, box, atype = npz["coord"], npz["box"], npz["atype"].tolist()
dp = DeepPot(ckpt)
ts = []
for k in range(n + 1):
    c = coord + 0.01 * np.sin(0.7 * k + np.arange(coord.size)).reshape(coord.shape)
    t0 = time.perf_counter(); e, f, v = dp.eval(c, box, atype); ts.append(time.perf_counter() - t0)
peak = float("nan")
try:
    import torch
    if torch.cuda.is_available():
        peak = torch.cuda.max_memory_allocated() / 2**30
except Exception:
    pass
print("@@JSON " + json.dumps({"ms": 1e3 * statistics.median(ts[1:]), "first_ms": 1e3 * ts[0], "peak_gib": peak}))
"""


def deepmd_large(dp_ckpt, pos, cell, types3, copies: int, repeat: int) -> dict:
    """deepmd-kit (``DeepPot.eval``, its own neighbour list each call) on the replicated box."""
    import tempfile

    import numpy as np

    tmp = Path(tempfile.mkdtemp(prefix="conlearn-dp-large-")) / "box.npz"
    np.savez(tmp, coord=pos.reshape(1, -1), box=cell.reshape(1, 9), atype=np.tile(types3, copies))
    row = {"variant": "deepmd-kit uncompressed float64", "chunk": None, "atoms": len(pos)}
    try:
        r = deepmd_ref._run_py(deepmd_ref.DEFAULT_VENV, _DP_LARGE, [Path(dp_ckpt).resolve(), tmp, repeat], 1,
                               timeout=240)
        row.update(ms=r["ms"], us_atom=1e3 * r["ms"] / len(pos), peak_gib=r["peak_gib"], first_ms=r["first_ms"])
    except Exception as err:  # noqa: BLE001 - reported, not fatal
        row["error"] = str(err)[-300:]
    return row


def markdown(rows: list[dict], cols: list[tuple[str, str, str]]) -> str:
    out = ["| " + " | ".join(h for h, _, _ in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for _, key, fmt in cols:
            v = r.get(key)
            cells.append("" if v is None else (format(v, fmt) if fmt and isinstance(v, (int, float)) else str(v)))
        if "error" in r:
            cells[-1] = r["error"][:100]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


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
    global MODEL_PATH
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
    MODEL_PATH = a.model
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
        results["large"] = large_table(a.device, a.copies, max(3, repeat // 3), rmin, a.chunk, dp_ckpt)
        print(f"\n{192 * a.copies}-atom water box, E+F per step, {a.device}, {a.threads} thread(s)")
        print(markdown(results["large"], [("variant", "variant", ""), ("chunk", "chunk", ""), ("atoms", "atoms", "d"),
                                          ("Verlet build ms", "build_ms", ".1f"), ("ms/step", "ms", ".1f"),
                                          ("µs/atom/step", "us_atom", ".3f"), ("peak GiB", "peak_gib", ".2f")]))
    (work / f"results_{a.device.replace(':', '')}.json").write_text(json.dumps(results, indent=1))
    return 0


MODEL_PATH = None

if __name__ == "__main__":
    sys.exit(main())
