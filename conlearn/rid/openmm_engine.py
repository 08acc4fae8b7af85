"""OpenMM engine for RiD: biased and restrained Langevin MD of a molecule (OpenMM at the edge).

    engine = OpenMMEngine(cvs=(CVSpec("phi", "dihedral", (4, 6, 8, 14)),
                               CVSpec("psi", "dihedral", (6, 8, 14, 16))))
    x0 = engine.initial_state(seed=0)                       # positions [22, 3] nm
    explored = engine.biased_md(bias, 50_000, 100, seed=1, start=x0)       # MDResult
    labelled = engine.restrained_md(np.array([-1.4, 1.2]), np.array([500.0, 500.0]),
                                    25_000, 10, seed=2, start=explored.last)

The engine is a frozen dataclass of plain settings (picklable, sent to workers). The OpenMM
``System`` is built in the worker on first use and kept per process; each MD call makes a fresh
``Context`` (5 ms here), since the Langevin seed is read only when a Context is created.

System ``alanine_dipeptide_vacuum``: ``openmmtools.testsystems.AlanineDipeptideVacuum`` (AMBER
ff96 as shipped, no cutoff, HBonds constraints). Langevin middle integrator (``timestep`` ps,
``friction`` 1/ps, ``temperature`` K). Platform ``Reference`` by default: for 22 atoms it runs
~8x faster than ``CPU`` (benchmarks/results/rid.md).

Bias routes (``bias_route``): ``"grid"`` tabulates the bias once per call on a periodic
``grid_size``^d spline (d <= 2, periodic CVs); ``"linear"`` evaluates the bias every
``linear_every`` steps at the current s and applies V(r) + dV/ds(r) . (s - r) in between (any d);
``"auto"`` takes the grid where it applies. The linearised gradient is clipped at
``max_bias_force`` (a large gradient frozen for several steps diverged the MD). A RiD ensemble
bias is evaluated by its numpy twin (:mod:`conlearn.rid.openmm_bias`, ~5x faster a point than
torch autograd). CV values of saved frames come from :func:`conlearn.rid.cv.cv_values` on the
frame positions, the one definition of the CVs; ``MDResult.frames`` holds those positions.
"""

from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass

import numpy as np
import openmm
import openmm.unit as unit
import torch

from .cv import CVSpec, check_atoms, cv_values, wrap
from .engine import MDResult, kT
from .openmm_bias import fast_bias
from .openmm_forces import CVForces

SYSTEMS = {"alanine_dipeptide_vacuum": 22, "alanine_dipeptide_implicit": 22}  # name -> number of atoms
ROUTES = ("auto", "grid", "linear")
PULL_KT = 5.0  # restrained_md minimises first when a restraint term at the start exceeds this (kT)
_SYSTEM_CACHE: dict[str, tuple[str, np.ndarray]] = {}  # per process: name -> (System XML, positions nm)


def load_system(name: str) -> tuple[openmm.System, np.ndarray]:
    """A fresh copy of the named System and its initial positions [n_atoms, 3] (nm).

    Built once per process from ``openmmtools.testsystems`` (its import banner silenced).
    """
    if name not in _SYSTEM_CACHE:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            from openmmtools import testsystems
        maker = {"alanine_dipeptide_vacuum": testsystems.AlanineDipeptideVacuum,
                 "alanine_dipeptide_implicit": testsystems.AlanineDipeptideImplicit}[name]
        test = maker(constraints=openmm.app.HBonds)
        positions = np.asarray(test.positions.value_in_unit(unit.nanometer), dtype=float)
        _SYSTEM_CACHE[name] = (openmm.XmlSerializer.serialize(test.system), positions)
    xml, positions = _SYSTEM_CACHE[name]
    return openmm.XmlSerializer.deserialize(xml), positions.copy()


def _openmm_seed(seed: int) -> int:
    """A seed in [1, 2^31 - 1) (OpenMM reads 0 as 'pick one at random')."""
    return int(seed) % (2**31 - 2) + 1


@dataclass(frozen=True)
class OpenMMEngine:
    """Langevin MD of ``system`` under a RiD bias or a harmonic CV restraint.

    cvs:          the collective variables (d of them).
    temperature:  K.  timestep: ps.  friction: 1/ps.
    platform:     OpenMM platform name ("Reference" is fastest for a 22-atom molecule).
    bias_route:   "auto" | "grid" | "linear" (see the module docstring).
    grid_size:    grid intervals per CV over [-pi, pi] for the tabulated bias.
    linear_every: MD steps between bias evaluations of the linearised route.
    max_bias_force: linearised route: each |dV/ds_j| clipped to this (kJ/mol/unit). The trust switch
                  can make dV/ds spike to 400+ where <A> is large; frozen for 10 steps such a force
                  diverged 8 of 8 ala2 walkers (4 CVs); k = 5 with 100, k = 10 with 50, k = 2 with
                  200 and k = 1 diverged none. It shapes exploration only, never a label.
    """

    cvs: tuple[CVSpec, ...]
    system: str = "alanine_dipeptide_vacuum"
    temperature: float = 300.0
    timestep: float = 0.002
    friction: float = 1.0
    platform: str = "Reference"
    bias_route: str = "auto"
    grid_size: int = 72
    linear_every: int = 5
    max_bias_force: float = 100.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "cvs", tuple(self.cvs))
        _check(self)

    @property
    def d(self) -> int:
        return len(self.cvs)

    @property
    def n_atoms(self) -> int:
        return SYSTEMS[self.system]

    def route(self, bias) -> str | None:
        """The bias route a biased_md call takes (None without a bias)."""
        if bias is None:
            return None
        if self.bias_route != "auto":
            return self.bias_route
        return "grid" if self.d <= 2 and all(s.periodic for s in self.cvs) else "linear"

    def initial_state(self, seed: int) -> np.ndarray:
        """The system's shipped positions [n_atoms, 3] (nm); the same for every seed."""
        return load_system(self.system)[1]

    # -- MD --------------------------------------------------------------------------------------
    def biased_md(self, bias, n_steps: int, frame_every: int, seed: int,
                  start: np.ndarray | None) -> MDResult:
        """MD under ``bias`` (None: plain MD); CVs of every ``frame_every``-th step saved.

        bias: ``energy_and_grad(s [n, d]) -> (V [n], dV/ds [n, d])`` (kJ/mol, kJ/mol/unit).
        """
        route = self.route(bias)
        if bias is not None and int(getattr(bias, "d", self.d)) != self.d:
            raise ValueError(f"the bias has d={bias.d} but the engine has {self.d} CVs")
        bias = fast_bias(bias) if bias is not None else None
        cvf = CVForces(self.cvs)
        force = None
        if route == "grid":
            force = cvf.tabulated(bias, self.grid_size)
        elif route == "linear":
            force = cvf.linearised()
        sim = _Simulation(self, force, seed, start)
        if route != "linear":
            return sim.run(n_steps, frame_every)
        return sim.run(n_steps, frame_every, lambda context: set_linearised(context, cvf, force, bias,
                                                                            self.max_bias_force),
                       self.linear_every)

    def restrained_md(self, center: np.ndarray, kappa: np.ndarray, n_steps: int, frame_every: int,
                      seed: int, start: np.ndarray | None) -> MDResult:
        """MD under 0.5 sum_j kappa_j wrap(s_j - center_j)^2 (kappa [d] kJ/mol/unit^2, center [d])."""
        center = np.asarray(center, dtype=float).reshape(-1)
        kappa = np.asarray(kappa, dtype=float).reshape(-1)
        if center.shape != (self.d,) or kappa.shape != (self.d,):
            raise ValueError(f"restrained_md: center and kappa need {self.d} values, got "
                             f"{center.shape[0]} and {kappa.shape[0]}")
        if np.any(kappa <= 0) or not np.all(np.isfinite(center)):
            raise ValueError(f"restrained_md: kappa must be > 0 and center finite, got {kappa}, {center}")
        cvf = CVForces(self.cvs)
        force = cvf.restraint()
        sim = _Simulation(self, force, seed, start)
        for j in range(self.d):
            sim.context.setParameter(f"rid_k{j}", float(kappa[j]))
            sim.context.setParameter(f"rid_c{j}", float(center[j]))
        # a start far from the centre would be flung there in a few steps: relax it first
        stretch = 0.5 * kappa * wrap(cvf.values(force, sim.context) - center, cvf.periodic) ** 2
        if stretch.max() > PULL_KT * kT(self.temperature):
            openmm.LocalEnergyMinimizer.minimize(sim.context, 1.0, 500)
            sim.context.setVelocitiesToTemperature(self.temperature, _openmm_seed(seed))
        return sim.run(n_steps, frame_every)


def set_linearised(context: openmm.Context, cvf: CVForces, force: openmm.CustomCVForce, bias,
                   max_force: float = math.inf) -> np.ndarray:
    """Evaluate ``bias`` at the context's CVs s [d] and freeze it there: V(s) + dV/ds(s) . (s' - s),
    each component of dV/ds clipped to [-max_force, max_force]. Returns s."""
    s = cvf.values(force, context)
    v, g = bias.energy_and_grad(s[None, :])
    g = np.clip(np.asarray(g, dtype=float).reshape(-1), -max_force, max_force)
    context.setParameter("rid_v", float(np.asarray(v).reshape(-1)[0]))
    for j, (gj, sj) in enumerate(zip(g, s)):
        context.setParameter(f"rid_g{j}", float(gj))
        context.setParameter(f"rid_r{j}", float(sj))
    return s


class _Simulation:
    """One Context of ``engine``'s system with ``force`` (or none) added, at ``start``."""

    def __init__(self, engine: OpenMMEngine, force: openmm.Force | None, seed: int,
                 start: np.ndarray | None):
        check_atoms(engine.cvs, engine.n_atoms, where="engine.cvs: ")  # the config names the line earlier
        system, x0 = load_system(engine.system)
        if force is not None:
            system.addForce(force)
        self.engine, self.force = engine, force
        self.integrator = openmm.LangevinMiddleIntegrator(engine.temperature, engine.friction, engine.timestep)
        self.integrator.setRandomNumberSeed(_openmm_seed(seed))
        platform = openmm.Platform.getPlatformByName(engine.platform)
        props = {"Threads": "1"} if engine.platform == "CPU" else {}
        self.context = openmm.Context(system, self.integrator, platform, props)
        x = x0 if start is None else np.asarray(start, dtype=float)
        if x.shape != x0.shape:
            raise ValueError(f"start positions have shape {x.shape}, the system needs {x0.shape}")
        self.context.setPositions(x)
        self.context.applyConstraints(1e-6)
        self.context.setVelocitiesToTemperature(engine.temperature, _openmm_seed(seed))

    def positions(self) -> np.ndarray:
        return self.context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)

    def run(self, n_steps: int, frame_every: int, update=None, update_every: int = 0) -> MDResult:
        """n_steps of MD, positions kept every frame_every steps; update(context) called every
        update_every steps (before the step it applies to)."""
        if n_steps < 0 or frame_every < 1:
            raise ValueError(f"need n_steps >= 0 and frame_every >= 1, got {n_steps}, {frame_every}")
        frames, step = [], 0
        while step < n_steps:
            if update is not None and step % update_every == 0:
                update(self.context)
            nxt = min(n_steps, (step // frame_every + 1) * frame_every)
            if update is not None:
                nxt = min(nxt, (step // update_every + 1) * update_every)
            self.integrator.step(nxt - step)
            step = nxt
            if step % frame_every == 0:
                frames.append(self.positions())
        last = self.positions()
        if not np.all(np.isfinite(last)):
            raise FloatingPointError(f"MD diverged within {n_steps} steps (positions not finite); a smaller "
                                     f"timestep, engine.max_bias_force or engine.linear_every may help")
        cvs = self.engine.cvs
        cv = (cv_values(cvs, torch.as_tensor(np.array(frames))).detach().numpy().astype(np.float64)
              if frames else np.zeros((0, len(cvs))))
        return MDResult(cv=cv, last=np.asarray(last, dtype=np.float64), n_steps=int(n_steps),
                        frames=np.array(frames, dtype=np.float64).reshape(len(frames), *last.shape))


def _check(engine: OpenMMEngine) -> None:
    """Raise ValueError naming the first bad setting (key ``engine.<name>``)."""
    def bad(key: str, msg: str) -> ValueError:
        return ValueError(f"engine.{key}: {msg}")

    if engine.system not in SYSTEMS:
        raise bad("system", f"unknown system {engine.system!r}; known: {sorted(SYSTEMS)}")
    if not engine.cvs:
        raise bad("cvs", "at least one CV is needed")
    for key in ("temperature", "timestep", "friction", "max_bias_force"):
        value = getattr(engine, key)
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise bad(key, f"must be a positive number, got {value!r}")
    names = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
    if engine.platform not in names:
        raise bad("platform", f"unknown platform {engine.platform!r}; available: {names}")
    if engine.bias_route not in ROUTES:
        raise bad("bias_route", f"must be one of {list(ROUTES)}, got {engine.bias_route!r}")
    if engine.bias_route == "grid" and (len(engine.cvs) > 2 or not all(s.periodic for s in engine.cvs)):
        raise bad("bias_route", "'grid' needs 1 or 2 periodic (dihedral) CVs; use 'linear' or 'auto'")
    for key, low in (("grid_size", 8), ("linear_every", 1)):
        value = getattr(engine, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise bad(key, f"must be an integer >= {low}, got {value!r}")

