"""Plots of an on-the-fly run, read back from its files (matplotlib, Agg backend).

``uncertainty.png``: max predicted force std at the checks vs time, the threshold, the
reference calls marked; ``temperature.png``: MD temperature vs time; ``parity.png``: the
final model's forces vs the reference on the labelled frames.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def read_log(path: Path) -> list[dict]:
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write_plots(run_dir: Path, predict_forces) -> list[Path]:
    """Write the three plots into ``run_dir/plots``; ``predict_forces(atoms) -> [n, 3]``
    (eV/Å) is the model for the parity plot.  Returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ase.io import read

    run_dir = Path(run_dir)
    out = run_dir / "plots"
    out.mkdir(exist_ok=True)
    log = read_log(run_dir / "log.jsonl")
    t = np.array([r["time_fs"] for r in log])
    checks = [r for r in log if "threshold" in r]
    paths = []

    fig, ax = plt.subplots(figsize=(6, 3.5))
    tc = [r["time_fs"] for r in checks if r["max_std"] is not None]
    ax.semilogy(tc, [r["max_std"] for r in checks if r["max_std"] is not None], ".-", label="max force std")
    ax.step([r["time_fs"] for r in checks], [r["threshold"] for r in checks], "k--", where="post",
            label="threshold")
    for r in checks:
        if r["call"]:
            ax.axvline(r["time_fs"], color="C3", alpha=0.5, lw=1)
    ax.plot([], [], color="C3", label="reference call")
    ax.set(xlabel="time (fs)", ylabel="eV/Å", title="uncertainty")
    ax.legend(fontsize=8)
    paths.append(_save(fig, out / "uncertainty.png"))

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(t, [r["temperature_K"] for r in log], lw=1)
    ax.set(xlabel="time (fs)", ylabel="K", title="temperature")
    paths.append(_save(fig, out / "temperature.png"))

    labelled = read(run_dir / "labelled.extxyz", ":") if (run_dir / "labelled.extxyz").stat().st_size else []
    if labelled:
        ref = np.concatenate([a.get_forces() for a in labelled]).ravel()
        pred = np.concatenate([predict_forces(a) for a in labelled]).ravel()
        rmse = float(np.sqrt(np.mean((pred - ref) ** 2)))
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.plot(ref, pred, ".", ms=3)
        lim = np.abs(np.concatenate([ref, pred])).max() * 1.05
        ax.plot([-lim, lim], [-lim, lim], "k-", lw=0.5)
        ax.set(xlabel="reference force (eV/Å)", ylabel="GP force (eV/Å)",
               title=f"labelled frames: RMSE {rmse:.3f} eV/Å")
        paths.append(_save(fig, out / "parity.png"))
    return paths


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
