"""closure.trust_quantile / trust_margin: the closure's input range from the training moments'
quantiles (training.trust_range), its path from the config to the trained members, bad values."""

import numpy as np
import pytest

from conlearn.configfile import ConfigError
from conlearn.core.records import Candidate, TaskContext
from conlearn.kinetic.closure import Member
from conlearn.kinetic.components import KineticLabeler
from conlearn.kinetic.config import read_config
from conlearn.kinetic.initial import sod
from conlearn.kinetic.run import build_loop
from conlearn.kinetic.training import trust_range

CONFIG = """\
workflow: kinetic
grid: {nx: 16, t_end: 0.04, n_snapshots: 2}
closure: {degree: 3, hidden: [8], decoder_hidden: [8], ae_steps: 5, steps: 10, reuse_steps: 5, batch: 64,
          trust_quantile: 0.1, trust_margin: 0.5}
"""


def load(tmp_path, text):
    p = tmp_path / "k.yaml"
    p.write_text(text)
    return read_config(p)


def test_quantile_range_ignores_outliers_and_keeps_the_bulk():
    w = np.stack([np.linspace(-1.0, 1.0, 1001), np.linspace(0.0, 2.0, 1001)], axis=1)
    w[0, 0], w[-1, 1] = -50.0, 80.0                                  # one extreme cell per moment
    lo, hi = trust_range(w)                                           # q = 0: min/max + 10 % of the span
    assert np.allclose(lo, [-50 - 5.1, 0 - 8.0]) and np.allclose(hi, [1 + 5.1, 80 + 8.0])
    lo, hi = trust_range(w, 0.02, 0.1)
    a, b = np.quantile(w, [0.02, 0.98], axis=0)
    assert np.allclose(lo, a - 0.1 * (b - a)) and np.allclose(hi, b + 0.1 * (b - a))
    assert np.allclose(a, [-0.96, 0.04]) and np.allclose(b, [0.96, 1.96])
    lo, hi = trust_range(w, 0.02, 100.0)                              # never wider than the min/max range
    assert np.allclose(lo, [-55.1, -8.0]) and np.allclose(hi, [6.1, 88.0])
    with pytest.raises(ValueError, match="trust_quantile"):
        trust_range(w, 0.5)


def test_config_sets_the_members_range(tmp_path):
    cfg = load(tmp_path, CONFIG)
    trainer = build_loop(cfg, tmp_path / "run", None, []).trainer
    assert trainer.settings.trust_quantile == 0.1 and trainer.settings.trust_margin == 0.5
    ctx = TaskContext(key="t", iteration=0, index=0, seed=3, workdir=str(tmp_path / "a"))
    data = [KineticLabeler(nx=16, t_end=0.04, n_snapshots=2, degree=3).label(Candidate(0.0, {"spec": sod(), "kn": 0.2}), ctx)]
    member = Member.load(trainer.train(data, None, ctx).model_paths[0])
    wide = Member.load(build_loop(load(tmp_path, CONFIG.replace("trust_quantile: 0.1", "trust_quantile: 0.0")),
                                  tmp_path / "run2", None, []).trainer.train(
        data, None, TaskContext(key="t", iteration=0, index=0, seed=3, workdir=str(tmp_path / "b"))).model_paths[0])
    assert np.all(member.w_lo >= wide.w_lo) and np.all(member.w_hi <= wide.w_hi)
    assert np.any(member.w_hi - member.w_lo < 0.9 * (wide.w_hi - wide.w_lo))     # the quantiles cut the tails


@pytest.mark.parametrize("bad,key", [("trust_quantile: 0.6", "closure.trust_quantile"),
                                     ("trust_margin: -1", "closure.trust_margin")])
def test_bad_trust_values_name_the_key(tmp_path, bad, key):
    old = "trust_quantile: 0.1" if "quantile" in bad else "trust_margin: 0.5"
    with pytest.raises(ConfigError) as err:
        load(tmp_path, CONFIG.replace(old, bad))
    assert f"k.yaml:4: {key}" in str(err.value), str(err.value)
