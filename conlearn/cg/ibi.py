"""Iterative Boltzmann inversion: a pair potential that reproduces a target RDF.

``U_0 = -kT ln g_target``; ``U_{n+1} = U_n + alpha kT ln(g_n / g_target)`` with ``g_n`` from a
CG MD run (:func:`conlearn.cg.md.cg_md`) with ``U_n``; optionally the linear pressure
correction of Reith et al. ``dU = A (1 - r / rcut)``. Units: nm, kJ/mol, K, bar.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import CubicSpline

from conlearn.cg.analysis import rdf, rdf_rmse
from conlearn.cg.md import KB, cg_md
from conlearn.cg.neighbors import build_pairs
from conlearn.cg.potential import PairTable, as_tensor

KJ_MOL_NM3_TO_BAR = 16.6054


@dataclass(frozen=True)
class IBISettings:
    """CG MD per iteration and the update's knobs.

    n_steps / equil_steps / save_every: steps per iteration (RDF from the frames after
    ``equil_steps``); dt_fs, friction_per_ps: the Langevin run; alpha: update damping;
    g_floor: RDF values below it are the excluded core (U continues linearly inside it);
    taper_nm: width of the switch that brings U and F smoothly to 0 at the cutoff.
    pressure_target: bar, or None for no pressure correction; pressure_step: kJ/mol, the
    largest correction amplitude per iteration.
    """

    n_steps: int = 5000
    equil_steps: int = 1000
    save_every: int = 50
    dt_fs: float = 5.0
    friction_per_ps: float = 1.0
    alpha: float = 0.5
    g_floor: float = 0.05
    taper_nm: float = 0.1
    pressure_target: float | None = None
    pressure_step: float = 0.25


def _switch(r: np.ndarray, rcut: float, width: float) -> np.ndarray:
    x = np.clip((r - (rcut - width)) / width, 0.0, 1.0)
    return 1.0 - x * x * x * (10 - 15 * x + 6 * x * x)     # C2 smoothstep: 1 -> 0


def _table(r: np.ndarray, U: np.ndarray, rcut: float, width: float, dr: float = 0.002) -> PairTable:
    """U on the RDF grid -> a PairTable on a uniform grid (the fast kernel), tapered to 0 at rcut."""
    grid = np.linspace(r[0], rcut, max(int(np.ceil((rcut - r[0]) / dr)) + 1, 8))
    spline = CubicSpline(r, U - U[-1])
    sw = _switch(grid, rcut, width)
    dsw = (_switch(grid + 1e-7, rcut, width) - _switch(grid - 1e-7, rcut, width)) / 2e-7
    return PairTable(grid, spline(grid) * sw, -(spline(grid, 1) * sw + spline(grid) * dsw), rcut)


def pressure_bar(table: PairTable, R: np.ndarray, box: np.ndarray, temperature: float) -> float:
    """Virial pressure (bar) of frames ``R`` ``[T, N, 3]`` at the kinetic ``temperature`` K."""
    V = float(np.prod(box))
    W = np.mean([table.virial(as_tensor(x), as_tensor(box), build_pairs(x, box, table.cutoff))
                 for x in R])
    n = R.shape[1]
    return (n * KB * temperature + W / 3.0) / V * KJ_MOL_NM3_TO_BAR


def ibi(target_r, target_g, R0, box, masses, temperature: float, *, rcut: float, n_iter: int = 10,
        settings: IBISettings = IBISettings(), initial: PairTable | None = None,
        seed: int = 0) -> tuple[PairTable, list[dict]]:
    """Iterate Boltzmann inversion from the target RDF (bin centres ``target_r`` nm).

    Args:
        target_r, target_g: ``[K]`` the target RDF; its grid must reach ``rcut``.
        R0: ``[N, 3]`` nm starting beads; box ``[3]`` nm; masses ``[N]`` amu.
        initial: start from this table instead of the potential of mean force.
    Returns:
        ``(table, history)``: the last table and per iteration ``iteration``, ``rdf_rmse``
        (over [0.2, rcut] nm, of the RDF sampled with that iteration's input potential),
        ``pressure_bar``, ``ok`` (the CG run did not blow up).
    """
    s = settings
    r_t, g_t = np.asarray(target_r, dtype=float), np.asarray(target_g, dtype=float)
    box = np.asarray(box, dtype=float)
    if r_t[-1] < rcut - 1e-9:
        raise ValueError(f"ibi: the target RDF ends at {r_t[-1]:.3f} nm, before rcut={rcut}")
    kT = KB * temperature
    core = int(np.argmax(g_t > s.g_floor))
    sel = (np.arange(len(r_t)) >= core) & (r_t <= rcut)
    r = np.append(r_t[sel], rcut) if r_t[sel][-1] < rcut else r_t[sel]
    gt = np.interp(r, r_t, g_t)
    dr_bin = r_t[1] - r_t[0]
    U = initial(r)[0] if initial is not None else -kT * np.log(gt)
    table = _table(r, U, rcut, s.taper_nm)
    R, history = np.asarray(R0, dtype=float), []
    for it in range(n_iter):
        res = cg_md(table, R, box, masses, s.equil_steps + s.n_steps, s.dt_fs, temperature,
                    s.friction_per_ps, seed + it, s.save_every, save_forces=False)
        frames = res["positions"][s.equil_steps // s.save_every:]
        if not res["ok"] or len(frames) == 0:
            history.append({"iteration": it, "rdf_rmse": float("nan"), "pressure_bar": float("nan"),
                            "ok": False, "reason": res["reason"]})
            break
        R = res["state"]["positions"]
        rr, g = rdf(frames, box, r_max=len(r_t) * dr_bin, n_bins=len(r_t))
        P = pressure_bar(table, frames[:: max(1, len(frames) // 10)], box, temperature)
        history.append({"iteration": it, "rdf_rmse": rdf_rmse(rr, g, g_t, (0.2, rcut)),
                        "pressure_bar": P, "ok": True})
        gn = np.interp(r, rr, g)
        dU = s.alpha * kT * np.log(np.clip(gn, 1e-6, None) / gt)
        if s.pressure_target is not None:
            amp = -np.sign(P - s.pressure_target) * min(1.0, abs(P - s.pressure_target) / 1000.0)
            dU = dU + amp * s.pressure_step * (1.0 - r / rcut)
        U = table(r)[0] + dU
        table = _table(r, U, rcut, s.taper_nm)
    return table, history
