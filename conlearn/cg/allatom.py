"""The all-atom reference: OpenMM SPC/E water and methanol boxes, free and bead-restrained.

* SPC/E: OpenMM's bundled ``spce.xml`` (rigid water), a box of ``n_molecules`` waters from
  ``Modeller.addSolvent`` scaled (molecule centres only) to ``density`` g/cm^3.
* Methanol: the 125-molecule AMBER (GAFF) box shipped with openmmtools
  (``openmmtools/data/methanol-box``), scaled the same way (the shipped box is at 0.50 g/cm^3).

PME, ``cutoff_nm``, LangevinMiddleIntegrator, CPU platform with ``threads`` threads. Units:
nm, ps, kJ/mol, kJ/mol/nm, amu, K. Forces are the force field's (constraint forces excluded).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

N_METHANOL_BOX = 125


@dataclass(frozen=True)
class AllAtomSpec:
    """An all-atom liquid in an orthorhombic box at fixed density (NVT).

    Attributes:
        liquid: "spce" (SPC/E water) or "methanol" (125 molecules only).
        n_molecules: number of molecules.
        temperature: K; dt_fs: fs; cutoff_nm: nm (at most half the box); friction_per_ps: 1/ps.
        density: g/cm^3 the box is scaled to (None: the box as built).
        platform: OpenMM platform name; threads: CPU threads.
    """

    liquid: str = "spce"
    n_molecules: int = 236
    temperature: float = 300.0
    dt_fs: float = 2.0
    cutoff_nm: float = 0.9
    friction_per_ps: float = 1.0
    density: float | None = None
    platform: str = "CPU"
    threads: int = 1

    def __post_init__(self):
        if self.liquid not in ("spce", "methanol"):
            raise ValueError(f"AllAtomSpec.liquid {self.liquid!r} is not one of spce, methanol")
        if self.liquid == "methanol" and self.n_molecules != N_METHANOL_BOX:
            raise ValueError(f"AllAtomSpec: the methanol box has {N_METHANOL_BOX} molecules, "
                             f"not n_molecules={self.n_molecules}")
        if self.n_molecules < 2:
            raise ValueError(f"AllAtomSpec.n_molecules must be >= 2, got {self.n_molecules}")

    @property
    def target_density(self) -> float:
        """g/cm^3: ``density`` or the liquid's at 298-300 K (water 0.997, methanol 0.787)."""
        if self.density is not None:
            return self.density
        return 0.997 if self.liquid == "spce" else 0.787


def _openmm():
    import openmm
    import openmm.app as app
    import openmm.unit as unit
    return openmm, app, unit


def _scale_to_density(topology, pos: np.ndarray, masses: np.ndarray, box: np.ndarray,
                      density: float) -> tuple[np.ndarray, np.ndarray]:
    """Move molecule centres of mass (molecules kept rigid) into a cube of the given density."""
    mol = np.array([a.residue.index for a in topology.atoms()])
    L = (masses.sum() * 1.66053906660e-3 / density) ** (1.0 / 3.0)
    scale = L / box
    out = pos.copy()
    for k in np.unique(mol):
        sel = mol == k
        com = (pos[sel] * masses[sel, None]).sum(0) / masses[sel].sum()
        out[sel] += com * (scale - 1.0)
    return out, np.full(3, L)


def _methanol_dir() -> Path:
    """openmmtools' data folder for the methanol box, found without importing openmmtools."""
    spec = importlib.util.find_spec("openmmtools")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the methanol box needs openmmtools (pip install openmmtools)")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "methanol-box"


def build_system(spec: AllAtomSpec):
    """``(topology, system, positions [n_atoms, 3] nm, box [3] nm)`` for ``spec``; the system
    is a fresh copy each call (built once per process and spec)."""
    openmm, _, _ = _openmm()
    topology, xml, pos, box = _build(spec)
    return topology, openmm.XmlSerializer.deserialize(xml), pos.copy(), box.copy()


@functools.lru_cache(maxsize=4)
def _build(spec: AllAtomSpec):
    openmm, app, unit = _openmm()
    if spec.liquid == "spce":
        ff = app.ForceField("spce.xml")
        mod = app.Modeller(app.Topology(), [])
        mod.addSolvent(ff, model="spce", numAdded=spec.n_molecules)
        topology, positions = mod.topology, mod.positions
        make = lambda top: ff.createSystem(top, nonbondedMethod=app.PME, rigidWater=True,  # noqa
                                           nonbondedCutoff=spec.cutoff_nm * unit.nanometer,
                                           constraints=app.HBonds)
    else:
        base = _methanol_dir()
        prmtop = app.AmberPrmtopFile(str(base / "methanol-box.prmtop"))
        positions = app.AmberInpcrdFile(str(base / "methanol-box.crd")).getPositions()
        topology = prmtop.topology
        make = lambda top: prmtop.createSystem(nonbondedMethod=app.PME,  # noqa: E731
                                               nonbondedCutoff=spec.cutoff_nm * unit.nanometer,
                                               constraints=app.HBonds)
    pos = np.array(positions.value_in_unit(unit.nanometer))
    box = np.diag(topology.getPeriodicBoxVectors().value_in_unit(unit.nanometer)).copy()
    masses = np.array([a.element.mass.value_in_unit(unit.dalton) for a in topology.atoms()])
    pos, box = _scale_to_density(topology, pos, masses, box, spec.target_density)
    if spec.cutoff_nm > 0.5 * box.min():
        raise ValueError(f"AllAtomSpec.cutoff_nm {spec.cutoff_nm} exceeds half the box "
                         f"({box.min():.3f} nm) for {spec.n_molecules} molecules")
    topology.setPeriodicBoxVectors(np.diag(box) * unit.nanometer)
    system = make(topology)
    system.setDefaultPeriodicBoxVectors(*[openmm.Vec3(*row) * unit.nanometer for row in np.diag(box)])
    return topology, openmm.XmlSerializer.serialize(system), pos, box


def make_simulation(spec: AllAtomSpec, topology, system, seed: int):
    openmm, app, unit = _openmm()
    integ = openmm.LangevinMiddleIntegrator(spec.temperature * unit.kelvin,
                                            spec.friction_per_ps / unit.picosecond,
                                            spec.dt_fs * unit.femtosecond)
    integ.setRandomNumberSeed(int(seed) % 2**31)
    platform = openmm.Platform.getPlatformByName(spec.platform)
    props = {"Threads": str(spec.threads)} if spec.platform == "CPU" else {}
    return app.Simulation(topology, system, integ, platform, props)


def topology_arrays(topology) -> dict:
    """``masses`` [n_atoms] amu, ``molecule_of_atom`` [n_atoms], ``atom_names`` [n_atoms]."""
    _, _, unit = _openmm()
    atoms = list(topology.atoms())
    return {"masses": np.array([a.element.mass.value_in_unit(unit.dalton) for a in atoms]),
            "molecule_of_atom": np.array([a.residue.index for a in atoms]),
            "atom_names": np.array([a.name for a in atoms])}


def _cache_path(cache_dir, spec, n_steps, save_every, seed, equil_steps) -> Path:
    key = json.dumps({"spec": asdict(spec), "n_steps": n_steps, "save_every": save_every,
                      "seed": seed, "equil_steps": equil_steps, "v": 1}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return Path(cache_dir) / f"{spec.liquid}{spec.n_molecules}_{digest}.npz"


def run_allatom(spec: AllAtomSpec, n_steps: int, save_every: int, seed: int, start: dict | None = None,
                *, equil_steps: int = 0, cache_dir: str | Path | None = None) -> dict:
    """Run NVT all-atom MD and return frames every ``save_every`` steps.

    Args:
        start: a previous result's ``state`` (positions, velocities, box) to continue from;
            without it the box is built, minimised and given velocities from ``seed``.
        equil_steps: steps run (not saved) before the ``n_steps`` production steps.
        cache_dir: if given (e.g. ``runs/cg_allatom``) and ``start`` is None, the result is
            read from / written to an npz there, keyed by the settings.
    Returns:
        dict: ``positions``, ``forces`` ``[T, n_atoms, 3]`` (nm, kJ/mol/nm; positions
        continuous, not wrapped), ``box`` ``[3]``, ``masses``, ``molecule_of_atom``,
        ``temperature`` ``[T]`` K, ``potential_energy`` ``[T]`` kJ/mol, ``steps``, ``wall_s``
        and ``cpu_s`` (production only; CPU time of the process, robust to a loaded machine),
        ``state``.
    """
    path = None
    if cache_dir is not None and start is None:
        path = _cache_path(cache_dir, spec, n_steps, save_every, seed, equil_steps)
        if path.is_file():
            return load_result(path)
    openmm, app, unit = _openmm()
    topology, system, pos, box = build_system(spec)
    sim = make_simulation(spec, topology, system, seed)
    if start is None:
        sim.context.setPositions(pos * unit.nanometer)
        sim.minimizeEnergy(maxIterations=500)
        sim.context.setVelocitiesToTemperature(spec.temperature * unit.kelvin, int(seed) % 2**31)
    else:
        set_state(sim, start)
    if equil_steps:
        sim.step(equil_steps)
    n_dof = 3 * system.getNumParticles() - system.getNumConstraints() - 3
    frames = {k: [] for k in ("positions", "forces", "temperature", "potential_energy")}
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n_steps // save_every):
        sim.step(save_every)
        st = sim.context.getState(getPositions=True, getForces=True, getEnergy=True)
        frames["positions"].append(st.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
        frames["forces"].append(st.getForces(asNumpy=True).value_in_unit(
            unit.kilojoule_per_mole / unit.nanometer))
        ke = st.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole)
        frames["temperature"].append(2 * ke / (n_dof * 0.00831446261815324))
        frames["potential_energy"].append(st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    out = {k: np.array(v, dtype=float) for k, v in frames.items()}
    out.update(topology_arrays(topology))
    out.update(box=box, steps=n_steps, wall_s=wall, cpu_s=cpu, state=get_state(sim))
    if path is not None:
        save_result(path, out)
    return out


def get_state(sim) -> dict:
    """``positions``, ``velocities`` ``[n_atoms, 3]`` and ``box`` ``[3]`` of a simulation."""
    _, _, unit = _openmm()
    st = sim.context.getState(getPositions=True, getVelocities=True)
    return {"positions": st.getPositions(asNumpy=True).value_in_unit(unit.nanometer),
            "velocities": st.getVelocities(asNumpy=True).value_in_unit(unit.nanometer / unit.picosecond),
            "box": np.diag(st.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)).copy()}


def set_state(sim, state: dict) -> None:
    openmm, _, unit = _openmm()
    box = np.asarray(state["box"], dtype=float)
    sim.context.setPeriodicBoxVectors(*[openmm.Vec3(*row) for row in np.diag(box)])
    sim.context.setPositions(np.asarray(state["positions"]) * unit.nanometer)
    sim.context.setVelocities(np.asarray(state["velocities"]) * unit.nanometer / unit.picosecond)


def save_result(path: str | Path, res: dict) -> Path:
    """Write a run_allatom result as npz (atomic rename; no pickle)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {k: v for k, v in res.items() if k != "state"}
    arrays.update({f"state_{k}": v for k, v in res["state"].items()})
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)
    return path


def load_result(path: str | Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        res = {k: z[k] for k in z.files if not k.startswith("state_")}
        res["state"] = {k[6:]: z[k] for k in z.files if k.startswith("state_")}
    for k in ("steps",):
        res[k] = int(res[k])
    res["wall_s"] = float(res["wall_s"])
    res["cpu_s"] = float(res["cpu_s"]) if "cpu_s" in res else float("nan")
    return res


def _restraint_force(mapping, targets: np.ndarray, box: np.ndarray, k: float):
    """A CustomCentroidBondForce: ``k/2 |R_I - R0_I|^2`` (minimum image) on every bead's COM."""
    openmm, _, _ = _openmm()
    expr = ("0.5*k_rest*(dx*dx+dy*dy+dz*dz);"
            "dx=x1-x0-Lx*floor((x1-x0)/Lx+0.5);dy=y1-y0-Ly*floor((y1-y0)/Ly+0.5);"
            "dz=z1-z0-Lz*floor((z1-z0)/Lz+0.5)")
    f = openmm.CustomCentroidBondForce(1, expr)
    for name, val in (("k_rest", k), ("Lx", box[0]), ("Ly", box[1]), ("Lz", box[2])):
        f.addGlobalParameter(name, float(val))
    for p in ("x0", "y0", "z0"):
        f.addPerBondParameter(p)
    for b in range(mapping.n_beads):
        atoms = np.flatnonzero(mapping.bead_of_atom == b)
        f.addGroup([int(a) for a in atoms], [float(w) for w in mapping.weights[atoms]])
        f.addBond([b], [float(v) for v in targets[b]])
    f.setForceGroup(1)
    return f


def place_molecules(mapping, template: np.ndarray, box, bead_positions) -> np.ndarray:
    """Atom positions ``[n_atoms, 3]``: each bead's atoms of ``template`` translated rigidly so
    the mapped bead lands on ``bead_positions`` ``[N, 3]`` nm (beads made whole first)."""
    R_t = mapping.map_positions(template, box)
    shift = np.asarray(bead_positions, dtype=float) - R_t
    anchor = template[mapping._anchor_atom()][mapping.bead_of_atom]
    d = template - anchor
    d -= box * np.round(d / box)                          # whole beads
    return anchor + d + shift[mapping.bead_of_atom]


def restrained_mean_force(spec: AllAtomSpec, mapping, bead_positions, box, k_restraint: float,
                          n_steps: int, seed: int, equil_steps: int, *, template=None,
                          sample_every: int = 10, n_blocks: int = 5) -> dict:
    """Mean mapped force on a CG configuration from all-atom MD restrained to it.

    Harmonic restraints ``k_restraint/2 |M(x)_I - R_I|^2`` (kJ/mol/nm^2, minimum image) hold
    the mapped bead positions near ``bead_positions`` ``[N, 3]`` nm; after minimisation and
    ``equil_steps``, the mapped force of the force field alone (restraint excluded) is
    averaged over ``n_steps`` (sampled every ``sample_every`` steps). The starting atoms are
    ``template`` (``[n_atoms, 3]``; default: the built box) with each molecule translated onto
    its bead, so the mapping must have one bead per molecule.

    Returns:
        dict: ``mean_force`` ``[N, 3]`` kJ/mol/nm, ``stderr`` ``[N, 3]`` (block standard error
        over ``n_blocks`` blocks), ``restraint_force`` ``[N, 3]`` (mean restraint force on the
        beads, ~ -mean_force at equilibrium), ``rms_offset`` nm (bead - target), ``steps``,
        ``wall_s``.
    """
    openmm, app, unit = _openmm()
    t0 = time.perf_counter()
    topology, system, pos, built_box = build_system(spec)
    box = np.asarray(box, dtype=float)
    targets = np.asarray(bead_positions, dtype=float)
    mol = topology_arrays(topology)["molecule_of_atom"]
    if mapping.n_atoms != len(mol) or targets.shape != (mapping.n_beads, 3):
        raise ValueError(f"restrained_mean_force: mapping of {mapping.n_atoms} atoms / "
                         f"{mapping.n_beads} beads, bead_positions {targets.shape}, topology "
                         f"of {len(mol)} atoms")
    if len(np.unique(mol)) != mapping.n_beads or len(np.unique(np.c_[mol, mapping.bead_of_atom],
                                                            axis=0)) != mapping.n_beads:
        raise ValueError("restrained_mean_force places molecules by translation: the mapping "
                         "must have exactly one bead per molecule")
    if not np.allclose(box, built_box, atol=1e-6):
        raise ValueError(f"restrained_mean_force: box {box} differs from the spec's {built_box}")
    system.addForce(_restraint_force(mapping, targets, box, k_restraint))
    sim = make_simulation(spec, topology, system, seed)
    x0 = place_molecules(mapping, pos if template is None else np.asarray(template), box, targets)
    sim.context.setPositions(x0 * unit.nanometer)
    sim.minimizeEnergy(maxIterations=500)
    sim.context.setVelocitiesToTemperature(spec.temperature * unit.kelvin, int(seed) % 2**31)
    sim.step(equil_steps)
    forces, offsets = [], []
    for _ in range(max(n_steps // sample_every, n_blocks)):
        sim.step(sample_every)
        st = sim.context.getState(getForces=True, getPositions=True, groups={0})
        f = st.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
        x = st.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        forces.append(mapping.map_forces(f))
        d = mapping.map_positions(x, box) - targets
        offsets.append(d - box * np.round(d / box))
    F, off = np.array(forces), np.array(offsets)
    blocks = np.array([b.mean(0) for b in np.array_split(F, n_blocks)])
    return {"mean_force": F.mean(0), "stderr": blocks.std(0, ddof=1) / np.sqrt(n_blocks),
            "restraint_force": -k_restraint * off.mean(0),
            "rms_offset": float(np.sqrt((off ** 2).sum(-1).mean())),
            "steps": equil_steps + len(F) * sample_every, "wall_s": time.perf_counter() - t0}
