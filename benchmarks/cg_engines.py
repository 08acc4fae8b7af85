"""CG engines: all-atom OpenMM speed, the CG MD engine's speed, and the FM pair baseline.

    python benchmarks/cg_engines.py [--liquid spce|methanol] [--dt-fs 10] [--out DIR] [--md FILE] [--json FILE]

Measures, on this machine: all-atom steps/s and ns/day (SPC/E 64 and 236 waters, methanol
125; CPU platform, 1 thread); an MS-CG pair potential force-matched on the liquid (236 waters
or 125 methanols, COM beads; first 80 % of 200 frames, held-out residual on the rest); CG MD with it (steps/s, ps/s, cost per ps against all-atom); RDF RMSE over
[0.2, 1.0] nm, first peak, ADF peak and L1, D_CG/D_AA. The all-atom trajectory is cached
under ``runs/cg_allatom`` (keyed by its settings). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from conlearn.cg import analysis
from conlearn.cg.allatom import AllAtomSpec, run_allatom
from conlearn.cg.mapping import com_mapping
from conlearn.cg.md import cg_md
from conlearn.cg.pair import force_match_pair
from conlearn.cg.potential import PairTable

AA = {"n_steps": 10000, "equil_steps": 5000, "save_every": 50}       # 20 ps after 10 ps
CG = {"dt_fs": 10.0, "friction_per_ps": 1.0, "equil_ps": 20.0, "run_ps": 100.0, "save_ps": 0.5}


def allatom_speed(liquid: str, n: int, cutoff: float, steps: int = 1000) -> dict:
    res = run_allatom(AllAtomSpec(liquid, n, cutoff_nm=cutoff), steps, steps, seed=0)
    sps = steps / res["wall_s"]
    return {"liquid": liquid, "n_molecules": n, "n_atoms": len(res["masses"]), "cutoff_nm": cutoff,
            "steps_per_cpu_s": steps / res["cpu_s"], "steps_per_s": sps,
            "ns_per_day": sps * 2e-6 * 86400}


def fm_pair(R, F, box, rcut=0.9, n_basis=60, train=0.8):
    n_train = int(train * len(R))
    table = force_match_pair(R[:n_train], F[:n_train], box, rcut=rcut, n_basis=n_basis)
    Fm = np.array([table.energy_forces(x, box)[1].numpy() for x in R[n_train:]])
    return table, analysis.fm_residual(F[n_train:], Fm), table.fit_residual


def structure(R, box):
    r, g = analysis.rdf(R, box, r_max=1.0, n_bins=100)
    th, p = analysis.adf(R, box, cutoff=0.32, n_bins=90)
    return r, g, th, p


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--liquid", choices=("spce", "methanol"), default="spce")
    ap.add_argument("--out", default="runs/cg_engines")
    ap.add_argument("--md", default=None, help="also write the table to this markdown file")
    ap.add_argument("--json", default=None)
    ap.add_argument("--dt-fs", type=float, default=CG["dt_fs"])
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    speed = [allatom_speed("spce", 64, 0.6), allatom_speed("spce", 236, 0.9),
             allatom_speed("methanol", 125, 0.9)]
    aa_speed = speed[1] if args.liquid == "spce" else speed[2]

    spec = AllAtomSpec(args.liquid, 236 if args.liquid == "spce" else 125)
    aa = run_allatom(spec, AA["n_steps"], AA["save_every"], 1, equil_steps=AA["equil_steps"],
                     cache_dir="runs/cg_allatom")
    mapping = com_mapping(aa["masses"], aa["molecule_of_atom"])
    box = aa["box"]
    R, F = mapping.map_positions(aa["positions"], box), mapping.map_forces(aa["forces"])
    t0 = time.perf_counter()
    table, res_heldout, res_train = fm_pair(R, F, box)
    fm_s = time.perf_counter() - t0
    table.save(out / f"fm_pair_{args.liquid}.npz")

    dt = args.dt_fs
    save = int(round(CG["save_ps"] / (dt * 1e-3)))
    n_eq = int(round(CG["equil_ps"] / (dt * 1e-3)))
    n_run = int(round(CG["run_ps"] / (dt * 1e-3)))
    masses = mapping.bead_masses
    eq = cg_md(table, R[-1], box, masses, n_eq, dt, 300.0, CG["friction_per_ps"], 2, save,
               save_forces=False)
    cg = cg_md(table, eq["state"]["positions"], box, masses, n_run, dt, 300.0,
               CG["friction_per_ps"], 3, save, V0=eq["state"]["velocities"], save_forces=False)
    cg_sps = cg["steps"] / cg["wall_s"]
    aa_ps_per_s = aa_speed["steps_per_s"] * 2e-3
    cg_ps_per_s = cg_sps * dt * 1e-3
    aa_ps_per_cpu_s = aa_speed["steps_per_cpu_s"] * 2e-3
    cg_ps_per_cpu_s = cg["steps"] / cg["cpu_s"] * dt * 1e-3

    r, g_aa, th, p_aa = structure(R, box)
    _, g_cg, _, p_cg = structure(cg["positions"], box)
    D_aa = analysis.diffusion(R, AA["save_every"] * 2e-3)
    D_cg = analysis.diffusion(cg["positions"], CG["save_ps"])
    m = {
        "liquid": args.liquid, "n_beads": len(masses), "fm_residual_heldout": res_heldout, "fm_residual_train": res_train, "fm_fit_s": fm_s,
        "aa_frames": len(R), "cg_ok": bool(cg["ok"]), "cg_reason": cg["reason"],
        "cg_steps_per_s": cg_sps, "cg_ps_per_s": cg_ps_per_s, "aa_ps_per_s": aa_ps_per_s,
        "cost_ratio_aa_over_cg": cg_ps_per_s / aa_ps_per_s, "cg_dt_fs": dt,
        "cg_steps_per_cpu_s": cg["steps"] / cg["cpu_s"], "aa_ps_per_cpu_s": aa_ps_per_cpu_s,
        "cg_ps_per_cpu_s": cg_ps_per_cpu_s, "cpu_cost_ratio": cg_ps_per_cpu_s / aa_ps_per_cpu_s,
        "cg_T": float(cg["temperature"].mean()), "cg_pair_builds": cg["n_builds"],
        "rdf_rmse": analysis.rdf_rmse(r, g_cg, g_aa, (0.2, 1.0)),
        "rdf_peak_aa": analysis.first_peak(r, g_aa), "rdf_peak_cg": analysis.first_peak(r, g_cg),
        "adf_peak_aa": analysis.first_peak(th, p_aa)[0], "adf_peak_cg": analysis.first_peak(th, p_cg)[0],
        "adf_l1": analysis.adf_l1(p_cg, p_aa, th),
        "D_aa": D_aa, "D_cg": D_cg, "D_ratio": D_cg / D_aa,
        "density": analysis.density(masses.sum(), box), "aa_T": float(aa["temperature"].mean()),
    }
    np.savez(out / f"structure_{args.liquid}.npz", r=r, g_aa=g_aa, g_cg=g_cg, theta=th, p_aa=p_aa, p_cg=p_cg)
    text = render(speed, m)
    print(text)
    if args.md:
        Path(args.md).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps({"allatom_speed": speed, "metrics": m}, indent=1))


def render(speed, m) -> str:
    lines = ["| all-atom (OpenMM CPU, 1 thread, PME, 2 fs) | atoms | steps/s wall | ns/day wall "
             "| steps per CPU s |", "|---|---|---|---|---|"]
    for s in speed:
        lines.append(f"| {s['liquid']} x {s['n_molecules']}, cutoff {s['cutoff_nm']} nm | "
                     f"{s['n_atoms']} | {s['steps_per_s']:.0f} | {s['ns_per_day']:.1f} | "
                     f"{s['steps_per_cpu_s']:.0f} |")
    name = "236 SPC/E" if m["liquid"] == "spce" else "125 methanol"
    lines += ["", f"| {name}, COM beads | measured | issue (SPC/E, orientation) |", "|---|---|---|",
              f"| FM pair residual, held-out (train) | {m['fm_residual_heldout']:.3f} "
              f"({m['fm_residual_train']:.3f}) | 0.43 |",
              f"| RDF RMSE [0.2, 1.0] nm | {m['rdf_rmse']:.3f} | 0.13 |",
              f"| first peak g(r): CG vs AA | {m['rdf_peak_cg'][1]:.2f} at {m['rdf_peak_cg'][0]:.3f} nm"
              f" vs {m['rdf_peak_aa'][1]:.2f} at {m['rdf_peak_aa'][0]:.3f} nm | 2.57 vs 3.08 |",
              f"| ADF peak: CG vs AA | {m['adf_peak_cg']:.0f} deg vs {m['adf_peak_aa']:.0f} deg | 58 vs 102 |",
              f"| ADF L1 | {m['adf_l1']:.3f} | 0.31 |",
              f"| D_CG / D_AA | {m['D_ratio']:.2f} (D_AA {m['D_aa']:.2e} nm^2/ps) | |",
              f"| CG MD steps/s ({m['n_beads']} beads, pair table, dt {m['cg_dt_fs']:g} fs), wall (per CPU s) "
              f"| {m['cg_steps_per_s']:.0f} ({m['cg_steps_per_cpu_s']:.0f}) | |",
              f"| CG vs AA ps per CPU s (cost ratio) | {m['cg_ps_per_cpu_s']:.2f} vs "
              f"{m['aa_ps_per_cpu_s']:.2f} ({m['cpu_cost_ratio']:.1f}x) | >= 5x target |",
              f"| CG vs AA ps per wall s (cost ratio; load-dependent) | {m['cg_ps_per_s']:.2f} vs "
              f"{m['aa_ps_per_s']:.2f} ({m['cost_ratio_aa_over_cg']:.1f}x) | |",
              f"| CG run ok / T | {m['cg_ok']} / {m['cg_T']:.1f} K | |"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
