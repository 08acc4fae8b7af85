"""Testing models on labelled data: RMSEs and parity plots (``conlearn test``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..dataset import remap_types
from ..graph import collate, frame_graph
from ..system import System
from .model import DeepPot


def predict_system(models: list[DeepPot], system: System, batch_frames: int = 4) -> dict:
    """Committee-mean predictions for every frame: energy [nf], forces [nf, n, 3], virial [nf, 3, 3]."""
    m0 = models[0]
    types = remap_types(system, m0.type_map)
    out = {"energy": [], "forces": [], "virial": []}
    for a in range(0, system.n_frames, batch_frames):
        idx = range(a, min(a + batch_frames, system.n_frames))
        fg = [frame_graph(system.coords[f], None if system.cells is None else system.cells[f], system.pbc,
                          types, rcut=m0.spec.rcut, sel=m0.spec.sel, type_map=m0.type_map,
                          frame=f"{f} of {system.name}") for f in idx]
        preds = []
        for m in models:
            g = collate(fg, len(m.type_map), dtype=m.dtype, device=m.device)
            r = m.evaluate(g, virial=True)
            preds.append({k: v.detach().cpu().double().numpy() for k, v in r.items()})
        out["energy"].append(np.mean([p["energy"] for p in preds], 0))
        out["forces"].append(np.mean([p["forces"] for p in preds], 0).reshape(len(idx), -1, 3))
        out["virial"].append(np.mean([p["virial"] for p in preds], 0))
    return {k: np.concatenate(v) for k, v in out.items()}


def score_models(models: list[DeepPot], systems: list[System], plot_dir: str | Path | None = None) -> dict:
    """RMSEs over all frames: ``energy_rmse_per_atom`` (eV/atom), ``force_rmse`` (eV/Å),
    ``virial_rmse_per_atom`` (eV/atom, when labelled), plus MAEs and counts."""
    e_pred, e_ref, f_pred, f_ref, v_pred, v_ref = [], [], [], [], [], []
    n_frames = 0
    for s in systems:
        p = predict_system(models, s)
        n_frames += s.n_frames
        if s.energies is not None:
            e_pred.append(p["energy"] / s.n_atoms); e_ref.append(s.energies / s.n_atoms)
        if s.forces is not None:
            f_pred.append(p["forces"].ravel()); f_ref.append(s.forces.ravel())
        if s.virials is not None:
            v_pred.append(p["virial"].ravel() / s.n_atoms); v_ref.append(s.virials.ravel() / s.n_atoms)
    res: dict = {"n_frames": n_frames, "n_systems": len(systems)}
    pairs = {}
    for name, pr, rf in (("energy", e_pred, e_ref), ("force", f_pred, f_ref), ("virial", v_pred, v_ref)):
        if not pr:
            continue
        pr, rf = np.concatenate(pr), np.concatenate(rf)
        suffix = "" if name == "force" else "_per_atom"
        res[f"{name}_rmse{suffix}"] = float(np.sqrt(np.mean((pr - rf) ** 2)))
        res[f"{name}_mae{suffix}"] = float(np.mean(np.abs(pr - rf)))
        pairs[name] = (rf, pr)
    if plot_dir is not None and pairs:
        res["plot"] = str(parity_plot(pairs, res, Path(plot_dir) / "parity.png"))
    return res


def parity_plot(pairs: dict, res: dict, png: Path) -> Path:
    """Predicted vs reference for energy (eV/atom), forces (eV/Å) and virial (eV/atom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    units = {"energy": "eV/atom", "force": "eV/Å", "virial": "eV/atom"}
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.2 * len(pairs), 4), squeeze=False)
    for ax, (name, (ref, pred)) in zip(axes[0], pairs.items()):
        ax.plot(ref, pred, ".", ms=2, alpha=0.5)
        lo, hi = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        key = f"{name}_rmse" + ("" if name == "force" else "_per_atom")
        ax.set_title(f"{name}: RMSE {res[key]:.3g} {units[name]}")
        ax.set_xlabel(f"reference ({units[name]})"); ax.set_ylabel(f"model ({units[name]})")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return png


def time_inference(model: DeepPot, system: System, n: int = 10) -> float:
    """Seconds per frame for energy + forces of one frame (graph building included)."""
    import time

    types = remap_types(system, model.type_map)
    cell = None if system.cells is None else system.cells[0]
    for _ in range(2):
        model.evaluate(model.graph([(system.coords[0], cell, system.pbc, types)]), virial=False)
    if model.device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for k in range(n):
        f = k % system.n_frames
        c = None if system.cells is None else system.cells[f]
        out = model.evaluate(model.graph([(system.coords[f], c, system.pbc, types)]), virial=False)
        out["forces"].sum().item()
    return (time.perf_counter() - t) / n
