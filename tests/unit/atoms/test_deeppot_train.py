"""Training: config validation, learning on water, kill -9 and resume, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conlearn.atoms.deeppot.config import read_train_config
from conlearn.atoms.deeppot.loss import ExpDecay, prefactors
from conlearn.atoms.deeppot.model import load_model
from conlearn.atoms.deeppot.train import Trainer
from conlearn.atoms.io_deepmd import read_deepmd, write_deepmd
from conlearn.configfile import ConfigError

ROOT = Path(__file__).resolve().parents[3]


def small_config(train_dirs, valid_dirs, steps=40, **training) -> dict:
    as_list = lambda d: [d] if isinstance(d, (str, Path)) else list(d)  # noqa: E731
    train_dirs, valid_dirs = as_list(train_dirs), as_list(valid_dirs)
    return {
        "model": {
            "type_map": ["O", "H"],
            "descriptor": {"type": "se_e2_a", "sel": [46, 92], "rcut": 6.0, "rcut_smth": 0.5,
                           "neuron": [8, 16, 32], "axis_neuron": 4, "seed": 1},
            "fitting_net": {"neuron": [32, 32], "resnet_dt": True, "seed": 1},
        },
        "learning_rate": {"type": "exp", "start_lr": 3e-3, "stop_lr": 1e-4, "decay_steps": 10},
        "loss": {"start_pref_e": 0.02, "limit_pref_e": 1, "start_pref_f": 1000, "limit_pref_f": 1},
        "training": {
            "training_data": {"systems": [str(d) for d in train_dirs], "batch_size": "auto"},
            "validation_data": {"systems": [str(d) for d in valid_dirs], "batch_size": 1, "numb_btch": 2},
            "numb_steps": steps, "seed": 7, "disp_freq": 10, "save_freq": 10, **training,
        },
    }


@pytest.fixture
def small_water(tmp_path, water_small):
    """16 training and 4 validation frames of the water data, as deepmd systems."""
    s = read_deepmd(water_small / "data_0")
    write_deepmd(s.subset(slice(0, 16)), tmp_path / "train")
    write_deepmd(read_deepmd(water_small / "data_3").subset(slice(0, 4)), tmp_path / "valid")
    return tmp_path / "train", tmp_path / "valid"


def write_cfg(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def test_deepmd_input_json_reads_unchanged():
    cfg = read_train_config(ROOT / "examples" / "water" / "input.json")
    spec = cfg.spec(cfg.model.descriptor.sel)
    assert spec.sel == [46, 92] and spec.neuron == [25, 50, 100] and spec.axis_neuron == 16
    assert spec.fitting_neuron == [240, 240, 240] and spec.precision == "float64"
    assert cfg.training.numb_steps == 1_000_000 and cfg.loss.start_pref_f == 1000


def test_bad_key_names_file_line_and_allowed(tmp_path, small_water):
    cfg = small_config(*small_water)
    cfg["training"]["numb_step"] = cfg["training"].pop("numb_steps")
    cfg["model"]["descriptor"]["rcutt"] = 5.0
    path = write_cfg(tmp_path / "bad.yaml", cfg)
    with pytest.raises(ConfigError) as err:
        read_train_config(path)
    msg = str(err.value)
    text = path.read_text().splitlines()
    line_rcutt = next(i for i, l in enumerate(text, 1) if "rcutt" in l)
    assert f"bad.yaml:{line_rcutt}: unknown key 'model.descriptor.rcutt'" in msg
    assert "'rcut'" in msg and "'rcut_smth'" in msg  # what is allowed
    assert "training.numb_step" in msg and "training.numb_steps: Field required" in msg


def test_schedule_matches_deepmd():
    from conlearn.atoms.deeppot.config import LearningRateConfig, LossConfig

    s = ExpDecay(LearningRateConfig(start_lr=1e-3, stop_lr=1e-8, decay_steps=100), 1000)
    assert s(0) == 1e-3 and s(99) == 1e-3 and s(100) < 1e-3
    assert s(1000) == pytest.approx(1e-8, rel=1e-9)
    pe, pf, pv = prefactors(LossConfig(), 1e-3, 1e-3)
    assert (pe, pf, pv) == pytest.approx((0.02, 1000.0, 0.0), rel=1e-12)
    pe, pf, _ = prefactors(LossConfig(), 0.0, 1e-3)
    assert (pe, pf) == pytest.approx((1.0, 1.0), rel=1e-12)


def test_training_learns_water(tmp_path, small_water):
    cfg_path = write_cfg(tmp_path / "c.yaml", small_config(*small_water, steps=60))
    out = tmp_path / "out"
    tr = Trainer(read_train_config(cfg_path), out, log=lambda m: None)
    tr.run()
    lc = np.loadtxt(out / "lcurve.out", ndmin=2)
    f_val = lc[:, 3]  # rmse_f_val
    assert f_val[-1] < 0.92 * f_val[0], f_val  # 0.883 -> 0.786 eV/Å measured
    assert (out / "lcurve.png").stat().st_size > 5000
    m = load_model(out / "model.pt")
    assert m.spec.sel == [46, 92]


def run_cli(*args, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "conlearn.cli", *args], env=env, **kw)


def test_kill9_then_resume_reproduces_uninterrupted(tmp_path, small_water):
    cfg = small_config(*small_water, steps=60)
    cfg["training"]["save_freq"] = 4
    cfg_path = write_cfg(tmp_path / "c.yaml", cfg)
    ref = run_cli("train", str(cfg_path), "-o", str(tmp_path / "ref"), stderr=subprocess.DEVNULL)
    killed = run_cli("train", str(cfg_path), "-o", str(tmp_path / "run"), stderr=subprocess.DEVNULL)
    ck = tmp_path / "run" / "checkpoint.pt"
    deadline = time.time() + 120
    while time.time() < deadline:
        if ck.exists() and torch.load(ck, weights_only=False)["step"] >= 16:
            break
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL
    step_at_kill = torch.load(ck, weights_only=False)["step"]
    assert 16 <= step_at_kill < 60 and not (tmp_path / "run" / "model.pt").exists()
    assert run_cli("train", str(cfg_path), "-o", str(tmp_path / "run"), stderr=subprocess.DEVNULL).wait() == 0
    assert ref.wait() == 0
    a = torch.load(tmp_path / "ref" / "model.pt", weights_only=False)["state"]
    b = torch.load(tmp_path / "run" / "model.pt", weights_only=False)["state"]
    for k in a:
        assert torch.equal(a[k], b[k]), k
    steps = np.loadtxt(tmp_path / "run" / "lcurve.out", ndmin=2)[:, 0]
    assert steps[-1] == 60


def test_cli_test_json_and_fine_tune(tmp_path, small_water):
    train, valid = small_water
    cfg_path = write_cfg(tmp_path / "c.yaml", small_config(train, valid, steps=10))
    assert run_cli("train", str(cfg_path), "-o", str(tmp_path / "a")).wait() == 0
    p = run_cli("test", "--model", str(tmp_path / "a" / "model.pt"), "--data", str(valid), "--json",
                "-o", str(tmp_path / "plots"), stdout=subprocess.PIPE)
    res = json.loads(p.communicate()[0])
    assert res["n_frames"] == 4 and 0 < res["force_rmse"] < 5 and res["energy_rmse_per_atom"] > 0
    assert (tmp_path / "plots" / "parity.png").stat().st_size > 5000
    # fine-tuning starts from the trained weights (not from a fresh initialisation)
    tr = Trainer(read_train_config(cfg_path), tmp_path / "b", init_model=tmp_path / "a" / "model.pt",
                 log=lambda m: None)
    start = load_model(tmp_path / "a" / "model.pt").state_dict()
    assert all(torch.equal(v, tr.model.state_dict()[k]) for k, v in start.items())


def test_cli_reports_missing_data_and_unknown_element(tmp_path, small_water, water_small):
    train, valid = small_water
    cfg = small_config([tmp_path / "nope"], [valid], steps=2)
    p = run_cli("train", str(write_cfg(tmp_path / "c.yaml", cfg)), "-o", str(tmp_path / "x"),
                stderr=subprocess.PIPE)
    err = p.communicate()[1].decode()
    assert p.returncode == 2 and "nope" in err and "Traceback" not in err
    cfg = small_config([train], [valid], steps=2)
    cfg["model"]["type_map"] = ["O", "C"]
    p = run_cli("train", str(write_cfg(tmp_path / "d.yaml", cfg)), "-o", str(tmp_path / "y"),
                stderr=subprocess.PIPE)
    err = p.communicate()[1].decode()
    assert p.returncode == 2 and "'H'" in err and "type_map" in err, err
