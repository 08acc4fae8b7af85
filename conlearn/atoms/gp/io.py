"""Versioned plain-dict (de)serialisation of a ``GaussianProcess`` and its mapped mean.

``gp_to_dict`` keeps everything, the Cholesky factor included, so a restored GP predicts
bit for bit what the saved one did (a resumed on-the-fly run then follows the same
trajectory).  The dict holds only numbers, strings, lists and numpy arrays; ``save`` and
``load`` pickle it (written atomically).
"""

from __future__ import annotations

import pickle
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np

from ...core.manifest import atomic_write_bytes
from .environment import Clusters, Environments
from .gp import GaussianProcess
from .kernels import NBodyKernel

VERSION = 1


def _envs_to_dict(e: Environments) -> dict:
    return asdict(e)


def _envs_from_dict(d: dict) -> Environments:
    d = dict(d)
    d["pairs"], d["triplets"] = Clusters(**d["pairs"]), Clusters(**d["triplets"])
    return Environments(**{f.name: d[f.name] for f in fields(Environments) if f.name in d})


def gp_to_dict(gp: GaussianProcess) -> dict:
    """Hyperparameters, training environments and labels, and the factorisation."""
    return {
        "version": VERSION,
        "kernels": [{"body": k.body, "sigma": k.sigma, "length": k.length} for k in gp.kernels],
        "r_cut2": gp.r_cut2, "r_cut3": gp.r_cut3, "cutoff": gp.cutoff,
        "noise": gp.noise, "energy_noise": gp.energy_noise, "jitter": gp.jitter, "stress_noise": gp.stress_noise,
        "sets": {k: _envs_to_dict(e) for k, e in gp._sets.items()},
        "rows": {k: np.asarray(r) for k, r in gp._rows.items()},
        "y": gp.y, "is_force": gp._is_force, "K": gp.K, "L": gp.L, "alpha": gp.alpha,
    }


def gp_from_dict(d: dict) -> GaussianProcess:
    if d.get("version") != VERSION:
        raise ValueError(f"GP dict version {d.get('version')!r} is not {VERSION}")
    gp = GaussianProcess([NBodyKernel(**k) for k in d["kernels"]], d["r_cut2"], d["r_cut3"],
                         d["cutoff"], d["noise"], d["energy_noise"], d["jitter"], d.get("stress_noise", 1e-3))
    gp._sets = {k: _envs_from_dict(e) for k, e in d["sets"].items()}
    gp._rows = {k: np.asarray(r) for k, r in d["rows"].items()}
    gp.y, gp._is_force = np.asarray(d["y"]), np.asarray(d["is_force"], dtype=bool)
    gp.K, gp.L, gp.alpha = np.asarray(d["K"]), np.asarray(d["L"]), np.asarray(d["alpha"])
    return gp


def save(obj: dict, path: str | Path) -> None:
    """Pickle a plain dict atomically (readers see the old file or the whole new one)."""
    atomic_write_bytes(path, pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def load(path: str | Path) -> dict:
    with open(path, "rb") as fh:
        return pickle.load(fh)


def save_gp(gp: GaussianProcess, path: str | Path) -> None:
    save(gp_to_dict(gp), path)


def load_gp(path: str | Path) -> GaussianProcess:
    return gp_from_dict(load(path))


__all__ = ["gp_to_dict", "gp_from_dict", "save_gp", "load_gp", "save", "load"]
