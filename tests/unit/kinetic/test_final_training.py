"""closure.final_steps: the loop's final training of the kinetic closure (config -> BatchLoop's final trainer)."""

import numpy as np
import pytest

from conlearn.configfile import ConfigError
from conlearn.core.records import Candidate, TaskContext
from conlearn.kinetic.closure import Member
from conlearn.kinetic.components import KineticLabeler
from conlearn.kinetic.config import read_config
from conlearn.kinetic.initial import sod
from conlearn.kinetic.run import build_loop

CONFIG = """\
workflow: kinetic
grid: {nx: 16, t_end: 0.04, n_snapshots: 2}
closure: {degree: 3, hidden: [8], decoder_hidden: [8], ae_steps: 5, steps: 10, reuse_steps: 5, batch: 64,
          final_steps: 7}
"""


def load(tmp_path, text):
    p = tmp_path / "k.yaml"
    p.write_text(text)
    return read_config(p)


def test_final_steps_build_the_final_trainer(tmp_path):
    cfg = load(tmp_path, CONFIG)
    trainer = build_loop(cfg, tmp_path / "run", None, []).trainer
    assert trainer.final_trainer.settings.reuse_steps == 7
    assert trainer.final_trainer.settings.steps == 10 and trainer.final_trainer.final_trainer is None
    assert trainer.settings.reuse_steps == 5
    cfg = load(tmp_path, CONFIG.replace("final_steps: 7", "final_steps: 0"))
    assert build_loop(cfg, tmp_path / "run", None, []).trainer.final_trainer is None


def test_final_trainer_warm_starts_and_changes_the_closure(tmp_path):
    cfg = load(tmp_path, CONFIG)
    trainer = build_loop(cfg, tmp_path / "run", None, []).trainer
    ctx = TaskContext(key="t", iteration=0, index=0, seed=3, workdir=str(tmp_path / "a"))
    data = [KineticLabeler(nx=16, t_end=0.04, n_snapshots=2, degree=3).label(Candidate(0.0, {"spec": sod(), "kn": 0.2}), ctx)]
    r0 = trainer.train(data, None, ctx)
    r1 = trainer.final_trainer.train(data, r0, TaskContext(key="f", iteration=0, index=0, seed=4,
                                                           workdir=str(tmp_path / "b")))
    assert r1.metrics["warm"] and not r0.metrics["warm"]
    a, b = Member.load(r0.model_paths[0]), Member.load(r1.model_paths[0])
    assert a.C.shape == b.C.shape == (3, 2, 4)
    assert np.abs(a.closure[-1][0] - b.closure[-1][0]).max() > 0        # it trained


def test_bad_final_steps_names_the_key(tmp_path):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, CONFIG.replace("final_steps: 7", "final_steps: -1"))
    assert "k.yaml:4: closure.final_steps" in str(err.value), str(err.value)
