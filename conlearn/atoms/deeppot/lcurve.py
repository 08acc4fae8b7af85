"""The learning curve: ``lcurve.out`` (deepmd-kit-like columns) and ``lcurve.png``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

KEYS = ("rmse_e", "rmse_f", "rmse_v")
UNITS = {"rmse_e": "eV/atom", "rmse_f": "eV/Å", "rmse_v": "eV/atom"}


class LCurve:
    """Appends one line per display step: step, (val, trn) per RMSE, lr, wall time."""

    HEADER = "#   step" + "".join(f" {k + '_val':>12s} {k + '_trn':>12s}" for k in KEYS) + f" {'lr':>10s} {'wall_s':>10s}\n"

    def __init__(self, path: Path, resume: bool = False):
        self.path = Path(path)
        fresh = not (resume and self.path.exists())
        if not fresh:
            self._truncate_torn_tail()
        self.f = open(self.path, "w" if fresh else "a")
        if fresh:
            self.f.write(self.HEADER)

    def _truncate_torn_tail(self) -> None:
        text = self.path.read_text()
        if text and not text.endswith("\n"):
            self.path.write_text(text[: text.rfind("\n") + 1])

    def write(self, step: int, val: dict, trn: dict, lr: float, wall: float) -> None:
        cols = "".join(f" {val.get(k, np.nan):12.4e} {trn.get(k, np.nan):12.4e}" for k in KEYS)
        self.f.write(f"{step:8d}{cols} {lr:10.3e} {wall:10.1f}\n")
        self.f.flush()

    def summary(self, step, total, val, trn, lr, rate) -> str:
        show = lambda d: "  ".join(f"{k[5:]}={d[k]:.3g}" for k in KEYS if k in d)  # noqa: E731
        v = f"  val[{show(val)}]" if val else ""
        speed = f"  {rate:.2f} step/s" if rate else ""
        return f"step {step}/{total}  trn[{show(trn)}]{v}  lr={lr:.2e}{speed}"

    def close(self) -> None:
        self.f.close()

    def plot(self, png: Path) -> None:
        plot_lcurve(self.path, png)


def read_lcurve(path: Path) -> dict[str, np.ndarray]:
    names = LCurve.HEADER[1:].split()
    data = np.loadtxt(path, comments="#", ndmin=2)
    return {n: data[:, i] for i, n in enumerate(names)} if data.size else {n: np.array([]) for n in names}


def plot_lcurve(path: Path, png: Path) -> None:
    """Energy, force (and virial) RMSE vs step, training and validation, log scales."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = read_lcurve(path)
    keys = [k for k in KEYS if np.isfinite(d[k + "_trn"]).any() or np.isfinite(d[k + "_val"]).any()]
    fig, axes = plt.subplots(1, max(1, len(keys)), figsize=(4.5 * max(1, len(keys)), 3.5), squeeze=False)
    for ax, k in zip(axes[0], keys):
        for part, style in (("trn", "-"), ("val", "o-")):
            y = d[f"{k}_{part}"]
            m = np.isfinite(y)
            if m.any():
                ax.plot(d["step"][m], y[m], style, ms=3, label={"trn": "training batch", "val": "validation"}[part])
        ax.set_xscale("log"); ax.set_yscale("log")
        ax.set_xlabel("step"); ax.set_ylabel(f"{k.replace('rmse_', '')} RMSE ({UNITS[k]})")
        ax.legend(); ax.grid(alpha=0.3)
    fig.suptitle(f"learning curve: {Path(path).name}")
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)
