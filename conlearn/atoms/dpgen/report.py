"""``conlearn status RUN`` and ``conlearn report RUN``: read the manifest (read-only, safe
while the run goes on) and summarise or plot it.

The report is one self-contained HTML file (``RUN/report.html``, PNGs embedded) with, per
iteration: ε_f histograms per exploration condition, accurate/candidate/failed fractions,
labels added, the learning curves of the committee, and held-out errors when present.
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from ...core.manifest import read_records

KEY = re.compile(r"iter-(\d+)/(train|final|explore|select|label)(?:/(\d+))?")


def load_run(run: Path) -> dict:
    """Per iteration: {"train": [...], "explore": [...], "select": Selection, "label": [...]}, plus init labels.

    The final training (after the last iteration) is under that iteration's ``"final"``.
    """
    run = Path(run)
    if not (run / "manifest.jsonl").exists():
        raise FileNotFoundError(f"{run} has no manifest.jsonl: not a conlearn run directory")
    iters: dict[int, dict] = defaultdict(lambda: defaultdict(list))
    init, seeded = [], []
    for key, rec in read_records(run / "manifest.jsonl"):
        value = pickle.loads(rec.data) if rec.data is not None else (
            pickle.loads((run / rec.output).read_bytes()) if rec.output else None)
        value = getattr(value, "value", value)  # TaskOutput -> its value
        if key.startswith("init/label/"):
            init.append(value)
            continue
        if key == "init/data":  # already-labelled frames of initial.data
            seeded = list(value or [])
            continue
        m = KEY.fullmatch(key)
        if not m:
            continue
        it, stage = int(m.group(1)), m.group(2)
        if stage == "select":
            iters[it]["select"] = value
        else:
            iters[it][stage].append(value)
    return {"init": init, "seeded": seeded, "iterations": dict(sorted(iters.items()))}


def status_text(run: Path) -> str:
    d = load_run(run)
    ok = sum(1 for r in d["init"] if getattr(r, "ok", False))
    seeded = f" + {len(d['seeded'])} from initial.data" if d["seeded"] else ""
    lines = [f"run {Path(run).resolve()}",
             f"initial data: {ok} labelled ({len(d['init']) - ok} quarantined){seeded}"]
    for it, st in d["iterations"].items():
        sel = st.get("select")
        parts = [f"iter {it}: trained {len(st['train'])}", f"explored {len(st['explore'])} conditions"]
        if sel is not None and not isinstance(sel, list):
            s = sel.summary()
            parts.append(f"frames {s['n_explored']} (accurate {100 * s['accurate_fraction']:.1f}%, "
                         f"candidate {s['n_candidate']}, failed {s['n_failed']}), selected {s['n_selected']}")
        labels = st.get("label", [])
        if labels:
            parts.append(f"labelled {sum(r.ok for r in labels)}/{len(labels)}")
        if st.get("final"):
            parts.append(f"final training {len(st['final'])}")
        lines.append(", ".join(parts))
    summary = Path(run) / "summary.json"
    if summary.exists():
        s = json.loads(summary.read_text())
        lines.append(f"finished: converged={s.get('converged')} explored={s.get('explored_frames')} "
                     f"labelled={s.get('labelled_frames')} wall={s.get('wall_s', 0):.0f}s")
    return "\n".join(lines)


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _figures(d: dict, run: Path) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs = []
    its = [it for it, st in d["iterations"].items() if st.get("select") is not None and not isinstance(st["select"], list)]
    if its:
        fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
        sums = [d["iterations"][it]["select"].summary() for it in its]
        n = np.array([max(1, s["n_explored"]) for s in sums])
        for k, c in (("n_accurate", "tab:green"), ("n_candidate", "tab:orange"), ("n_failed", "tab:red")):
            ax[0].plot(its, [s[k] for s in sums] / n, "o-", color=c, label=k[2:])
        ax[0].set_xlabel("iteration"); ax[0].set_ylabel("fraction of explored frames"); ax[0].legend()
        ax[1].bar(its, [sum(r.ok for r in d["iterations"][it].get("label", [])) for it in its])
        ax[1].set_xlabel("iteration"); ax[1].set_ylabel("labels added")
        fig.tight_layout()
        figs.append(("Exploration outcome per iteration", _png(fig)))
    for it, st in d["iterations"].items():
        batches = st.get("explore", [])
        if batches:
            sel = st.get("select")
            fig, ax = plt.subplots(figsize=(10, 4))
            for b in batches:
                dev = np.array([c.deviation for c in b.candidates])
                dev = dev[np.isfinite(dev)]
                if len(dev):
                    ax.hist(np.log10(np.maximum(dev, 1e-4)), bins=40, histtype="step", label=b.condition.name)
            if sel is not None and hasattr(sel, "lo"):
                for v in (sel.lo, sel.hi):
                    ax.axvline(np.log10(v), color="k", ls="--")
            ax.set_xlabel("log10 max force deviation ε_f (eV/Å)"); ax.set_ylabel("frames")
            ax.legend(fontsize=6, ncol=3)
            fig.tight_layout()
            figs.append((f"Iteration {it}: ε_f histograms per exploration condition", _png(fig)))
        for stage, title in (("train", "learning curves of the committee"),
                             ("final", "learning curves of the final training")):
            _learning_curves(figs, sorted((run / "work").glob(f"iter-{it:03d}/{stage}/*/lcurve.out")),
                             f"Iteration {it}: {title}")
    summary = run / "summary.json"
    if summary.exists() and "heldout" in json.loads(summary.read_text()):
        ho = json.loads(summary.read_text())["heldout"]
        fig, ax = plt.subplots(figsize=(10, 4))
        names = list(ho)
        ax.bar(range(len(names)), [ho[k]["force_rmse"] for k in names])
        ax.set_xticks(range(len(names)), names, rotation=70, fontsize=7)
        ax.set_ylabel("held-out force RMSE (eV/Å)")
        fig.tight_layout()
        figs.append(("Held-out force errors per condition", _png(fig)))
    return figs


def _learning_curves(figs: list, curves: list[Path], title: str) -> None:
    """One panel of force-RMSE learning curves (one line per member) appended to ``figs``."""
    if not curves:
        return
    import matplotlib.pyplot as plt

    from ..deeppot.lcurve import read_lcurve

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for c in curves:
        lc = read_lcurve(c)
        ax.plot(lc["step"], lc["rmse_f_trn"], label=c.parent.name)
    ax.set_yscale("log"); ax.set_xlabel("step"); ax.set_ylabel("force RMSE (eV/Å)"); ax.legend(fontsize=7)
    fig.tight_layout()
    figs.append((title, _png(fig)))


def write_report(run: Path) -> Path:
    run = Path(run)
    d = load_run(run)
    figs = _figures(d, run)
    body = "".join(f"<h2>{t}</h2><img src='data:image/png;base64,{b}'/>" for t, b in figs)
    html = (f"<html><head><meta charset='utf-8'><title>conlearn report</title></head><body>"
            f"<h1>conlearn run {run.resolve().name}</h1><pre>{status_text(run)}</pre>{body}</body></html>")
    out = run / "report.html"
    out.write_text(html)
    return out
