"""Loop components: the explorer's deviations are the committee's, a blow-up is one failed
item, the mW labeler returns exact forces, the restrained all-atom labeler a mean mapped force."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conlearn.cg.components import CGExplorer, RestrainedLabeler, ToyLabeler
from conlearn.cg.model import BeadCommittee, BeadNet, BeadNetSpec, delta_model, save_model
from conlearn.cg.potential import lj_table
from conlearn.cg.toy import MW, lattice_liquid
from conlearn.core.records import Candidate, Condition, TaskContext, TrainResult

SPEC = dict(rcut=0.45, rcut_smth=0.25, sel=40, neuron=[4, 8], axis_neuron=4, fitting_neuron=[8, 8])


def ctx(tmp_path, key="iter-000/explore/0000", seed=5):
    return TaskContext(key=key, iteration=0, index=0, seed=seed, workdir=str(tmp_path))


def committee_files(tmp_path, pair, scale=5.0):
    R, box = lattice_liquid(27)
    out = []
    for s in (1, 2):
        net = BeadNet(BeadNetSpec(**SPEC, seed=s))
        net.set_stats([(R, box)])
        net.spec.energy_scale = scale
        out.append(TrainResult(s - 1, (str(save_model(delta_model(pair, net), tmp_path / f"m{s}")),)))
    return out


def condition(n_steps=60, R0=None):
    R, box = lattice_liquid(27, density=30.0, seed=1)
    return Condition("T300", {"R0": (R if R0 is None else R0).tolist(), "box": box.tolist(),
                              "masses": [18.0] * 27, "temperature": 300.0, "n_steps": n_steps, "dt_fs": 2.0,
                              "friction_per_ps": 5.0, "save_every": 20})


def test_explorer_deviation_is_the_committees(tmp_path):
    pair = lj_table(0.65, 0.3, 0.6)
    models = committee_files(tmp_path, pair)
    batch = CGExplorer().explore(models, condition(), ctx(tmp_path))
    assert batch.meta["ok"] and len(batch.candidates) == 3
    com = BeadCommittee([delta_model(pair, BeadNet.load(tmp_path / f"m{s}" / "ml.pt")) for s in (1, 2)])
    for c in batch.candidates:
        assert c.deviation == pytest.approx(com.evaluate(c.payload["R"], c.payload["box"])[2], rel=1e-9)
        assert c.deviation > 0 and (c.payload["R"] >= 0).all() and (c.payload["R"] < c.payload["box"]).all()
    again = CGExplorer().explore(models, condition(), ctx(tmp_path))  # same seed, same trajectory
    assert [c.deviation for c in again.candidates] == [c.deviation for c in batch.candidates]
    nxt = CGExplorer().follow(condition(), batch)  # the next iteration continues from the last frame
    np.testing.assert_array_equal(nxt.params["R0"], batch.candidates[-1].payload["R"])
    assert CGExplorer(continue_trajectories=False).follow(condition(), batch) == condition()


def test_explorer_blow_up_is_one_failed_item(tmp_path):
    pair = lj_table(0.65, 0.3, 0.6)
    models = committee_files(tmp_path, pair)
    R = np.asarray(condition().params["R0"])
    R[1] = R[0] + [0.01, 0, 0]  # overlapping beads: the bead graph refuses them
    batch = CGExplorer().explore(models, condition(R0=R), ctx(tmp_path))
    assert not batch.meta["ok"] and batch.meta["reason"]
    assert math.isinf(batch.candidates[-1].deviation)
    assert CGExplorer().follow(condition(R0=R), batch).params["R0"] == R.tolist()  # a failed run restarts


def test_toy_labeler_gives_the_mw_forces(tmp_path):
    R, box = lattice_liquid(27)
    out = ToyLabeler().label(Candidate(0.0, {"R": R, "box": box}), ctx(tmp_path))
    np.testing.assert_allclose(out["F"], MW().energy_forces(R, box)[1].numpy())
    assert out["stderr"].shape == (27, 3) and np.abs(out["F"]).max() > 1


def test_restrained_labeler_on_a_small_water_box(tmp_path):
    from conlearn.cg.allatom import AllAtomSpec, run_allatom
    from conlearn.cg.mapping import com_mapping

    spec = AllAtomSpec(liquid="spce", n_molecules=32, cutoff_nm=0.45)
    aa = run_allatom(spec, 100, 100, seed=0)
    mapping = com_mapping(aa["masses"], aa["molecule_of_atom"])
    R = mapping.map_positions(aa["positions"], aa["box"])[-1] % aa["box"]
    lab = RestrainedLabeler(spec=spec.__dict__.copy(), mapping=mapping, k_restraint=5e4, n_steps=100, equil_steps=20)
    out = lab.label(Candidate(0.0, {"R": R, "box": aa["box"]}), ctx(tmp_path, "iter-000/label/000000"))
    assert out["F"].shape == (32, 3) and np.isfinite(out["F"]).all() and (out["stderr"] >= 0).all()
    assert np.abs(out["F"].sum(0)).max() < 1e-3 * np.abs(out["F"]).max() * 32  # internal forces: sum ~ 0
    np.testing.assert_array_equal(out["R"], R)
