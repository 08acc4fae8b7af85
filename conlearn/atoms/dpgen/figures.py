"""The report's figures (matplotlib, Agg): each function builds one figure from a run's
records; ``report_figures`` returns them all as ``(title, base64 PNG)`` for ``report.html``.
"""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np


def png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def report_figures(d: dict, run: Path) -> list[tuple[str, str]]:
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
        figs.append(("Exploration outcome per iteration", png(fig)))
    stages = training_stages(run / "work")
    if stages:
        figs.append(("Learning curves over the run: every member, iteration by iteration, the final training last",
                     png(learning_figure(stages))))
    window = trust_window(run)
    temps = sorted({float(b.condition.params.get("temperature", 0.0)) for st in d["iterations"].values()
                    for b in st.get("explore", [])})
    for it, st in d["iterations"].items():
        if st.get("explore"):
            figs.append((f"Iteration {it}: ε_f histograms per exploration condition",
                         png(deviation_figure(st["explore"], window, temps))))
    summary = run / "summary.json"
    ho = json.loads(summary.read_text()).get("heldout") if summary.exists() else None
    if ho:
        fig, ax = plt.subplots(figsize=(10, 4))
        names = list(ho)
        rmse = [ho[k]["force_rmse"] for k in names]
        structures = [structure_of(k) for k in names]
        colour = structure_colours(structures)
        ax.bar(range(len(names)), rmse, color=[colour[n] for n in structures])
        ax.set_xticks(range(len(names)), names, rotation=70, fontsize=7)
        ax.set_ylabel("held-out force RMSE (eV/Å)")
        worst = int(np.argmax(rmse))
        ax.set_title(f"{len(names)} conditions; worst {names[worst]} {rmse[worst]:.4f} eV/Å", fontsize=9)
        fig.tight_layout()
        figs.append(("Held-out force errors per condition", png(fig)))
        forces = run / "heldout_forces.npz"
        if forces.exists():
            figs.append(("Held-out forces: committee vs reference, and the committee's deviation as an error estimate",
                         png(parity_figure(np.load(forces), ho))))
    return figs


CONDITION = re.compile(r"(?P<structure>.+)-T(?P<T>[^-]+)(?:-P(?P<P>[^-]+))?")


def structure_of(condition_name: str) -> str:
    """The structure part of a condition name ("fcc-Al-2x2x2-T300-P0" -> "fcc-Al-2x2x2")."""
    m = CONDITION.fullmatch(condition_name)
    return m.group("structure") if m else condition_name


def structure_colours(structures) -> dict[str, str]:
    """One matplotlib cycle colour per structure, in order of first appearance."""
    return {n: f"C{k % 10}" for k, n in enumerate(dict.fromkeys(structures))}


def trust_window(run: Path) -> tuple[float, float] | None:
    """(trust_lo, trust_hi) of the run's selection settings, or None if it has none."""
    try:
        sel = json.loads((run / "config.json").read_text()).get("selection") or {}
        return float(sel["trust_lo"]), float(sel["trust_hi"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def log_deviations(batches, window: tuple[float, float] | None, n_bins: int = 59):
    """log10 ε_f per batch (by ``id``) and common bins spanning them and the trust window.
    The range starts at the 0.5th percentile (frames at t = 0, where the committee agrees
    almost exactly, would stretch it to the 1e-4 floor); values outside it are clipped into
    the edge bins, so every frame is counted."""
    devs = {id(b): np.log10(np.maximum([c.deviation for c in b.candidates if np.isfinite(c.deviation)] or [1e-4],
                                       1e-4)) for b in batches}
    every = np.concatenate(list(devs.values()))
    lo_x, hi_x = float(np.percentile(every, 0.5)) - 0.05, float(every.max()) + 0.05
    if window:
        lo_x, hi_x = min(lo_x, np.log10(window[0]) - 0.1), max(hi_x, np.log10(window[1]) + 0.1)
    return {k: np.clip(v, lo_x, hi_x) for k, v in devs.items()}, np.linspace(lo_x, hi_x, n_bins + 1)


def deviation_figure(batches, window: tuple[float, float] | None, temps: list[float]):
    """ε_f histograms, one panel per structure; colour = temperature (the same colour for a
    temperature in every iteration), line style = pressure; the trust window shaded
    (accurate / candidate / failed) and each panel's fractions in its title."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    groups: dict[str, list] = {}
    for b in batches:
        groups.setdefault(structure_of(b.condition.name), []).append(b)
    devs, bins = log_deviations(batches, window)
    lo_x, hi_x = bins[0], bins[-1]
    cmap = plt.get_cmap("plasma")
    tcol = {t: cmap(0.85 * k / max(1, len(temps) - 1)) for k, t in enumerate(temps)}
    pressures = sorted({b.condition.params.get("pressure") for b in batches} - {None})
    styles = ["-", "--", ":", "-."]
    pstyle = {p: styles[k % len(styles)] for k, p in enumerate(pressures)}
    ncol = min(3, len(groups) + 1)
    nrow = -(-(len(groups) + 1) // ncol)  # one spare panel for the legend
    fig, axes = plt.subplots(nrow, ncol, figsize=(4 * ncol, 2.8 * nrow), sharex=True, squeeze=False)
    axes = axes.ravel()
    for ax, (name, bs) in zip(axes, groups.items()):
        x = np.concatenate([devs[id(b)] for b in bs])
        for b in bs:
            p = b.condition.params
            ax.hist(devs[id(b)], bins=bins, histtype="step", lw=1.3,
                    color=tcol.get(float(p.get("temperature", 0.0)), "k"), ls=pstyle.get(p.get("pressure"), "-"))
        title = name
        if window:
            a, h = np.log10(window[0]), np.log10(window[1])
            ax.axvspan(lo_x, a, color="tab:green", alpha=0.08)
            ax.axvspan(a, h, color="tab:orange", alpha=0.10)
            ax.axvspan(h, hi_x, color="tab:red", alpha=0.08)
            title += (f"\naccurate {100 * np.mean(x < a):.0f} %, candidate "
                      f"{100 * np.mean((x >= a) & (x < h)):.0f} %, failed {100 * np.mean(x >= h):.0f} %")
        ax.set_title(title, fontsize=9)
        ax.set_xlim(lo_x, hi_x)
    for ax in axes[len(groups):]:
        ax.axis("off")
    for ax in axes[max(0, len(groups) - ncol):len(groups)]:
        ax.tick_params(labelbottom=True)
        ax.set_xlabel("log10 ε_f (max force deviation, eV/Å)", fontsize=8)
    for ax in axes[:len(groups):ncol]:
        ax.set_ylabel("frames")
    used = sorted({float(b.condition.params.get("temperature", 0.0)) for b in batches})
    handles = [Line2D([], [], color=tcol[t], lw=2, label=f"{t:g} K") for t in used]
    handles += [Line2D([], [], color="0.3", ls=pstyle[p], label=f"{p:g} GPa") for p in pressures]
    if window:
        handles += [plt.Rectangle((0, 0), 1, 1, color=c, alpha=0.3, label=t) for c, t in (
            ("tab:green", f"accurate (< {window[0]:g})"), ("tab:orange", "candidate"),
            ("tab:red", f"failed (≥ {window[1]:g})"))]
    axes[len(groups)].legend(handles=handles, loc="center", fontsize=8, frameon=False,
                             title="temperature, pressure (slabs: none), trust window", title_fontsize=8)
    fig.tight_layout()
    return fig


def parity_figure(forces, heldout: dict):
    """Left: every held-out force component, committee mean vs reference, coloured by
    structure. Right: per condition, force RMSE vs the committee's mean ε_f (a committee that
    knows its error puts the points near the diagonal)."""
    import matplotlib.pyplot as plt

    names = [k[:-4] for k in forces.files if k.endswith("/ref")]
    structure = {n: structure_of(n) for n in names}
    colour = structure_colours(structure.values())
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.6))
    every = []
    for s_name in colour:
        ref = np.concatenate([forces[f"{n}/ref"].ravel() for n in names if structure[n] == s_name])
        pred = np.concatenate([forces[f"{n}/pred"].ravel() for n in names if structure[n] == s_name])
        every.append(pred - ref)
        rmse = float(np.sqrt(np.mean((pred - ref) ** 2)))
        a.scatter(ref, pred, s=2, alpha=0.3, color=colour[s_name], rasterized=True, label=f"{s_name} ({rmse:.3f})")
    lim = np.array(a.get_xlim())
    a.plot(lim, lim, "k-", lw=0.8)
    total = float(np.sqrt(np.mean(np.concatenate(every) ** 2)))
    a.set_xlabel("reference force component (eV/Å)"); a.set_ylabel("committee mean (eV/Å)")
    a.set_title(f"all held-out frames: force RMSE {total:.4f} eV/Å", fontsize=9)
    a.legend(fontsize=7, markerscale=4, title="structure (RMSE eV/Å)", title_fontsize=7)
    for n in names:
        e = heldout.get(n, {})
        if np.isfinite(e.get("max_devi_f", np.nan)):
            b.scatter(e["max_devi_f"], e["force_rmse"], color=colour[structure[n]], s=20)
    top = max([v["force_rmse"] for v in heldout.values()] + [v.get("max_devi_f", 0) or 0 for v in heldout.values()])
    b.plot([0, top * 1.05], [0, top * 1.05], "k:", lw=0.8)
    b.set_xlabel("mean ε_f of the committee (eV/Å)"); b.set_ylabel("held-out force RMSE (eV/Å)")
    b.set_title("one point per condition (dotted: RMSE = ε_f)", fontsize=9)
    fig.tight_layout()
    return fig


def training_stages(work: Path) -> list[tuple[str, dict[str, Path]]]:
    """The run's trainings in order: ``[("i0", {member: lcurve.out}), ..., ("final", {...})]``."""
    out = []
    for d in sorted(work.glob("iter-*/train")) + sorted(work.glob("iter-*/final")):
        curves = {c.parent.name: c for c in sorted(d.glob("*/lcurve.out"))}
        if curves:
            out.append(("final" if d.name == "final" else f"i{int(d.parent.name[5:])}", curves))
    return out


def stitch_lcurves(stages: list[tuple[str, dict[str, Path]]], member: str, key: str = "rmse_f_trn"):
    """One member's learning curve over the whole run: ``(steps, values, starts)``, each
    training's steps offset by the steps of the trainings before it (a warm start goes on
    where the previous one stopped); ``starts`` = the offset at which each stage begins."""
    from ..deeppot.lcurve import read_lcurve

    xs, ys, starts, offset = [], [], [], 0
    for _, curves in stages:
        starts.append(offset)
        if member in curves:
            lc = read_lcurve(curves[member])
            if len(lc["step"]):
                xs.append(lc["step"] + offset)
                ys.append(lc[key])
                offset += int(lc["step"][-1])
    return (np.concatenate(xs) if xs else np.array([]), np.concatenate(ys) if ys else np.array([]), starts)


def running_median(y: np.ndarray, half: int = 4) -> np.ndarray:
    return np.array([np.nanmedian(y[max(0, i - half):i + half + 1]) for i in range(len(y))])


def learning_figure(stages):
    """Force and energy RMSE over the run, one colour per member: the noisy per-batch values
    faint, their running median (9 points) as the line; dotted lines where a training starts."""
    import matplotlib.pyplot as plt

    members = sorted({m for _, curves in stages for m in curves})
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    for ax, key, unit in ((axes[0], "rmse_f_trn", "force RMSE (eV/Å)"), (axes[1], "rmse_e_trn", "energy RMSE (eV/atom)")):
        for k, m in enumerate(members):
            x, y, starts = stitch_lcurves(stages, m, key)
            ok = np.isfinite(y) & (y > 0)
            if not ok.any():
                continue
            ax.plot(x[ok], y[ok], ".", color=f"C{k}", alpha=0.2, ms=3)
            ax.plot(x[ok], running_median(y[ok]), "-", color=f"C{k}", lw=1.5, label=f"member {m}")
        for (name, _), x0 in zip(stages, starts):
            ax.axvline(x0, color="0.6", ls=":", lw=0.8)
            ax.text(x0, 1.0, f" {name}", transform=ax.get_xaxis_transform(), fontsize=7, va="bottom", color="0.3")
        ax.set_yscale("log"); ax.set_xlabel("training steps of a member, whole run"); ax.set_ylabel(unit)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig
