"""Reference free-energy surfaces by well-tempered metadynamics (``openmm.app.Metadynamics``).

    fes = metadynamics_fes(MetadSettings(n_steps=10_000_000), engine, seed=1)
    fes["A"]        # [grid - 1, grid - 1] kJ/mol, minimum 0, at (axis[i], axis[j])
    fes["axis"]     # numpy.linspace(-pi, pi, grid)[:-1] (rad)

Two CVs, both periodic (dihedrals). The free energy is the well-tempered estimate from the
final bias, A = -(T + dT) / dT * V with dT = (bias_factor - 1) T, tabulated by OpenMM on
``grid`` points per axis over [-pi, pi] (the last equal to the first, dropped here).
Snapshots every ``n_steps / snapshots`` steps show how the estimate converges.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import openmm
import openmm.app as app

from .openmm_engine import OpenMMEngine, _openmm_seed, load_system
from .openmm_forces import CVForces, _leaf_force


@dataclass(frozen=True)
class MetadSettings:
    """Well-tempered metadynamics on two dihedral CVs.

    n_steps: MD steps.  bias_factor: (T + dT) / T.  height: initial Gaussian height (kJ/mol).
    width: Gaussian standard deviation (rad).  frequency: steps between Gaussians.
    grid: bias grid points per axis over [-pi, pi].  snapshots: FES estimates kept along the run.
    """

    n_steps: int = 10_000_000
    bias_factor: float = 6.0
    height: float = 1.0
    width: float = 0.35
    frequency: int = 250
    grid: int = 72
    snapshots: int = 4

    def key(self) -> dict:
        return asdict(self)


def metadynamics_fes(settings: MetadSettings, engine: OpenMMEngine, seed: int) -> dict:
    """One well-tempered metadynamics run of ``engine``'s system on its two dihedral CVs.

    Returns {"axis": [g], "A": [g, g] (final, min 0), "snapshots": [k, g, g], "snapshot_steps": [k],
    "wall_s": float, "n_steps": int}, g = grid - 1, A[i, j] at (axis[i], axis[j]) kJ/mol.
    """
    cvf = CVForces(engine.cvs)
    if cvf.d != 2 or not all(cvf.periodic) or len(cvf.leaves) != 2:
        raise ValueError("metadynamics_fes needs exactly two dihedral CVs")
    system, x0 = load_system(engine.system)
    variables = [app.BiasVariable(_leaf_force(leaf), -math.pi, math.pi, settings.width, periodic=True,
                                  gridWidth=settings.grid) for leaf in cvf.leaves]
    metad = app.Metadynamics(system, variables, engine.temperature, settings.bias_factor, settings.height,
                             settings.frequency)
    integrator = openmm.LangevinMiddleIntegrator(engine.temperature, engine.friction, engine.timestep)
    integrator.setRandomNumberSeed(_openmm_seed(seed))
    topology = app.Topology()  # Simulation needs one; only the context and step counter are used
    chain = topology.addChain()
    residue = topology.addResidue("MOL", chain)
    for i in range(system.getNumParticles()):
        topology.addAtom(f"X{i}", None, residue)
    sim = app.Simulation(topology, system, integrator, openmm.Platform.getPlatformByName(engine.platform))
    sim.context.setPositions(x0)
    sim.context.applyConstraints(1e-6)
    sim.context.setVelocitiesToTemperature(engine.temperature, _openmm_seed(seed))
    t0 = time.perf_counter()
    every = max(settings.frequency, settings.n_steps // settings.snapshots // settings.frequency * settings.frequency)
    snaps, steps = [], []
    done = 0
    while done < settings.n_steps:
        n = min(every, settings.n_steps - done)
        metad.step(sim, n)
        done += n
        snaps.append(_fes(metad))
        steps.append(done)
    return {"axis": np.linspace(-math.pi, math.pi, settings.grid)[:-1], "A": snaps[-1],
            "snapshots": np.array(snaps), "snapshot_steps": np.array(steps),
            "wall_s": time.perf_counter() - t0, "n_steps": int(done)}


def _fes(metad: app.Metadynamics) -> np.ndarray:
    """The current estimate A [g, g] (kJ/mol, minimum 0), A[i, j] at (phi_i, psi_j)."""
    f = np.asarray(metad.getFreeEnergy().value_in_unit(openmm.unit.kilojoule_per_mole))  # [psi, phi]
    a = f[:-1, :-1].T
    return a - a.min()
