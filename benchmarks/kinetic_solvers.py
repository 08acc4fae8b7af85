"""Kinetic (BGK DVM), Euler and Navier-Stokes solvers: cost per solve and the baselines' errors.

Cases of issue 12: Sod (rho, p = 1, 1 | 0.125, 0.1, Neumann) and the wave rho = 1 + 0.5 sin 2 pi x,
u = 0.3 sin(4 pi x + 0.5), T = 1 + 0.3 cos 2 pi x (periodic), to t = 0.1.

1. CPU seconds per solve (one thread) on 100 and 400 cells, at Kn = 1e-2.
2. Relative L2 errors of rho, u, T on 100 cells against the kinetic solution on 400 cells
   (conserved variables averaged onto 100 cells) at Kn in {1e-3, 1e-2, 1e-1, 1, 10}: Euler, NS, and the kinetic
   solver itself on 100 cells (the discretisation floor any 100-cell model meets).
3. (--check-reference) the 400-cell reference against 1600 cells with dv = 0.05, i.e. how
   exact the reference is.

    OMP_NUM_THREADS=1 python benchmarks/kinetic_solvers.py [--check-reference] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from conlearn.kinetic.initial import benchmark_wave, initial_profiles, sod  # noqa: E402
from conlearn.kinetic.simulate import simulate  # noqa: E402
from conlearn.kinetic.velocity import grid_for_state  # noqa: E402

KNS = (1e-3, 1e-2, 1e-1, 1.0, 10.0)
CASES = {"Sod": sod(), "wave": benchmark_wave()}
FIELDS = ("rho", "u", "T")


def cells(nx: int) -> np.ndarray:
    return (np.arange(nx) + 0.5) / nx


def run(model, spec, nx, kn, **options):
    x = cells(nx)
    t0 = time.process_time()
    out = simulate(model, x, *initial_profiles(spec, x), kn, 0.1, bc=spec["bc"], **options)
    out["cpu_s"] = time.process_time() - t0
    return out


def coarsen(out: dict, nx: int) -> dict:
    """rho, u, T [nx] from the cell averages of (rho, rho u, E) of a finer solution."""
    r, u, T = (out[f].reshape(nx, -1) for f in FIELDS)
    R, M, E = r.mean(1), (r * u).mean(1), (0.5 * r * u * u + 1.5 * r * T).mean(1)
    return {"rho": R, "u": M / R, "T": (E - 0.5 * M * M / R) / (1.5 * R)}


def errors(out, ref, nx) -> list[float]:
    ref = coarsen(ref, nx)
    return [float(np.linalg.norm(out[f] - ref[f]) / np.linalg.norm(ref[f])) for f in FIELDS]


def cost_table() -> list[str]:
    lines = ["| case | cells | kinetic s (nv, steps) | Euler s | NS s | kinetic / Euler |", "|---|---|---|---|---|---|"]
    for name, spec in CASES.items():
        for nx in (100, 400):
            k = min((run("kinetic", spec, nx, 1e-2) for _ in range(3)), key=lambda o: o["cpu_s"])
            e = min((run("euler", spec, nx, 1e-2) for _ in range(3)), key=lambda o: o["cpu_s"])
            n = min((run("ns", spec, nx, 1e-2) for _ in range(3)), key=lambda o: o["cpu_s"])
            lines.append(f"| {name} | {nx} | {k['cpu_s']:.3f} ({k['grid'].nv}, {k['steps']}) | {e['cpu_s']:.3f} | "
                         f"{n['cpu_s']:.3f} | {k['cpu_s'] / e['cpu_s']:.1f} |")
    return lines


def pct(errs) -> str:
    return " / ".join(f"{100 * e:.2f}" for e in errs)


def error_table() -> list[str]:
    lines = ["| case | Kn | Euler % (rho / u / T) | NS % | kinetic 100 cells % |", "|---|---|---|---|---|"]
    for name, spec in CASES.items():
        for kn in KNS:
            ref = run("kinetic", spec, 400, kn)
            row = [errors(run(m, spec, 100, kn), ref, 100) for m in ("euler", "ns", "kinetic")]
            lines.append(f"| {name} | {kn:g} | " + " | ".join(pct(r) for r in row) + " |")
    return lines


def reference_table() -> list[str]:
    lines = ["| case | Kn | 400 cells (nv) vs 1600 cells, dv = 0.05 (nv), % (rho / u / T) |", "|---|---|---|"]
    for name, spec in CASES.items():
        for kn in (1e-3, 1e-1, 10.0):
            ref = run("kinetic", spec, 400, kn)
            s = initial_profiles(spec, cells(1600))
            fine = run("kinetic", spec, 1600, kn, grid=grid_for_state(*s, dv_max=0.05))
            lines.append(f"| {name} | {kn:g} | ({ref['grid'].nv}) vs ({fine['grid'].nv}): {pct(errors(ref, fine, 400))} |")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check-reference", action="store_true", help="also refine the 400-cell reference")
    ap.add_argument("--out", type=Path, help="also write the tables to this markdown file")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    out: list[str] = []

    def emit(lines):
        out.extend(lines)
        print("\n".join(lines), flush=True)

    emit(["## Kinetic solvers (issue 12): cost and baseline errors, t = 0.1", "",
          "CPU seconds per solve, one thread (best of 3), Kn = 1e-2:", ""] + cost_table())
    emit(["", "Relative L2 errors on 100 cells against the kinetic solution on 400 cells (cell averages):", ""]
         + error_table())
    if a.check_reference:
        emit(["", "How exact the 400-cell kinetic reference is (relative L2 differences):", ""] + reference_table())
    emit(["", f"(benchmarks/kinetic_solvers.py, {time.perf_counter() - t0:.0f} s)"])
    text = "\n".join(out) + "\n"
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
