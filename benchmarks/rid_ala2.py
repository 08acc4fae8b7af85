"""RiD on alanine dipeptide in vacuum against a well-tempered metadynamics reference.

    python benchmarks/rid_ala2.py [--quick] [--config examples/rid_ala2.yaml] [--json FILE]
    python benchmarks/rid_ala2.py --speed [--steps 20000]      # engine steps/s table

FES mode. (1) The reference: two independent well-tempered metadynamics runs on (phi, psi)
with ``openmm.app.Metadynamics`` (:mod:`conlearn.rid.openmm_metad`), run side by side, cached
under runs/rid_ala2_ref/ keyed by their settings; their disagreement is printed. (2) RiD through
the workflow (``conlearn run CONFIG --out runs/rid_ala2_bench/NAME``; a finished run is reused,
an interrupted one resumed). (3) The comparison on the 71 x 71 grid of fes_grid.npz: RMSE where
the reference is below 10 kT after the best constant shift, dA(C7ax - C5) and dA(C7eq - C5)
(Boltzmann sums over basin boxes), total MD steps (explore + label), labels, wall time, and the
cost per iteration (explore / label / train seconds from the manifest, per label). A run
with more than 2 CVs (examples/rid_ala2_4cv.yaml) is compared on its cost; its FES is a
function of 4 CVs and is not projected here. ``--quick`` shortens both (minutes, not the targets).

Speed mode: steps/s of plain MD (Reference and CPU platforms), the NN bias tabulated (2 CVs)
and linearised every k steps (2 and 4 CVs), restrained MD; and the error of the linearised
bias. The bias is a RiD ensemble (4 members, 64-64-64 tanh) fitted briefly to an analytic
surface, switched fully on (sigma = 1), so every evaluation pays its whole cost.

Targets of the issue (full mode): RMSE <= 1.0 kJ/mol with <= 10 M MD steps, <= 30 min on 2 cores.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from conlearn.rid.bias import EnsembleBias
from conlearn.rid.cv import CVSpec
from conlearn.rid.model import Ensemble, FitSettings
from conlearn.rid.openmm_bias import NumpyEnsembleBias
from conlearn.rid.openmm_engine import OpenMMEngine

ROOT = Path(__file__).resolve().parents[1]
PHI = CVSpec("phi", "dihedral", (4, 6, 8, 14))
PSI = CVSpec("psi", "dihedral", (6, 8, 14, 16))
D_C7 = CVSpec("d_c7", "distance", (5, 17))   # O(ACE)..H(NME), the C7 hydrogen bond (nm); speed only:
D_C5 = CVSpec("d_c5", "distance", (15, 7))   # the 4-CV example uses heavy atoms (O..N), same cost
CV2, CV4 = (PHI, PSI), (PHI, PSI, D_C7, D_C5)
KS = (1, 5, 10, 20)
KT = 0.0083144626 * 300.0                    # kJ/mol
BASINS = {                                   # (phi range, psi ranges), rad; periodic boxes
    "C5": ((-math.pi, -1.9), ((1.9, math.pi), (-math.pi, -2.9))),
    "C7eq": ((-1.9, -0.5), ((0.2, 1.9),)),
    "C7ax": ((0.6, 1.7), ((-1.6, -0.2),)),
}
REF_STEPS = {"full": 4_000_000, "quick": 1_500_000}      # per metadynamics run (8 ns / 3 ns)
QUICK = {("explore", "n_steps"): 10000, ("label", "n_steps"): 10000, ("loop", "max_iterations"): 4,
         ("select", "max_select"): 20, ("training", "n_steps"): 1000, ("training", "reuse_n_steps"): 300,
         ("training", "final_n_steps"): 1000}


# -- speed ---------------------------------------------------------------------------------------
def analytic_surface(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A smooth stand-in free energy (kJ/mol) and its mean force on [n, d] (2 or 4 CVs)."""
    p, q = s[:, 0], s[:, 1]
    force = np.zeros_like(s)
    a = 8 * np.cos(p) + 6 * np.cos(q - 0.5) + 4 * np.cos(p + q)
    force[:, 0] = 8 * np.sin(p) + 4 * np.sin(p + q)
    force[:, 1] = 6 * np.sin(q - 0.5) + 4 * np.sin(p + q)
    for j in range(2, s.shape[1]):
        a = a + 200 * (s[:, j] - 0.3) ** 2
        force[:, j] = -400 * (s[:, j] - 0.3)
    return a, force


def fitted_bias(d: int, seed: int = 0) -> EnsembleBias:
    """An ensemble fitted for 300 steps to the analytic mean forces at 300 random CV points."""
    rng = np.random.default_rng(seed)
    s = rng.uniform(-math.pi, math.pi, size=(300, d))
    if d > 2:
        s[:, 2:] = rng.uniform(0.18, 0.5, size=(300, d - 2))
    ens = Ensemble((True, True) + (False,) * (d - 2), seed=seed)
    ens.fit(s, analytic_surface(s)[1], FitSettings(n_steps=300))
    return EnsembleBias(ens, e0=1e6, e1=2e6)  # sigma = 1 everywhere: the full cost, the full bias


def rate(fn, n_steps: int, repeats: int = 3) -> float:
    """n_steps / seconds of fn(), the best of ``repeats`` (the machine is shared)."""
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n_steps / best


def speed_rows(n_steps: int) -> list[dict]:
    rows = []
    e2, e4 = OpenMMEngine(cvs=CV2), OpenMMEngine(cvs=CV4)
    x0 = e2.biased_md(None, 2000, 1000, seed=0, start=None).last     # warm: system built, 4 ps run
    b2, b4 = fitted_bias(2), fitted_bias(4)
    for platform in ("Reference", "CPU"):
        eng = OpenMMEngine(cvs=CV2, platform=platform)
        rows.append({"case": f"plain MD, {platform}", "d": 0,
                     "steps_s": rate(lambda: eng.biased_md(None, n_steps, 100, 1, x0), n_steps)})
    tab_s = 1.0 / rate(lambda: e2.biased_md(b2, 0, 100, 1, x0), 1)    # tabulation and Context only
    full_s = 1.0 / rate(lambda: e2.biased_md(b2, n_steps, 100, 1, x0), 1)
    rows.append({"case": "NN bias, 72^2 periodic spline", "d": 2, "tabulate_s": tab_s,
                 "steps_s": n_steps / max(full_s - tab_s, 1e-9)})
    for d, bias, cvs in ((2, b2, CV2), (4, b4, CV4)):
        fast = NumpyEnsembleBias(bias)
        torch_ms = rate(lambda: [bias.energy_and_grad(np.zeros((1, d)) + 0.3) for _ in range(100)], 100)
        numpy_ms = rate(lambda: [fast.energy_and_grad(np.zeros((1, d)) + 0.3) for _ in range(100)], 100)
        rows.append({"case": "one bias evaluation: torch autograd / numpy twin (evaluations/s)", "d": d,
                     "steps_s": torch_ms, "steps_s_numpy": numpy_ms})
        for k in KS:
            eng = OpenMMEngine(cvs=cvs, bias_route="linear", linear_every=k)
            n = max(n_steps // (20 // k), 1000)
            rows.append({"case": f"NN bias linearised, every {k}", "d": d, "k": k,
                         "steps_s": rate(lambda: eng.biased_md(bias, n, 100, 1, x0), n)})
    for d, eng in ((2, e2), (4, e4)):
        kappa = np.full(d, 500.0)
        center = np.array([-1.4, 1.1, 0.3, 0.25][:d])
        rows.append({"case": "restrained MD (kappa 500)", "d": d,
                     "steps_s": rate(lambda: eng.restrained_md(center, kappa, n_steps, 10, 1, x0), n_steps)})
    return rows, linearisation_error(e4, b4, x0, n_steps // 4)


def linearisation_error(engine: OpenMMEngine, bias: EnsembleBias, x0, n_steps: int) -> dict:
    """Relative RMS error of the frozen gradient along an exact (k = 1) trajectory, per k."""
    exact = OpenMMEngine(cvs=engine.cvs, bias_route="linear", linear_every=1)
    s = exact.biased_md(bias, n_steps, 1, 2, x0).cv                   # every step
    g = bias.energy_and_grad(s)[1]
    out = {}
    for k in KS:
        frozen = g[(np.arange(len(g)) // k) * k]
        out[k] = float(np.sqrt(((frozen - g) ** 2).sum(1).mean() / (g**2).sum(1).mean()))
    return {"n_steps": n_steps, "rel_rms_grad_error": out}


def table(rows: list[dict], lin: dict) -> str:
    lines = ["| case | CVs | steps/s | ns/day |", "|---|---|---|---|"]
    for r in rows:
        extra = f" (+{r['tabulate_s']:.2f} s tabulation per call)" if "tabulate_s" in r else ""
        if "steps_s_numpy" in r:
            lines.append(f"| {r['case']} | {r['d']} | {r['steps_s']:,.0f} / {r['steps_s_numpy']:,.0f} | |")
            continue
        lines.append(f"| {r['case']}{extra} | {r['d'] or '-'} | {r['steps_s']:,.0f} | "
                     f"{r['steps_s'] * 0.002 * 86400 / 1000:,.0f} |")
    lines += ["", f"linearised bias, 4 CVs: relative RMS error of the frozen dV/ds along a "
              f"{lin['n_steps']}-step exact trajectory", "", "| k | error |", "|---|---|"]
    lines += [f"| {k} | {v:.4f} |" for k, v in lin["rel_rms_grad_error"].items()]
    return "\n".join(lines)



# -- reference -----------------------------------------------------------------------------------
def _metad_task(settings, seed):
    from conlearn.rid.openmm_metad import metadynamics_fes

    return metadynamics_fes(settings, OpenMMEngine(cvs=CV2), seed)


def reference(n_steps: int, cache: Path, log=print) -> dict:
    """Two well-tempered metadynamics FES (seeds 1, 2), cached by their settings."""
    from conlearn.exec import LocalProcessExecutor
    from conlearn.rid.openmm_metad import MetadSettings

    settings = MetadSettings(n_steps=n_steps)
    eng = OpenMMEngine(cvs=CV2)
    key = {"metad": settings.key(), "seeds": [1, 2], "cvs": repr(eng.cvs),
           "engine": {k: getattr(eng, k) for k in ("system", "temperature", "timestep", "friction", "platform")}}
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    path = cache / f"metad-{digest}.npz"
    if path.is_file():
        log(f"reference: cached {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    log(f"reference: 2 x {n_steps} steps of well-tempered metadynamics, side by side ...")
    ex = LocalProcessExecutor(2)
    try:
        runs = [f.result() for f in [ex.submit(_metad_task, settings, seed) for seed in (1, 2)]]
    finally:
        ex.close()
    out = {"axis": runs[0]["axis"], "A1": runs[0]["A"], "A2": runs[1]["A"],
           "snap1": runs[0]["snapshots"], "snap2": runs[1]["snapshots"], "snap_steps": runs[0]["snapshot_steps"],
           "wall_s": np.array([r["wall_s"] for r in runs]), "n_steps": np.array(n_steps)}
    cache.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, **out)
    path.with_suffix(".tmp").write_bytes(buf.getvalue())
    path.with_suffix(".tmp").replace(path)
    path.with_suffix(".json").write_text(json.dumps(key, indent=1))
    return out


# -- comparison ----------------------------------------------------------------------------------
def shifted_rmse(a: np.ndarray, ref: np.ndarray, mask: np.ndarray | None = None) -> float:
    """RMS of a - ref - c over ``mask`` (default: where ref < 10 kT), c the best constant (kJ/mol)."""
    mask = ref - ref.min() < 10 * KT if mask is None else mask
    diff = a[mask] - ref[mask]
    return float(np.sqrt(np.mean((diff - diff.mean()) ** 2)))


def basin_free_energies(a: np.ndarray, axis: np.ndarray) -> dict[str, float]:
    """-kT ln sum exp(-A/kT) over each basin box of the (phi, psi) grid (kJ/mol)."""
    phi, psi = np.meshgrid(axis, axis, indexing="ij")
    out = {}
    for name, ((p0, p1), psi_boxes) in BASINS.items():
        inside = (phi >= p0) & (phi < p1) & np.any([(psi >= q0) & (psi < q1) for q0, q1 in psi_boxes], axis=0)
        w = np.exp(-(a[inside] - a.min()) / KT)
        out[name] = float(-KT * np.log(w.sum()) + a.min())
    return out


def _mean_fes(a1: np.ndarray, a2: np.ndarray) -> np.ndarray:
    mean = 0.5 * (a1 + a2)
    return mean - mean.min()


def reference_summary(ref: dict) -> dict:
    """The reference FES (mean of the two runs), their disagreement (also along the runs), basins."""
    a1, a2 = ref["A1"], ref["A2"]
    mean = _mean_fes(a1, a2)
    along = {int(n): shifted_rmse(s1, s2, _mean_fes(s1, s2) < 10 * KT)
             for n, s1, s2 in zip(ref["snap_steps"], ref["snap1"], ref["snap2"])}
    fe, runs = basin_free_energies(mean, ref["axis"]), [basin_free_energies(a, ref["axis"]) for a in (a1, a2)]
    return {"A": mean, "axis": ref["axis"], "disagreement": shifted_rmse(a1, a2, mean < 10 * KT), "disagreement_by_steps": along,
            "dA_C7ax_C5": fe["C7ax"] - fe["C5"], "dA_C7eq_C5": fe["C7eq"] - fe["C5"],
            "dA_C7ax_C5_runs": [f["C7ax"] - f["C5"] for f in runs],
            "n_steps": int(ref["n_steps"]) * 2, "wall_s": float(np.max(ref["wall_s"]))}


# -- RiD run -------------------------------------------------------------------------------------
def quick_config(config: Path, out: Path) -> Path:
    """The config with the QUICK settings (written next to the run)."""
    data = yaml.safe_load(config.read_text())
    for (section, key), value in QUICK.items():
        data.setdefault(section, {})[key] = value
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def run_rid(config: Path, run_dir: Path, log=print) -> tuple[dict, float]:
    """``conlearn run CONFIG --out RUN_DIR`` (resumes or reuses a finished run); summary, seconds."""
    from conlearn.cli import main as cli

    t0 = time.perf_counter()
    log(f"rid: conlearn run {config.relative_to(ROOT) if config.is_relative_to(ROOT) else config} --out {run_dir}")
    if cli(["run", str(config), "--out", str(run_dir)]) != 0:
        raise SystemExit("the RiD run failed")
    return json.loads((run_dir / "summary.json").read_text()), time.perf_counter() - t0


def manifest_span_s(run_dir: Path) -> float:
    """Seconds from the run's first to its last manifest record (its wall time, also when
    the benchmark found it finished, or resumed it after a kill)."""
    times = [json.loads(line)["time"] for line in (run_dir / "manifest.jsonl").read_text().splitlines()]
    return max(times) - min(times)


def cost_per_iteration(run_dir: Path) -> list[dict]:
    """Per iteration: explore / label / train task seconds (summed over workers) and labels."""
    rows: dict[int, dict] = {}
    for line in (run_dir / "manifest.jsonl").read_text().splitlines():
        rec = json.loads(line)
        parts = rec["key"].split("/")
        if not parts[0].startswith("iter-") or len(parts) < 2 or "seconds" not in (rec.get("meta") or {}):
            continue
        row = rows.setdefault(int(parts[0][5:]), {"explore_s": 0.0, "label_s": 0.0, "train_s": 0.0, "labels": 0})
        if parts[1] in ("explore", "label", "train"):
            row[f"{parts[1]}_s"] += float(rec["meta"]["seconds"])
            row["labels"] += parts[1] == "label"
    return [{"iteration": i, **r} for i, r in sorted(rows.items())]


def steps_by_iteration(run_dir: Path) -> dict[int, int]:
    """MD steps (explore + label, reruns included) spent in each iteration, from the manifest
    (explore) and the label task directories (md.json)."""
    steps: dict[int, int] = {}
    for line in (run_dir / "manifest.jsonl").read_text().splitlines():
        rec = json.loads(line)
        parts = rec["key"].split("/")
        if len(parts) == 3 and parts[1] == "explore":
            it = int(parts[0][5:])
            steps[it] = steps.get(it, 0) + int(rec["meta"]["meta"]["n_steps"])
    for md in run_dir.glob("work/iter-*/label/*/md.json"):
        it = int(md.parts[-4][5:])
        steps[it] = steps.get(it, 0) + int(json.loads(md.read_text())["n_steps"])
    return steps


def learning_curve(run_dir: Path, ref: dict) -> list[dict]:
    """RMSE below 10 kT and dA(C7ax - C5) of the ensemble trained at the start of each iteration
    (on the labels of the iterations before it), with the MD steps spent until then."""
    from conlearn.rid.model import Ensemble, FreeEnergy
    from conlearn.rid.outputs import fes_on_grid

    steps, rows, total = steps_by_iteration(run_dir), [], 0
    for it in range(1, 1000):
        path = run_dir / "work" / f"iter-{it:03d}" / "train" / "000" / "ensemble.pt"
        if not path.is_file():
            break
        total += steps.get(it - 1, 0)
        ens = Ensemble.load(path)
        a = fes_on_grid(FreeEnergy(ens))
        fe = basin_free_energies(a, ref["axis"])
        rows.append({"iteration": it, "labels": ens.n_trained, "md_steps": total,
                     "rmse_below_10kT": shifted_rmse(a, ref["A"]), "dA_C7ax_C5": fe["C7ax"] - fe["C5"]})
    return rows


def compare(run_dir: Path, ref: dict) -> dict:
    """RiD vs reference on the grid: RMSE below 10 kT, basin free energies."""
    with np.load(run_dir / "fes_grid.npz") as z:
        a = z["A"]
        if not np.allclose(z["phi"], ref["axis"]):
            raise SystemExit("fes_grid.npz and the reference use different grids")
    fe = basin_free_energies(a, ref["axis"])
    return {"rmse_below_10kT": shifted_rmse(a, ref["A"]), "dA_C7ax_C5": fe["C7ax"] - fe["C5"],
            "dA_C7eq_C5": fe["C7eq"] - fe["C5"],
            "fraction_below_10kT": float(np.mean(ref["A"] < 10 * KT))}


def fes_mode(args) -> dict:
    config = Path(args.config).resolve()
    name = config.stem + ("-quick" if args.quick else "")
    bench = ROOT / "runs" / "rid_ala2_bench"
    run_dir = bench / name
    if args.fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    if args.quick:
        config = quick_config(config, bench / f"{name}.yaml")
    out: dict = {"config": str(config.relative_to(ROOT) if config.is_relative_to(ROOT) else config),
                 "load_average": os.getloadavg()[0]}
    if args.analyse_only:                            # a run still going or stopped: what it has so far
        steps = steps_by_iteration(run_dir)
        out["rid"] = {"md_steps_total": sum(steps.values()), "finished": (run_dir / "summary.json").is_file()}
        d = len(yaml.safe_load(config.read_text())["cvs"])
    else:
        summary, seconds = run_rid(config, run_dir)
        out["rid"] = {k: summary[k] for k in ("iterations", "labels", "labels_dropped", "md_steps_explore",
                                              "md_steps_label", "md_steps_total", "wall_s")}
        out["rid"].update(bench_wall_s=seconds, finished=True)
        d = len(summary["cvs"])
    out["rid"]["wall_s"] = manifest_span_s(run_dir)
    out["cost"] = cost_per_iteration(run_dir)
    if d == 2:
        ref = reference(REF_STEPS["quick" if args.quick else "full"], ROOT / "runs" / "rid_ala2_ref")
        rs = reference_summary(ref)
        out["reference"] = {k: v for k, v in rs.items() if k not in ("A", "axis")}
        out["curve"] = learning_curve(run_dir, rs)
        if out["rid"]["finished"]:
            out["rid"].update(compare(run_dir, rs))
    return out


def report(out: dict) -> str:
    r = out["rid"]
    lines = [f"config {out['config']}  (load average {out['load_average']:.1f} on a shared 2-core machine)"]
    if "reference" in out:
        ref = out["reference"]
        lines += [f"reference: 2 x {ref['n_steps'] // 2:,} steps of WT metadynamics, {ref['wall_s']:.0f} s; "
                  f"run-to-run RMSE below 10 kT {ref['disagreement']:.2f} kJ/mol "
                  f"(by steps: " + ", ".join(f"{k:,}: {v:.2f}" for k, v in ref["disagreement_by_steps"].items()) + ")",
                  f"reference dA(C7ax - C5) = {ref['dA_C7ax_C5']:.2f} kJ/mol (runs "
                  + ", ".join(f"{x:.2f}" for x in ref["dA_C7ax_C5_runs"]) + f"), dA(C7eq - C5) = {ref['dA_C7eq_C5']:.2f}"]
    lines += ["", "| quantity | RiD | target |", "|---|---|---|"]
    if "rmse_below_10kT" in r:
        lines += [f"| FES RMSE below 10 kT, best shift (kJ/mol) | {r['rmse_below_10kT']:.2f} | <= 1.0 |",
                  f"| dA(C7ax - C5) (kJ/mol) | {r['dA_C7ax_C5']:.2f} | {out['reference']['dA_C7ax_C5']:.2f} (reference) |",
                  f"| dA(C7eq - C5) (kJ/mol) | {r['dA_C7eq_C5']:.2f} | {out['reference']['dA_C7eq_C5']:.2f} (reference) |"]
    if "md_steps_explore" in r:
        lines += [f"| MD steps, explore + label | {r['md_steps_explore']:,} + {r['md_steps_label']:,} = "
                  f"{r['md_steps_total']:,} | <= 10,000,000 |",
                  f"| labels (dropped) | {r['labels']} ({r['labels_dropped']}) | |",
                  f"| iterations | {r['iterations']} | |"]
    else:
        lines += [f"| MD steps so far (run {'finished' if r['finished'] else 'not finished'}) | "
                  f"{r['md_steps_total']:,} | <= 10,000,000 |"]
    lines += [f"| wall time of the run, first to last record (s) | {r['wall_s']:.0f} | <= 1800 |"]
    if out.get("curve"):
        lines += ["", "| ensemble of iteration | labels | MD steps before it | RMSE below 10 kT | dA(C7ax - C5) |",
                  "|---|---|---|---|---|"]
        lines += [f"| {c['iteration']} | {c['labels']} | {c['md_steps']:,} | {c['rmse_below_10kT']:.2f} | "
                  f"{c['dA_C7ax_C5']:.2f} |" for c in out["curve"]]
    lines += ["", "| iteration | labels | explore s | label s | label s / label | train s |", "|---|---|---|---|---|---|"]
    for c in out["cost"]:
        per = c["label_s"] / c["labels"] if c["labels"] else float("nan")
        lines.append(f"| {c['iteration']} | {c['labels']} | {c['explore_s']:.1f} | {c['label_s']:.1f} | "
                     f"{per:.2f} | {c['train_s']:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "examples" / "rid_ala2.yaml"), help="RiD config (FES mode)")
    ap.add_argument("--quick", action="store_true", help="short reference and RiD run (a few minutes)")
    ap.add_argument("--fresh", action="store_true", help="delete the RiD run directory first")
    ap.add_argument("--analyse-only", action="store_true", help="report the run as it stands (no run started)")
    ap.add_argument("--speed", action="store_true", help="the engine speed table instead")
    ap.add_argument("--steps", type=int, default=20000, help="speed mode: MD steps per row")
    ap.add_argument("--json", help="write the numbers to this JSON file")
    args = ap.parse_args(argv)
    print(f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, load average {os.getloadavg()[0]:.1f} "
          f"(a shared machine: times vary with the other jobs)", flush=True)
    if args.speed:
        rows, lin = speed_rows(args.steps)
        print(table(rows, lin))
        out = {"rows": rows, "linearisation": lin}
    else:
        out = fes_mode(args)
        print(report(out))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
