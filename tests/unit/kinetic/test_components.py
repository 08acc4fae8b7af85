"""The loop components on their own: labeler payloads, explorer deviation, trainer files."""

import numpy as np

from conlearn.core.records import Candidate, Condition, TaskContext, TrainResult
from conlearn.kinetic import moments as mom
from conlearn.kinetic.closure import Member
from conlearn.kinetic.components import FAILED_DEVIATION, ClosureTrainer, KineticLabeler, MomentExplorer
from conlearn.kinetic.initial import sod
from conlearn.kinetic.mlsolver import deviation
from conlearn.kinetic.training import TrainSettings

PARAMS = {"spec": sod(), "kn": 0.2}


def ctx(tmp_path, key="t", index=0):
    return TaskContext(key=key, iteration=0, index=index, seed=7, workdir=str(tmp_path))


def test_labeler_payload_is_the_kinetic_trajectory(tmp_path):
    lab = KineticLabeler(nx=16, t_end=0.04, n_snapshots=2, degree=4)
    p = lab.label(Candidate(0.0, PARAMS), ctx(tmp_path))
    assert p["mu"].shape == (2 * 16, 2, 6) and p["ghat"].shape == (2 * 16, 2, mom.N_XI)
    assert np.abs(mom.apply(mom.constraint_rows(6), p["mu"]) - mom.CONSTRAINT_VALUES).max() < 1e-10
    assert np.allclose(p["t"], [0.02, 0.04]) and p["condition"]["kn"] == 0.2
    assert p["final"]["rho"].shape == (16,) and abs(p["final"]["rho"].mean() - (1 + 0.125) / 2) < 0.02


def test_explorer_deviation_is_the_ensemble_disagreement(tmp_path):
    paths = [str(Member.random(4, seed=s, amplitude=a).save(tmp_path / f"m{s}{a}.pt")) for s, a in ((0, 0), (1, 1.0))]
    same = [TrainResult(member=k, model_paths=(paths[0],)) for k in range(2)]
    differ = [TrainResult(member=k, model_paths=(paths[k],)) for k in range(2)]
    ex = MomentExplorer(nx=32, t_end=0.05)
    cond = Condition("sod", PARAMS)
    b0 = ex.explore(same, cond, ctx(tmp_path))
    b1 = ex.explore(differ, cond, ctx(tmp_path))
    assert b0.candidates[0].deviation == 0.0 and b0.candidates[0].payload == PARAMS
    assert 1e-4 < b1.candidates[0].deviation < FAILED_DEVIATION
    assert b1.meta["kn"] == 0.2 and b1.meta["failed"] == ""


def test_deviation_definition():
    base = {"rho": np.ones(4), "u": np.zeros(4), "T": np.ones(4)}
    other = {"rho": np.ones(4) * 1.02, "u": np.zeros(4), "T": np.ones(4)}
    assert deviation([base, base]) == 0.0
    assert abs(deviation([base, other]) - 0.01 / 1.01) < 1e-12       # std of (1, 1.02) / mean
    assert deviation([base, {**other, "u": np.full(4, np.nan)}]) == float("inf")


def test_trainer_writes_a_loadable_member_and_warm_starts(tmp_path):
    lab = KineticLabeler(nx=16, t_end=0.04, n_snapshots=2, degree=3)
    data = [lab.label(Candidate(0.0, PARAMS), ctx(tmp_path))]
    tr = ClosureTrainer(TrainSettings(degree=3, hidden=(8,), decoder_hidden=(8,), ae_steps=5, steps=10,
                                      reuse_steps=5, batch=64))
    r0 = tr.train(data, None, ctx(tmp_path / "a", index=1))
    assert r0.member == 1 and Member.load(r0.model_paths[0]).n_moments == 3
    r1 = tr.train(data, r0, ctx(tmp_path / "b", index=1))
    assert r1.metrics["warm"] and not r0.metrics["warm"]
