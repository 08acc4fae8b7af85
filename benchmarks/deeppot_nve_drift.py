"""NVE energy drift of a compressed DeepPot against its exact model (issue 14 done-when).

192-atom water (data_3 frame 0), velocities from Maxwell-Boltzmann at 300 K (seeded, no net
momentum), velocity Verlet through ASE for ``--ps`` ps at ``--dt-fs`` fs, the same start for
both models. Per model: drift = slope of a linear fit of the total energy (meV/atom/ps), its
largest excursion from the start (meV/atom), CPU s per step; then the ratio of the drifts
(compressed / exact; the done-when asks ≤ 1.2 in magnitude).

Calculators: ``--calc normal`` is conlearn's ASE calculator (``DeepPotCalculator``: a host
neighbour list per step); ``--calc fast`` an ASE calculator over
:class:`conlearn.atoms.deeppot.fast.FastEvaluator` (Verlet list with rebuilds, fixed shapes):
the same energies to round-off, so its drift checks the rebuilds in real dynamics too.

    python benchmarks/deeppot_nve_drift.py --model model.pt [--ps 1] [--dt-fs 0.5] [--calc normal]
    python benchmarks/deeppot_nve_drift.py --model model.pt --quick      # 0.1 ps, both calculators
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "water"
if not DATA.is_dir():
    DATA = HERE / "data_gpu" / "water"

from ase import Atoms, units  # noqa: E402
from ase.calculators.calculator import Calculator, all_changes  # noqa: E402
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary  # noqa: E402
from ase.md.verlet import VelocityVerlet  # noqa: E402

from conlearn.atoms.calculator import DeepPotCalculator  # noqa: E402
from conlearn.atoms.dataset import load_systems  # noqa: E402
from conlearn.atoms.deeppot.compress import compress_model, min_neighbor_distance  # noqa: E402
from conlearn.atoms.deeppot.fast import FastEvaluator  # noqa: E402
from conlearn.atoms.deeppot.model import load_model  # noqa: E402
from conlearn.atoms.neighbors import NeighborError  # noqa: E402


class FastCalculator(Calculator):
    """ASE calculator (energy, forces) over a :class:`FastEvaluator` of one structure."""

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, model, atoms: Atoms, **kwargs):
        super().__init__()
        types = remap_types_symbols(model.type_map, atoms.get_chemical_symbols())
        self.fe = FastEvaluator(model, types, atoms.cell.array, atoms.pbc, **kwargs)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        out = self.fe.compute(self.atoms.positions, self.atoms.cell.array)
        e = float(out["energy"][0])
        self.results = {"energy": e, "free_energy": e,
                        "forces": out["forces"][0].detach().cpu().numpy().astype(np.float64)}


def as_float64(model):
    """The same weights in a float64 model (the drift measures the model, not float32 round-off)."""
    from dataclasses import asdict

    from conlearn.atoms.deeppot.model import DeepPot, DeepPotSpec

    if model.spec.precision == "float64":
        return model
    out = DeepPot(DeepPotSpec(**{**asdict(model.spec), "precision": "float64"}))
    out.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in model.state_dict().items()})
    return out.eval()


def remap_types_symbols(type_map, symbols) -> np.ndarray:
    index = {s: k for k, s in enumerate(type_map)}
    return np.array([index[s] for s in symbols], dtype=np.int64)


def start_atoms(seed: int) -> Atoms:
    s = load_systems(DATA / "data_3")[0]
    atoms = Atoms(symbols=[s.type_map[t] for t in s.types], positions=s.coords[0], cell=s.cells[0], pbc=True)
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(seed))
    Stationary(atoms)
    return atoms


def nve(model, kind: str, ps: float, dt_fs: float, seed: int) -> dict:
    """Run NVE from the seeded start; energies every 10 steps."""
    atoms = start_atoms(seed)
    atoms.calc = DeepPotCalculator(model) if kind == "normal" else FastCalculator(model, atoms)
    dyn = VelocityVerlet(atoms, timestep=dt_fs * units.fs)
    t, e = [], []

    def record():
        t.append(dyn.nsteps * dt_fs / 1000)
        e.append(atoms.get_total_energy())

    dyn.attach(record, interval=10)
    c0 = time.process_time()
    n_steps = int(round(ps * 1000 / dt_fs))
    stopped = ""
    try:
        dyn.run(n_steps)
    except NeighborError as err:  # the model let atoms crowd beyond sel: report the steps done
        stopped = f"stopped at step {dyn.nsteps}: {str(err).split(';')[0]}"
    n_steps = dyn.nsteps
    cpu = (time.process_time() - c0) / max(n_steps, 1)
    e = (np.array(e) - e[0]) / len(atoms) * 1000  # meV/atom
    out = {"steps": n_steps, "drift_mev_atom_ps": float(np.polyfit(t, e, 1)[0]),
           "max_dev_mev_atom": float(np.abs(e).max()), "cpu_s_per_step": cpu,
           "T_end": float(atoms.get_temperature()), "stopped": stopped}
    if kind == "fast":
        out["rebuilds"] = atoms.calc.fe.n_builds
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="a trained conlearn water model (model.pt; run in float64)")
    ap.add_argument("--ps", type=float, default=1.0)
    ap.add_argument("--dt-fs", type=float, default=0.5)
    ap.add_argument("--calc", default="normal", help="normal, fast, or both")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="0.1 ps with both calculators")
    ap.add_argument("--json", default=None, help="write the rows here")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.quick:
        a.ps, a.calc = 0.1, "both"
    exact = as_float64(load_model(a.model))  # a float32-trained model runs in float64 here
    rmin = min_neighbor_distance(load_systems([DATA / f"data_{i}" for i in range(3)]), exact.spec.rcut)
    models = {"exact": exact, "compressed": compress_model(exact, min_dist=rmin)}
    kinds = ["normal", "fast"] if a.calc == "both" else [a.calc]
    rows = []
    for kind in kinds:
        for name, m in models.items():
            r = {"model": name, "calc": kind, **nve(m, kind, a.ps, a.dt_fs, a.seed)}
            rows.append(r)
            print(json.dumps(r), flush=True)
    print(f"\nNVE, 192-atom water, {a.ps:g} ps at {a.dt_fs:g} fs, 300 K start (seed {a.seed}), "
          f"float64, {a.threads} thread(s)\n")
    print("| calculator | model | drift meV/atom/ps | max abs dev meV/atom | CPU s/step | T end K |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['calc']} | {r['model']} | {r['drift_mev_atom_ps']:.4f} | {r['max_dev_mev_atom']:.4f} | "
              f"{r['cpu_s_per_step']:.3f} | {r['T_end']:.0f} |")
    for kind in kinds:
        d = {r["model"]: r["drift_mev_atom_ps"] for r in rows if r["calc"] == kind}
        ratio = abs(d["compressed"]) / abs(d["exact"])
        print(f"{kind}: |drift compressed| / |drift exact| = {ratio:.2f} (target <= 1.2)")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
