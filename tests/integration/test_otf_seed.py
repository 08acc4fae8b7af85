"""Frames labelled on the fly seed the Deep Potential loop (issue 4, item 4): ``conlearn otf``
on 8-atom EMT aluminium, then one DP-GEN iteration whose only initial data is that run."""

from __future__ import annotations

import json
from pathlib import Path

import ase.io
import numpy as np
import pytest
import yaml

from conlearn.atoms.dpgen.config import read_run_config
from conlearn.atoms.dpgen.run import read_labelled, run
from conlearn.atoms.frames import frames_to_systems
from conlearn.atoms.io_ase import atoms_to_system
from conlearn.atoms.io_deepmd import write_deepmd
from conlearn.atoms.system import DataError
from conlearn.cli import main
from conlearn.configfile import ConfigError
from conlearn.core.manifest import read_records
from conlearn.exec.base import InProcessExecutor

AL8 = {"kind": "bulk", "element": "Al", "lattice": "fcc", "a": 4.05, "cubic": True, "repeat": [2, 1, 1]}

OTF = {  # tests/integration/test_otf.py's case, 40 steps
    "seed": 3, "structure": AL8, "rattle": 0.05,
    "md": {"temperature_K": 1500, "timestep_fs": 2.0, "n_steps": 40, "trajectory_every": 5},
    "gp": {"r_cut2": 5.0, "r_cut3": 3.6, "energy_labels": False,
           "optimize": {"at_calls": [1, 2], "maxiter": 15}},
    "uncertainty": {"threshold": {"kind": "absolute", "value": 0.05}, "check_every": 5,
                    "add": {"kind": "top_n", "n": 4}},
    "output": {"checkpoint_every": 10, "plots": False},
}

DP = {  # tests/integration/test_dpgen_al.py's tiny case, one iteration, seeded by the OTF run
    "type_map": ["Al"],
    "reference": {"kind": "emt"},
    "structures": [AL8],
    "initial": {"data": ["otf"], "n_frames_per_structure": 0},
    "model": {"descriptor": {"type": "se_e2_a", "sel": [60], "rcut": 5.0, "rcut_smth": 2.0,
                             "neuron": [8, 16], "axis_neuron": 4},
              "fitting_net": {"neuron": [16, 16]}},
    "training": {"n_models": 2, "numb_steps": 40, "reuse_numb_steps": 20, "disp_freq": 20,
                 "learning_rate": {"start_lr": 3e-3, "stop_lr": 1e-4, "decay_steps": 10}},
    "exploration": [{"temperatures": [300], "n_steps": 20, "trj_freq": 4}],
    "selection": {"trust_lo": 0.02, "trust_hi": 2.0, "max_select": 2, "converge_fraction": 0.999},
    "loop": {"max_iterations": 1, "seed": 3},
}


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def otf_run(tmp_path_factory) -> Path:
    """A finished ``conlearn otf`` run directory (the CLI entry point, in this process)."""
    tmp = tmp_path_factory.mktemp("seed")
    assert main(["otf", str(write(tmp / "otf.yaml", OTF)), "--out", str(tmp / "otf")]) == 0
    return tmp / "otf"


def test_otf_frames_seed_the_deeppot_loop_exactly(otf_run, tmp_path):
    (tmp_path / "otf").symlink_to(otf_run)  # a relative path, taken against the config's directory
    cfg = read_run_config(write(tmp_path / "run.yaml", DP))
    assert cfg.initial.data == [str(tmp_path / "otf")]
    n_calls = json.loads((otf_run / "summary.json").read_text())["n_calls"]
    otf = ase.io.read(otf_run / "labelled.extxyz", ":")
    assert len(otf) == n_calls and n_calls >= 2

    report = run(cfg, tmp_path / "run", InProcessExecutor(), log=lambda m: None)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["initial_frames"] == n_calls  # no perturbed frames: the OTF labels alone
    from conlearn.atoms.dpgen.report import status_text

    assert f"initial data: 0 labelled (0 quarantined) + {n_calls} from initial.data" in status_text(tmp_path / "run")
    keys = [k for k, _ in read_records(tmp_path / "run" / "manifest.jsonl")]
    assert "init/data" in keys and not any(k.startswith("init/label/") for k in keys)
    # what the committee trained on: the OTF labels first, bit for bit, in call order
    seeds = report.data[:n_calls]
    for frame, atoms in zip(seeds, otf):
        assert frame["energy"] == atoms.get_potential_energy()
        assert np.array_equal(frame["forces"], atoms.get_forces())
        assert np.array_equal(frame["positions"], atoms.positions)
    (system,) = frames_to_systems(list(seeds), ["Al"])
    assert np.array_equal(system.energies, [a.get_potential_energy() for a in otf])
    assert np.array_equal(system.forces, np.stack([a.get_forces() for a in otf]))
    assert all(Path(m.model_paths[0]).exists() for m in report.models)
    assert len(report.data) == n_calls + summary["labelled_frames"]

    # resume: the seed frames come from the manifest, not from the files
    (tmp_path / "otf").unlink()
    cfg2 = cfg.model_copy()
    again = run(cfg2, tmp_path / "run", InProcessExecutor(), log=lambda m: None)
    assert len(again.data) == len(report.data)
    assert [k for k, _ in read_records(tmp_path / "run" / "manifest.jsonl")].count("init/data") == 1


def test_seed_data_errors_name_the_file(otf_run, tmp_path):
    cfg = json.loads(json.dumps(DP))
    cfg["initial"]["data"] = ["missing.extxyz"]
    path = write(tmp_path / "run.yaml", cfg)
    with pytest.raises(ConfigError) as err:
        read_run_config(path)
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "missing.extxyz" in t)
    assert f"run.yaml:{line}: initial.data[0]: {tmp_path / 'missing.extxyz'} does not exist" in str(err.value)

    cfg["initial"] = {"n_frames_per_structure": 0}
    with pytest.raises(ConfigError, match="initial.data or set initial.n_frames_per_structure"):
        read_run_config(write(tmp_path / "run.yaml", cfg))

    frames = ase.io.read(otf_run / "trajectory.extxyz", ":2")  # positions only
    ase.io.write(tmp_path / "unlabelled.extxyz", frames)
    with pytest.raises(DataError, match=r"unlabelled.extxyz: frames without energy"):
        read_labelled(tmp_path / "unlabelled.extxyz", ["Al"])
    otf = ase.io.read(otf_run / "labelled.extxyz", ":")
    with pytest.raises(DataError, match=r"labelled.extxyz: element\(s\) \['Al'\] not in the run's type_map"):
        read_labelled(otf_run, ["Cu"])
    # a deepmd system directory reads to the same frames
    write_deepmd(atoms_to_system(otf), tmp_path / "npy")
    got = read_labelled(tmp_path / "npy", ["Al"])
    assert len(got) == len(otf) and np.array_equal(got[-1]["forces"], otf[-1].get_forces())
    assert (tmp_path / "npy" / "type_map.raw").exists()
    (tmp_path / "npy" / "type_map.raw").unlink()
    with pytest.raises(DataError, match=r"npy: element\(s\) \['Type_0'\] not in .* has no type_map.raw"):
        read_labelled(tmp_path / "npy", ["Al"])
