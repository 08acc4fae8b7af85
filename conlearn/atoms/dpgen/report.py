"""``conlearn status RUN`` and ``conlearn report RUN``: read the manifest (read-only, safe
while the run goes on) and summarise or plot it.

The report is one self-contained HTML file (``RUN/report.html``, PNGs embedded) with the
accurate/candidate/failed fractions and labels added per iteration, the members' learning
curves over the whole run, per iteration the ε_f histograms (a panel per structure, the
trust window shaded), and the held-out errors and parity plot when present (figures.py draws them).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

from ...core.manifest import read_records, record_value
from .figures import report_figures

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
        value = record_value(run, rec)
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


def write_report(run: Path) -> Path:
    run = Path(run)
    d = load_run(run)
    figs = report_figures(d, run)
    body = "".join(f"<h2>{t}</h2><img src='data:image/png;base64,{b}'/>" for t, b in figs)
    html = (f"<html><head><meta charset='utf-8'><title>conlearn report</title></head><body>"
            f"<h1>conlearn run {run.resolve().name}</h1><pre>{status_text(run)}</pre>{body}</body></html>")
    out = run / "report.html"
    out.write_text(html)
    return out
