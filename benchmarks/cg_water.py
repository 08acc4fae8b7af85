"""CG water (and methanol): FM pair, IBI, ML-only and Δ against the all-atom reference.

    python benchmarks/cg_water.py [--liquid spce|methanol] [--quick] [--json FILE] [--out DIR]

Runs the learning run of ``examples/cg_<liquid>.yaml`` (``cg_water.yaml`` for spce) through
the CG workflow (all-atom reference, force-matched pair, the Δ committee learned
concurrently, evaluation of pair and Δ), then two more models on the same data: IBI on
the reference RDF and an ML-only network force-matched on the learned data set. Everything
is recorded in the run directory's manifest (default ``runs/cg_<liquid>[_quick]``), so a
second call only prints. ``--quick``: 64 waters (methanol: its 125), shorter runs.

Per model: held-out FM residual |F - F_model|²/|F|², RDF RMSE over [0.2, r_max] nm, ADF
L1 and peak (bead triplets within 0.32 nm), density (fixed by the NVT box), D_CG/D_AA,
and the speed-up per simulated ps over all-atom per CPU second (and per wall second; < 1:
slower), measured back to back in short runs (best of two) so that machine load hits both.
With ``baseline.angular`` the run's baseline is pair + three-body ("FM pair + 3-body") and
the pair-only MS-CG table is fitted on the same frames for the "FM pair" row.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
QUICK = {
    "system": {"n_molecules": 64, "cutoff_nm": 0.6},
    "initial": {"equil_steps": 2000, "n_steps": 30000, "save_every": 100},
    "baseline": {"rcut": 0.6, "n_basis": 40},
    "model": {"committee": 3, "fit": {"n_steps": 600}, "reuse": {"n_steps": 300}},
    "md": {"n_steps": 1000, "save_every": 50},
    "labeling": {"n_steps": 1000, "equil_steps": 200},
    "selection": {"trust_lo": 15, "max_select": 8},
    "loop": {"max_iterations": 3},
    "evaluation": {"n_steps": 3000, "equil_steps": 500, "r_max": 0.6},  # save_every, ml_every: the example's
}


def merge(a: dict, b: dict) -> dict:
    return {**a, **{k: merge(a.get(k, {}), v) if isinstance(v, dict) else v for k, v in b.items()}}


def load(liquid: str, quick: bool):
    from conlearn.cg.config import CGConfig

    name = "cg_water.yaml" if liquid == "spce" else f"cg_{liquid}.yaml"
    data = yaml.safe_load((ROOT / "examples" / name).read_text())
    if quick:
        q = dict(QUICK)
        if liquid == "methanol":  # the openmmtools box has 125 molecules; its half box is ~1.2 nm
            q = merge(q, {"system": {"n_molecules": 125, "cutoff_nm": 0.9}, "baseline": {"rcut": 0.9},
                          "evaluation": {"r_max": 1.0}})
        data = merge(data, q)
    return CGConfig.model_validate(data)


def learned_frames(run_dir: Path, cfg) -> list[dict]:
    """Initial training frames + every label of the loop (the Δ committee's data set)."""
    from conlearn.cg.reference import split_frames
    from conlearn.core.manifest import Manifest

    with Manifest(run_dir) as man:
        train, _ = split_frames(cfg, man.load("init/reference"))
        labels = [man.load(r.key) for r in man.records("iter-") if "/label/" in r.key]
    frames = [{"R": r, "F": f, "box": train["box"]} for r, f in zip(train["R"], train["F"])]
    return frames + [lab.payload for lab in labels if lab.ok]


def ml_only(cfg, frames, out: Path):
    from conlearn.cg.model import BeadNet, BeadNetSpec, save_model
    from conlearn.cg.train import FitSettings, fit_forces, frame_arrays

    net = BeadNet(BeadNetSpec(**cfg.model.net.model_dump()))
    geo, F = frame_arrays(frames)
    net.set_stats(geo)
    net.set_scale(geo, F)
    steps = cfg.model.fit.n_steps + (cfg.loop.max_iterations - 1) * cfg.model.reuse.n_steps  # as many as Δ's member
    fit_forces(net, frames, FitSettings(**{**cfg.model.fit.model_dump(), "n_steps": steps}), seed=cfg.loop.seed)
    return save_model(net, out)


def extra_models(cfg, run_dir: Path, quick: bool) -> dict:
    """IBI and ML-only metrics, recorded under ``bench/`` in the run's manifest."""
    from conlearn.cg.evaluate import model_metrics
    from conlearn.cg.ibi import IBISettings, ibi
    from conlearn.cg.model import load_model
    from conlearn.cg.reference import split_frames
    from conlearn.cg.run import record_once
    from conlearn.core.manifest import Manifest

    frames = learned_frames(run_dir, cfg)
    ev = cfg.evaluation
    with Manifest(run_dir) as man:
        ref = man.load("init/reference")
        refm = man.load("eval/reference")
        _, held = split_frames(cfg, ref)
        md = {"masses": ref["masses"], "temperature": cfg.system.temperature, "dt_fs": ev.dt_fs,
              "friction_per_ps": ev.friction_per_ps, "n_steps": ev.n_steps, "equil_steps": ev.equil_steps,
              "save_every": ev.save_every, "ml_every": ev.ml_every}

        def do_ibi():
            settings = IBISettings(n_steps=2000 if quick else 5000, equil_steps=500 if quick else 1000, save_every=20)
            t0 = time.perf_counter()
            table, hist = ibi(refm["r"], refm["g"], held["R"][0], held["box"], ref["masses"], cfg.system.temperature,
                              rcut=min(cfg.baseline.rcut, float(refm["r"][-1])), n_iter=5 if quick else 10,
                              settings=settings, seed=cfg.loop.seed)
            m = model_metrics(table, held, refm, md, seed=11)
            return {**m, "ibi_wall_s": time.perf_counter() - t0, "ibi_history": hist}

        def do_ml():
            return model_metrics(load_model(ml_only(cfg, frames, man.workdir("bench/ml") / "model")), held, refm, md,
                                 seed=12)

        def do_pair():  # the pair-only MS-CG table when the run's baseline has a three-body term
            from conlearn.cg.pair import force_match_pair
            from conlearn.cg.reference import split_frames as split

            train, _ = split(cfg, ref)
            table = force_match_pair(train["R"], train["F"], train["box"], cfg.baseline.rcut, cfg.baseline.n_basis)
            out = man.workdir("bench/pair")
            out.mkdir(parents=True, exist_ok=True)
            table.save(out / "pair.npz")
            return model_metrics(table, held, refm, md, seed=13)

        out = {"ibi": record_once(man, "bench/ibi", do_ibi), "ml": record_once(man, "bench/ml", do_ml)}
        if cfg.baseline.angular is not None:
            out["pair"] = record_once(man, "bench/pair", do_pair)
        return out


def cost_check(cfg, run_dir: Path, rounds: int = 2) -> dict:
    """Simulated ps per wall second and per CPU second (``time.process_time``) of all-atom MD
    and of each CG model, measured back to back (``rounds`` times, interleaved, best kept) so
    that a shared machine's load hits all alike. Δ runs as in the evaluation (its ML part
    every ``evaluation.ml_every`` steps)."""
    from conlearn.cg.allatom import AllAtomSpec, run_allatom
    from conlearn.cg.baseline import load_baseline
    from conlearn.cg.md import cg_md
    from conlearn.cg.model import load_model
    from conlearn.cg.reference import split_frames
    from conlearn.core.manifest import Manifest

    with Manifest(run_dir) as man:
        ref = man.load("init/reference")
        _, held = split_frames(cfg, ref)
        base = load_baseline(man.load("init/pair")["path"])
        last = max(r.key for r in man.records("iter-") if "/train/" in r.key)
        delta = load_model(man.load(last).model_paths[0])
        ml_json = man.workdir("bench/ml") / "model" / "model.json"
        pair_npz = man.workdir("bench/pair") / "pair.npz"
    models = {"FM pair": base, "Delta": delta}
    if cfg.baseline.angular is not None:
        models["FM pair + 3-body"] = base
        models["FM pair"] = load_baseline(pair_npz)
    if ml_json.exists():
        models["ML-only"] = load_model(ml_json)
    s, ev = cfg.system, cfg.evaluation
    spec = AllAtomSpec(liquid=s.liquid, n_molecules=s.n_molecules, temperature=s.temperature, dt_fs=s.dt_fs,
                       cutoff_nm=s.cutoff_nm, platform=s.platform)
    best: dict = {}

    def keep(name, steps, dt_fs, wall, cpu):
        ps = steps * dt_fs * 1e-3
        old = best.get(name, (0.0, 0.0))
        best[name] = (max(old[0], ps / wall), max(old[1], ps / cpu))

    for _ in range(rounds):
        aa = run_allatom(spec, 1000, 1000, seed=1)
        keep("all-atom", aa["steps"], s.dt_fs, aa["wall_s"], aa["cpu_s"])
        for name, pot in models.items():
            n = 1000 if "pair" in name else 200
            split = {}
            if name == "Delta" and ev.ml_every > 1:
                n = max(n // ev.ml_every, 1) * ev.ml_every
                pot, split = delta.pair, {"slow": delta.ml, "slow_every": ev.ml_every}
            out = cg_md(pot, held["R"][0], held["box"], ref["masses"], n, ev.dt_fs, s.temperature, ev.friction_per_ps,
                        seed=1, save_every=n, save_forces=False, **split)
            keep(name, out["steps"], ev.dt_fs, out["wall_s"], out["cpu_s"])
    best["IBI"] = best["FM pair"]  # a pair table like FM pair: the same cost
    return best


def table(rows: dict, aa_ps_per_s: float) -> str:
    head = ("| model | FM residual | RDF RMSE | ADF L1 | ADF peak (deg) | density (g/cm3) | D_CG/D_AA | "
            "CG ps per CPU s (wall s) | CG speed-up vs AA per ps, CPU (wall) | MD ok |")
    out = [head, "|" + "---|" * 10]
    f = lambda v, s: "-" if v is None else s.format(v)  # noqa: E731
    for name, m in rows.items():
        cost = m.get("cost")
        speed = None if cost is None else f"{cost[1]:.3f} ({cost[0]:.3f})"
        speedup = None if cost is None else f"{cost[1] / aa_ps_per_s[1]:.2f} ({cost[0] / aa_ps_per_s[0]:.2f})"
        out.append(f"| {name} | {f(m.get('fm_residual'), '{:.3f}')} | {f(m.get('rdf_rmse'), '{:.3f}')} | "
                   f"{f(m.get('adf_l1'), '{:.3f}')} | {f(m.get('adf_peak'), '{:.0f}')} | "
                   f"{f(m.get('density'), '{:.3f}')} | "
                   f"{f(m.get('diffusion_ratio'), '{:.2f}')} | {f(speed, '{}')} | "
                   f"{f(speedup, '{}')} | {m.get('ok', '-')} |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--liquid", choices=["spce", "methanol"], default="spce")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    from conlearn.cg.run import run
    from conlearn.core.progress import ConsoleProgress
    from conlearn.exec import InProcessExecutor

    cfg = load(args.liquid, args.quick)
    run_dir = args.out or ROOT / "runs" / f"cg_{args.liquid}{'_quick' if args.quick else ''}"
    t0, c0 = time.perf_counter(), time.process_time()
    summary = run(cfg, run_dir, InProcessExecutor(), observers=[ConsoleProgress()])
    extra = extra_models(cfg, run_dir, args.quick)
    rows = {"FM pair": summary["metrics"]["pair"]}
    if "pair" in extra:
        rows = {"FM pair": extra["pair"], "FM pair + 3-body": summary["metrics"]["pair"]}
    rows.update({"IBI": extra["ibi"], "ML-only": extra["ml"], "Delta": summary["metrics"][cfg.model.kind]})
    ref = summary["reference"]
    cost = cost_check(cfg, run_dir)
    rows = {k: {**v, "cost": cost.get(k)} for k, v in rows.items()}
    ref = {**ref, "cost": cost["all-atom"]}
    print(f"{args.liquid}: {cfg.system.n_molecules} molecules, reference D={ref['diffusion']:.2e} nm^2/ps, "
          f"ADF peak {ref['adf_peak']:.0f} deg, all-atom {ref['cost'][1]:.3f} ps per CPU s ({ref['cost'][0]:.3f} per "
          f"wall s); {summary['labels']} labels in {summary['iterations']} iterations; wall "
          f"{time.perf_counter() - t0:.0f} s, CPU {time.process_time() - c0:.0f} s (this call)")
    print(table(rows, ref["cost"]))
    if args.json:
        plain = {k: {kk: vv for kk, vv in v.items() if kk not in ("curves", "ibi_history")} for k, v in rows.items()}
        args.json.write_text(json.dumps({"liquid": args.liquid, "quick": args.quick, "reference": ref,
                                         "labels": summary["labels"], "models": plain}, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
