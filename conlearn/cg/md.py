"""The vectorised CG MD engine: BAOAB Langevin in torch float64, Verlet pair list (vesin).

Units: nm, ps, amu, kJ/mol, K (1 kJ/mol = 1 amu nm^2/ps^2). Positions are kept unwrapped
(continuous), so the saved trajectory can go straight into an MSD.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from conlearn.cg.neighbors import VerletList
from conlearn.cg.potential import _accepts_pairs, as_tensor

KB = 0.00831446261815324   # kJ/mol/K


def maxwell_velocities(masses, temperature: float, seed: int) -> torch.Tensor:
    """Velocities ``[N, 3]`` nm/ps from Maxwell-Boltzmann at ``temperature`` K, zero total momentum."""
    m = as_tensor(masses).reshape(-1, 1)
    gen = torch.Generator().manual_seed(int(seed) + 7919)
    v = torch.randn(len(m), 3, generator=gen, dtype=torch.float64) * torch.sqrt(KB * temperature / m)
    return v - (m * v).sum(0) / m.sum()


def kinetic_energy(V: torch.Tensor, m: torch.Tensor) -> float:
    """``sum m v^2 / 2`` kJ/mol (``m`` ``[N, 1]``)."""
    return float(0.5 * (m * V * V).sum())


def cg_md(potential, R0, box, masses, n_steps: int, dt_fs: float, temperature: float,
          friction_per_ps: float, seed: int, save_every: int, *, V0=None, skin: float = 0.2,
          min_distance: float = 0.1, save_forces: bool = True, slow=None, slow_every: int = 1) -> dict:
    """Run Langevin (BAOAB) NVT, or NVE with ``friction_per_ps = 0``.

    With ``slow`` (a second bead potential, e.g. the ML part of a Δ model) the force is split
    into a fast part (``potential``, every step) and a slow part evaluated every
    ``slow_every`` steps and applied as an impulse of ``slow_every`` steps (r-RESPA,
    Tuckerman, Berne & Martyna 1992): one slow evaluation per ``slow_every`` steps.

    Args:
        potential: a bead potential (``cutoff``, ``energy_forces(R, box[, pairs])``).
        R0: ``[N, 3]`` nm; box: ``[3]`` nm (orthorhombic); masses: ``[N]`` amu.
        dt_fs: time step in fs; temperature: K (also for the initial velocities).
        V0: ``[N, 3]`` nm/ps initial velocities (default: Maxwell-Boltzmann from ``seed``).
        skin: Verlet skin, nm; the list is rebuilt when a bead moved more than skin / 2.
        min_distance: nm; two beads closer than this (checked at every save) mean a blow-up.
        slow, slow_every: the slow force and its period in steps (``save_every`` must be a
            multiple of it, so that saved forces and energies are current).
    Returns:
        dict: ``positions`` ``[T, N, 3]`` (unwrapped, T = frames at steps save_every,
        2 save_every, ...), ``forces`` ``[T, N, 3]`` (if ``save_forces``), ``potential_energy``,
        ``kinetic_energy`` ``[T]`` kJ/mol, ``temperature`` ``[T]`` K (from 3N degrees of
        freedom), ``steps`` (run), ``wall_s``, ``cpu_s`` (process CPU time), ``ok`` (False
        on NaN or beads closer than ``min_distance``: the run stops there), ``reason``,
        ``n_builds`` (pair-list rebuilds) and ``state`` (``positions``, ``velocities`` [N, 3]
        numpy, to continue).
    """
    t0, c0 = time.perf_counter(), time.process_time()
    R = as_tensor(R0).clone()
    box_t = as_tensor(box)
    m = as_tensor(masses).reshape(-1, 1)
    n = len(R)
    if R.shape != (n, 3) or m.shape[0] != n:
        raise ValueError(f"cg_md: R0 {tuple(R.shape)} and masses {tuple(m.shape)} must be [N, 3], [N]")
    dt = dt_fs * 1e-3
    V = maxwell_velocities(masses, temperature, seed) if V0 is None else as_tensor(V0).clone()
    c1 = math.exp(-friction_per_ps * dt)
    sigma = torch.sqrt((1.0 - c1 * c1) * KB * temperature / m)
    gen = torch.Generator().manual_seed(int(seed))
    k_slow = int(slow_every) if slow is not None else 1
    if k_slow < 1 or save_every % k_slow:
        raise ValueError(f"cg_md: slow_every ({slow_every}) must be >= 1 and divide save_every ({save_every})")
    nl = VerletList(max(potential.cutoff, slow.cutoff if slow is not None else 0.0), skin)

    def force(pot, x, pairs):
        e, f = pot.energy_forces(x, box_t, pairs=pairs) if _accepts_pairs(pot) else pot.energy_forces(x, box_t)
        return float(e), f.detach()

    pairs = nl.update(R, box_t)
    E, F = force(potential, R, pairs)
    Es, Fs = force(slow, R, pairs) if slow is not None else (0.0, None)
    out = {k: [] for k in ("positions", "forces", "potential_energy", "kinetic_energy")}
    ok, reason, step = True, "", 0
    for step in range(1, n_steps + 1):
        if Fs is not None and (step - 1) % k_slow == 0:
            V += 0.5 * k_slow * dt * Fs / m
        V += 0.5 * dt * F / m
        R += 0.5 * dt * V
        if friction_per_ps > 0:
            V = c1 * V + sigma * torch.randn(n, 3, generator=gen, dtype=torch.float64)
        R += 0.5 * dt * V
        pairs = nl.update(R, box_t)
        E, F = force(potential, R, pairs)
        V += 0.5 * dt * F / m
        if Fs is not None and step % k_slow == 0:
            Es, Fs = force(slow, R, pairs)
            V += 0.5 * k_slow * dt * Fs / m
        if step % save_every == 0:
            Ftot = F if Fs is None else F + Fs
            reason = _blow_up(R, Ftot, pairs, min_distance)
            if reason:
                ok = False
                break
            out["positions"].append(R.numpy().copy())
            if save_forces:
                out["forces"].append(Ftot.numpy().copy())
            out["potential_energy"].append(E + Es)
            out["kinetic_energy"].append(kinetic_energy(V, m))
    res = {k: np.array(v) for k, v in out.items()}
    if not save_forces:
        res.pop("forces")
    res["temperature"] = 2 * res["kinetic_energy"] / (3 * n * KB)
    res.update(steps=step, wall_s=time.perf_counter() - t0, cpu_s=time.process_time() - c0,
               ok=ok, reason=reason,
               n_builds=nl.n_builds, box=np.asarray(box_t), dt_fs=dt_fs,
               state={"positions": R.numpy().copy(), "velocities": V.numpy().copy()})
    return res


def _blow_up(R, F, pairs, min_distance: float) -> str:
    if not (torch.isfinite(R).all() and torch.isfinite(F).all()):
        return "non-finite positions or forces"
    if len(pairs.i):
        d = torch.linalg.norm(pairs.vectors(R), dim=1)
        k = int(torch.argmin(d))
        if d[k] < min_distance:
            return (f"beads {int(pairs.i[k])} and {int(pairs.j[k])} are {float(d[k]):.4f} nm apart "
                    f"(< {min_distance} nm)")
    return ""
