"""The config of a kinetic concurrent-learning run (``workflow: kinetic``), validated once.

Non-dimensional units (R = 1, p = rho T). Sections: ``grid`` (cells and times of every
trajectory), ``velocity`` (the kinetic solver's velocity grid; default: one fitted to each
initial state), ``initial`` (trajectories labelled before iteration 0: explicit initial
conditions and seeded random ones), ``explore`` (random initial data per iteration),
``closure`` (the ensemble and its training), ``solver`` (the moment solver), ``selection``
(trust window on the ensemble deviation, dimensionless), ``loop`` and ``report``.
Every error names the file, the line and the key (Kn <= 0, a non-positive density or
pressure in an initial condition, a velocity grid too coarse or too narrow for the data).
"""

from __future__ import annotations

from typing import Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..configfile import ConfigError, load_config
from . import initial as ini
from .velocity import DV_PER_SIGMA_MAX, SPREAD_MIN


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Grid(_Strict):
    nx: int = Field(100, ge=16, description="cells of [0, 1] for exploration and labels")
    t_end: float = Field(0.1, gt=0)
    n_snapshots: int = Field(8, ge=1, description="kinetic snapshots saved per labelled trajectory")


class Velocity(_Strict):
    """nv, vmax: one kinetic velocity grid for every label (both or neither); None: fitted per state."""

    nv: Optional[int] = Field(None, ge=8)
    vmax: Optional[float] = Field(None, gt=0)

    @model_validator(mode="after")
    def _both(self):
        if (self.nv is None) != (self.vmax is None):
            raise ValueError("give both nv and vmax, or neither (a grid fitted to each initial state)")
        return self


class Fourier(_Strict):
    mean: float
    modes: list[tuple[int, float, float]] = Field([], description="[k, amplitude, phase]: a sin(2 pi k x + phase)")

    def values(self, x: np.ndarray) -> np.ndarray:
        return self.mean + sum(a * np.sin(2 * np.pi * k * x + ph) for k, a, ph in self.modes)


class InitialCondition(_Strict):
    """An explicit initial condition: a wave (rho, u, T Fourier series, periodic) or a Riemann
    problem (left, right: [rho, u, p], jump at x0, Neumann); kn: its Knudsen number."""

    kind: Literal["wave", "riemann"]
    kn: float = Field(gt=0)
    rho: Optional[Fourier] = None
    u: Optional[Fourier] = None
    T: Optional[Fourier] = None
    left: Optional[tuple[float, float, float]] = None
    right: Optional[tuple[float, float, float]] = None
    x0: float = Field(0.5, gt=0, lt=1)

    @field_validator("rho", "T")
    @classmethod
    def _positive_field(cls, v, info):
        if v is not None:
            lo = float(v.values(np.linspace(0, 1, 2001)).min())
            if lo <= 0:
                raise ValueError(f"{info.field_name} must be > 0 everywhere; its minimum is {lo:.4g}")
        return v

    @field_validator("left", "right")
    @classmethod
    def _positive_state(cls, v, info):
        if v is not None and (v[0] <= 0 or v[2] <= 0):
            raise ValueError(f"{info.field_name} = [rho, u, p] needs rho > 0 and p > 0, got {list(v)}")
        return v

    @model_validator(mode="after")
    def _complete(self):
        need = ("rho", "u", "T") if self.kind == "wave" else ("left", "right")
        missing = [k for k in need if getattr(self, k) is None]
        if missing:
            raise ValueError(f"a {self.kind} needs {missing}")
        return self

    def spec(self) -> dict:
        """The initial-data spec of :mod:`conlearn.kinetic.initial`."""
        if self.kind == "wave":
            return {"kind": "wave", "bc": "periodic",
                    **{k: {"mean": f.mean, "modes": [list(m) for m in f.modes]}
                       for k, f in (("rho", self.rho), ("u", self.u), ("T", self.T))}}
        return {"kind": "riemann", "bc": "neumann", "x0": self.x0, "left": list(self.left), "right": list(self.right)}


class Initial(_Strict):
    conditions: list[InitialCondition] = []
    n_random: int = Field(4, ge=0, description="random initial data labelled before iteration 0")


class Explore(_Strict):
    n_conditions: int = Field(16, ge=1, description="random initial data explored per iteration")
    kn_range: tuple[float, float] = (1e-3, 10.0)
    wave_fraction: float = Field(0.5, ge=0, le=1)

    @field_validator("kn_range")
    @classmethod
    def _kn(cls, v):
        if not (0 < v[0] < v[1]):
            raise ValueError(f"need 0 < Kn_lo < Kn_hi, got {list(v)}")
        return v


class Closure(_Strict):
    n_models: int = Field(4, ge=2)
    degree: int = Field(4, ge=3, le=7, description="degree D of the moment polynomials: M = 2D - 3 moments "
                                                     "(stress, heat flux and 2D - 5 learned)")
    hidden: list[int] = [32, 32]
    decoder_hidden: list[int] = [32]
    ae_steps: int = Field(300, ge=1)
    steps: int = Field(2000, ge=1)
    reuse_steps: int = Field(800, ge=1)
    lr: float = Field(3e-3, gt=0)
    batch: int = Field(1024, ge=16)
    linear: bool = Field(True, description="learn the closure's linear response too (more accurate on coarse "
                                            "grids; False keeps the projection closure's, hyperbolic at equilibrium)")
    hyperbolic: float = Field(0.0, ge=0, description="weight of the hyperbolicity penalty in training: the mean "
                              "squared imaginary part of the characteristic speeds at the minibatch's states")
    final_steps: int = Field(0, ge=0, description="after the last iteration, train every member this many more "
                             "steps on all the labels (the last iteration's too), warm-started; 0: no final training")
    trust_quantile: float = Field(0.0, ge=0, lt=0.5, description="the closure's input range per moment: the q and "
                                  "1 - q quantiles of the training cells' moments, widened by trust_margin of their "
                                  "span (0: min to max, widened by 0.1); the solver clips its input to it")
    trust_margin: float = Field(0.1, ge=0, description="widening of the quantile range (trust_quantile > 0)")


class Solver(_Strict):
    wave_speed: float = Field(3.0, gt=0, description="Rusanov speed |u| + wave_speed*sqrt(T); the largest "
                                                      "speed at equilibrium is the largest root of He_(D+1) (2.86 for D = 4)")
    cfl: float = Field(0.45, gt=0, le=0.5)
    w_damping: float = Field(2.0, ge=1, description="Rusanov speed of the moments W relative to U's "
                                                      "(damps the closure's non-hyperbolic modes); cfl * w_damping <= 1")
    flux: Literal["hllc", "rusanov"] = Field("hllc", description="U's flux in the final model's solve: HLLC on the "
                                             "Euler part where the mean free path is below a cell, else Rusanov "
                                             "(exploration's member solves use Rusanov)")
    scheme: Literal["hancock", "rk2"] = Field(
        "hancock", description="time stepping of the final model's solve: MUSCL-Hancock (one closure "
        "evaluation per step) or SSP-RK2 (two; exploration's member solves use RK2)")
    w_implicit: bool = Field(True, description="final model's solve: W's Rusanov damping implicit (one tridiagonal "
                             "solve per step; scheme hancock only), so its step is implicit_cfl instead of cfl")
    implicit_cfl: float = Field(0.75, gt=0, le=1, description="CFL number (on |u| + wave_speed*sqrt(T)) of the "
                                "final model's solve when w_implicit")
    rarefied_cfl: float = Field(0.9, gt=0, le=1, description="the same in the steps where the mean free path "
                                "Kn*sqrt(T)/rho is at least a cell everywhere (w_implicit only)")
    kernel: Literal["numba", "numpy"] = Field("numba", description="final model's implicit step: compiled "
                                              "(numba) or numpy (the reference); equal to round-off")

    @model_validator(mode="after")
    def _stable(self):
        if self.cfl * self.w_damping > 1:
            raise ValueError(f"cfl * w_damping = {self.cfl * self.w_damping:g} > 1 is unstable")
        if self.w_implicit and self.scheme != "hancock":
            raise ValueError("w_implicit: true needs scheme: hancock")
        return self


class Selection(_Strict):
    trust_lo: float = Field(0.02, ge=0, description="ensemble deviation below which a solve is trusted")
    trust_hi: float = Field(1e6, gt=0)
    converge_fraction: float = Field(0.95, gt=0, le=1)
    max_select: int = Field(4, ge=1)
    order: Literal["random", "largest", "balanced", "balanced-largest"] = "largest"


class Loop(_Strict):
    max_iterations: int = Field(4, ge=1)
    seed: int = 0
    label_retries: int = Field(1, ge=0)
    label_timeout_s: Optional[float] = Field(None, gt=0)
    label_last: bool = True


class Report(_Strict):
    kn: list[float] = [1e-3, 1e-2, 1e-1, 1.0, 10.0]

    @field_validator("kn")
    @classmethod
    def _kn(cls, v):
        bad = [k for k in v if not k > 0]
        if bad:
            raise ValueError(f"Knudsen numbers must be > 0, got {bad}")
        return v


class KineticConfig(_Strict):
    workflow: Literal["kinetic"] = "kinetic"
    grid: Grid = Grid()
    initial: Initial = Initial()
    velocity: Velocity = Velocity()
    explore: Explore = Explore()
    closure: Closure = Closure()
    solver: Solver = Solver()
    selection: Selection = Selection()
    loop: Loop = Loop()
    report: Report = Report()

    @field_validator("velocity")
    @classmethod
    def _velocity_range(cls, v, info):
        """A fixed velocity grid must carry every state the initial data can hold."""
        if v.nv is None or "initial" not in info.data:
            return v
        umax, tmin, tmax = state_range(info.data["initial"].conditions)
        dv = 2 * v.vmax / v.nv
        if v.vmax < umax + SPREAD_MIN * np.sqrt(tmax):
            raise ValueError(f"vmax = {v.vmax:g} is too narrow for the data (|u| <= {umax:.3g}, T <= {tmax:.3g}): "
                             f"need vmax >= {umax + SPREAD_MIN * np.sqrt(tmax):.3g}")
        if dv > DV_PER_SIGMA_MAX * np.sqrt(tmin):
            raise ValueError(f"the grid is too coarse for the velocity range: nv = {v.nv} gives dv = 2 vmax/nv = "
                             f"{dv:.3g} > {DV_PER_SIGMA_MAX:g} sqrt(T_min = {tmin:.3g}); need nv >= "
                             f"{int(np.ceil(2 * v.vmax / (DV_PER_SIGMA_MAX * np.sqrt(tmin))))}")
        return v


def state_range(conditions: list[InitialCondition]) -> tuple[float, float, float]:
    """(max |u|, min T, max T) over the random data ranges and the explicit initial conditions."""
    umax = max(ini.WAVE_UMAX, ini.RIEMANN_U[1])
    tmin = min(ini.WAVE_FLOOR, ini.RIEMANN_P[0] / ini.RIEMANN_RHO[1])
    tmax = max(1.8 + 1.5, ini.RIEMANN_P[1] / ini.RIEMANN_RHO[0])
    x = np.linspace(0, 1, 2001)
    for c in conditions:
        if c.kind == "wave":
            T = c.T.values(x)
            umax, tmin, tmax = max(umax, np.abs(c.u.values(x)).max()), min(tmin, T.min()), max(tmax, T.max())
        else:
            for r, u, p in (c.left, c.right):
                umax, tmin, tmax = max(umax, abs(u)), min(tmin, p / r), max(tmax, p / r)
    return float(umax), float(tmin), float(tmax)


def read_config(path) -> KineticConfig:
    """Read and validate ``path``; ConfigError naming file:line and key."""
    return load_config(path, KineticConfig)


__all__ = ["KineticConfig", "read_config", "ConfigError"]
