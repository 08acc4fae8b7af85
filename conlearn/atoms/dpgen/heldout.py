"""Held-out check: independent reference MD at each exploration condition, scored by the committee.

For every condition the *reference* drives Langevin (NVT, or NPT at the given pressure) MD
from the condition's structure with a seed unrelated to the run; ``n_frames`` evenly spaced
frames of the second half are compared with the committee-mean forces (RMSE, eV/Å).
"""

from __future__ import annotations

import numpy as np

from ...core.records import Condition
from ..calculator import DeepPotCalculator
from ..frames import frame_to_atoms
from .explorer import langevin_md


def reference_frames(condition: Condition, reference, n_frames: int, n_steps: int, seed: int) -> list:
    p = condition.params
    atoms = frame_to_atoms(p["structure"])
    atoms.calc = reference
    dyn, _ = langevin_md(atoms, p, np.random.default_rng(seed))
    dyn.run(n_steps // 2)
    every = max(1, (n_steps - n_steps // 2) // n_frames)
    out = []
    for _ in range(n_frames):
        dyn.run(every)
        a = atoms.copy()
        a.info["ref_forces"] = atoms.get_forces().copy()
        out.append(a)
    return out


def heldout_errors(models, conditions: list[Condition], reference, n_frames: int = 10, n_steps: int = 400,
                   seed: int = 12345) -> dict[str, dict]:
    """``{condition: {"force_rmse": eV/Å, "max_devi_f": eV/Å (mean over frames), "n_frames"}}``."""
    committee = DeepPotCalculator(models)
    out = {}
    for k, cond in enumerate(conditions):
        frames = reference_frames(cond, reference, n_frames, n_steps, seed + k)
        preds = committee.predict(frames)
        err = np.concatenate([(r["forces"] - a.info["ref_forces"]).ravel() for r, a in zip(preds, frames)])
        out[cond.name] = {"force_rmse": float(np.sqrt(np.mean(err**2))),
                          "max_devi_f": float(np.mean([r["max_devi_f"] for r in preds])),
                          "n_frames": len(frames)}
    return out
