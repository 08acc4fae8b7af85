"""CG engines: all-atom OpenMM speed, the CG MD engine's speed, the FM and IBI pair baselines.

    python benchmarks/cg_engines.py [--liquid spce|methanol] [--dt-fs 10] [--ibi 8]
                                    [--out DIR] [--md FILE] [--json FILE]

Measures, on this machine: all-atom steps/s and ns/day (SPC/E 64 and 236 waters, methanol
125; CPU platform, 1 thread); pair potentials for the liquid (236 waters or 125 methanols, COM
beads) by MS-CG force matching (first 80 % of 200 frames; residual held out on the rest) and
by IBI on the all-atom RDF; CG MD with each (20 ps + 100 ps, Langevin 1/ps): steps/s, cost
per ps against all-atom (per CPU second, which the shared machine's load does not move, and
per wall second), RDF RMSE over [0.2, 1.0] nm, first peak, ADF peak and L1 (triplets within
0.32 nm), D_CG/D_AA. The all-atom trajectory is cached under ``runs/cg_allatom``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from conlearn.cg import analysis
from conlearn.cg.allatom import AllAtomSpec, run_allatom
from conlearn.cg.ibi import IBISettings, ibi
from conlearn.cg.mapping import com_mapping
from conlearn.cg.md import cg_md
from conlearn.cg.pair import force_match_pair

AA = {"n_steps": 10000, "equil_steps": 5000, "save_every": 50}       # 20 ps after 10 ps
CG = {"friction_per_ps": 1.0, "equil_ps": 20.0, "run_ps": 100.0, "save_ps": 0.5}
N_TRAIN = 160                                                         # of 200 frames


def allatom_speed(liquid: str, n: int, cutoff: float, steps: int = 1000) -> dict:
    res = run_allatom(AllAtomSpec(liquid, n, cutoff_nm=cutoff), steps, steps, seed=0)
    sps = steps / res["wall_s"]
    return {"liquid": liquid, "n_molecules": n, "n_atoms": len(res["masses"]), "cutoff_nm": cutoff,
            "steps_per_cpu_s": steps / res["cpu_s"], "steps_per_s": sps,
            "ns_per_day": sps * 2e-6 * 86400}


def structure(R, box) -> dict:
    r, g = analysis.rdf(R, box, r_max=1.0, n_bins=100)
    th, p = analysis.adf(R, box, cutoff=0.32, n_bins=90)
    return {"r": r, "g": g, "theta": th, "p": p}


def evaluate(table, ref: dict, aa_speed: dict, dt: float, seed: int) -> dict:
    """CG MD with ``table`` from the last all-atom frame; metrics against the reference."""
    R, F, box, masses = ref["R"], ref["F"], ref["box"], ref["masses"]
    Fm = np.array([table.energy_forces(x, box)[1].numpy() for x in R[N_TRAIN:]])
    save = int(round(CG["save_ps"] / (dt * 1e-3)))
    n_eq, n_run = (int(round(CG[k] / (dt * 1e-3))) for k in ("equil_ps", "run_ps"))
    eq = cg_md(table, R[-1], box, masses, n_eq, dt, 300.0, CG["friction_per_ps"], seed, save,
               save_forces=False)
    cg = cg_md(table, eq["state"]["positions"], box, masses, n_run, dt, 300.0,
               CG["friction_per_ps"], seed + 1, save, V0=eq["state"]["velocities"], save_forces=False)
    s, a = structure(cg["positions"], box), ref["structure"]
    cg_ps_cpu = cg["steps"] / cg["cpu_s"] * dt * 1e-3
    cg_ps_wall = cg["steps"] / cg["wall_s"] * dt * 1e-3
    return {
        "fm_residual": analysis.fm_residual(F[N_TRAIN:], Fm), "ok": bool(cg["ok"]),
        "reason": cg["reason"], "T": float(cg["temperature"].mean()), "dt_fs": dt,
        "steps_per_s": cg["steps"] / cg["wall_s"], "steps_per_cpu_s": cg["steps"] / cg["cpu_s"],
        "cpu_cost_ratio": cg_ps_cpu / (aa_speed["steps_per_cpu_s"] * 2e-3),
        "wall_cost_ratio": cg_ps_wall / (aa_speed["steps_per_s"] * 2e-3),
        "rdf_rmse": analysis.rdf_rmse(s["r"], s["g"], a["g"], (0.2, 1.0)),
        "rdf_peak": analysis.first_peak(s["r"], s["g"]),
        "adf_peak": analysis.first_peak(s["theta"], s["p"])[0],
        "adf_l1": analysis.adf_l1(s["p"], a["p"], s["theta"]),
        "D_ratio": analysis.diffusion(cg["positions"], CG["save_ps"]) / ref["D"],
    }


def reference(liquid: str) -> dict:
    spec = AllAtomSpec(liquid, 236 if liquid == "spce" else 125)
    aa = run_allatom(spec, AA["n_steps"], AA["save_every"], 1, equil_steps=AA["equil_steps"],
                     cache_dir="runs/cg_allatom")
    mapping = com_mapping(aa["masses"], aa["molecule_of_atom"])
    box = aa["box"]
    R, F = mapping.map_positions(aa["positions"], box), mapping.map_forces(aa["forces"])
    return {"R": R, "F": F, "box": box, "masses": mapping.bead_masses, "structure": structure(R, box),
            "D": analysis.diffusion(R, AA["save_every"] * 2e-3), "T": float(aa["temperature"].mean()),
            "density": analysis.density(mapping.bead_masses.sum(), box)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--liquid", choices=("spce", "methanol"), default="spce")
    ap.add_argument("--dt-fs", type=float, default=10.0)
    ap.add_argument("--ibi", type=int, default=8, help="IBI iterations (0: no IBI)")
    ap.add_argument("--out", default="runs/cg_engines")
    ap.add_argument("--md", default=None, help="also write the table to this markdown file")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    speed = [allatom_speed("spce", 64, 0.6), allatom_speed("spce", 236, 0.9),
             allatom_speed("methanol", 125, 0.9)]
    aa_speed = speed[1] if args.liquid == "spce" else speed[2]
    ref = reference(args.liquid)
    R, F, box = ref["R"], ref["F"], ref["box"]

    t0 = time.perf_counter()
    fm = force_match_pair(R[:N_TRAIN], F[:N_TRAIN], box, rcut=0.9, n_basis=60)
    models = {"FM pair": (fm, time.perf_counter() - t0)}
    if args.ibi:
        t0 = time.perf_counter()
        settings = IBISettings(n_steps=3000, equil_steps=500, save_every=20, dt_fs=args.dt_fs)
        a = ref["structure"]
        table, hist = ibi(a["r"], a["g"], R[N_TRAIN - 1], box, ref["masses"], 300.0, rcut=0.9,
                          n_iter=args.ibi, settings=settings, seed=5)
        models["IBI"] = (table, time.perf_counter() - t0)
    metrics = {}
    for k, (name, (table, fit_s)) in enumerate(models.items()):
        table.save(out / f"{name.split()[0].lower()}_{args.liquid}.npz")
        metrics[name] = {**evaluate(table, ref, aa_speed, args.dt_fs, 2 + 10 * k), "fit_s": fit_s}
    a = ref["structure"]
    info = {"liquid": args.liquid, "n_beads": len(ref["masses"]),
            "rdf_peak_aa": analysis.first_peak(a["r"], a["g"]),
            "adf_peak_aa": analysis.first_peak(a["theta"], a["p"])[0], "D_aa": ref["D"],
            "aa_T": ref["T"], "density": ref["density"], "fm_train_residual": fm.fit_residual}
    text = render(speed, metrics, info)
    print(text)
    if args.md:
        Path(args.md).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps({"allatom_speed": speed, "models": metrics, "info": info},
                                              indent=1))


def render(speed, metrics, info) -> str:
    lines = ["| all-atom (OpenMM CPU, 1 thread, PME, 2 fs) | atoms | steps/s wall | ns/day wall "
             "| steps per CPU s |", "|---|---|---|---|---|"]
    for s in speed:
        lines.append(f"| {s['liquid']} x {s['n_molecules']}, cutoff {s['cutoff_nm']} nm | "
                     f"{s['n_atoms']} | {s['steps_per_s']:.0f} | {s['ns_per_day']:.1f} | "
                     f"{s['steps_per_cpu_s']:.0f} |")
    names = list(metrics)
    head = f"{info['n_beads']} {info['liquid']} COM beads (AA: T {info['aa_T']:.1f} K, " \
           f"{info['density']:.3f} g/cm3)"
    lines += ["", f"| {head} | " + " | ".join(names) + " | issue, SPC/E pair (orientation) |",
              "|---" * (len(names) + 2) + "|"]

    def row(label, fmt, issue=""):
        lines.append(f"| {label} | " + " | ".join(fmt(metrics[n]) for n in names) + f" | {issue} |")

    row("FM residual, held-out", lambda m: f"{m['fm_residual']:.3f}", "0.43")
    row("RDF RMSE [0.2, 1.0] nm", lambda m: f"{m['rdf_rmse']:.3f}", "0.13")
    pr, ph = info["rdf_peak_aa"]
    row(f"RDF first peak (AA {ph:.2f} at {pr:.3f} nm)",
        lambda m: f"{m['rdf_peak'][1]:.2f} at {m['rdf_peak'][0]:.3f} nm", "2.57 vs 3.08")
    row(f"ADF peak (AA {info['adf_peak_aa']:.0f} deg)", lambda m: f"{m['adf_peak']:.0f} deg", "58 vs 102")
    row("ADF L1", lambda m: f"{m['adf_l1']:.3f}", "0.31")
    row(f"D_CG / D_AA (D_AA {info['D_aa']:.2e} nm^2/ps)", lambda m: f"{m['D_ratio']:.2f}")
    row("CG MD steps/s wall (per CPU s)",
        lambda m: f"{m['steps_per_s']:.0f} ({m['steps_per_cpu_s']:.0f})")
    row("AA/CG cost per simulated ps, CPU (wall)",
        lambda m: f"{m['cpu_cost_ratio']:.1f}x ({m['wall_cost_ratio']:.1f}x)", ">= 5x target")
    row("CG 100 ps ok, T", lambda m: f"{m['ok']}, {m['T']:.1f} K")
    row("fit wall s", lambda m: f"{m['fit_s']:.0f}")
    lines.append(f"\nCG time step {metrics[names[0]]['dt_fs']:g} fs; FM training residual "
                 f"{info['fm_train_residual']:.3f}.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
