"""Bead models: the physics kit (finite differences, invariances, cutoff smoothness) through
the ASE adapter, Δ with a zero ML part equals its pair table, files round-trip, committee."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ase import Atoms

from conlearn.cg import load_calculator, load_model
from conlearn.cg.calculator import KJ_PER_EV, BeadCalculator
from conlearn.cg.model import BeadCommittee, BeadNet, BeadNetSpec, delta_model, save_model
from conlearn.cg.neighbors import build_pairs
from conlearn.cg.potential import lj_table
from conlearn.cg.toy import lattice_liquid
from conlearn.testing import physics as P

SPEC = dict(rcut=0.5, rcut_smth=0.3, sel=40, neuron=[4, 8], axis_neuron=4, fitting_neuron=[8, 8])


def net(seed=1) -> BeadNet:
    m = BeadNet(BeadNetSpec(**SPEC, seed=seed))
    R, box = lattice_liquid(27, seed=seed)
    m.set_stats([(R, box)])
    m.spec.energy_scale = 10.0
    return m


def beads(R, box) -> Atoms:
    return Atoms("X" * len(R), positions=np.asarray(R) * 10, cell=np.asarray(box) * 10, pbc=True)


@pytest.fixture(scope="module")
def liquid():
    return lattice_liquid(27, jitter=0.03, seed=3)


@pytest.mark.parametrize("kind", ["ml", "delta"])
def test_physics_kit(kind, liquid):
    m = net() if kind == "ml" else delta_model(lj_table(0.65, 0.3, 0.7), net())
    calc, atoms = BeadCalculator(m), beads(*liquid)
    results = [P.check_forces_fd(calc, atoms, n_atoms=4, delta=1e-4, rtol=1e-6),
               P.check_translation_invariance(calc, atoms), P.check_permutation_invariance(calc, atoms)]
    P.assert_all_passed(results)
    assert np.abs(calc.get_forces(atoms)).max() > 1e-3  # not a trivial zero model


def test_rotation_invariance_of_a_cluster_in_a_large_box():
    m = net()
    rng = np.random.default_rng(0)
    R = np.array([[0, 0, 0], [0.28, 0, 0], [0, 0.3, 0.05], [0.1, 0.1, 0.29], [-0.2, 0.15, -0.1]]) + 2.0
    box = np.full(3, 4.0)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    R2 = (R - 2.0) @ q.T + 2.0
    e1, f1 = m.energy_forces(torch.as_tensor(R), torch.as_tensor(box))
    e2, f2 = m.energy_forces(torch.as_tensor(R2), torch.as_tensor(box))
    assert abs(float(e1 - e2)) < 1e-10
    np.testing.assert_allclose(f2.numpy(), f1.numpy() @ q.T, atol=1e-10)


def test_cutoff_smoothness_of_a_dimer():
    calc = BeadCalculator(net())

    def dimer(r_ang):
        return Atoms("XX", positions=[[20, 20, 20], [20 + r_ang, 20, 20]], cell=[40, 40, 40], pbc=True)

    P.assert_cutoff_smoothness(calc, dimer, r_cut=SPEC["rcut"] * 10, width=0.2, step=0.005)


def test_delta_with_zero_ml_part_equals_the_pair_table(liquid):
    pair, ml = lj_table(0.65, 0.3, 0.7), net()
    for p in ml.net.fitting.parameters():
        torch.nn.init.zeros_(p)
    R, box = map(torch.as_tensor, liquid)
    e, f = delta_model(pair, ml).energy_forces(R, box)
    ep, fp = pair.energy_forces(R, box)
    assert abs(float(e - ep)) < 1e-10 and float((f - fp).abs().max()) < 1e-10
    assert float(fp.abs().max()) > 1.0


def test_verlet_pairs_with_a_skin_give_the_same_forces(liquid):
    m = net()
    R, box = map(torch.as_tensor, liquid)
    e0, f0 = m.energy_forces(R, box)
    e1, f1 = m.energy_forces(R, box, pairs=build_pairs(R, box, m.cutoff + 0.15))
    assert abs(float(e0 - e1)) < 1e-10 and float((f0 - f1).abs().max()) < 1e-10
    with pytest.raises(ValueError, match="reaches 0.3 nm"):
        m.energy_forces(R, box, pairs=build_pairs(R, box, 0.3))


@pytest.mark.parametrize("kind", ["ml", "delta"])
def test_save_load_roundtrip_without_pickle(kind, tmp_path, liquid):
    m = net() if kind == "ml" else delta_model(lj_table(0.65, 0.3, 0.7), net())
    path = save_model(m, tmp_path / "m")
    meta = json.loads(path.read_text())
    assert meta["kind"] == kind
    torch.load(tmp_path / "m" / "ml.pt", weights_only=True)  # plain tensors and values only
    R, box = map(torch.as_tensor, liquid)
    e0, f0 = m.energy_forces(R, box)
    e1, f1 = load_model(tmp_path / "m").energy_forces(R, box)
    assert float(e0) == float(e1) and torch.equal(f0, f1)
    atoms = beads(*liquid)
    atoms.calc = load_calculator(path)
    assert atoms.get_potential_energy() == pytest.approx(float(e0) / KJ_PER_EV, rel=1e-12)


def test_committee_mean_and_deviation(liquid):
    pair = lj_table(0.65, 0.3, 0.7)
    members = [delta_model(pair, net(seed=s)) for s in (1, 2, 3)]
    com = BeadCommittee(members)
    assert com.stacked is not None
    R, box = map(torch.as_tensor, liquid)
    e, f, devi, fs = com.evaluate(R, box)
    ref = torch.stack([m.energy_forces(R, box)[1] for m in members])
    np.testing.assert_allclose(fs.numpy(), ref.numpy(), atol=1e-9)
    np.testing.assert_allclose(f.numpy(), ref.mean(0).numpy(), atol=1e-9)
    r = ref.numpy()
    expect = np.sqrt(((r - r.mean(0)) ** 2).sum(-1).mean(0)).max()
    assert devi == pytest.approx(float(expect), rel=1e-9) and devi > 0
    atoms = beads(*liquid)
    atoms.calc = BeadCalculator(com)
    atoms.get_forces()
    assert atoms.calc.results["max_devi_f"] == pytest.approx(devi / KJ_PER_EV / 10)
    with pytest.raises(ValueError, match="mix kinds"):
        BeadCommittee([members[0], net()])
