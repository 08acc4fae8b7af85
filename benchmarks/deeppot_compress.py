"""Compressed DeepPot on liquid water: accuracy, inference time and NVE energy drift.

Rows: conlearn exact (float64), compressed (float64), exact and compressed float32, and
deepmd-kit's uncompressed model (PyTorch backend) when its venv exists (see
benchmarks/deepmd_ref.py; ``--install-deepmd`` installs it; otherwise the row says why not).

* accuracy: max |ΔF| (eV/Å) and max |ΔE|/atom (eV) against the exact float64 model over
  ``--frames`` frames of data_3;
* time: energy + forces of one 192-atom frame (neighbour list included), median over
  ``--repeat`` calls after warm-up, CPU time of this process (``process_time``; on a shared
  machine wall time measures the other users too) and wall time, ``--threads`` threads;
* ``--md-ps``: NVE (velocity Verlet, ASE) from data_3 frame 0 at 300 K, time step
  ``--dt-fs``; drift = slope of a linear fit of the total energy (meV/atom/ps) and its
  largest excursion, exact vs compressed.

The model: ``--model model.pt`` (a trained one; needed for a meaningful MD), else the water
example architecture (embedding 25/50/100, fitting 240x3, sel 46/92, rcut 6) with
statistics from data_0 and untrained weights — the timing and the tabulation error do not
depend on training.

    python benchmarks/deeppot_compress.py [--model M] [--frames 20] [--repeat 10] [--md-ps 0]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = ROOT.parent / "shared" / "data" / "water"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from conlearn.atoms.dataset import load_systems, remap_types  # noqa: E402
from conlearn.atoms.deeppot.compress import compress_model, min_neighbor_distance  # noqa: E402
from conlearn.atoms.deeppot.evaluate import predict_system  # noqa: E402
from conlearn.atoms.deeppot.model import DeepPot, DeepPotSpec, load_model  # noqa: E402


def example_model() -> DeepPot:
    cfg = json.loads((ROOT / "examples" / "water" / "input.json").read_text())["model"]
    d, f = cfg["descriptor"], cfg["fitting_net"]
    spec = DeepPotSpec(type_map=cfg["type_map"], sel=d["sel"], rcut=d["rcut"], rcut_smth=d["rcut_smth"],
                       neuron=d["neuron"], axis_neuron=d["axis_neuron"], fitting_neuron=f["neuron"],
                       fitting_resnet_dt=f["resnet_dt"], seed=d["seed"])
    model = DeepPot(spec)
    s = load_systems(DATA / "data_0")[0]
    types = remap_types(s, spec.type_map)
    g = model.graph([(s.coords[k], s.cells[k], s.pbc, types) for k in range(5)])
    model.descriptor.set_stats(model.descriptor.stat_sums(g))
    with torch.no_grad():
        model.bias_atom_e.fill_(float(s.energies.mean()) / s.n_atoms)
    return model.eval()


def as_float32(model: DeepPot) -> DeepPot:
    out = DeepPot(DeepPotSpec(**{**asdict(model.spec), "precision": "float32"}))
    out.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in model.state_dict().items()})
    return out.eval()


def time_ef(model: DeepPot, system, repeat: int) -> tuple[float, float]:
    """Median (CPU s, wall s) of energy + forces of one frame, neighbour list included."""
    types = remap_types(system, model.type_map)
    cpu, wall = [], []
    for k in range(repeat + 2):
        f = k % system.n_frames
        c0, w0 = time.process_time(), time.perf_counter()
        out = model.evaluate(model.graph([(system.coords[f], system.cells[f], system.pbc, types)]), virial=False)
        out["forces"].sum().item()
        if k >= 2:
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
    return statistics.median(cpu), statistics.median(wall)


_DP_TIME = r"""
import json, sys, time, statistics
from pathlib import Path
import numpy as np
from deepmd.infer import DeepPot
ckpt, sysdir, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
setdir = sorted(sysdir.glob("set.*"))[0]
coord = np.load(setdir / "coord.npy").astype(np.float64)
box = np.load(setdir / "box.npy").astype(np.float64)
atype = np.loadtxt(sysdir / "type.raw", dtype=int).reshape(-1).tolist()
dp = DeepPot(ckpt)
cpu, wall = [], []
for k in range(n + 2):
    i = k % coord.shape[0]
    c0, w0 = time.process_time(), time.perf_counter()
    e, f, v = dp.eval(coord[i:i+1], box[i:i+1], atype)
    if k >= 2:
        cpu.append(time.process_time() - c0); wall.append(time.perf_counter() - w0)
print("@@JSON " + json.dumps({"cpu": statistics.median(cpu), "wall": statistics.median(wall)}))
"""


def deepmd_row(repeat: int, threads: int, install: bool) -> tuple[dict | None, str]:
    """deepmd-kit's uncompressed inference time on the same architecture (a checkpoint of a
    few training steps: the time does not depend on the weights)."""
    import deepmd_ref

    venv = deepmd_ref.DEFAULT_VENV
    if not deepmd_ref._works(venv) and not install:
        return None, f"deepmd-kit not installed in {venv} (--install-deepmd installs it)"
    if deepmd_ref.ensure_installed(venv) is None:
        return None, "deepmd-kit could not be installed"
    cfg = deepmd_ref.water_example_input(DATA, disp_freq=5, save_freq=10)
    cfg["training"]["numb_steps"] = 10
    work = Path(tempfile.mkdtemp(prefix="conlearn-compress-dp-"))
    tr = deepmd_ref.train(cfg, work, 600, threads=threads)
    if tr.get("checkpoint") is None:
        return None, "deepmd-kit wrote no checkpoint"
    r = deepmd_ref._run_py(venv, _DP_TIME, [Path(tr["checkpoint"]).resolve(), DATA / "data_3", repeat], threads)
    return r, ""


def md_drift(model: DeepPot, system, ps: float, dt_fs: float, seed: int = 0, equil_ps: float = 0.0) -> dict:
    """NVE from frame 0 at 300 K: drift (meV/atom/ps, linear fit) and max |E - E0| (meV/atom)."""
    from ase import Atoms, units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
    from ase.md.verlet import VelocityVerlet

    from conlearn.atoms.calculator import DeepPotCalculator
    from conlearn.atoms.neighbors import NeighborError

    atoms = Atoms(numbers=[{"O": 8, "H": 1}[system.type_map[t]] for t in system.types],
                  positions=system.coords[0], cell=system.cells[0], pbc=True)
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(seed))
    Stationary(atoms)
    atoms.calc = DeepPotCalculator(model)
    if equil_ps > 0:  # relax into the model's own basin first (Langevin, 300 K)
        from ase.md.langevin import Langevin

        Langevin(atoms, dt_fs * units.fs, temperature_K=300, friction=0.05 / units.fs,
                 rng=np.random.default_rng(seed)).run(int(round(equil_ps * 1000 / dt_fs)))
    dyn = VelocityVerlet(atoms, timestep=dt_fs * units.fs)
    n_steps = int(round(ps * 1000 / dt_fs))
    t, e = [], []

    def record():
        t.append(dyn.nsteps * dt_fs / 1000)
        e.append(atoms.get_total_energy())

    dyn.attach(record, interval=10)
    c0 = time.process_time()
    stopped = ""
    try:
        dyn.run(n_steps)
    except NeighborError as err:  # the model let atoms crowd beyond sel: report the steps done
        stopped = f"stopped at step {dyn.nsteps}: {str(err).split(';')[0]}"
    e = (np.array(e) - e[0]) / len(atoms) * 1000  # meV/atom
    slope = float(np.polyfit(t, e, 1)[0]) if len(t) > 1 else float("nan")
    return {"steps": dyn.nsteps, "drift_mev_atom_ps": slope, "max_dev_mev_atom": float(np.abs(e).max()),
            "cpu_s_per_step": (time.process_time() - c0) / max(dyn.nsteps, 1),
            "T_end": float(atoms.get_temperature()), "stopped": stopped}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="trained model.pt (default: untrained water example)")
    ap.add_argument("--frames", type=int, default=20, help="data_3 frames for the accuracy columns")
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--step", type=float, default=0.01)
    ap.add_argument("--md-ps", type=float, default=0.0, help="NVE length, ps (0: no MD)")
    ap.add_argument("--dt-fs", type=float, default=0.5)
    ap.add_argument("--md-equil-ps", type=float, default=0.0, help="Langevin 300 K before the NVE, ps")
    ap.add_argument("--md-models", default="exact float64,compressed float64", help="comma-separated variants")
    ap.add_argument("--skip-deepmd", action="store_true")
    ap.add_argument("--install-deepmd", action="store_true")
    a = ap.parse_args(argv)
    if not DATA.is_dir():
        print(f"water data not found at {DATA}")
        return 1
    torch.set_num_threads(a.threads)
    exact = load_model(a.model) if a.model else example_model()
    train = load_systems([DATA / f"data_{i}" for i in range(3)])
    rmin = min_neighbor_distance(train, exact.spec.rcut)
    t0 = time.perf_counter()
    comp = compress_model(exact, step=a.step, min_dist=rmin)
    t_compress = time.perf_counter() - t0
    exact32 = as_float32(exact)
    models = {"exact float64": exact, "compressed float64": comp, "exact float32": exact32,
              "compressed float32": compress_model(exact32, step=a.step, min_dist=rmin)}
    test = load_systems(DATA / "data_3")[0]
    sub = type(test)(**{**test.__dict__, "coords": test.coords[: a.frames], "cells": test.cells[: a.frames],
                        "energies": None, "forces": None, "virials": None})
    ref = predict_system([exact], sub)
    rows = {}
    for name, m in models.items():
        p = predict_system([m], sub)
        rows[name] = {"max_dF": float(np.abs(p["forces"] - ref["forces"]).max()),
                      "max_dE_atom": float((np.abs(p["energy"] - ref["energy"]) / sub.n_atoms).max())}
    for _ in range(2):  # interleaved passes; keep each variant's best median
        for name, m in models.items():
            cpu, wall = time_ef(m, test, a.repeat)
            r = rows[name]
            r["cpu_ms"], r["wall_ms"] = min(r.get("cpu_ms", 1e9), 1e3 * cpu), min(r.get("wall_ms", 1e9), 1e3 * wall)
    note = "skipped (--skip-deepmd)"
    if not a.skip_deepmd:
        dp, note = deepmd_row(a.repeat, a.threads, a.install_deepmd)
        if dp is not None:
            rows["deepmd-kit uncompressed float64"] = {"cpu_ms": 1e3 * dp["cpu"], "wall_ms": 1e3 * dp["wall"]}
    base = rows["exact float64"]["cpu_ms"]
    print(f"\nDeepPot-SE water, 192 atoms, E+F, {a.threads} thread(s); model: {a.model or 'untrained example'}; "
          f"min neighbour distance {rmin:.3f} Å, step {a.step}, compression {t_compress:.1f} s, "
          f"{sum(t.n_intervals for t in comp.tables)} intervals")
    print("| variant | CPU ms/frame | wall ms/frame | speed-up (CPU) | max abs dF eV/Å | max abs dE eV/atom |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        acc = (f"{r['max_dF']:.2e} | {r['max_dE_atom']:.2e}" if "max_dF" in r else "- | -")
        print(f"| {name} | {r['cpu_ms']:.1f} | {r['wall_ms']:.1f} | {base / r['cpu_ms']:.2f}x | {acc} |")
    if "deepmd-kit uncompressed float64" not in rows:
        print(f"deepmd-kit: {note}")
    if a.md_ps > 0:
        print(f"\nNVE {a.md_ps} ps at {a.dt_fs} fs from data_3 frame 0, 300 K"
              f"{f' after {a.md_equil_ps} ps of Langevin at 300 K' if a.md_equil_ps else ''}")
        print("| model | steps | drift meV/atom/ps | max abs(E - E0) meV/atom | CPU s/step | T end K | note")
        print("|---|---:|---:|---:|---:|---:|---|")
        for name in a.md_models.split(","):
            r = md_drift(models[name], test, a.md_ps, a.dt_fs, equil_ps=a.md_equil_ps)
            print(f"| {name} | {r['steps']} | {r['drift_mev_atom_ps']:.4f} | {r['max_dev_mev_atom']:.4f} | "
                  f"{r['cpu_s_per_step']:.3f} | {r['T_end']:.0f} | {r['stopped']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
