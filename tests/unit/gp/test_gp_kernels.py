"""Kernels: every analytic derivative against finite differences, symmetry, PSD, subsets.

Covariance identities checked (forces are ``-dE/dx``):
``cov(F_a, F_b) = -d/dx_a cov(E_A, F_b)`` and ``cov(E_A, F_b) = -d/dx_b cov(E_A, E_B)``,
with every environment of the displaced frame rebuilt, so periodic images, cluster
uniqueness and the cutoff chain rule are all part of what is checked.
"""

from __future__ import annotations

import numpy as np
import pytest

from conlearn.atoms.gp.environment import atoms_environments
from conlearn.atoms.gp.kernels import NBodyKernel, kernel_matrix

R2, R3 = 4.6, 4.3  # above the 4.05 Å cell: atoms meet their own images in pairs and triplets
H = 1e-5


def _env(atoms, cutoff="quadratic"):
    return atoms_environments(atoms, R2, R3, cutoff=cutoff)


def _displaced(atoms, i, alpha, h):
    out = atoms.copy()
    out.positions[i, alpha] += h
    return out


def _kernel(body):
    return NBodyKernel(body, 1.3, 0.7) if body == 2 else NBodyKernel(3, 40.0, 0.9)


CASES = [(body, name, cutoff) for body in (2, 3) for name in ("binary_cell", "molecule")
         for cutoff in ("quadratic",)] + [(3, "binary_cell", "cosine")]


@pytest.mark.parametrize("body,name,cutoff", CASES)
def test_force_kernels_are_derivatives_of_energy_kernels(structures, body, name, cutoff):
    A, B = getattr(structures, name)(1), getattr(structures, name)(2)
    k = _kernel(body)
    ea, eb = _env(A, cutoff), _env(B, cutoff)
    ff = k.matrix(ea, "force", eb, "force")
    ef = k.matrix(ea, "energy", eb, "force")
    fd_ff, fd_ef = np.zeros_like(ff), np.zeros_like(ef)
    for i in range(len(A)):
        for al in range(3):
            plus, minus = (k.matrix(_env(_displaced(A, i, al, s), cutoff), "energy", eb, "force")
                           for s in (H, -H))
            fd_ff[3 * i + al] = -(plus - minus)[0] / (2 * H)
            plus, minus = (k.matrix(ea, "energy", _env(_displaced(B, i, al, s), cutoff), "energy")
                           for s in (H, -H))
            fd_ef[0, 3 * i + al] = -(plus - minus)[0, 0] / (2 * H)
    assert np.abs(ff).max() > 1e-3
    assert np.abs(ff - fd_ff).max() < 1e-6 * np.abs(ff).max()
    assert np.abs(ef - fd_ef).max() < 1e-6 * np.abs(ef).max()


@pytest.mark.parametrize("body", [2, 3])
@pytest.mark.parametrize("kinds", [("force", "force"), ("energy", "force"),
                                   ("local_energy", "energy"), ("force", "local_energy")])
def test_hyperparameter_gradients(structures, body, kinds):
    ea, eb = _env(structures.binary_cell(3)), _env(structures.binary_cell(4))
    k = _kernel(body)
    K, dK = k.matrix(ea, kinds[0], eb, kinds[1], grad=True)
    assert np.allclose(K, k.matrix(ea, kinds[0], eb, kinds[1]))
    for j, name in enumerate(("sigma", "length")):
        v = getattr(k, name)
        setattr(k, name, v + H)
        plus = k.matrix(ea, kinds[0], eb, kinds[1])
        setattr(k, name, v - H)
        minus = k.matrix(ea, kinds[0], eb, kinds[1])
        setattr(k, name, v)
        assert np.abs(dK[j] - (plus - minus) / (2 * H)).max() < 1e-6 * np.abs(dK[j]).max()


def test_symmetry_sums_and_positive_definiteness(structures):
    ea, eb = _env(structures.binary_cell(5)), _env(structures.molecule(6))
    ks = [_kernel(2), _kernel(3)]
    for ka, kb in [("force", "energy"), ("force", "local_energy"), ("force", "force")]:
        assert np.allclose(kernel_matrix(ks, ea, ka, eb, kb), kernel_matrix(ks, eb, kb, ea, ka).T)
    local = kernel_matrix(ks, ea, "local_energy", eb, "force")
    assert np.allclose(local.sum(0), kernel_matrix(ks, ea, "energy", eb, "force")[0])
    stacked = kernel_matrix(ks, ea, ("force", "local_energy"), eb, "force")
    assert np.allclose(stacked, np.vstack([kernel_matrix(ks, ea, "force", eb, "force"), local]))
    K = kernel_matrix(ks, ea, "force", ea, "force")
    assert np.linalg.eigvalsh(K).min() > -1e-10 * np.abs(K).max()


def test_subsets_and_permutations_give_the_same_rows(structures):
    atoms = structures.binary_cell(7)
    full, other = _env(atoms), _env(structures.binary_cell(8))
    ks = [_kernel(2), _kernel(3)]
    K = kernel_matrix(ks, full, "force", other, "force").reshape(4, 3, -1)
    sub = atoms_environments(atoms, R2, R3, indices=[3, 1])
    assert np.allclose(kernel_matrix(ks, sub, "force", other, "force").reshape(2, 3, -1), K[[3, 1]])
    perm = [2, 0, 3, 1]
    Kp = kernel_matrix(ks, _env(atoms[perm]), "force", other, "force").reshape(4, 3, -1)
    assert np.allclose(Kp, K[perm])


def test_species_must_match(structures):
    """A pure-Al environment has no covariance with a pure-Cu one."""
    al = structures.binary_cell(9, symbols=("Al",) * 4)
    cu = structures.binary_cell(9, symbols=("Cu",) * 4)
    ks = [_kernel(2), _kernel(3)]
    assert np.abs(kernel_matrix(ks, _env(al), "force", _env(cu), "force")).max() == 0.0
    assert np.abs(kernel_matrix(ks, _env(al), "force", _env(al), "force")).max() > 0.0


def test_chunking_and_tiling_do_not_change_results(structures, monkeypatch):
    """Many small chunks and tiles (and the half-grid path for a set with itself)."""
    import conlearn.atoms.gp.kernels as kmod

    ea, eb = _env(structures.binary_cell(10)), _env(structures.rattled_al(11, repeat=1))
    ks = [_kernel(2), _kernel(3)]
    kinds = ("force", "local_energy")
    ref_ab = kernel_matrix(ks, ea, kinds, eb, "force", grad=True)
    ref_aa = kernel_matrix(ks, ea, kinds, ea, kinds, grad=True)
    monkeypatch.setattr(kmod, "CHUNK", 200)
    monkeypatch.setattr(kmod, "TILE", 48)
    for got, ref in ((kernel_matrix(ks, ea, kinds, eb, "force", grad=True), ref_ab),
                     (kernel_matrix(ks, ea, kinds, ea, kinds, grad=True), ref_aa)):
        assert np.allclose(got[0], ref[0], rtol=1e-12, atol=1e-14)
        assert np.allclose(got[1], ref[1], rtol=1e-12, atol=1e-14)
    # the half-grid path (a set with itself) equals the full grid (a copy)
    import copy
    full = kernel_matrix(ks, ea, kinds, copy.deepcopy(ea), kinds)
    assert np.allclose(full, ref_aa[0], rtol=1e-12, atol=1e-14)
