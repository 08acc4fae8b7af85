"""Trust-window selection: classification boundaries, convergence, cap, de-duplication."""

import math

import pytest

from conlearn.core import Candidate, Condition, ExploredBatch, TaskContext, TrustWindowSelector, derive_seed
from conlearn.core.protocols import Selector, check_component


def ctx(seed=0):
    return TaskContext(key="iter-000/select", iteration=0, index=0, seed=seed, workdir="/tmp")


def batch(devs, prefix="iter-000/explore/0000"):
    cands = tuple(Candidate(deviation=d, payload=i, key=f"{prefix}/{i:05d}") for i, d in enumerate(devs))
    return ExploredBatch(condition=Condition("c"), candidates=cands)


def test_window_boundaries_lo_inclusive_hi_exclusive_nan_failed():
    sel = TrustWindowSelector(lo=0.1, hi=0.5)
    assert [sel.classify(d) for d in (0.0, 0.0999, 0.1, 0.4999, 0.5, 7.0, math.nan)] == [
        "accurate", "accurate", "candidate", "candidate", "failed", "failed", "failed"]


def test_counts_and_convergence_threshold():
    devs = [0.01] * 97 + [0.2, 0.3] + [0.9]
    s = TrustWindowSelector(0.1, 0.5, threshold=0.97).select([batch(devs[:50]), batch(devs[50:], "b")], ctx())
    assert (s.n_explored, s.n_accurate, s.n_candidate, s.n_failed) == (100, 97, 2, 1)
    assert s.accurate_fraction == pytest.approx(0.97)
    assert s.converged
    assert [c.payload for c in s.selected] == [47, 48]
    assert not TrustWindowSelector(0.1, 0.5, threshold=0.98).select([batch(devs)], ctx()).converged
    assert not TrustWindowSelector(0.1, 0.5).select([], ctx()).converged  # nothing explored


def test_cap_random_is_seeded_and_largest_takes_top():
    devs = [0.1 + 0.001 * i for i in range(100)]
    sel = TrustWindowSelector(0.1, 0.5, max_select=10)
    a = sel.select([batch(devs)], ctx(1)).selected
    assert len(a) == 10 and a == sel.select([batch(devs)], ctx(1)).selected
    assert a != sel.select([batch(devs)], ctx(2)).selected
    assert [c.key for c in a] == sorted(c.key for c in a)
    top = TrustWindowSelector(0.1, 0.5, max_select=3, order="largest").select([batch(devs)], ctx()).selected
    assert [c.payload for c in top] == [99, 98, 97]


def _every_other(cands):
    return cands[::2]


def test_dedup_hook_runs_before_the_cap():
    sel = TrustWindowSelector(0.1, 0.5, max_select=100, dedup=_every_other)
    s = sel.select([batch([0.2] * 10)], ctx())
    assert s.n_candidate == 10 and [c.payload for c in s.selected] == [0, 2, 4, 6, 8]


@pytest.mark.parametrize("kw", [dict(lo=0.5, hi=0.5), dict(lo=-1, hi=1), dict(lo=0, hi=1, threshold=0),
                                dict(lo=0, hi=1, max_select=-1), dict(lo=0, hi=1, order="smallest")])
def test_bad_settings_are_errors(kw):
    with pytest.raises(ValueError):
        TrustWindowSelector(**kw)


def test_selector_satisfies_protocol_and_bad_component_is_named():
    check_component(TrustWindowSelector(0, 1), Selector, "selector")
    with pytest.raises(TypeError, match=r"missing method\(s\) \['select'\]"):
        check_component(object(), Selector, "selector")


def test_derived_seeds_are_stable_and_distinct():
    assert derive_seed(0, "iter-000/train/000") == derive_seed(0, "iter-000/train/000")
    seeds = {derive_seed(s, f"iter-000/train/{m:03d}") for s in range(3) for m in range(50)}
    assert len(seeds) == 150 and all(0 <= s < 2**63 for s in seeds)


def test_cap_balanced_shares_labels_over_conditions():
    many = batch([0.2] * 90, "iter-000/explore/0000")  # one condition with 90 candidates
    few = batch([0.2] * 3, "iter-000/explore/0001")  # another with 3
    mid = batch([0.2] * 20, "iter-000/explore/0002")
    sel = TrustWindowSelector(0.1, 0.5, max_select=12, order="balanced")
    got = sel.select([many, few, mid], ctx(4)).selected
    per = {p: sum(c.key.startswith(p) for c in got) for p in ("iter-000/explore/0000", "iter-000/explore/0001",
                                                              "iter-000/explore/0002")}
    assert per == {"iter-000/explore/0000": 5, "iter-000/explore/0001": 3, "iter-000/explore/0002": 4}
    assert [c.key for c in got] == sorted(c.key for c in got)  # key order kept
    assert got == sel.select([many, few, mid], ctx(4)).selected  # seeded
    # random order would give the small conditions about 12 * 23/113 labels in all
    with pytest.raises(ValueError, match="balanced"):
        TrustWindowSelector(0.1, 0.5, order="nearest")


def test_balanced_largest_takes_rare_peaks_spread_in_time():
    devs = [0.12] * 100
    devs[40:43] = [0.28, 0.29, 0.27]  # one rare event, three neighbouring frames
    devs[80] = 0.25
    quiet = batch([0.11] * 50, "iter-000/explore/0001")
    sel = TrustWindowSelector(0.1, 0.5, max_select=4, order="balanced-largest", min_gap=5)
    got = sel.select([batch(devs), quiet], ctx()).selected
    picks = [c.key for c in got if c.key.startswith("iter-000/explore/0000")]
    assert picks[:2] == ["iter-000/explore/0000/00041", "iter-000/explore/0000/00080"]  # peaks, not 40 and 42
    assert sum(c.key.startswith("iter-000/explore/0001") for c in got) == 2  # the other condition's share
    with pytest.raises(ValueError, match="min_gap"):
        TrustWindowSelector(0.1, 0.5, min_gap=-1)
