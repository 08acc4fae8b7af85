"""Characteristic speeds of the learned moment system, and how often they are complex.

The system (see :mod:`conlearn.kinetic.mlsolver`) in the variables V = (rho, u, T, w) reads
dQ/dV d_t V + (dF/dV - B(V)) d_x V = relaxation, with B the production terms per unit
gradient. Its characteristic speeds are the eigenvalues of A = (dQ/dV)^-1 (dF/dV - B); by
Galilean and scale invariance they are u + sqrt(T) lambda(w), so they are computed at
rho = 1, u = 0, T = 1. dF/dV by central differences (the closure is smooth), B exactly (it is
linear in the gradients). Where A has complex eigenvalues the system is not hyperbolic there
(linear growth of short waves).

``closure``: anything with ``terms(w [M, N]) -> [6, M, N]`` (:class:`.fused.MeanClosure`; one
member is ``MeanClosure([member], np.float64)``).
"""

from __future__ import annotations

import numpy as np

EPS = 1e-6


def _flux(V, closure):
    """Q, F [N, 3 + M] at V [N, 3 + M] = (rho, u, T, w)."""
    rho, u, T, w = V[:, 0], V[:, 1], V[:, 2], V[:, 3:]
    a = closure.terms(np.ascontiguousarray(w.T))[0].T
    p, sq = rho * T, np.sqrt(T)
    sig, q = p * w[:, 0], p * sq * w[:, 1]
    E = 0.5 * rho * u * u + 1.5 * p
    W = rho[:, None] * w
    Q = np.concatenate([np.stack([rho, rho * u, E], -1), W], -1)
    F = np.concatenate([np.stack([rho * u, rho * u * u + p + sig, u * (E + p + sig) + q], -1),
                        u[:, None] * W + (rho * sq)[:, None] * a], -1)
    return Q, F


def system_matrix(closure, w: np.ndarray) -> np.ndarray:
    """A [N, 3 + M, 3 + M] of the quasi-linear system at rho = 1, u = 0, T = 1 and moments w [N, M]."""
    N, M = w.shape
    k = 3 + M
    V = np.concatenate([np.tile([1.0, 0.0, 1.0], (N, 1)), w], axis=1)
    E = np.eye(k) * EPS
    Vp = (V[:, None, :] + E).reshape(-1, k)
    Vm = (V[:, None, :] - E).reshape(-1, k)
    (Qp, Fp), (Qm, Fm) = _flux(Vp, closure), _flux(Vm, closure)
    dQ = ((Qp - Qm) / (2 * EPS)).reshape(N, k, k).transpose(0, 2, 1)      # [N, eq, var]
    dF = ((Fp - Fm) / (2 * EPS)).reshape(N, k, k).transpose(0, 2, 1)
    t = closure.terms(np.ascontiguousarray(w.T))                           # [6, M, N]
    # production per unit gradient of each variable j (rho = T = 1, u = 0): d(p + sigma), dq
    w0, w1 = w[:, 0], w[:, 1]
    B = np.zeros((N, k, k))
    for j in range(k):
        du, dT = float(j == 1), float(j == 2)
        dps = (1.0 + w0) * (float(j == 0) + dT) + float(j == 3)
        dq = w1 * (float(j == 0) + 1.5 * dT) + float(j == 4)
        Du = -dps
        DT = -(2.0 / 3.0) * ((1.0 + w0) * du + dq)
        B[:, 3:, j] = -(Du * t[1] + (du + 0.5 * DT) * t[2] + 0.5 * dT * t[3] + DT * t[4] + dT * t[5]).T
    return np.linalg.solve(dQ, dF - B)


def speeds(closure, w: np.ndarray) -> np.ndarray:
    """Normalised characteristic speeds [N, 3 + M] (complex) at moments w [N, M]."""
    return np.linalg.eigvals(system_matrix(closure, w))


def complex_fraction(closure, w: np.ndarray, tol: float = 1e-6) -> float:
    """Fraction of the states w [N, M] where some speed has |imaginary part| > tol."""
    return float(np.mean(np.abs(speeds(closure, w).imag).max(axis=1) > tol))


def training_states(run_dir, n: int = 2000, seed: int = 0) -> np.ndarray:
    """Hermite moments mu [<= n, 2, D + 2] of cells labelled in a run (initial and iteration
    labels of its manifest), a seeded random subset."""
    import re
    from pathlib import Path

    from ..core.manifest import read_records, record_value

    run_dir = Path(run_dir)
    key = re.compile(r"^(init/label/|iter-\d+/label/)")
    mus = []
    for k, rec in read_records(run_dir / "manifest.jsonl"):
        if key.match(k):
            value = getattr(record_value(run_dir, rec), "payload", None)      # a LabelResult
            if isinstance(value, dict) and "mu" in value:
                mus.append(np.asarray(value["mu"], float))
    if not mus:
        raise FileNotFoundError(f"{run_dir}: no labelled trajectories in manifest.jsonl")
    mu = np.concatenate(mus)
    pick = np.random.default_rng(seed).permutation(len(mu))[:n]
    return mu[np.sort(pick)]
