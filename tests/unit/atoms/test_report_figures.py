"""The ε_f histogram figure of the report: one panel per structure, the trust window's
fractions in each title, every frame counted (none dropped outside the bins)."""

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402

from conlearn.atoms.dpgen.figures import deviation_figure, log_deviations  # noqa: E402
from conlearn.core.records import Candidate, Condition, ExploredBatch  # noqa: E402


def batch(name, T, P, devs):
    return ExploredBatch(Condition(name, {"temperature": T, "pressure": P}),
                         tuple(Candidate(float(d), None) for d in devs))


BATCHES = [batch("fcc-T50-P0", 50.0, 0.0, [1e-6] + [0.01] * 9),      # 10 accurate, one at t = 0
           batch("fcc-T800-P5", 800.0, 5.0, [0.1] * 5 + [0.5] * 5),  # 5 candidate, 5 failed
           batch("slab-T300", 300.0, None, 10 ** np.random.default_rng(0).uniform(-2, -1, 40))]


def test_every_frame_is_binned_and_the_window_is_inside_the_range():
    devs, bins = log_deviations(BATCHES, (0.05, 0.3))
    for b in BATCHES:
        counts, _ = np.histogram(devs[id(b)], bins=bins)
        assert counts.sum() == len(b.candidates)
    assert bins[0] < np.log10(0.05) and bins[-1] > np.log10(0.3)
    assert bins[0] > -4  # the t = 0 frame (1e-6) does not stretch the axis


def test_one_panel_per_structure_with_the_window_fractions_and_a_legend():
    fig = deviation_figure(BATCHES, (0.05, 0.3), [50.0, 300.0, 800.0])
    panels = [ax for ax in fig.axes if ax.axison]
    assert [ax.get_title().split("\n")[0] for ax in panels] == ["fcc", "slab"]
    assert panels[0].get_title().split("\n")[1] == "accurate 50 %, candidate 25 %, failed 25 %"
    labels = [t.get_text() for t in fig.axes[len(panels)].get_legend().get_texts()]
    assert labels[:3] == ["50 K", "300 K", "800 K"]
    assert {"0 GPa", "5 GPa", "accurate (< 0.05)", "failed (≥ 0.3)"} <= set(labels)


def test_learning_curves_are_stitched_over_the_run(tmp_path):
    """Each training's steps go on from where the member's previous training stopped."""
    from conlearn.atoms.deeppot.lcurve import LCurve
    from conlearn.atoms.dpgen.figures import learning_figure, stitch_lcurves, training_stages

    work = tmp_path / "work"
    plan = {"iter-000/train": 40, "iter-001/train": 20, "iter-001/final": 30}
    for stage, n in plan.items():
        for member in ("000", "001"):
            d = work / stage / member
            d.mkdir(parents=True)
            lc = LCurve(d / "lcurve.out")
            for step in range(10, n + 1, 10):
                lc.write(step, {"rmse_f": 0.5}, {"rmse_f": 1.0 / step, "rmse_e": 0.1}, 1e-3, 0.0)
            lc.close()
    stages = training_stages(work)
    assert [name for name, _ in stages] == ["i0", "i1", "final"]
    x, y, starts = stitch_lcurves(stages, "001")
    assert starts == [0, 40, 60]
    np.testing.assert_array_equal(x, [10, 20, 30, 40, 50, 60, 70, 80, 90])
    np.testing.assert_allclose(y, [1 / 10, 1 / 20, 1 / 30, 1 / 40, 1 / 10, 1 / 20, 1 / 10, 1 / 20, 1 / 30], rtol=1e-4)  # written as %.4e
    fig = learning_figure(stages)
    assert [line.get_label() for line in fig.axes[0].lines if line.get_label().startswith("member")] == \
        ["member 000", "member 001"]
