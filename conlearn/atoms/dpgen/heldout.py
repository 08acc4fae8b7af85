"""Held-out check: independent reference MD at each exploration condition, scored by the committee.

For every condition the *reference* drives Langevin (NVT, or NPT at the given pressure) MD
from the condition's structure with a seed unrelated to the run; ``n_frames`` evenly spaced
frames of the second half are compared with the committee-mean forces (RMSE, eV/Å).
Given an executor, the conditions run as tasks (kind "explore") in parallel.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ...core.manifest import atomic_write_bytes
from ...core.records import Condition
from ..calculator import DeepPotCalculator
from ..frames import frame_to_atoms
from ..md import langevin_md


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


def condition_errors(models, condition: Condition, reference, n_frames: int, n_steps: int, seed: int,
                     keep_forces: bool = False) -> dict:
    """Held-out errors at one condition; ``models``: loaded models or paths to them;
    ``reference``: an ASE calculator, or a reference spec (built here, e.g. in a worker)."""
    from ..deeppot.model import load_model
    from ..reference import build_reference

    if isinstance(reference, dict) or not hasattr(reference, "get_forces"):
        reference = build_reference(reference)
    models = [load_model(m) if isinstance(m, (str, Path)) else m for m in models]
    return frame_errors(models, reference_frames(condition, reference, n_frames, n_steps, seed), keep_forces)


def frame_errors(models, frames: list, keep_forces: bool = False) -> dict:
    """Committee-mean force RMSE against ``frames`` (from :func:`reference_frames`);
    ``max_devi_f`` is NaN for a single model. ``keep_forces`` adds ``ref_forces`` and
    ``pred_forces``, (atoms of all frames, 3) arrays in eV/Å, for parity plots."""
    preds = DeepPotCalculator(list(models)).predict(frames)
    ref = np.concatenate([a.info["ref_forces"] for a in frames])
    pred = np.concatenate([r["forces"] for r in preds])
    out = {"force_rmse": float(np.sqrt(np.mean((pred - ref) ** 2))),
           "max_devi_f": float(np.mean([r.get("max_devi_f", np.nan) for r in preds])),
           "n_frames": len(frames)}
    if keep_forces:
        out.update(ref_forces=ref, pred_forces=pred)
    return out


FORCES_FILE = "heldout_forces.npz"


def save_heldout_forces(errors: dict[str, dict], run: Path) -> dict[str, dict]:
    """Write the force arrays of ``errors`` (from ``heldout_errors(..., keep_forces=True)``)
    to ``run/heldout_forces.npz`` (keys ``"<condition>/ref"``, ``"<condition>/pred"``);
    return the errors without them (JSON-friendly)."""
    keys = {"ref_forces": "ref", "pred_forces": "pred"}
    arrays = {f"{name}/{short}": np.asarray(v[k], dtype=np.float32) for name, v in errors.items()
              for k, short in keys.items() if k in v}
    if arrays:
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        atomic_write_bytes(Path(run) / FORCES_FILE, buf.getvalue())
    return {name: {k: x for k, x in v.items() if k not in keys} for name, v in errors.items()}


def heldout_errors(models, conditions: list[Condition], reference, n_frames: int = 10, n_steps: int = 400,
                   seed: int = 12345, executor=None, keep_forces: bool = False) -> dict[str, dict]:
    """``{condition: {"force_rmse": eV/Å, "max_devi_f": eV/Å (mean over frames), "n_frames"}}``
    (+ the force arrays with ``keep_forces``, see :func:`save_heldout_forces`).

    Condition ``k`` uses seed ``seed + k``. With an executor, ``models`` must be paths and
    ``reference`` a spec (calculators are not picklable once used).
    """
    calls = [(models, cond, reference, n_frames, n_steps, seed + k, keep_forces)
             for k, cond in enumerate(conditions)]
    if executor is None:
        values = [condition_errors(*c) for c in calls]
    else:
        values = executor.map(condition_errors, *zip(*calls), kind="explore")
    return {cond.name: v for cond, v in zip(conditions, values)}
