"""Seeded random initial data of issue 12, as plain JSON-able specs, and their profiles.

A spec is a dict:
  wave:    {"kind": "wave", "bc": "periodic", "rho"|"u"|"T": {"mean": m, "modes": [[k, a, phase], ...]}}
           profile m + sum a*sin(2 pi k x + phase), 1-3 modes (k in 1..3) per field,
           rho, T >= 0.3 and |u| <= 0.5 everywhere (guaranteed by sum |a| within the margin).
  riemann: {"kind": "riemann", "bc": "neumann", "x0": x0, "left": [rho, u, p], "right": [rho, u, p]}
           rho in [0.125, 1], p in [0.1, 1], u in [-0.5, 0.5], x0 in [0.3, 0.7]; the cell that holds
           x0 gets the cell average of the conserved variables (same jump on every grid).
"""

from __future__ import annotations

import numpy as np

from . import fv
from .euler import to_conserved
from .velocity import primitive

WAVE_FLOOR = 0.3      # rho, T >= this
WAVE_UMAX = 0.5       # |u| <= this
RIEMANN_RHO = (0.125, 1.0)
RIEMANN_P = (0.1, 1.0)
RIEMANN_U = (-0.5, 0.5)
RIEMANN_X0 = (0.3, 0.7)


def _modes(rng: np.random.Generator, budget: float) -> list[list[float]]:
    n = int(rng.integers(1, 4))
    ks = rng.choice([1, 2, 3], size=n, replace=False)
    share = rng.dirichlet(np.ones(n)) * budget * rng.uniform(0.3, 1.0)
    return [[int(k), float(a), float(rng.uniform(0, 2 * np.pi))] for k, a in zip(ks, share)]


def random_wave(rng: np.random.Generator) -> dict:
    """A periodic smooth wave: means rho, T in [0.5, 1.5], u in [-0.2, 0.2], 1-3 modes each."""
    spec = {"kind": "wave", "bc": "periodic"}
    for name in ("rho", "T"):
        mean = float(rng.uniform(0.5, 1.5))
        spec[name] = {"mean": mean, "modes": _modes(rng, mean - WAVE_FLOOR)}
    mean = float(rng.uniform(-0.2, 0.2))
    spec["u"] = {"mean": mean, "modes": _modes(rng, WAVE_UMAX - abs(mean))}
    return spec


def random_riemann(rng: np.random.Generator) -> dict:
    """A Riemann problem with Neumann boundaries in the ranges of issue 12."""
    def side():
        return [float(rng.uniform(*RIEMANN_RHO)), float(rng.uniform(*RIEMANN_U)), float(rng.uniform(*RIEMANN_P))]
    return {"kind": "riemann", "bc": "neumann", "x0": float(rng.uniform(*RIEMANN_X0)),
            "left": side(), "right": side()}


def sample_kn(rng: np.random.Generator, lo: float = 1e-3, hi: float = 10.0) -> float:
    """Knudsen number log-uniform in [lo, hi]."""
    return float(10 ** rng.uniform(np.log10(lo), np.log10(hi)))


def random_spec(rng: np.random.Generator, wave_fraction: float = 0.5) -> dict:
    """A wave with probability wave_fraction, else a Riemann problem."""
    return random_wave(rng) if rng.uniform() < wave_fraction else random_riemann(rng)


def sod() -> dict:
    """Sod's shock tube rho, p = 1, 1 | 0.125, 0.1 at x0 = 0.5."""
    return {"kind": "riemann", "bc": "neumann", "x0": 0.5, "left": [1.0, 0.0, 1.0], "right": [0.125, 0.0, 0.1]}


def benchmark_wave() -> dict:
    """rho = 1 + 0.5 sin 2 pi x, u = 0.3 sin(4 pi x + 0.5), T = 1 + 0.3 cos 2 pi x."""
    return {"kind": "wave", "bc": "periodic",
            "rho": {"mean": 1.0, "modes": [[1, 0.5, 0.0]]},
            "u": {"mean": 0.0, "modes": [[2, 0.3, 0.5]]},
            "T": {"mean": 1.0, "modes": [[1, 0.3, 0.5 * np.pi]]}}


def _series(field: dict, x: np.ndarray) -> np.ndarray:
    out = np.full_like(x, float(field["mean"]))
    for k, a, phase in field["modes"]:
        out += a * np.sin(2 * np.pi * k * x + phase)
    return out


def initial_profiles(spec: dict, x) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rho, u, T) [nx] of spec on the uniform cell centres x [nx] of [0, 1]."""
    dx = fv.check_cells(x)
    x = np.asarray(x, float)
    kind = spec.get("kind")
    if kind == "wave":
        rho, u, T = (_series(spec[name], x) for name in ("rho", "u", "T"))
    elif kind == "riemann":
        (rl, ul, pl), (rr, ur, pr), x0 = spec["left"], spec["right"], float(spec["x0"])
        UL, UR = to_conserved(rl, ul, pl / rl), to_conserved(rr, ur, pr / rr)
        frac = np.clip((x0 - (x - 0.5 * dx)) / dx, 0.0, 1.0)[:, None]   # share of each cell left of x0
        rho, u, T = primitive(frac * UL + (1 - frac) * UR)
    else:
        raise ValueError(f"initial spec: unknown kind {kind!r}; allowed: wave, riemann")
    return fv.check_state(rho, u, T, where=f"initial {kind}")
