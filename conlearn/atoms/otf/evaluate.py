"""Held-out checks of an on-the-fly model: reference MD frames, errors, calibration.

``reference_md_frames`` runs an independent Langevin MD on the reference itself (a seed
of its own) and keeps evenly spaced frames; ``score`` compares the GP on them: force
RMSE / MAE (eV/Å) and the calibration ``RMSE / mean predicted std``, with the predicted
std both epistemic only (what the trigger uses) and with the fitted noise added.
"""

from __future__ import annotations

import numpy as np
from ase import units
from ase.md.langevin import Langevin

from ..reference import build_reference
from .config import OTFConfig
from ..thermal import thermalize


def reference_md_frames(cfg: OTFConfig, n_frames: int = 20, seed: int = 12345,
                        n_equilibrate: int = 100, every: int = 10) -> list:
    """``n_frames`` ``ase.Atoms`` (with reference energy/forces in ``calc``) from Langevin
    MD on the reference under ``cfg.md``'s temperature and time step, after
    ``n_equilibrate`` steps, ``every`` steps apart; the start is ``cfg``'s structure jittered
    with ``cfg.rattle`` from ``seed``."""
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(seed)
    atoms = cfg.structure_spec().build()[0]
    atoms.positions += rng.normal(scale=cfg.rattle, size=atoms.positions.shape)
    thermalize(atoms, cfg.md.temperature_K, rng)
    atoms.calc = build_reference(cfg.reference)
    dyn = Langevin(atoms, cfg.md.timestep_fs * units.fs, temperature_K=cfg.md.temperature_K,
                   friction=cfg.md.friction / units.fs, fixcm=False, rng=rng)
    frames = []
    dyn.run(n_equilibrate)
    for _ in range(n_frames):
        dyn.run(every)
        snap = atoms.copy()
        snap.calc = SinglePointCalculator(snap, energy=atoms.get_potential_energy(),
                                          forces=atoms.get_forces())
        frames.append(snap)
    return frames


def score(gp, frames, mapped=None) -> dict:
    """Force errors of ``gp`` (exact mean, or ``mapped`` when given) on labelled frames.

    Returns ``rmse``, ``mae``, ``max`` (eV/Å, over all components), ``mean_std`` (eV/Å,
    epistemic), ``mean_std_noise`` (eV/Å, sqrt(std^2 + noise^2)), ``calibration`` =
    rmse / mean_std and ``calibration_noise`` = rmse / mean_std_noise, ``rms_force``.
    ``calibration_noise`` is the calibration of the held-out error (the labels are
    observations, and the noise is the model's misfit on a noise-free reference);
    ``calibration`` grows as data accumulates, the misfit staying.
    """
    err, std, ref = [], [], []
    for a in frames:
        envs = gp.environments(a)
        out = gp.predict(envs, std=True)
        pred = mapped.predict(envs)["forces"] if mapped is not None else out["forces"]
        f = a.get_forces()
        err.append(pred - f)
        std.append(out["force_std"])
        ref.append(f)
    err, std, ref = np.concatenate(err), np.concatenate(std), np.concatenate(ref)
    rmse = float(np.sqrt((err**2).mean()))
    with_noise = float(np.sqrt(std**2 + gp.noise**2).mean())
    return {"rmse": rmse, "mae": float(np.abs(err).mean()), "max": float(np.abs(err).max()),
            "mean_std": float(std.mean()), "mean_std_noise": with_noise,
            "calibration": rmse / float(std.mean()), "calibration_noise": rmse / with_noise,
            "rms_force": float(np.sqrt((ref**2).mean()))}
