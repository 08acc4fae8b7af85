"""The ε_f histogram figure of the report: one panel per structure, the trust window's
fractions in each title, every frame counted (none dropped outside the bins)."""

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402

from conlearn.atoms.dpgen.report import _deviation_figure, _log_deviations  # noqa: E402
from conlearn.core.records import Candidate, Condition, ExploredBatch  # noqa: E402


def batch(name, T, P, devs):
    return ExploredBatch(Condition(name, {"temperature": T, "pressure": P}),
                         tuple(Candidate(float(d), None) for d in devs))


BATCHES = [batch("fcc-T50-P0", 50.0, 0.0, [1e-6] + [0.01] * 9),      # 10 accurate, one at t = 0
           batch("fcc-T800-P5", 800.0, 5.0, [0.1] * 5 + [0.5] * 5),  # 5 candidate, 5 failed
           batch("slab-T300", 300.0, None, 10 ** np.random.default_rng(0).uniform(-2, -1, 40))]


def test_every_frame_is_binned_and_the_window_is_inside_the_range():
    devs, bins = _log_deviations(BATCHES, (0.05, 0.3))
    for b in BATCHES:
        counts, _ = np.histogram(devs[id(b)], bins=bins)
        assert counts.sum() == len(b.candidates)
    assert bins[0] < np.log10(0.05) and bins[-1] > np.log10(0.3)
    assert bins[0] > -4  # the t = 0 frame (1e-6) does not stretch the axis


def test_one_panel_per_structure_with_the_window_fractions_and_a_legend():
    fig = _deviation_figure(BATCHES, (0.05, 0.3), [50.0, 300.0, 800.0])
    panels = [ax for ax in fig.axes if ax.axison]
    assert [ax.get_title().split("\n")[0] for ax in panels] == ["fcc", "slab"]
    assert panels[0].get_title().split("\n")[1] == "accurate 50 %, candidate 25 %, failed 25 %"
    labels = [t.get_text() for t in fig.axes[len(panels)].get_legend().get_texts()]
    assert labels[:3] == ["50 K", "300 K", "800 K"]
    assert {"0 GPa", "5 GPa", "accurate (< 0.05)", "failed (≥ 0.3)"} <= set(labels)
