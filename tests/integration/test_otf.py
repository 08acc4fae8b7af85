"""The on-the-fly loop on 8-atom EMT aluminium: it learns, the same seed gives the same
reference-call schedule, a kill -9 resumes to that schedule, an audit sets the noise floor,
a config typo names its file and line."""

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
import yaml

from conlearn.atoms.otf.config import load_otf_config
from conlearn.atoms.otf.evaluate import reference_md_frames, score
from conlearn.atoms.otf.loop import run_otf
from conlearn.atoms.otf.model import OTFModel
from conlearn.atoms.otf.state import load_checkpoint
from conlearn.testing.configs import otf_al8, unknown_key_error, write_yaml

CONFIG = otf_al8()


def _write(tmp: Path, data: dict) -> Path:
    return write_yaml(tmp / "otf.yaml", data)


def _calls(run_dir: Path) -> list[int]:
    state, _ = load_checkpoint(run_dir / "checkpoint.pkl")
    return [c["step"] for c in state.calls]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """One uninterrupted run: (config path, run dir)."""
    tmp = tmp_path_factory.mktemp("otf")
    cfg_path = _write(tmp, CONFIG)
    run_otf(load_otf_config(cfg_path), tmp / "uninterrupted")
    return cfg_path, tmp / "uninterrupted"


def test_otf_calls_the_reference_and_learns(reference_run, tmp_path):
    cfg_path, done = reference_run
    cfg = load_otf_config(cfg_path)
    summary = json.loads((done / "summary.json").read_text())
    assert summary["steps"] == 60 and 2 <= summary["n_calls"] <= 8
    # stop right after the first call, score, then go on: the same calls as without a stop
    run_otf(cfg, tmp_path / "run", max_steps=1)
    _, model = load_checkpoint(tmp_path / "run" / "checkpoint.pkl")
    first = OTFModel.from_dict(model, cfg.gp)
    run_otf(cfg, tmp_path / "run")
    assert _calls(tmp_path / "run") == _calls(done)
    _, model = load_checkpoint(tmp_path / "run" / "checkpoint.pkl")
    final = OTFModel.from_dict(model, cfg.gp)
    held = reference_md_frames(cfg, n_frames=3, seed=99, n_equilibrate=30, every=10)
    before, after = score(first.gp, held), score(final.gp, held)
    assert after["rmse"] < before["rmse"], (before, after)
    assert final.gp.n_labels > first.gp.n_labels
    # one labelled frame and one manifest line per call; one log line per step
    n_calls = summary["n_calls"]
    assert (done / "labelled.extxyz").read_text().count("Lattice=") == n_calls
    assert len((done / "manifest.jsonl").read_text().splitlines()) == n_calls
    steps = [json.loads(line)["step"] for line in (done / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(60))


def test_same_seed_gives_the_same_calls(reference_run, tmp_path):
    """Two fresh runs of one config: the same reference-call schedule (audits included), the
    same hyperparameters after every call and the same final positions, bit for bit."""
    cfg_path, done = reference_run
    run_otf(load_otf_config(cfg_path), tmp_path / "again")
    a, model_a = load_checkpoint(done / "checkpoint.pkl")
    b, _ = load_checkpoint(tmp_path / "again" / "checkpoint.pkl")
    schedule = [(c["step"], c.get("audit", False), c["atoms"]) for c in a.calls]
    assert schedule == [(c["step"], c.get("audit", False), c["atoms"]) for c in b.calls]
    assert [c["hyperparameters"] for c in a.calls] == [c["hyperparameters"] for c in b.calls]
    assert np.array_equal(a.positions, b.positions)
    assert any(c.get("audit") for c in a.calls), "the test config should exercise an audit"
    # the audit's out-of-sample errors set the noise floor, which the final GP respects
    final = OTFModel.from_dict(model_a, load_otf_config(cfg_path).gp)
    assert len(final.audits) == sum(bool(c.get("audit")) for c in a.calls)
    assert final.gp.noise >= final.noise_floor - 1e-12


def test_calibrated_noise_recovers_the_missing_variance():
    from conlearn.atoms.otf.model import calibrated_noise

    rng = np.random.default_rng(0)
    std = rng.uniform(0.002, 0.02, size=(4000, 3))  # eV/Å, epistemic
    err = rng.normal(size=std.shape) * np.sqrt(std**2 + 0.01**2)  # true noise 0.01 eV/Å
    half = len(std) // 2
    got = calibrated_noise([(err[:half], std[:half]), (err[half:], std[half:])])
    assert got == pytest.approx(0.01, rel=0.05)
    assert calibrated_noise([(0.001 * err, std)]) == 0.0  # the epistemic std covers it all


def test_kill_and_resume_gives_the_same_calls(reference_run, tmp_path):
    cfg_path, done = reference_run
    run_dir = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "conlearn.cli", "otf", str(cfg_path),
                             "--out", str(run_dir)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    t0 = time.monotonic()
    while True:  # kill once a checkpoint past the first call and step 10 is on disk
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() - t0 < 120
        try:
            if load_checkpoint(run_dir / "checkpoint.pkl")[0].step >= 10:
                break
        except (FileNotFoundError, EOFError):
            pass
        time.sleep(0.01)
    time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "summary.json").exists(), "the run ended before the kill"
    state, _ = load_checkpoint(run_dir / "checkpoint.pkl")
    assert 0 < state.step < 60
    run_otf(load_otf_config(cfg_path), run_dir)
    assert _calls(run_dir) == _calls(done)
    a, _ = load_checkpoint(run_dir / "checkpoint.pkl")
    b, _ = load_checkpoint(done / "checkpoint.pkl")
    assert np.array_equal(a.positions, b.positions)  # the same trajectory, bit for bit
    assert len((run_dir / "manifest.jsonl").read_text().splitlines()) == len(b.calls)
    steps = [json.loads(x)["step"] for x in (run_dir / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(60))


def test_bad_config_key_names_file_and_line(tmp_path, capsys):
    bad = json.loads(json.dumps(CONFIG))
    bad["md"]["timestep"] = 1.0
    path = _write(tmp_path, bad)
    msg, line = unknown_key_error(load_otf_config, path, "timestep")
    assert f"{path}:{line}: unknown key 'md.timestep'" in msg
    assert "timestep_fs" in msg  # the allowed keys are listed
    bad = json.loads(json.dumps(CONFIG))
    bad["uncertainty"]["threshold"] = {"kind": "relative", "value": 2.0}
    from conlearn.cli import main

    assert main(["otf", str(_write(tmp_path, bad)), "--out", str(tmp_path / "x")]) == 2
    assert "uncertainty.threshold" in capsys.readouterr().err


def test_a_call_recorded_before_a_crash_is_replayed_not_recomputed(reference_run, tmp_path,
                                                                   monkeypatch):
    """Crash after the second label is recorded but before the GP update is checkpointed:
    the resumed run takes that label from the manifest instead of calling the reference."""
    from conlearn.atoms.otf import loop

    cfg_path, done = reference_run
    cfg = load_otf_config(cfg_path)
    labels, real_add = [], OTFModel.add

    def counting_label(*args, **kwargs):
        labels.append(1)
        return real_label(*args, **kwargs)

    def crashing_add(self, *args, **kwargs):
        if not self.empty:
            raise KeyboardInterrupt("simulated crash")
        return real_add(self, *args, **kwargs)

    real_label = loop.label_frame
    monkeypatch.setattr(loop, "label_frame", counting_label)
    monkeypatch.setattr(OTFModel, "add", crashing_add)
    with pytest.raises(KeyboardInterrupt):
        run_otf(cfg, tmp_path / "run")
    assert len(labels) == 2
    monkeypatch.setattr(OTFModel, "add", real_add)
    run_otf(cfg, tmp_path / "run")
    assert _calls(tmp_path / "run") == _calls(done)
    assert len(labels) == len(_calls(done))  # the second call was not made twice


def test_thresholds_and_atom_selection():
    from conlearn.atoms.otf.config import AddSpec, AuditSpec, OTFConfig
    from conlearn.atoms.otf.loop import select_atoms

    cfg = OTFConfig.model_validate({**CONFIG, "uncertainty": {
        "threshold": {"kind": "noise_multiple", "value": 2.0, "floor": 0.01}}})
    thr = cfg.uncertainty.threshold
    assert thr.value_at(0.03) == pytest.approx(0.06)  # 2 x noise (eV/Å)
    assert thr.value_at(1e-4) == pytest.approx(0.02)  # 2 x floor: cannot collapse
    std = np.array([[0.01, 0.02, 0.0], [0.2, 0.0, 0.0], [0.0, 0.07, 0.0], [0.06, 0.0, 0.01]])
    assert select_atoms(std, 0.05, AddSpec(kind="top_n", n=2), first=False).tolist() == [1, 2]
    assert select_atoms(std, 0.05, AddSpec(kind="above_threshold", n=None),
                        first=False).tolist() == [1, 2, 3]
    assert select_atoms(std, 0.05, AddSpec(kind="above_threshold", n=2),
                        first=False).tolist() == [1, 2]
    assert select_atoms(std, 0.05, AddSpec(n=1), first=True).tolist() == [0, 1, 2, 3]
    assert select_atoms(std, 0.05, AddSpec(n=1, initial=2), first=True).tolist() == [1, 2]
    # an audited frame: its most uncertain atoms whatever the threshold says
    above = AddSpec(kind="above_threshold", n=2)
    assert select_atoms(std, 0.5, above, first=False, audit=AuditSpec()).tolist() == [1, 2]
    assert select_atoms(std, 0.5, above, first=False, audit=AuditSpec(n=3)).tolist() == [1, 2, 3]
    assert select_atoms(std, 0.5, AddSpec(kind="above_threshold", n=None), first=False,
                        audit=AuditSpec()).tolist() == [0, 1, 2, 3]


def test_resume_under_another_config_is_refused(reference_run):
    cfg_path, done = reference_run
    data = yaml.safe_load(cfg_path.read_text())
    data["uncertainty"]["threshold"]["value"] = 0.02
    from conlearn.atoms.otf.config import OTFConfig

    with pytest.raises(ValueError, match="different config.*uncertainty"):
        run_otf(OTFConfig.model_validate(data), done)
