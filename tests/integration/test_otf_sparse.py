"""The on-the-fly loop with the sparse GP (``gp.sparse``) on 8-atom EMT aluminium: it calls
the reference and learns with a capped inducing set, its model file is a ``SparseGP``, and
a run stopped by a crash and run again into the same directory replays to the same calls,
labels and model bit for bit; the ``gp.sparse`` section is validated; a frame energy label
adds no inducing environment.

Case: ``tests/integration/test_otf.py``'s config (8 Al, 1500 K, 60 steps, threshold
0.05 eV/Å, 4 atoms per call, an audit after 20 steps) with ``gp.sparse: {n_inducing: 12,
select: greedy}``.  Measured (1 thread; both cores busy with another job): 4 reference
calls (steps 0, 15, 35, 55; the last two audits), 12 inducing of the 20 force-labelled
environments (60 labels), force RMSE 0.0107 eV/Å on the labelled frames and 0.0166 eV/Å on
3 held-out EMT MD frames (rms force 0.62 eV/Å; the full GP on the same case: 4 calls,
0.0088 and 0.0256 eV/Å), 1.3 s CPU per run, the whole file about 9 s.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from conlearn.atoms.dpgen.config import BatchGPSpec
from conlearn.atoms.gp.gp import GaussianProcess
from conlearn.atoms.gp.io import load, load_gp, sparse_to_dict
from conlearn.atoms.gp.sparse import SparseGP
from conlearn.atoms.otf import loop
from conlearn.atoms.otf.config import OTFConfig, load_otf_config
from conlearn.atoms.otf.evaluate import reference_md_frames, score
from conlearn.atoms.otf.loop import run_otf
from conlearn.atoms.otf.model import OTFModel
from conlearn.atoms.otf.state import load_checkpoint
from conlearn.configfile import ConfigError
from conlearn.testing.configs import otf_al8, write_yaml

N_INDUCING = 12
# eV/Å, force RMSE on the labelled frames (measured 0.0107) and on held-out reference MD
# (0.0166; the full GP: 0.0256); 0.035 is the held-out target of the 32-atom benchmark
TRAIN_BOUND, HELD_BOUND = 0.02, 0.035
CONFIG = otf_al8(gp={"sparse": {"n_inducing": N_INDUCING, "select": "greedy"}})  # test_otf.py's case


def _write(tmp: Path, data: dict) -> Path:
    return write_yaml(tmp / "otf.yaml", data)


def _same(a, b, where="model") -> None:
    """Plain dicts of arrays, numbers, strings equal exactly (bit for bit)."""
    assert type(a) is type(b), where
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and np.array_equal(a, b), where
    else:
        assert a == b, where


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``once``: one uninterrupted run.  ``twice``: the same run crashed after its second
    label was recorded (before the GP update was checkpointed), then run again into the
    same directory.  Returns the config, the two dirs and the reference calls each made."""
    tmp = tmp_path_factory.mktemp("otf_sparse")
    cfg = load_otf_config(_write(tmp, CONFIG))
    made = []
    real_label, real_add = loop.label_frame, OTFModel.add

    def counting_label(*args, **kwargs):
        made[-1] += 1
        return real_label(*args, **kwargs)

    def crashing_add(self, *args, **kwargs):
        if not self.empty:
            raise KeyboardInterrupt("simulated crash")
        return real_add(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(loop, "label_frame", counting_label)
        made.append(0)
        run_otf(cfg, tmp / "once")
        made.append(0)
        mp.setattr(OTFModel, "add", crashing_add)
        with pytest.raises(KeyboardInterrupt):
            run_otf(cfg, tmp / "twice")
        mp.setattr(OTFModel, "add", real_add)
        made.append(0)
        run_otf(cfg, tmp / "twice")
    return cfg, tmp / "once", tmp / "twice", made


def test_sparse_otf_calls_the_reference_and_learns(runs):
    cfg, once, _, made = runs
    summary = json.loads((once / "summary.json").read_text())
    n_calls = summary["n_calls"]
    assert summary["steps"] == 60 and 2 <= n_calls <= 6  # measured 4 (2 of them audits)
    assert made[0] == n_calls == len((once / "manifest.jsonl").read_text().splitlines())
    gp = load_gp(once / "model" / "gp.npz")
    assert type(gp) is SparseGP and (gp.select, gp.n_inducing) == ("greedy", N_INDUCING)
    n_force_envs = len(gp._labels["force"])
    assert 0 < gp.n_latent <= N_INDUCING < n_force_envs  # the cap binds: 12 of 20
    assert gp.n_labels == 3 * n_force_envs == summary["n_labels"]
    # the checkpointed model is the saved one
    _, model = load_checkpoint(once / "checkpoint.pkl")
    _same(model["gp"], sparse_to_dict(gp))
    # force errors on the labelled frames and on held-out reference MD frames (eV/Å)
    train = ase.io.read(once / "labelled.extxyz", ":")
    assert len(train) == n_calls
    train_rmse = score(gp, train)["rmse"]
    held = score(gp, reference_md_frames(cfg, n_frames=3, seed=99, n_equilibrate=30, every=10))
    assert train_rmse < TRAIN_BOUND and held["rmse"] < HELD_BOUND, (train_rmse, held)


def test_sparse_otf_crash_and_rerun_replays_the_same_run(runs):
    _, once, twice, made = runs
    assert made[1] == 2  # the crash came after the second label was recorded
    assert made[1] + made[2] == made[0]  # rerun: that label replayed, not asked again
    a, model_a = load_checkpoint(once / "checkpoint.pkl")
    b, model_b = load_checkpoint(twice / "checkpoint.pkl")
    assert [c["step"] for c in a.calls] == [c["step"] for c in b.calls]
    assert [c["atoms"] for c in a.calls] == [c["atoms"] for c in b.calls]
    assert [c["hyperparameters"] for c in a.calls] == [c["hyperparameters"] for c in b.calls]
    assert np.array_equal(a.positions, b.positions) and np.array_equal(a.momenta, b.momenta)
    _same(model_a, model_b)  # GP (inducing set, factors, RNG state), map, audits
    _same(load(once / "model" / "gp.npz"), load(twice / "model" / "gp.npz"))
    for name in ("labelled.extxyz", "log.jsonl"):
        assert (once / name).read_bytes() == (twice / name).read_bytes(), name
    assert len((twice / "manifest.jsonl").read_text().splitlines()) == len(a.calls)


def test_sparse_section_is_validated(runs, tmp_path):
    cfg, once, _, _ = runs
    plain = copy.deepcopy(CONFIG)
    del plain["gp"]["sparse"]  # existing configs: the full GP
    assert OTFConfig.model_validate(plain).gp.sparse is None
    assert type(OTFModel.from_spec(OTFConfig.model_validate(plain).gp).gp) is GaussianProcess
    assert cfg.gp.sparse.seed == 0
    for bad, words in (({"n_induce": 12}, ["gp.sparse", "n_induce", "'n_inducing'", "'select'"]),
                       ({"n_inducing": 12, "select": "best"}, ["gp.sparse.select", "greedy"]),
                       ({"select": "greedy"}, ["gp.sparse.n_inducing", "Field required"]),
                       ({"n_inducing": 0}, ["gp.sparse.n_inducing"])):
        data = copy.deepcopy(CONFIG)
        data["gp"]["sparse"] = bad
        path = _write(tmp_path, data)
        line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "sparse:" in t)
        with pytest.raises(ConfigError) as err:
            load_otf_config(path)
        msg = str(err.value)
        assert all(w in msg for w in words) and f"{path}:" in msg, msg
        if "n_induce" in bad:
            assert f"{path}:{line}:" in msg, msg
    # the batch loop's GP has no sparse form: an unknown key there, not ignored
    with pytest.raises(ValueError, match="sparse"):
        BatchGPSpec.model_validate({"sparse": {"n_inducing": 12}})
    # a resume under another inducing cap is refused
    other = copy.deepcopy(CONFIG)
    other["gp"]["sparse"]["n_inducing"] = 16
    with pytest.raises(ValueError, match="different config.*gp"):
        run_otf(OTFConfig.model_validate(other), once)


def test_energy_labels_add_no_inducing_environments():
    """With ``energy_labels`` the frame energy joins without new inducing environments: the
    ``all`` rule would otherwise take the atoms whose forces were just added twice."""
    data = copy.deepcopy(CONFIG)
    data["gp"].update(energy_labels=True, sparse={"n_inducing": 6, "select": "all"})
    model = OTFModel.from_spec(OTFConfig.model_validate(data).gp)
    for seed, idx in ((0, [1, 4, 6]), (1, [0, 2, 3, 5])):
        atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 1, 1))
        atoms.rattle(0.05, seed=seed)
        atoms.calc = EMT()
        model.add(atoms, idx, atoms.get_forces(), atoms.get_potential_energy())
    gp = model.gp
    assert gp.n_labels == 3 * 7 + 2 and gp.n_latent == 6  # 3 + 3 of the 4: the cap
    assert gp.inducing.atom.tolist() == [1, 4, 6, 0, 2, 3]
    assert gp.inducing.frame.tolist() == [0, 0, 0, 1, 1, 1]


def test_a_cap_too_small_grows_instead_of_calling_at_every_check(tmp_path):
    """cap 4 alone: a call at every check from step 15 (10 calls, held-out 0.067 eV/Å);
    with ``grow: 4`` the cap follows the calls (measured: 4 calls, 12 inducing, 0.015)."""
    cfgs = {}
    for grow in (0, 4):
        data = copy.deepcopy(CONFIG)
        data["gp"]["sparse"].update(n_inducing=4, grow=grow)
        cfgs[grow] = OTFConfig.model_validate(data)
    fixed = run_otf(cfgs[0], tmp_path / "fixed")
    grown = run_otf(cfgs[4], tmp_path / "grown")
    assert fixed["n_calls"] >= 8 and grown["n_calls"] <= 6
    _, model = load_checkpoint(tmp_path / "grown" / "checkpoint.pkl")
    gp = OTFModel.from_dict(model, cfgs[4].gp).gp
    assert gp.n_inducing > 4 and gp.n_latent <= gp.n_inducing and gp.n_inducing % 4 == 0
    held = reference_md_frames(cfgs[4], n_frames=3, seed=99, n_equilibrate=30, every=10)
    assert score(gp, held)["rmse"] < HELD_BOUND
    # the grown cap is part of the checkpoint: stopped after a growing call and resumed,
    # the run retraces the uninterrupted one
    run_otf(cfgs[4], tmp_path / "resumed", max_steps=16)
    again = run_otf(cfgs[4], tmp_path / "resumed")
    assert again["call_steps"] == grown["call_steps"]
    a, _ = load_checkpoint(tmp_path / "grown" / "checkpoint.pkl")
    b, _ = load_checkpoint(tmp_path / "resumed" / "checkpoint.pkl")
    assert np.array_equal(a.positions, b.positions)
