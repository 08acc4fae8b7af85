"""Structure and dynamics of bead trajectories: RDF, ADF, density, MSD/diffusion, residuals.

Units: nm, ps, amu, degrees. Trajectories are ``[T, N, 3]`` arrays in an orthorhombic ``box``
``[3]`` nm; periodic images are taken into account (vesin), so ``r_max`` may exceed half the box.
"""

from __future__ import annotations

import numpy as np
import vesin

AMU_PER_NM3_TO_G_PER_CM3 = 1.66053906660e-3


def _frames(R) -> np.ndarray:
    R = np.asarray(R, dtype=float)
    return R[None] if R.ndim == 2 else R


def rdf(R, box, r_max: float = 1.0, n_bins: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Radial distribution function: bin centres ``[n_bins]`` nm and ``g(r)`` ``[n_bins]``.

    Normalised so an ideal gas gives 1 at every r: pairs of distinct beads (any image) per
    shell over ``N (N - 1) / 2 * shell volume / V``, averaged over frames.
    """
    R = _frames(R)
    box = np.asarray(box, dtype=float)
    edges = np.linspace(0.0, r_max, n_bins + 1)
    hist = np.zeros(n_bins)
    nl = vesin.NeighborList(cutoff=float(r_max), full_list=False)
    for x in R:
        i, j, d = nl.compute(x, np.diag(box), True, "ijd")
        hist += np.histogram(d[i != j], bins=edges)[0]
    n = R.shape[1]
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    ideal = len(R) * 0.5 * n * (n - 1) * shell / np.prod(box)
    return 0.5 * (edges[1:] + edges[:-1]), hist / ideal


def adf(R, box, cutoff: float = 0.32, n_bins: int = 90) -> tuple[np.ndarray, np.ndarray]:
    """Angle distribution of bead triplets: for every bead j and two neighbours i, k within
    ``cutoff`` nm, the angle i-j-k. Returns bin centres ``[n_bins]`` degrees in [0, 180] and a
    probability density ``p`` (deg^-1, integrating to 1; zeros when there is no triplet).
    """
    R = _frames(R)
    box = np.asarray(box, dtype=float)
    edges = np.linspace(0.0, 180.0, n_bins + 1)
    hist = np.zeros(n_bins)
    nl = vesin.NeighborList(cutoff=float(cutoff), full_list=True, sorted=True)
    for x in R:
        i, D = nl.compute(x, np.diag(box), True, "iD")
        if len(i) < 2:
            continue
        counts = np.bincount(i, minlength=len(x))
        slot = np.arange(len(i)) - np.repeat(np.cumsum(counts) - counts, counts)
        V = np.zeros((len(x), counts.max(), 3))
        mask = np.zeros((len(x), counts.max()), bool)
        V[i, slot], mask[i, slot] = D / np.linalg.norm(D, axis=1, keepdims=True), True
        cos = np.einsum("nad,nbd->nab", V, V)
        upper = np.triu(np.ones(cos.shape[1:], bool), 1)
        keep = mask[:, :, None] & mask[:, None, :] & upper
        ang = np.degrees(np.arccos(np.clip(cos[keep], -1.0, 1.0)))
        hist += np.histogram(ang, bins=edges)[0]
    total = hist.sum()
    p = hist / (total * np.diff(edges)) if total else hist
    return 0.5 * (edges[1:] + edges[:-1]), p


def adf_l1(p_a, p_b, theta) -> float:
    """L1 distance ``int |p_a - p_b| dtheta`` of two ADF densities on the same grid (0..2)."""
    return float(np.sum(np.abs(np.asarray(p_a) - np.asarray(p_b))) * (theta[1] - theta[0]))


def rdf_rmse(r, g_a, g_b, r_range=(0.2, 1.0)) -> float:
    """RMS difference of two RDFs on the same grid over ``r_range`` nm."""
    sel = (np.asarray(r) >= r_range[0]) & (np.asarray(r) <= r_range[1])
    return float(np.sqrt(np.mean((np.asarray(g_a)[sel] - np.asarray(g_b)[sel]) ** 2)))


def first_peak(x, y) -> tuple[float, float]:
    """Position and height of the highest point of a curve (RDF first peak, ADF peak)."""
    k = int(np.argmax(y))
    return float(x[k]), float(y[k])


def density(total_mass_amu: float, box) -> float:
    """Mass density g/cm^3 of ``total_mass_amu`` in an orthorhombic ``box`` ``[3]`` nm."""
    return float(total_mass_amu / np.prod(np.asarray(box, dtype=float)) * AMU_PER_NM3_TO_G_PER_CM3)


def msd(R_unwrapped, dt_ps: float, max_lag_fraction: float = 0.5,
        n_lags: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Mean squared displacement over all time origins, centre-of-mass drift removed.

    ``R_unwrapped`` ``[T, N, 3]`` nm (continuous, not wrapped into the box), frames
    ``dt_ps`` apart. Returns lag times ``[L]`` ps and MSD ``[L]`` nm^2 (L <= ``n_lags``
    lags up to ``max_lag_fraction * T``).
    """
    R = _frames(R_unwrapped)
    R = R - R.mean(axis=1, keepdims=True)
    max_lag = max(1, int(max_lag_fraction * (len(R) - 1)))
    lags = np.unique(np.linspace(1, max_lag, min(n_lags, max_lag)).astype(int))
    out = np.array([np.mean(np.sum((R[lag:] - R[:-lag]) ** 2, axis=-1)) for lag in lags])
    return lags * dt_ps, out


def diffusion(R_unwrapped, dt_ps: float, fit=(0.2, 1.0), **msd_kw) -> float:
    """Self-diffusion coefficient nm^2/ps: MSD = 6 D t fitted over the ``fit`` fraction of lags."""
    t, m = msd(R_unwrapped, dt_ps, **msd_kw)
    sel = slice(int(fit[0] * len(t)), max(int(fit[0] * len(t)) + 2, int(fit[1] * len(t))))
    slope = np.polyfit(t[sel], m[sel], 1)[0]
    return float(slope / 6.0)


msd_diffusion = diffusion


def fm_residual(F_ref, F_model) -> float:
    """Force-matching residual ``sum |F_ref - F_model|^2 / sum |F_ref|^2`` (0 = exact, 1 = F = 0)."""
    F_ref, F_model = np.asarray(F_ref, dtype=float), np.asarray(F_model, dtype=float)
    return float(np.sum((F_ref - F_model) ** 2) / np.sum(F_ref ** 2))
