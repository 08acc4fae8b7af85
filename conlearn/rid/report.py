"""``conlearn status DIR`` and ``conlearn report DIR`` for RiD runs (read-only; safe while running).

report.html (PNGs written to DIR/report/ and embedded): labels, candidates and trust levels
per iteration; for 2-CV runs the FES map and the ε map of every iteration's ensemble (labels of
that iteration marked) and the 1-D projections A(s_j) = −kT ln ∫ exp(−βA) ds_other; the labelled
mean forces with their error bars against the final ensemble's.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np

from .engine import kT
from .model import Ensemble, FreeEnergy
from .outputs import GRID, RunRecords, grid_points, per_iteration, step_counts


def status_text(run_dir: Path) -> str:
    rr = RunRecords(run_dir)
    counts = step_counts(rr)
    lines = [f"RiD run {Path(run_dir).resolve()}"]
    for it in per_iteration(rr):
        parts = [f"iter {it['iteration']}"]
        if it.get("e0") is not None:
            parts.append(f"trust e0={it['e0']:.3g} e1={it['e1']:.3g}")
        if it.get("rmse_f") is not None:
            parts.append(f"fit rmse {it['rmse_f']:.3g} kJ/mol/rad")
        if it.get("n_explored") is not None:
            parts.append(f"frames {it['n_explored']} (untrusted {it['n_candidate']}), selected {it['n_selected']}")
        parts.append(f"labels {it['labels']} (dropped {it['dropped']})")
        lines.append(", ".join(parts))
    lines.append(f"labels {counts['labels']}, dropped {counts['labels_dropped']}, MD steps: explore "
                 f"{counts['md_steps_explore']}, label {counts['md_steps_label']}")
    for d in counts["dropped"]:
        lines.append(f"  dropped {d['key']}: {d['reason']}")
    summary = Path(run_dir) / "summary.json"
    if summary.exists():
        s = json.loads(summary.read_text())
        lines.append(f"finished: {s['iterations']} iterations, converged={s['converged']}, wall {s['wall_s']:.0f} s")
    return "\n".join(lines)


def _save(fig, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(path.read_bytes()).decode()


def _models(rr: RunRecords) -> list[tuple[str, int, FreeEnergy]]:
    """(title, labels before this iteration, ensemble) of every trained ensemble, the final one last."""
    out = []
    for key in rr.keys("train") + rr.keys("final"):
        ens = Ensemble.load(rr.load(key).model_paths[0])
        it = int(key.split("/")[0][5:])
        if ens.n_trained:
            final = "/final/" in key
            out.append(("final" if final else f"iteration {it}", it + 1 if final else it, FreeEnergy(ens)))
    return out


def _labels(rr: RunRecords) -> list[dict]:
    return [v.payload for v in map(rr.load, rr.keys("label")) if v.ok]


def fig_counts(iters: list[dict]):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    x = [i["iteration"] for i in iters]
    ax[0].bar(x, [i["labels"] for i in iters], label="labels")
    ax[0].bar(x, [i["dropped"] for i in iters], bottom=[i["labels"] for i in iters], label="dropped")
    ax[0].set(xlabel="iteration", ylabel="labels")
    ax[0].legend()
    ax[1].plot(x, [i.get("e0") for i in iters], "o-", label="e0")
    ax[1].plot(x, [i.get("e1") for i in iters], "s-", label="e1")
    ax[1].set(xlabel="iteration", ylabel="trust level (kJ/mol/rad)")
    ax[1].legend()
    return fig


def fig_maps(models, labels, temperature: float, what: str):
    """FES (what="A") or ε (what="eps") of every iteration's ensemble on the grid."""
    import matplotlib.pyplot as plt

    n = len(models)
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 3 * rows), squeeze=False)
    pts = grid_points()
    for ax, (title, it, fe) in zip(axes.flat, models):
        z = fe.A(pts) if what == "A" else fe.deviation(pts)
        z = (z - z.min() if what == "A" else z).reshape(len(GRID), len(GRID))
        levels = np.arange(0, 10 * kT(temperature) + 1e-9, 2.0) if what == "A" else 12
        cs = ax.contourf(GRID, GRID, z.T, levels=levels, cmap="viridis", extend="max")
        seen = np.array([p["s"] for p in labels if p["iteration"] < it]).reshape(-1, 2)
        ax.plot(seen[:, 0], seen[:, 1], "w.", ms=2)
        ax.set_title(f"{title} ({len(seen)} labels)", fontsize=9)
        fig.colorbar(cs, ax=ax, shrink=0.8)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    return fig


def fig_projections(models, temperature: float, cv_names):
    import matplotlib.pyplot as plt

    beta = 1.0 / kT(temperature)
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    for title, _, fe in models:
        A = fe.A(grid_points()).reshape(len(GRID), len(GRID))
        for j, axis in enumerate((1, 0)):
            m = -np.log(np.exp(-beta * (A - A.min())).sum(axis=axis)) / beta
            ax[j].plot(GRID, m - m.min(), label=title)
    for j, name in enumerate(cv_names[:2]):
        ax[j].set(xlabel=f"{name} (rad)", ylabel=f"A({name}) (kJ/mol)")
    ax[1].legend(fontsize=7)
    return fig


def fig_labels(labels, final: FreeEnergy | None, cv_names):
    import matplotlib.pyplot as plt

    s = np.array([p["s"] for p in labels])
    f = np.array([p["mean_force"] for p in labels])
    e = np.array([p["error"] for p in labels])
    d = f.shape[1]
    fig, axes = plt.subplots(1, d, figsize=(3.4 * d, 3.2), squeeze=False)
    pred = final.mean_force(s) if final is not None else None
    for j, ax in enumerate(axes[0]):
        x = pred[:, j] if pred is not None else s[:, j]
        ax.errorbar(x, f[:, j], yerr=e[:, j], fmt=".", ms=3, elinewidth=0.8)
        if pred is not None:
            lim = [min(x.min(), f[:, j].min()), max(x.max(), f[:, j].max())]
            ax.plot(lim, lim, "k--", lw=0.7)
        ax.set(xlabel=f"model -dA/d{cv_names[j]}" if pred is not None else cv_names[j],
               ylabel=f"label -dA/d{cv_names[j]} (kJ/mol/rad)")
    return fig


def write_report(run_dir: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    run_dir = Path(run_dir)
    rr = RunRecords(run_dir)
    cfg = json.loads((run_dir / "config.json").read_text())
    temperature = float(cfg["engine"].get("temperature", 300.0))
    iters, labels, models = per_iteration(rr), _labels(rr), _models(rr)
    final = models[-1][2] if models else None
    names = json.loads((run_dir / "summary.json").read_text())["cvs"] if (run_dir / "summary.json").exists() \
        else [f"s{j}" for j in range(len(labels[0]["s"]) if labels else 0)]
    out = run_dir / "report"
    figs = [("Labels and trust levels per iteration", _save(fig_counts(iters), out / "iterations.png"))]
    if final is not None and final.d == 2:
        figs += [("Free energy per iteration (kJ/mol, below 10 kT; dots: labels used)",
                  _save(fig_maps(models, labels, temperature, "A"), out / "fes_maps.png")),
                 ("Ensemble deviation ε per iteration (kJ/mol/rad)",
                  _save(fig_maps(models, labels, temperature, "eps"), out / "eps_maps.png")),
                 ("1-D projections", _save(fig_projections(models, temperature, names), out / "projections.png"))]
    if labels:
        figs.append(("Labelled mean forces (error bars: block standard error) vs the last ensemble",
                     _save(fig_labels(labels, final, names), out / "labels.png")))
    body = "".join(f"<h2>{t}</h2><img src='data:image/png;base64,{b}'/>" for t, b in figs)
    html = (f"<html><head><meta charset='utf-8'><title>RiD report</title></head><body>"
            f"<h1>RiD run {run_dir.resolve().name}</h1><pre>{status_text(run_dir)}</pre>{body}</body></html>")
    path = run_dir / "report.html"
    path.write_text(html)
    return path
