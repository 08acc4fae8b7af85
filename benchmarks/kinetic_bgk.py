"""Benchmark of a learned moment closure against Euler and Navier-Stokes (issue 12's "Done when").

    python benchmarks/kinetic_bgk.py --model RUN_DIR [--quick] [--json out.json] [--md out.md]

Fixed test set (seeded): 20 waves and 20 Riemann problems at each Kn in {1e-3, 1e-2, 1e-1, 1, 10}
(--quick: 3 + 3), plus Sod (rho, p = 1, 1 | 0.125, 0.1) and the wave rho = 1 + 0.5 sin 2 pi x,
u = 0.3 sin(4 pi x + 0.5), T = 1 + 0.3 cos 2 pi x at every Kn. For each: relative L2 errors of
rho, u, T at t = 0.1 on 100 cells against the kinetic solver on 4x finer cells, for the ML model
(mean of its ensemble), Euler and NS; wall time of each against the kinetic solve on the same
cells; the smallest rho and T any solver produced. Runs the cases on --workers processes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conlearn.kinetic import initial as ini  # noqa: E402
from conlearn.kinetic.evaluate import evaluate_case  # noqa: E402

KNS = (1e-3, 1e-2, 1e-1, 1.0, 10.0)
SEED = 20261204
SOLVERS = ("ml", "euler", "ns")


def test_set(n_each: int) -> list[dict]:
    rng = np.random.default_rng(SEED)
    cases = []
    for kn in KNS:
        cases.append({"name": "sod", "kn": kn, "spec": ini.sod()})
        cases.append({"name": "wave", "kn": kn, "spec": ini.benchmark_wave()})
        for i in range(n_each):
            cases.append({"name": f"random-wave-{i}", "kn": kn, "spec": ini.random_wave(rng)})
            cases.append({"name": f"random-riemann-{i}", "kn": kn, "spec": ini.random_riemann(rng)})
    return cases


def one(args) -> dict:
    model, case, nx, settings = args
    if settings:
        from conlearn.kinetic import load_closure

        model = load_closure(model)
        for k, v in settings.items():
            setattr(model, k, v)
    out = evaluate_case(model, case["spec"], case["kn"], nx, 0.1)
    out.update(name=case["name"], kind=case["spec"]["kind"])
    for k in ("x", "initial", "reference", "profiles"):
        out.pop(k)
    return out


def table(results: list[dict]) -> list[str]:
    lines = ["| Kn | set | ML rho / u / T | Euler rho / u / T | NS rho / u / T | ML/Euler (u) | ML/NS (u) |",
             "|---|---|---|---|---|---|---|"]
    for kn in KNS:
        at = [r for r in results if r["kn"] == kn]
        for label, sel in (("random (mean)", [r for r in at if r["name"].startswith("random")]),
                           ("Sod", [r for r in at if r["name"] == "sod"]),
                           ("wave", [r for r in at if r["name"] == "wave"])):
            if not sel:
                continue
            m = {s: {k: float(np.mean([r["errors"][s][k] for r in sel])) for k in ("rho", "u", "T")} for s in SOLVERS}
            cells = [" / ".join(f"{100 * m[s][k]:.2f}" for k in ("rho", "u", "T")) for s in SOLVERS]
            lines.append(f"| {kn:g} | {label} | {cells[0]} | {cells[1]} | {cells[2]} | "
                         f"{m['ml']['u'] / m['euler']['u']:.2f} | {m['ml']['u'] / m['ns']['u']:.2f} |")
    return lines


def costs(results: list[dict]) -> list[str]:
    """Mean wall and CPU seconds per solve, and kinetic / solver: of the means and the median of
    the per-case ratios (kinetic and the solver timed in the same process on the same case)."""
    names = ("kinetic", "ml", "euler", "ns")
    w = {s: float(np.mean([r["wall_s"][s] for r in results])) for s in names}
    c = {s: float(np.mean([r["cpu_s"][s] for r in results])) for s in names}
    med = {s: float(np.median([r["cpu_s"]["kinetic"] / max(r["cpu_s"][s], 1e-9) for r in results])) for s in names}
    lines = ["| solver | mean wall s per solve | mean CPU s per solve | kinetic / solver (CPU means) "
             "| median per-case kinetic / solver (CPU) |", "|---|---|---|---|---|"]
    for s in names:
        lines.append(f"| {s} | {w[s]:.4f} | {c[s]:.4f} | {c['kinetic'] / c[s]:.2f} | {med[s]:.2f} |")
    return lines


def profile(model_dir: str, nx: int, top: int = 12) -> list[str]:
    """cProfile (CPU clock) of the ML solve and the kinetic solve on Sod at Kn = 0.1 (nx cells,
    t = 0.1): the functions with the most own CPU time."""
    import cProfile
    import pstats

    from conlearn.kinetic import load_closure, simulate
    from conlearn.kinetic.components import cells

    model = load_closure(model_dir)
    x = cells(nx)
    rho, u, T = ini.initial_profiles(ini.sod(), x)
    lines = []
    for name, m in (("ml", model), ("kinetic", "kinetic")):
        simulate(m, x, rho, u, T, 0.1, 0.1, "neumann")                    # warm
        prof = cProfile.Profile(time.process_time)
        c0 = time.process_time()
        prof.enable()
        out = simulate(m, x, rho, u, T, 0.1, 0.1, "neumann")
        prof.disable()
        cpu = time.process_time() - c0
        st = pstats.Stats(prof).stats
        rows = sorted(((v[2], v[1], k) for k, v in st.items()), reverse=True)[:top]
        total = sum(v[2] for v in st.values())
        lines += [f"{name}: {cpu:.4f} s CPU (profiled), {out.get('steps', '?')} steps", "",
                  "| function | calls | own s | share |", "|---|---|---|---|"]
        for tt, nc, (f, line, fn) in rows:
            lines.append(f"| {Path(f).name}:{line}({fn}) | {nc} | {tt:.4f} | {100 * tt / total:.0f} % |")
        lines.append("")
    return lines


COST_SETTINGS = (("explicit Hancock, cfl 0.45 (session 8)", {"w_implicit": False}),
                 ("implicit, cfl 0.75 / rarefied 0.9, numpy step (session 9)",
                  {"w_implicit": True, "implicit_cfl": 0.75, "rarefied_cfl": 0.9, "kernel": "numpy"}),
                 ("implicit, cfl 0.75 / rarefied 0.9, numba step (default)",
                  {"w_implicit": True, "implicit_cfl": 0.75, "rarefied_cfl": 0.9, "kernel": "numba"}),
                 ("implicit, cfl 0.9, numba step",
                  {"w_implicit": True, "implicit_cfl": 0.9, "rarefied_cfl": 0.9, "kernel": "numba"}))


def cost(model_dir: str, nx: int, repeat: int = 3) -> list[str]:
    """CPU ms per solve (best of ``repeat``, this process) and steps of the ML solve with each of
    COST_SETTINGS and of the kinetic solve, on Sod and the wave at Kn = 1e-3, 0.1, 10 (t = 0.1)."""
    from conlearn.kinetic import load_closure, simulate
    from conlearn.kinetic.components import cells

    model = load_closure(model_dir)
    x = cells(nx)
    cases = [(name, spec, kn) for name, spec in (("Sod", ini.sod()), ("wave", ini.benchmark_wave()))
             for kn in (1e-3, 0.1, 10.0)]

    def best(m, rho, u, T, kn, bc):
        t = []
        for _ in range(repeat):
            c0 = time.process_time()
            out = simulate(m, x, rho, u, T, kn, 0.1, bc)
            t.append(time.process_time() - c0)
        return 1e3 * min(t), out["steps"]

    rows = {}
    for name, spec, kn in cases:
        rho, u, T = ini.initial_profiles(spec, x)
        rows[(name, kn)] = [best("kinetic", rho, u, T, kn, spec["bc"])]
        for _, settings in COST_SETTINGS:
            for k, v in settings.items():
                setattr(model, k, v)
            rows[(name, kn)].append(best(model, rho, u, T, kn, spec["bc"]))
    head = ["case", "kinetic"] + [label for label, _ in COST_SETTINGS]
    lines = [f"CPU ms per solve, best of {repeat} ({nx} cells, t = 0.1; steps in brackets; "
             "kinetic / ML in the last row of each case):", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (name, kn), r in rows.items():
        lines.append(f"| {name}, Kn = {kn:g} | " + " | ".join(f"{ms:.1f} ({st})" for ms, st in r) + " |")
    for j, (label, _) in enumerate(COST_SETTINGS, 1):
        ratio = [r[0][0] / r[j][0] for r in rows.values()]
        lines.append(f"- {label}: kinetic / ML {min(ratio):.2f}-{max(ratio):.2f} (mean of the six {np.mean(ratio):.2f})")
    lines.append(f"- load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return lines


def speeds(model_dir: str) -> list[str]:
    """Fraction of the run's training states with complex characteristic speeds, per member and
    for the mean closure the solver uses."""
    from conlearn.kinetic import moments as mom
    from conlearn.kinetic.closure import load_members
    from conlearn.kinetic.fused import MeanClosure
    from conlearn.kinetic.hyperbolic import complex_fraction, training_states

    members, _ = load_members(model_dir)
    mu = training_states(model_dir, 2000)
    n = members[0].n
    lines = [f"Complex characteristic speeds at {len(mu)} training states of {model_dir}:", ""]
    for k, m in enumerate(members):
        f = complex_fraction(MeanClosure([m], np.float64), mom.apply(m.L["w"], mu[:, :, :n]))
        lines.append(f"- member {k}: {100 * f:.1f} %")
    f = complex_fraction(MeanClosure(members, np.float64), mom.apply(members[0].L["w"], mu[:, :, :n]))
    lines.append(f"- mean closure (the solver's): {100 * f:.1f} %")
    return lines


SETTINGS = {"w_implicit": bool, "implicit_cfl": float, "rarefied_cfl": float, "cfl": float, "w_damping": float, "wave_speed": float,
            "flux": str, "scheme": str, "kernel": str}
CHOICES = {"flux": ("hllc", "rusanov"), "scheme": ("hancock", "rk2"), "kernel": ("numba", "numpy")}


def parse_settings(items: list[str]) -> dict:
    """{key: value} of --solver KEY=VALUE items; SystemExit naming the item if it is not one of SETTINGS."""
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        if key not in SETTINGS or not value:
            raise SystemExit(f"--solver {item}: expected KEY=VALUE with KEY one of {', '.join(SETTINGS)}")
        kind = SETTINGS[key]
        if kind is bool:
            if value.lower() not in ("true", "false"):
                raise SystemExit(f"--solver {item}: {key} must be true or false")
            out[key] = value.lower() == "true"
        elif key in CHOICES and value not in CHOICES[key]:
            raise SystemExit(f"--solver {item}: {key} must be one of {', '.join(CHOICES[key])}")
        else:
            out[key] = kind(value)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a kinetic run directory or a closure directory")
    ap.add_argument("--quick", action="store_true", help="3 waves + 3 Riemann problems per Kn instead of 20 + 20")
    ap.add_argument("--nx", type=int, default=100)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--json", help="write every case's errors, costs and minima here")
    ap.add_argument("--md", help="write the tables (markdown) here")
    ap.add_argument("--profile", action="store_true", help="only profile one ML and one kinetic solve (Sod, Kn = 0.1)")
    ap.add_argument("--solver", action="append", default=[], metavar="KEY=VALUE",
                    help="override a solver setting of the model (e.g. implicit_cfl=0.9, w_implicit=false, "
                    "kernel=numpy)")
    ap.add_argument("--cost", action="store_true", help="only CPU ms per solve of the ML solve's time-stepping "
                    "settings against the kinetic solve (Sod and the wave at Kn = 1e-3, 0.1, 10)")
    ap.add_argument("--speeds", action="store_true", help="only the fraction of complex characteristic speeds "
                    "at the run's training states (--model: a run directory)")
    args = ap.parse_args(argv)
    if args.profile or args.speeds or args.cost:
        print("\n".join((profile(args.model, args.nx) if args.profile else []) + (speeds(args.model) if args.speeds else [])
                        + (cost(args.model, args.nx) if args.cost else [])))
        return 0
    cases = test_set(3 if args.quick else 20)
    t0 = time.perf_counter()
    settings = parse_settings(args.solver)
    jobs = [(str(args.model), c, args.nx, settings) for c in cases]
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers) as ex:
            results = list(ex.map(one, jobs))
    else:
        results = [one(j) for j in jobs]
    wall = time.perf_counter() - t0
    lo = {s: min(r["min_rho_T"][s] for r in results) for s in ("kinetic", "ml", "euler", "ns")}
    out = [f"# kinetic BGK benchmark: {len(cases)} cases, model {args.model}, {args.nx} cells, t = 0.1"
           + (f", solver {settings}" if settings else ""),
           "", "Relative L2 errors (%) against the kinetic solver on 4x finer cells:", "", *table(results),
           "", f"Cost ({args.nx} cells, t = 0.1):", "", *costs(results), "",
           "Smallest rho or T produced: " + ", ".join(f"{s} {v:.3g}" for s, v in lo.items()),
           f"Benchmark wall time: {wall:.0f} s on {args.workers} worker(s), OMP_NUM_THREADS="
           f"{os.environ.get('OMP_NUM_THREADS', 'unset')}, load average at the end "
           f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"]
    print("\n".join(out))
    if args.md:
        Path(args.md).write_text("\n".join(out) + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps({"cases": results, "wall_s": wall}, indent=1))
    return 0 if lo["ml"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
