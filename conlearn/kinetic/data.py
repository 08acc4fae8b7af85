"""Training data of the closure from kinetic trajectories (one labelled trajectory = one payload).

A payload is a plain dict (pickled by the run's manifest):

    "mu"     [N, 2, D + 2]   Hermite moments of the normalised distributions of every cell of
                             every saved snapshot (the closure's inputs and targets)
    "ghat"   [N, 2, n_xi]    the normalised distributions on the xi grid (the autoencoder's data), float32
    "condition"              the initial condition (JSON-friendly), "kn", "t" [ns], "wall_s"
    "final"                  {"rho", "u", "T"} [nx] at t_end (kinetic)
"""

from __future__ import annotations

import numpy as np

from . import moments as mom


def snapshot_payload(out: dict, degree: int, condition: dict | None = None) -> dict:
    """The payload of one kinetic_solve result with saved distributions ("g", "h" [ns, nx, nv])."""
    g, h, grid = out["g"], out["h"], out["grid"]
    g2, h2 = g.reshape(-1, grid.nv), h.reshape(-1, grid.nv)
    return {"mu": mom.hermite_moments(g2, h2, grid, degree + 2),
            "ghat": mom.normalised(g2, h2, grid).astype(np.float32),
            "condition": dict(condition or {}), "kn": float(condition.get("kn", np.nan)) if condition else np.nan,
            "t": np.asarray(out["t"]), "wall_s": float(out["wall_s"]),
            "final": {k: np.asarray(out[k]) for k in ("rho", "u", "T")}}


def stack(payloads, key: str) -> np.ndarray:
    """Concatenation of one array field over payloads [sum N, ...]."""
    return np.concatenate([np.asarray(p[key], float) for p in payloads])


def n_cells(payloads) -> int:
    return int(sum(len(p["mu"]) for p in payloads))
