"""GPU check of the compressed DeepPot (issue 14): accuracy, forces = -dE/dx, fallback, speed.

Self-contained: needs torch (CUDA), numpy and scipy only — no ASE, vesin or pydantic (the
neighbour list is scipy's periodic cKDTree; the structure is a synthetic 192-atom water box
at 1 g/cm³, replicated 2x2x2 ... up to 128 copies for the large box). The model is the water
example's architecture (embedding 25/50/100, fitting 240x3, sel 46/92, rcut 6 Å) with
untrained weights: timing and tabulation error do not depend on training.

Prints one table: per precision and size, ms per energy+forces call (graph prebuilt on the
device, median of repeats, CUDA synchronised), µs/atom, peak memory, and the compressed
model's max |ΔF| / max |ΔE|/atom against the exact model; then an FD force check and the
out-of-range fallback check. Runs in about 1-2 minutes on an H200.

    python benchmarks/gpu_compress_check.py [--device cuda] [--copies 128] [--repeat 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import types
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
try:
    import vesin  # noqa: F401
except ImportError:  # the GPU machine has no vesin: neighbour lists come from scipy here
    sys.modules["vesin"] = types.ModuleType("vesin")

from conlearn.atoms.deeppot.compress import compress_model  # noqa: E402
from conlearn.atoms.deeppot.model import DeepPot, DeepPotSpec  # noqa: E402
from conlearn.atoms.graph import FrameGraph, collate  # noqa: E402
from conlearn.atoms.neighbors import Pairs, check_sel  # noqa: E402

SPEC = dict(type_map=["O", "H"], sel=[46, 92], rcut=6.0, rcut_smth=0.5, neuron=[25, 50, 100],
            axis_neuron=16, fitting_neuron=[240, 240, 240], seed=1)


def water_box(rng: np.random.Generator, n_side: int = 4, spacing: float = 3.1):
    """``n_side**3`` randomly oriented molecules on a cubic grid: positions [n, 3] Å, types, box Å."""
    oh, ang = 0.9572, np.deg2rad(104.52)
    mol = np.array([[0, 0, 0], [oh, 0, 0], [oh * np.cos(ang), oh * np.sin(ang), 0]])
    pos = []
    for c in np.ndindex(n_side, n_side, n_side):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        a, b, cq, d = q
        rot = np.array([[a*a+b*b-cq*cq-d*d, 2*(b*cq-a*d), 2*(b*d+a*cq)],
                        [2*(b*cq+a*d), a*a-b*b+cq*cq-d*d, 2*(cq*d-a*b)],
                        [2*(b*d-a*cq), 2*(cq*d+a*b), a*a-b*b-cq*cq+d*d]])
        pos.append(mol @ rot.T + (np.array(c) + 0.5) * spacing + rng.normal(scale=0.1, size=3))
    box = n_side * spacing
    return np.concatenate(pos) % box, np.tile([0, 1, 1], n_side ** 3), box


def replicate(pos, typ, box, reps):
    shifts = np.array(list(np.ndindex(*reps)), dtype=np.float64) * box
    return ((pos[None] + shifts[:, None]).reshape(-1, 3), np.tile(typ, len(shifts)),
            np.array(reps, dtype=np.float64) * box)


def pairs_of(pos, box, rcut):
    """Full pair list (both directions) with minimum-image vectors (needs rcut < box/2)."""
    from scipy.spatial import cKDTree

    tree = cKDTree(pos, boxsize=box)
    ij = tree.query_pairs(rcut, output_type="ndarray")
    vec = pos[ij[:, 1]] - pos[ij[:, 0]]
    vec -= box * np.round(vec / box)
    i = np.concatenate([ij[:, 0], ij[:, 1]]).astype(np.int64)
    j = np.concatenate([ij[:, 1], ij[:, 0]]).astype(np.int64)
    return Pairs(i=i, j=j, vec=np.concatenate([vec, -vec]))


def graph(pos, typ, box, dtype, device, rcut=6.0):
    p = pairs_of(pos, box, rcut)
    counts = check_sel(p, typ, SPEC["sel"], SPEC["type_map"])
    return collate([FrameGraph(types=typ, pairs=p, counts=counts, rcut=rcut)], 2, dtype=dtype, device=device)


def timed(model, g, repeat, device):
    def call():
        out = model.evaluate(g, virial=False)
        return out
    for _ in range(3):
        call()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = call()
        if device.type == "cuda":
            torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return 1e3 * statistics.median(ts), peak, out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--copies", type=int, default=128, help="copies of the 192-atom box (power of 2)")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--step", type=float, default=0.01)
    a = ap.parse_args(argv)
    dev = torch.device(a.device)
    torch.manual_seed(0)
    pos, typ, box = water_box(np.random.default_rng(0))
    p = pairs_of(pos, box, 6.0)
    rmin = float(np.linalg.norm(p.vec, axis=1).min())
    e = int(round(np.log2(a.copies)))
    reps = tuple(2 ** (e // 3 + (k < e % 3)) for k in range(3))  # 128 -> 8x4x4
    sizes = [(1, 1, 1), reps] if a.copies > 1 else [(1, 1, 1)]
    print(f"device {dev} ({torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'CPU'}), torch "
          f"{torch.__version__}; 192-atom water box {box:.2f} Å, min distance {rmin:.3f} Å; large box "
          f"{'x'.join(map(str, reps))} copies")
    rows, fails = [], []
    for precision in ("float64", "float32"):
        exact = DeepPot(DeepPotSpec(**SPEC, precision=precision))
        g0 = graph(pos, typ, box, exact.dtype, "cpu")
        exact.descriptor.set_stats(exact.descriptor.stat_sums(g0))
        exact = exact.to(dev).eval()
        t0 = time.perf_counter()
        comp = compress_model(exact, step=a.step, min_dist=rmin)
        t_build = time.perf_counter() - t0
        for rep in sizes:
            P, T, B = replicate(pos, typ, box, rep)
            g = graph(P, T, B, exact.dtype, dev)
            n = len(T)
            te, me, oe = timed(exact, g, a.repeat if n < 1000 else max(3, a.repeat // 4), dev)
            tc, mc, oc = timed(comp, g, a.repeat if n < 1000 else max(3, a.repeat // 4), dev)
            df = float((oe["forces"] - oc["forces"]).detach().abs().max())
            de = float((oe["energy"] - oc["energy"]).detach().abs().max()) / n
            rows.append((precision, n, te, tc, me, mc, df, de))
            tol_f, tol_e = (1e-3, 1e-5) if precision == "float64" else (1e-2, 1e-4)
            if not (df <= tol_f and de <= tol_e):
                fails.append(f"{precision} {n} atoms: max|dF| {df:.2e}, |dE|/atom {de:.2e}")
            del g, oe, oc
        print(f"{precision}: tables built in {t_build:.2f} s ({sum(t.n_intervals for t in comp.tables)} intervals)")
        if precision == "float64":
            fails += fd_check(comp, pos, typ, box, dev)
            fails += fallback_check(exact, pos, typ, box, dev)
    print("\n| precision | atoms | exact ms | compressed ms | speed-up | compressed µs/atom | "
          "peak GiB exact / compressed | max abs dF eV/Å | max abs dE eV/atom |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for precision, n, te, tc, me, mc, df, de in rows:
        print(f"| {precision} | {n} | {te:.2f} | {tc:.2f} | {te / tc:.2f}x | {1e3 * tc / n:.3f} | "
              f"{me:.2f} / {mc:.2f} | {df:.2e} | {de:.2e} |")
    print("\nALL CHECKS PASSED" if not fails else "\nFAILED:\n" + "\n".join(fails))
    return 0 if not fails else 1


def fd_check(comp, pos, typ, box, dev) -> list[str]:
    """Forces of the compressed float64 model = -dE/dx by central differences (4 components)."""
    g = graph(pos, typ, box, torch.float64, dev)
    f = comp.evaluate(g, virial=False)["forces"].cpu().numpy()
    rng, h, worst = np.random.default_rng(1), 1e-4, 0.0
    for _ in range(4):
        i, c = int(rng.integers(len(typ))), int(rng.integers(3))
        e = []
        for s in (1, -1):
            q = pos.copy()
            q[i, c] += s * h
            e.append(float(comp.evaluate(graph(q, typ, box, torch.float64, dev), virial=False)["energy"].sum()))
        worst = max(worst, abs(-(e[0] - e[1]) / (2 * h) - f[i, c]))
    print(f"FD forces (float64 compressed, 4 components, h=1e-4 Å): max |F + dE/dx| = {worst:.2e} eV/Å")
    return [] if worst < 1e-5 else [f"FD force check: {worst:.2e} eV/Å"]


def fallback_check(exact, pos, typ, box, dev) -> list[str]:
    """A table that stops short of the O-H bonds: one warning, exact-net values for those pairs."""
    comp = compress_model(exact, step=0.05, min_dist=2.0, extrapolate=1.0)
    g = graph(pos, typ, box, torch.float64, dev)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        oc = comp.evaluate(g, virial=False)
        comp.evaluate(g, virial=False)
    oe = exact.evaluate(g, virial=False)
    n_warn = sum("outside the tabulated range" in str(w.message) for w in caught)
    df = float((oe["forces"] - oc["forces"]).abs().max())
    print(f"fallback (table to s(2 Å)): {n_warn} warning(s), max |dF| vs exact {df:.2e} eV/Å")
    return [] if n_warn == 1 and df < 1e-9 else [f"fallback: {n_warn} warnings, max|dF| {df:.2e}"]


if __name__ == "__main__":
    sys.exit(main())
