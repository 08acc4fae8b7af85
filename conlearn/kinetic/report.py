"""``conlearn status RUN`` and ``conlearn report RUN`` for kinetic runs (read-only, safe while running).

The report (``RUN/report.html``, PNGs written next to it and embedded) shows the ensemble
deviation of every explored initial condition against Kn per iteration (trust window
marked), the rho, u, T profiles kinetic vs ML vs Euler vs NS at each evaluated Kn, the
errors against Kn, and the learned moment functions phi_k, psi_k of member 0.
"""

from __future__ import annotations

import base64
import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..core.manifest import read_records, record_value

KEY = re.compile(r"iter-(\d+)/(train|explore|select|label)(?:/(\d+))?")


def _value(run: Path, rec):
    return record_value(run, rec)


def load_run(run: Path) -> dict:
    """{"init": [meta], "iterations": {it: {"train": [meta], "explore": [ExploredBatch], "select": Selection,
    "label": [meta]}}, "eval": {key: meta}}; label payloads are not read (only their metadata)."""
    run = Path(run)
    if not (run / "manifest.jsonl").exists():
        raise FileNotFoundError(f"{run} has no manifest.jsonl: not a conlearn run directory")
    iters: dict[int, dict] = defaultdict(lambda: defaultdict(list))
    init, evals = [], {}
    for key, rec in read_records(run / "manifest.jsonl"):
        if key.startswith("init/label/"):
            init.append(dict(rec.meta))
        elif key.startswith("eval/"):
            evals[key] = dict(rec.meta)
        elif (m := KEY.fullmatch(key)):
            it, stage = int(m.group(1)), m.group(2)
            if stage == "select":
                iters[it]["select"] = _value(run, rec)
            elif stage == "explore":
                iters[it]["explore"].append(_value(run, rec))
            else:
                iters[it][stage].append(dict(rec.meta))
    return {"init": init, "iterations": dict(sorted(iters.items())), "eval": evals}


def status_text(run: Path) -> str:
    run = Path(run)
    d = load_run(run)
    ok = sum(1 for m in d["init"] if m.get("ok"))
    lines = [f"run {run.resolve()}", f"initial trajectories: {ok} labelled ({len(d['init']) - ok} quarantined)"]
    for it, st in d["iterations"].items():
        parts = [f"iter {it}: trained {len(st['train'])}"]
        mses = [m.get("metrics", {}).get("closure_mse") for m in st["train"]]
        if mses and None not in mses:
            parts.append(f"closure mse {np.mean(mses):.3g}")
        devs = [c.deviation for b in st["explore"] for c in b.candidates]
        if devs:
            parts.append(f"explored {len(devs)} (deviation median {np.median(devs):.3g}, max {np.max(devs):.3g})")
        sel = st.get("select")
        if sel is not None:
            s = sel.summary()
            parts.append(f"accurate {100 * s['accurate_fraction']:.0f}%, selected {s['n_selected']}")
        if st["label"]:
            parts.append(f"labelled {sum(1 for m in st['label'] if m.get('ok', True))}")
        lines.append(", ".join(parts))
    summary = run / "summary.json"
    if summary.is_file():
        s = json.loads(summary.read_text())
        lines.append(f"done: {s['iterations']} iterations, {s['labelled_trajectories']} labelled trajectories, "
                     f"{s['wall_s']:.0f} s, model {s['model']}/")
    lines += error_table(run)
    return "\n".join(lines)


def error_table(run: Path) -> list[str]:
    path = Path(run) / "evaluation.json"
    if not path.is_file():
        return []
    ev = json.loads(path.read_text())
    out = ["relative L2 errors at t_end (rho / u / T) vs kinetic on 4x finer cells:",
           f"{'case':<10}{'Kn':>8}  {'ML':>22}  {'Euler':>22}  {'NS':>22}"]
    for name, c in ev.items():
        cols = ["/".join(f"{c['errors'][s][k]:.4f}" for k in ("rho", "u", "T")) for s in ("ml", "euler", "ns")]
        out.append(f"{name.split('-')[0]:<10}{c['kn']:>8.3g}  " + "  ".join(f"{x:>22}" for x in cols))
    return out


# -- figures -------------------------------------------------------------------------------------
def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(path.read_bytes()).decode()


def fig_deviation(d: dict, lo: float | None, path: Path):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for it, st in d["iterations"].items():
        pts = [(b.condition.params["kn"], c.deviation) for b in st["explore"] for c in b.candidates]
        if pts:
            kn, dev = np.array(pts).T
            ax.scatter(kn, np.maximum(dev, 1e-6), s=14, label=f"iter {it}")
    if lo is not None:
        ax.axhline(lo, color="k", ls="--", lw=1, label="trust_lo")
    ax.set(xscale="log", yscale="log", xlabel="Kn", ylabel="ensemble deviation")
    ax.legend(fontsize=7)
    return _save(fig, path)


def fig_profiles(case_a: dict, case_b: dict, path: Path):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(12, 6))
    for row, c in zip(axes, (case_a, case_b)):
        x = np.asarray(c["x"])
        for ax, k in zip(row, ("rho", "u", "T")):
            ax.plot(x, c["reference"][k], "k-", lw=2, label="kinetic (4x cells)")
            for s, st in (("ml", "r-"), ("euler", "b--"), ("ns", "g:")):
                ax.plot(x, c["profiles"][s][k], st, lw=1.2, label=s)
            ax.set_title(f"{k}, Kn = {c['kn']:g}")
    axes[0, 0].legend(fontsize=7)
    return _save(fig, path)


def fig_errors(ev: dict, path: Path):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(12, 6))
    for row, case in zip(axes, ("sod", "wave")):
        cs = [c for n, c in ev.items() if n.startswith(case)]
        kn = [c["kn"] for c in cs]
        for ax, k in zip(row, ("rho", "u", "T")):
            for s, st in (("ml", "ro-"), ("euler", "bs--"), ("ns", "g^:")):
                ax.plot(kn, [c["errors"][s][k] for c in cs], st, label=s)
            ax.set(xscale="log", yscale="log", title=f"{case}: {k}", xlabel="Kn", ylabel="rel. L2 error")
    axes[0, 0].legend(fontsize=7)
    return _save(fig, path)


def fig_moments(model_dir: Path, path: Path):
    import matplotlib.pyplot as plt

    from .closure import load_members

    members, _ = load_members(model_dir)
    xi = np.linspace(-4, 4, 201)
    f = members[0].moment_functions(xi)
    gauss = np.exp(-0.5 * xi * xi) / np.sqrt(2 * np.pi)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
    for k in range(len(f)):
        name = ["stress", "heat flux"][k] if k < 2 else f"learned {k - 1}"
        for ax, s in zip(axes, range(2)):
            ax.plot(xi, f[k, s] * gauss, label=name)
    axes[0].set(title="phi_k(xi) x Maxwellian (on g)", xlabel="xi = (v - u)/sqrt(T)")
    axes[1].set(title="psi_k(xi) x Maxwellian (on h/T)", xlabel="xi")
    axes[0].legend(fontsize=7)
    return _save(fig, path)


def write_report(run: Path) -> Path:
    run = Path(run)
    d = load_run(run)
    cfg = json.loads((run / "config.json").read_text()) if (run / "config.json").is_file() else {}
    figdir = run / "figures"
    figdir.mkdir(exist_ok=True)
    figs = [("ensemble deviation of the explored initial data",
             fig_deviation(d, cfg.get("selection", {}).get("trust_lo"), figdir / "deviation.png"))]
    ev_path = run / "evaluation.json"
    if ev_path.is_file():
        ev = json.loads(ev_path.read_text())
        kns = sorted({c["kn"] for c in ev.values()})
        for i, kn in enumerate(kns):
            pair = [c for n, c in ev.items() if c["kn"] == kn]
            if len(pair) == 2:
                figs.append((f"profiles at t_end, Kn = {kn:g} (top: Sod, bottom: wave)",
                             fig_profiles(pair[0], pair[1], figdir / f"profiles-{i}.png")))
        figs.append(("relative L2 error against Kn", fig_errors(ev, figdir / "errors.png")))
    if (run / "model" / "closure.json").is_file():
        figs.append(("moment functions of member 0", fig_moments(run / "model", figdir / "moments.png")))
    body = "".join(f"<h2>{t}</h2><img src='data:image/png;base64,{b}'/>" for t, b in figs)
    html = (f"<html><head><meta charset='utf-8'><title>kinetic run</title></head><body>"
            f"<h1>kinetic run {run.resolve().name}</h1><pre>{status_text(run)}</pre>{body}</body></html>")
    out = run / "report.html"
    out.write_text(html)
    return out
