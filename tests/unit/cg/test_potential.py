"""PairTable: forces are -dU/dR (finite differences, periodic images), npz round trip, sums."""

import numpy as np
import pytest
import torch

from conlearn.cg.neighbors import VerletList, build_pairs
from conlearn.cg.potential import PairTable, evaluate, lj_table, sum_potentials


def _fd_forces(pot, R, box, h=1e-6):
    F = np.zeros_like(R)
    for a in range(R.shape[0]):
        for c in range(3):
            Rp, Rm = R.copy(), R.copy()
            Rp[a, c] += h
            Rm[a, c] -= h
            F[a, c] = -(float(pot.energy_forces(Rp, box)[0]) - float(pot.energy_forces(Rm, box)[0])) / (2 * h)
    return F


def test_table_matches_analytic_lj_and_is_consistent():
    lj = lj_table(0.8, 0.3, 0.9)
    r = np.linspace(0.28, 0.89, 50)
    u, f = lj(r)
    sr6 = (0.3 / r) ** 6
    U_fd = (lj(r + 1e-6)[0] - lj(r - 1e-6)[0]) / 2e-6
    assert np.allclose(-U_fd, f, rtol=1e-6, atol=1e-6)           # F = -dU/dr of the interpolant
    exact = 4 * 0.8 * (sr6 ** 2 - sr6)
    src6 = (0.3 / 0.9) ** 6
    uc, fc = 4 * 0.8 * (src6 ** 2 - src6), 24 * 0.8 * (2 * src6 ** 2 - src6) / 0.9
    assert np.allclose(u, exact - uc + (r - 0.9) * fc, rtol=1e-4, atol=1e-5)   # shifted force
    assert lj(np.array([0.9, 1.2]))[0].tolist() == [0.0, 0.0]


def test_forces_are_minus_gradient_across_periodic_images():
    rng = np.random.default_rng(3)
    box = np.array([1.0, 1.1, 1.2])                               # cutoff 0.7 > half the box
    pot = lj_table(1.0, 0.3, 0.7)
    R = rng.uniform(-1, 2, size=(12, 3))                           # some outside the box
    E, F = pot.energy_forces(R, box)
    assert F.dtype == torch.float64
    assert np.allclose(F.numpy(), _fd_forces(pot, R, box), rtol=1e-5, atol=1e-4)
    assert abs(F.sum(0)).max() < 1e-9                              # Newton's third law
    shifted = R + box * rng.integers(-2, 3, size=R.shape)          # images of the same beads
    assert torch.allclose(pot.energy_forces(shifted, box)[0], E)


def test_brute_force_energy_with_explicit_images():
    rng = np.random.default_rng(4)
    box = np.full(3, 1.0)
    pot = lj_table(1.0, 0.25, 0.8)
    R = rng.uniform(0, 1, size=(6, 3))
    E = 0.0
    for i in range(6):
        for j in range(6):
            for s in np.indices((5, 5, 5)).reshape(3, -1).T - 2:
                if i == j and not s.any():
                    continue
                d = np.linalg.norm(R[j] - R[i] + s * box)
                E += 0.5 * pot(np.array([d]))[0][0]
    assert float(pot.energy_forces(R, box)[0]) == pytest.approx(E, rel=1e-10)


def test_verlet_list_with_skin_gives_same_forces():
    rng = np.random.default_rng(5)
    box = np.full(3, 1.5)
    pot = lj_table(1.0, 0.3, 0.6)
    R = rng.uniform(0, 1.5, size=(30, 3))
    nl = VerletList(pot.cutoff, skin=0.2)
    nl.update(R, box)
    R2 = R + rng.uniform(-0.05, 0.05, size=R.shape)                # < skin / 2
    pairs = nl.update(R2, box)
    assert nl.n_builds == 1
    E1, F1 = evaluate(pot, R2, box, pairs)
    E2, F2 = pot.energy_forces(R2, box)
    assert torch.allclose(E1, E2) and torch.allclose(F1, F2)
    nl.update(R2 + 0.2, box)
    assert nl.n_builds == 2


def test_save_load_and_sum(tmp_path):
    pot = lj_table(1.0, 0.3, 0.9)
    path = pot.save(tmp_path / "pair.npz")
    back = PairTable.load(path)
    R = np.random.default_rng(6).uniform(0, 1.4, size=(20, 3))
    box = np.full(3, 1.4)
    E, F = pot.energy_forces(R, box)
    assert torch.equal(back.energy_forces(R, box)[1], F)
    half = PairTable(pot.r, 0.5 * pot.U, 0.5 * pot.F, pot.cutoff)
    Es, Fs = sum_potentials(half, half).energy_forces(R, box)
    assert torch.allclose(Es, E) and torch.allclose(Fs, F)
    np.savez(tmp_path / "bad.npz", r=pot.r, header=np.array('{"format": "other"}'))
    with pytest.raises(ValueError, match="not a conlearn.cg.PairTable/1 file"):
        PairTable.load(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="increasing grid"):
        PairTable([0.3, 0.2], [1.0, 0.0])


def test_linear_continuation_below_the_table():
    pot = lj_table(1.0, 0.3, 0.9)                                 # grid starts at 0.24 nm
    r0, u0, f0 = pot.r[0], pot.U[0], pot.F[0]
    d = np.array([0.1, 0.2, r0 - 1e-9])
    u, f = pot(d)
    assert np.allclose(u, u0 - f0 * (d - r0)) and np.allclose(f, f0)
    R = np.array([[0.0, 0.0, 0.0], [0.15, 0.05, 0.0]])
    E, F = pot.energy_forces(R, np.full(3, 3.0))
    assert np.allclose(F.numpy(), _fd_forces(pot, R, np.full(3, 3.0)), rtol=1e-6)


def test_fused_kernel_and_brute_pairs_match_torch_and_vesin():
    import vesin

    from conlearn.cg import kernels
    if kernels.pair_table_kernel is None:
        pytest.skip("numba not installed")
    rng = np.random.default_rng(7)
    box = np.array([1.3, 1.4, 1.5])
    R = rng.uniform(-1.5, 3.0, size=(40, 3))                      # unwrapped
    for cut in (0.5, 1.2, 1.8):                                    # images beyond half the box
        i, j, s = kernels.brute_pairs(R, box, cut)
        d = np.linalg.norm(R[j] - R[i] + s, axis=1)
        i2, j2, d2 = vesin.NeighborList(cutoff=cut, full_list=False).compute(R, np.diag(box), True, "ijd")
        assert len(d) == len(d2) and np.allclose(np.sort(d), np.sort(d2), atol=1e-12)
    pot = lj_table(1.0, 0.3, 0.9)
    pairs = build_pairs(R, box, 1.1)
    E1, F1 = pot.energy_forces(R, box, pairs)
    E2, F2 = pot.energy_forces(R, box, pairs, fused=False)
    assert float(E1) == pytest.approx(float(E2), rel=1e-12)
    assert torch.allclose(F1, F2, rtol=1e-10, atol=1e-9)
