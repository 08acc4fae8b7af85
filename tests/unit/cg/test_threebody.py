"""The three-body (Stillinger-Weber-type) bead term: forces are minus the gradient (finite
differences, autograd of an independent torch version, mW's own three-body term), invariances,
smooth cutoff, files; force matching recovers a known pair + three-body potential exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from scipy.interpolate import BSpline

from conlearn.cg.baseline import PairThreeBody, load_baseline
from conlearn.cg.calculator import BeadCalculator
from conlearn.cg.md import cg_md
from conlearn.cg.neighbors import VerletList, build_pairs
from conlearn.cg.pair import _knots, force_match_pair
from conlearn.cg.potential import PairTable, lj_table, sum_potentials
from conlearn.cg.threebody import ThreeBody, mw_threebody, torch_energy
from conlearn.cg.toy import MW, lattice_liquid
from conlearn.testing import physics as P

LAM = [5.0, 40.0, 60.0, -20.0, 10.0]       # kJ/mol, P(c) up to c^4
GAMMA, A = 0.2871, 0.43065


@pytest.fixture(scope="module")
def liquid():
    return lattice_liquid(64, jitter=0.03, seed=2)


def beads(R, box) -> Atoms:
    return Atoms("X" * len(R), positions=np.asarray(R) * 10, cell=np.asarray(box) * 10, pbc=True)


def test_kernel_matches_torch_autograd_and_mw(liquid):
    R, box = liquid
    tb = ThreeBody(LAM, GAMMA, A)
    e, f = tb.energy_forces(R, box)
    Rt = torch.tensor(R, requires_grad=True)
    et = torch_energy(Rt, torch.tensor(box), GAMMA, A, LAM)
    (grad,) = torch.autograd.grad(et, Rt)
    assert float(e) == pytest.approx(float(et.detach()), rel=1e-12)
    assert torch.allclose(f, -grad, atol=1e-10 * float(grad.abs().max()))
    full, pair_only = MW().energy_forces(R, box), MW(three_body=0.0).energy_forces(R, box)
    e3, f3 = mw_threebody(MW()).energy_forces(R, box)
    assert float(e3) == pytest.approx(float(full[0] - pair_only[0]), rel=1e-12)
    assert torch.allclose(f3, full[1] - pair_only[1], atol=1e-9)
    assert float(f3.abs().max()) > 100.0


def test_physics_kit_and_verlet_skin(liquid):
    tb = ThreeBody(LAM, GAMMA, A)
    calc, atoms = BeadCalculator(tb), beads(*liquid)
    P.assert_all_passed([P.check_forces_fd(calc, atoms, n_atoms=6, delta=1e-4, rtol=1e-6),
                         P.check_translation_invariance(calc, atoms), P.check_permutation_invariance(calc, atoms)])
    R, box = liquid
    skin = build_pairs(R, box, A + 0.2)
    assert torch.allclose(tb.energy_forces(R, box, skin)[1], tb.energy_forces(R, box)[1], atol=1e-12)
    nl = VerletList(0.9, skin=0.2)                 # a long list; the term takes its sub-list
    stale = nl.update(R, box)
    moved = R + np.random.default_rng(1).uniform(-0.057, 0.057, R.shape)   # < skin / 2 per bead
    assert nl.update(moved, box) is stale and len(stale.within(A).i) < 0.2 * len(stale.i)
    assert torch.allclose(tb.energy_forces(moved, box, stale)[1], tb.energy_forces(moved, box)[1], atol=1e-10)


def test_rotation_invariance_and_smooth_cutoff():
    rng = np.random.default_rng(0)
    X = np.array([[0.0, 0, 0], [0.28, 0, 0], [0.05, 0.27, 0], [0.1, 0.1, 0.29], [-0.2, 0.15, 0.1]])
    box = np.full(3, 5.0)
    tb = ThreeBody(LAM, GAMMA, A)
    e0, f0 = tb.energy_forces(X + 2.0, box)
    Q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    e1, f1 = tb.energy_forces(X @ Q.T + 2.0, box)
    assert float(e1) == pytest.approx(float(e0), rel=1e-12) and abs(float(e0)) > 1.0
    assert np.allclose(f1.numpy(), f0.numpy() @ Q.T, atol=1e-10)
    for r in (A - 1e-3, A + 1e-3):            # a neighbour leaving the cutoff: E and F -> 0
        Y = np.array([[0.0, 0, 0], [0.3, 0, 0], [0.0, r, 0]]) + 2.0
        e, f = tb.energy_forces(Y, box)
        assert abs(float(e)) < 1e-30 and float(f.abs().max()) < 1e-30


def test_save_load_baseline(tmp_path, liquid):
    R, box = liquid
    base = PairThreeBody(lj_table(0.65, 0.3, 0.7), ThreeBody(LAM, GAMMA, A))
    back = load_baseline(base.save(tmp_path / "b.npz"))
    assert isinstance(back, PairThreeBody)
    assert torch.equal(back.energy_forces(R, box)[1], base.energy_forces(R, box)[1])
    assert isinstance(load_baseline(base.pair.save(tmp_path / "p.npz")), PairTable)
    np.savez(tmp_path / "bad.npz", header=np.array('{"format": "x"}'))
    with pytest.raises(ValueError, match="not a CG baseline"):
        load_baseline(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="gamma"):
        ThreeBody([1.0], -1.0, A)


def _hat_pair(r_min, rcut, n_basis) -> PairTable:
    """A pair table whose force lies in the hat basis (so force matching can be exact)."""
    knots = _knots(r_min, rcut, n_basis, 1)
    c = lj_table(1.0, 0.3, rcut)(knots[1:-1])[1]
    c[-1] = 0.0
    f = BSpline(knots, c, 1)
    r = np.linspace(r_min, rcut, 4 * (n_basis - 1) + 1)
    anti = f.antiderivative()
    return PairTable(r, anti(rcut) - anti(r), f(r), rcut)


def test_force_matching_recovers_pair_and_threebody_exactly():
    lam = np.array([2.0, 30.0, 80.0])
    truth = sum_potentials(_hat_pair(0.24, 0.8, 29), ThreeBody(lam, GAMMA, A))
    n, a = 4, 0.31
    R0 = (np.indices((n, n, n)).reshape(3, -1).T + 0.5) * a
    box = np.full(3, n * a)
    md = cg_md(truth, R0, box, np.full(len(R0), 18.0), 600, 4.0, 300.0, 2.0, 0, 30)
    assert md["ok"]
    fit = force_match_pair(md["positions"], md["forces"], box, rcut=0.8, n_basis=29, r_min=0.24, smooth=0.0,
                           ridge=0.0, angular=(GAMMA, A, 2))
    assert isinstance(fit, PairThreeBody) and fit.fit_residual < 1e-12
    assert np.allclose(fit.threebody.lam, lam, rtol=1e-7)
    pair_only = force_match_pair(md["positions"], md["forces"], box, rcut=0.8, n_basis=29, r_min=0.24,
                                 smooth=0.0, ridge=0.0)
    assert pair_only.fit_residual > 1e-3           # a pair table cannot carry the angular forces
