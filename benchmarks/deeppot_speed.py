"""Inference speed of conlearn's DeepPot on water: the parts ``check``, ``small``, ``large``
and ``profile`` of ``benchmarks/deeppot_water.py`` (see its docstring for what each measures).

The normal path (host neighbour list and graph per call) against the fast path
(:class:`conlearn.atoms.deeppot.fast.FastEvaluator`), exact and compressed, float64 and
float32, and deepmd-kit's uncompressed model through ``deepmd_ref`` (its venv, or on the GPU
machine the wrapper venv that ``gpu_session7.sh`` makes).
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import deepmd_ref

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = ROOT.parent / "shared" / "data" / "water"
if not DATA.is_dir():  # the GPU machine sees only the working tree: a copy beside this script
    DATA = HERE / "data_gpu" / "water"
MODEL_PATH = None  # a trained conlearn model.pt to time instead of the untrained example


def example_config() -> dict:
    """The model section of the water example (deepmd-kit's se_e2_a input)."""
    return json.loads((ROOT / "examples" / "water" / "input.json").read_text())["model"]


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
        c = example_config()
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


def large_table(device: str, copies: int, repeat: int, rmin: float, chunk: int, dp_ckpt,
                chunk_all: bool = False) -> list[dict]:
    """The replicated box: per variant the Verlet build (neighbour search + packing) and one
    E+F step (ms, µs/atom/step), peak memory; chunked rows; deepmd-kit's uncompressed model."""
    import torch

    from conlearn.atoms.dataset import remap_types
    from conlearn.atoms.deeppot.fast import FastEvaluator

    pos0, _, cell, s3 = replicated(copies)
    rows = []
    plan = [("exact float64", None), ("exact float32", None), ("compressed float64", None),
            ("compressed float32", None), ("exact float64", chunk), ("compressed float32", chunk)]
    if chunk_all:  # every row chunked (a small machine); the chunked repeats are dropped
        plan = [(name, chunk) for name, _ in plan[:4]]
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
