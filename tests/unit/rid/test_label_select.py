"""Mean-force labels on an analytic harmonic well, rerun/drop, clustering bounds, trust levels."""

import json
import math
from dataclasses import dataclass

import numpy as np
import pytest

from conlearn.core.records import Candidate, Condition, ExploredBatch, TaskContext
from conlearn.core.tasks import label_with_retries
from conlearn.rid.cv import CVSpec, wrap
from conlearn.rid.engine import MDResult, kT
from conlearn.rid.label import LabelDropped, RestrainedLabeler, block_standard_error, mean_force
from conlearn.rid.select import ClusterSelector, TrustLevels, clusters, periodic_distances, representatives


@dataclass(frozen=True)
class HarmonicWell:
    """A = ½ k_w wrap(s − s0)² per CV; restrained MD sampled exactly as an AR(1) (OU) process."""

    s0: tuple = (0.4, 3.0)
    k_w: float = 200.0
    rho: float = 0.8
    extra_noise: float = 0.0  # kJ/mol/rad-scale noise added to the frames (to force reruns)
    temperature: float = 300.0
    cvs: tuple = (CVSpec("r", "distance", (0, 1)), CVSpec("phi", "dihedral", (0, 1, 2, 3)))

    def restrained_md(self, center, kappa, n_steps, frame_every, seed, start):
        rng = np.random.default_rng(seed)
        per = [c.periodic for c in self.cvs]
        k = np.asarray(kappa)
        mean = center + wrap(np.asarray(self.s0) - center, per) * self.k_w / (self.k_w + k)
        sd = np.sqrt(kT(self.temperature) / (self.k_w + k))
        x, out = center.copy(), []
        for _ in range(n_steps):
            x = mean + self.rho * (x - mean) + math.sqrt(1 - self.rho ** 2) * sd * rng.standard_normal(2)
            out.append(x + self.extra_noise * rng.standard_normal(2) / k)
        return MDResult(cv=wrap(np.array(out), per), last=x, n_steps=n_steps)


def ctx(tmp_path, seed=1, key="iter-000/label/000000"):
    return TaskContext(key=key, iteration=0, index=0, seed=seed, workdir=str(tmp_path))


def test_mean_force_of_harmonic_well_matches_the_exact_restrained_gradient(tmp_path):
    eng, kappa = HarmonicWell(), (500.0, 500.0)
    lab = RestrainedLabeler(eng, kappa, n_steps=20000, max_error=5.0)
    centers = [np.array([0.1, -3.0]), np.array([0.7, 2.5])]  # −3.0 is 0.28 rad from s0 = 3.0 across ±π
    z = []
    for i, c in enumerate(centers):
        got = lab.label(Candidate(0.0, {"s": c, "state": None}, key="k"), ctx(tmp_path, seed=i))
        exact = -eng.k_w * wrap(c - np.array(eng.s0), [False, True]) * 500.0 / (500.0 + eng.k_w)
        assert np.all(np.abs(got["mean_force"] - exact) < 4 * got["error"]), (got, exact)
        z.append((got["mean_force"] - exact) / got["error"])
        assert got["n_steps"] == 20000 and not got["reran"]
    assert abs(exact[1]) > 10  # the periodic case is far from zero: the wrap matters


def test_block_error_estimates_the_true_standard_error():
    rng = np.random.default_rng(0)
    errs = [block_standard_error(rng.standard_normal((2000, 1)), 10)[0] for _ in range(200)]
    assert np.mean(errs) == pytest.approx(1 / math.sqrt(2000), rel=0.1)
    # the error bar of a correlated series is calibrated: z-scores of repeated labels have rms ~ 1
    eng = HarmonicWell(rho=0.95)
    zs = []
    for seed in range(40):
        f, e = mean_force(eng.restrained_md(np.array([0.1, 2.9]), np.array([500.0, 500.0]), 4000, 1, seed, None).cv,
                          [0.1, 2.9], [500.0, 500.0], [False, True], 0.2, 10)
        exact = -eng.k_w * wrap(np.array([0.1, 2.9]) - eng.s0, [False, True]) * 500 / 700
        zs.append((f - exact) / e)
    assert 0.7 < np.sqrt(np.mean(np.square(zs))) < 1.5


def test_noisy_label_is_rerun_longer_then_dropped_and_quarantined(tmp_path):
    noisy = RestrainedLabeler(HarmonicWell(extra_noise=4000.0), (500.0, 500.0), n_steps=400, max_error=0.5,
                              rerun_factor=3)
    cand = Candidate(0.0, {"s": np.array([0.2, 3.0]), "state": None}, key="iter-000/explore/0000/00001")
    with pytest.raises(LabelDropped, match=r"after a 3x longer rerun \(1600 MD steps\)"):
        noisy.label(cand, ctx(tmp_path))
    assert json.loads((tmp_path / "md.json").read_text()) == {"n_steps": 1600}
    res = label_with_retries(noisy, cand, 0, None, ctx(tmp_path))
    assert not res.ok and res.payload is None and "max_error 0.5" in res.reason
    # a label that passes only after the rerun is kept, marked, with both runs' steps counted
    ok = RestrainedLabeler(HarmonicWell(extra_noise=0.0), (500.0, 500.0), n_steps=400, max_error=1.6,
                           rerun_factor=20).label(cand, ctx(tmp_path, seed=3))
    assert ok["reran"] and ok["n_steps"] == 400 + 8000 and np.max(ok["error"]) <= 1.6


def test_clusters_are_bounded_in_periodic_distance_and_representatives_capped():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-math.pi, math.pi, (300, 2))
    per = (True, True)
    ids = clusters(pts, per, 0.5)
    for c in np.unique(ids):
        sub = pts[ids == c]
        if len(sub) > 1:
            assert periodic_distances(sub, per).max() <= 0.5 + 1e-12
    reps = representatives(pts, per, 0.5, None, seed=1)
    assert len(reps) == len(np.unique(ids)) and len(set(ids[reps])) == len(reps)
    capped = representatives(pts, per, 0.5, 7, seed=1)
    assert len(capped) == 7 and capped == representatives(pts, per, 0.5, 7, seed=1)
    # across the ±π seam two points 0.02 apart are one cluster; without periodicity they are two
    seam = np.array([[math.pi - 0.01, 0.0], [-math.pi + 0.01, 0.0]])
    assert len(set(clusters(seam, per, 0.1))) == 1
    assert len(set(clusters(seam, (False, False), 0.1))) == 2


def test_selector_takes_untrusted_frames_only_and_counts():
    def batch(eps, e0, offset):
        cands = tuple(Candidate(e, {"s": np.array([offset + 0.5 * i, 0.0]), "state": None}, key=f"b{offset}/{i}")
                      for i, e in enumerate(eps))
        return ExploredBatch(Condition("w"), cands, {"e0": e0})

    sel = ClusterSelector((True, True), cluster_distance=0.1, max_select=3).select(
        [batch([0.1, 2.0, 3.0, 0.5], 1.0, 0.0), batch([5.0, 0.2], 1.0, 1.7)], ctx("/tmp"))
    assert (sel.n_explored, sel.n_accurate, sel.n_candidate, sel.n_failed) == (6, 3, 3, 0)
    assert sorted(c.key for c in sel.selected) == ["b0.0/1", "b0.0/2", "b1.7/0"]


def test_trust_levels_rise_when_too_few_clusters_and_reset():
    t = TrustLevels(e0=2.0, e1=3.0, factor=1.5, max_scale=2.0, min_clusters=4)
    assert t.at([]) == (2.0, 3.0)
    assert t.at([10, 2]) == (3.0, 4.5)
    assert t.at([10, 2, 0, 1]) == (4.0, 6.0)       # capped at max_scale
    assert t.at([10, 2, 0, 5]) == (2.0, 3.0)       # enough clusters: back to the configured levels


def test_converged_only_once_the_trust_levels_are_at_their_maximum():
    cands = (Candidate(0.1, {"s": np.array([0.0, 0.0]), "state": None}, key="a/0"),)
    sel = ClusterSelector((True, True), converge_fraction=0.9)
    low = sel.select([ExploredBatch(Condition("w"), cands, {"e0": 1.0, "trust_at_max": False})], ctx("/tmp"))
    assert low.accurate_fraction == 1.0 and not low.converged
    high = sel.select([ExploredBatch(Condition("w"), cands, {"e0": 1.0, "trust_at_max": True})], ctx("/tmp"))
    assert high.converged


def test_a_diverging_walker_is_retried_then_skipped_not_fatal(tmp_path):
    """R2's finding: one walker's NaN stopped the whole run (StageError). Now: one retry with
    another seed, then an empty batch that records why, keeps its start and blocks convergence."""
    from conlearn.core.records import TrainResult
    from conlearn.rid.explore import BiasedExplorer
    from conlearn.rid.model import Ensemble

    @dataclass(frozen=True)
    class Flaky:
        fail_seeds: tuple = ()
        cvs: tuple = ()
        temperature: float = 300.0

        def biased_md(self, bias, n_steps, frame_every, seed, start):
            if seed in self.fail_seeds or -1 in self.fail_seeds:
                raise FloatingPointError("MD diverged (positions not finite)")
            return MDResult(cv=np.zeros((3, 2)), last=np.ones(3), n_steps=n_steps)

    path, _ = Ensemble(periodic=(True, True), n_members=2, neurons=(8,), seed=0).save(tmp_path / "ens")
    model = TrainResult(0, (path,), {"e0": 1.0, "e1": 2.0})
    ctx = TaskContext(key="iter-000/explore/0000", iteration=0, index=0, seed=7, workdir=str(tmp_path))
    cond = Condition("walker-00", {"walker": 0, "start": [0.1, 0.2, 0.3]})
    once = BiasedExplorer(Flaky(fail_seeds=(7,)), n_steps=30, frame_every=10).explore([model], cond, ctx)
    assert len(once.candidates) == 3 and len(once.meta["failed"]) == 1 and once.meta["n_steps"] == 30
    never = BiasedExplorer(Flaky(fail_seeds=(-1,)), n_steps=30, frame_every=10).explore([model], cond, ctx)
    assert never.candidates == () and never.meta["last"] == [0.1, 0.2, 0.3] and never.meta["n_steps"] == 0
    assert len(never.meta["failed"]) == 2 and "FloatingPointError" in never.meta["failed"][1]
    assert never.meta["trust_at_max"] is False
