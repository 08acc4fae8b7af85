"""The whole RiD loop over 4 CVs (2 periodic, 2 not) on a stand-in engine with a harmonic A:
run, outputs without the 2-D grid, load_free_energy in 4-D, status and report."""

import json
from dataclasses import dataclass

import numpy as np

from conlearn.exec import InProcessExecutor
from conlearn.rid import load_free_energy
from conlearn.rid.cv import wrap
from conlearn.rid.engine import ENGINES, MDResult, kT
from conlearn.rid.outputs import labels_of
from conlearn.rid.workflow import WORKFLOW

S0 = np.array([-1.2, 2.8, 0.3, 0.5])
K = np.array([20.0, 20.0, 200.0, 200.0])  # kJ/mol/rad², kJ/mol/nm²
PER = (True, True, False, False)


@dataclass(frozen=True)
class Gauss4:
    """A(s) = Σ ½ K_j wrap(s_j − S0_j)²; MD replaced by exact independent samples (the state is s)."""

    cvs: tuple = ()
    temperature: float = 300.0
    n_atoms = 10

    def initial_state(self, seed):
        return S0.copy()

    def _samples(self, mean, k, n, seed):
        rng = np.random.default_rng(seed)
        return wrap(mean + rng.standard_normal((n, 4)) * np.sqrt(kT(self.temperature) / k), PER)

    def biased_md(self, bias, n_steps, frame_every, seed, start):
        s = self._samples(S0, K, n_steps // frame_every, seed)
        if bias is not None:  # the bias is evaluated on the frames (shapes checked), not applied
            V, g = bias.energy_and_grad(s)
            assert V.shape == (len(s),) and g.shape == s.shape
        return MDResult(cv=s, last=s[-1], n_steps=n_steps)

    def restrained_md(self, center, kappa, n_steps, frame_every, seed, start):
        mean = center + wrap(S0 - center, PER) * K / (K + kappa)
        return MDResult(cv=self._samples(mean, K + kappa, n_steps // frame_every, seed), last=center, n_steps=n_steps)


ENGINES.register("test-gauss4", Gauss4, replace=True)

CONFIG = """workflow: rid
engine: {kind: test-gauss4}
cvs:
  - {name: phi, kind: dihedral, atoms: [0, 1, 2, 3]}
  - {name: psi, kind: dihedral, atoms: [1, 2, 3, 4]}
  - {name: r1, kind: distance, atoms: [5, 6]}
  - {name: r2, kind: distance, atoms: [7, 9]}
model: {n_members: 3, neurons: [16, 16]}
training: {n_steps: 300, reuse_n_steps: 100, final_n_steps: 400}
trust: {e0: 0.5, e1: 1.0}
explore: {n_walkers: 2, n_steps: 400, frame_every: 10}
select: {cluster_distance: 0.4, max_select: 12}
label: {kappa: 1000, n_steps: 4000, max_error: 3.0}
loop: {max_iterations: 3, label_last: true}
"""


def test_four_cv_loop_end_to_end(tmp_path):
    cfg_path = tmp_path / "rid4.yaml"
    cfg_path.write_text(CONFIG)
    out = tmp_path / "run"
    summary = WORKFLOW.run(WORKFLOW.load(cfg_path), out, InProcessExecutor())
    assert summary["cvs"] == ["phi", "psi", "r1", "r2"] and summary["iterations"] == 3
    assert summary["labels"] >= 20 and summary["md_steps_label"] == 4000 * (summary["labels"] + summary["labels_dropped"])
    assert summary["md_steps_explore"] == 3 * 2 * 400
    assert not (out / "fes_grid.npz").exists()
    fe = load_free_energy(out)
    assert fe.d == 4 and fe.periodic == PER
    rng = np.random.default_rng(0)
    s = wrap(S0 + rng.standard_normal((50, 4)) * np.sqrt(kT(300) / K), PER)  # where the walkers went
    kappa = 1000.0
    exact = -K * wrap(s - S0, PER) * kappa / (kappa + K)  # what the labels measure (−∇A_κ)
    F = fe.mean_force(s)
    assert F.shape == (50, 4) and fe.A(s).shape == (50,)
    rel = np.sqrt(np.mean((F - exact) ** 2, axis=0)) / np.sqrt(np.mean(exact ** 2, axis=0))
    assert np.all(rel < 0.35), rel
    pts = np.array([p["s"] for p in labels_of(out)])
    assert abs(fe.A(pts).min()) < 1e-9  # d != 2: A is shifted to 0 at its lowest labelled point
    labels = json.loads((out / "summary.json").read_text())["labels"]
    text = WORKFLOW.status(out)
    assert "iter 2" in text and f"labels {labels}," in text
    html = WORKFLOW.report(out).read_text()
    assert html.count("data:image/png;base64") == 2  # counts per iteration and labels (no 2-D maps)
