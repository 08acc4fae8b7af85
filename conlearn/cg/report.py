"""``conlearn status RUN`` and ``conlearn report RUN`` for CG runs (read-only, safe while it runs).

The report (``RUN/report.html``, PNGs written next to it and embedded) shows the RDF, ADF
and MSD of the reference, the pair baseline and the learned model (and of IBI and ML-only
when benchmarks/cg_water.py has added them to the run), the committee deviation of
the explored frames per iteration with the trust window, and a table of the metrics
(held-out force residual, RDF RMSE, ADF L1 and peak, density, D_CG/D_ref, cost).
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np

from ..core.manifest import read_records, record_value

KEY = re.compile(r"iter-(\d+)/(train|explore|select|label)(?:/(\d+))?")
COLUMNS = [("fm_residual", "FM residual", "{:.3f}"), ("rdf_rmse", "RDF RMSE", "{:.3f}"),
           ("adf_l1", "ADF L1", "{:.3f}"), ("adf_peak", "ADF peak (deg)", "{:.0f}"),
           ("density", "density (g/cm3)", "{:.3f}"), ("diffusion_ratio", "D_CG/D_ref", "{:.2f}"),
           ("steps_per_s", "CG steps/s", "{:.0f}"), ("ok", "MD ok", "{}")]


def load_run(run: Path) -> dict:
    """Recorded values by kind: ``{"init": {...}, "eval": {...}, "iterations": {it: {...}}}``."""
    run = Path(run)
    if not (run / "manifest.jsonl").exists():
        raise FileNotFoundError(f"{run} has no manifest.jsonl: not a conlearn run directory")
    out = {"init": {}, "eval": {}, "iterations": {}}
    for key, rec in read_records(run / "manifest.jsonl"):
        def value(rec=rec):
            return record_value(run, rec)
        if key.startswith("init/"):
            out["init"][key[5:]] = rec.meta if key == "init/reference" else value()
        elif key.startswith("eval/"):
            out["eval"][key[5:]] = value()
        elif key.startswith("bench/"):  # IBI and ML-only of benchmarks/cg_water.py
            out["eval"][key[6:]] = value()
        elif (m := KEY.fullmatch(key)):
            it = out["iterations"].setdefault(int(m.group(1)), {"train": [], "explore": [], "label": []})
            v = value()
            if m.group(2) == "select":
                it["select"] = v
            else:
                it[m.group(2)].append(v)
    return out


def status_text(run: Path) -> str:
    d = load_run(run)
    lines = [f"run {Path(run).resolve()}"]
    if "reference" in d["init"]:
        lines.append("reference trajectory: recorded")
    if "pair" in d["init"]:
        lines.append(f"pair baseline: fit residual {d['init']['pair']['fit_residual']:.3f}")
    for it, st in sorted(d["iterations"].items()):
        parts = [f"iter {it}: trained {len(st['train'])}", f"explored {len(st['explore'])} conditions"]
        sel = st.get("select")
        if sel is not None:
            s = sel.summary()
            parts.append(f"frames {s['n_explored']} (accurate {100 * s['accurate_fraction']:.1f}%, candidate "
                         f"{s['n_candidate']}, failed {s['n_failed']}), selected {s['n_selected']}")
        if st["label"]:
            parts.append(f"labelled {sum(r.ok for r in st['label'])}/{len(st['label'])}")
        lines.append(", ".join(parts))
    for name, m in d["eval"].items():
        if name != "reference":
            lines.append(f"eval {name}: " + ", ".join(f"{k}={_fmt(m.get(k), f)}" for k, _, f in COLUMNS))
    summary = Path(run) / "summary.json"
    if summary.exists():
        s = json.loads(summary.read_text())
        lines.append(f"finished: converged={s['converged']} iterations={s['iterations']} labels={s['labels']} "
                     f"wall={s['wall_s']:.0f}s")
    return "\n".join(lines)


def _fmt(v, f: str) -> str:
    return "-" if v is None else f.format(v)


def metrics_table(models: dict) -> str:
    """Markdown table of ``{name: metrics}``."""
    head = "| model | " + " | ".join(t for _, t, _ in COLUMNS) + " |"
    rows = [head, "|" + "---|" * (len(COLUMNS) + 1)]
    for name, m in models.items():
        rows.append(f"| {name} | " + " | ".join(_fmt(m.get(k), f) for k, _, f in COLUMNS) + " |")
    return "\n".join(rows)


def _figures(d: dict, run: Path) -> list[tuple[str, Path]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs = []
    ev = d["eval"]
    if "reference" in ev:
        fig, (a, b, c) = plt.subplots(1, 3, figsize=(14, 3.6))
        ref = ev["reference"]
        a.plot(ref["r"], ref["g"], "k-", lw=2, label="reference")
        b.plot(ref["theta"], ref["p"], "k-", lw=2, label="reference")
        if "msd" in ref:
            c.plot(ref["msd_t"], ref["msd"], "k-", lw=2, label="reference")
        else:  # runs recorded before the MSD curves were kept
            c.axis("off")
        for name, m in ev.items():
            if name != "reference" and m.get("curves"):
                a.plot(m["curves"]["r"], m["curves"]["g"], label=name)
                b.plot(m["curves"]["theta"], m["curves"]["p"], label=name)
                if "msd" in m["curves"]:
                    c.plot(m["curves"]["msd_t"], m["curves"]["msd"], label=name)
        a.set(xlabel="r (nm)", ylabel="g(r)", title="RDF")
        b.set(xlabel="angle (deg)", ylabel="p", title="ADF, triplets within 0.32 nm")
        c.set(xlabel="t (ps)", ylabel="MSD (nm²)", title="mean squared displacement")
        a.legend()
        figs.append(("Structure", _save(fig, run / "report_structure.png")))
    its = sorted(d["iterations"].items())
    if its:
        fig, ax = plt.subplots(figsize=(6, 3.6))
        for it, st in its:
            devi = [c.deviation for b in st["explore"] for c in b.candidates if np.isfinite(c.deviation)]
            if devi:
                ax.hist(devi, bins=40, histtype="step", label=f"iter {it}")
        cfg = json.loads((run / "config.json").read_text())["selection"]
        ax.axvspan(cfg["trust_lo"], cfg["trust_hi"], color="0.9", zorder=-1, label="trust window")
        ax.set(xlabel="committee force deviation (kJ/mol/nm)", ylabel="frames")
        ax.legend()
        figs.append(("Committee deviation of explored frames", _save(fig, run / "report_deviation.png")))
    return figs


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def write_report(run: Path) -> Path:
    run = Path(run)
    d = load_run(run)
    models = {k: v for k, v in d["eval"].items() if k != "reference"}
    body = "".join(f"<h2>{t}</h2><img src='data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}'/>"
                   for t, p in _figures(d, run))
    table = f"<h2>Metrics</h2><pre>{metrics_table(models)}</pre>" if models else ""
    html = (f"<html><head><meta charset='utf-8'><title>conlearn CG report</title></head><body>"
            f"<h1>conlearn CG run {run.resolve().name}</h1><pre>{status_text(run)}</pre>{table}{body}</body></html>")
    out = run / "report.html"
    out.write_text(html)
    return out
