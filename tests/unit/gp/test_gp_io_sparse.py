"""The sparse GP's file format (``gp.io.sparse_to_dict`` / ``sparse_from_dict``) and
``save_gp`` / ``load_gp`` over both kinds.

Data: 8-atom fcc Al cells (a = 4.05 Å, 0.1 Å rattle) labelled by EMT: forces, energies and
stresses; kernels 2-body (1.0 eV, 0.8 Å) and 3-body (0.5 eV, 0.9 Å), cutoffs 5.0 / 3.6 Å.
Asserted bit for bit: predictions (means, stds, stress and its std), the log likelihood, the
factors, and what the restored model does next (the ``random`` rule's RNG goes on from the
saved state, so a further ``add`` picks the same inducing environments).
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from conlearn.atoms.gp.gp import GaussianProcess
from conlearn.atoms.gp.io import (gp_from_dict, gp_to_dict, load_gp, model_from_dict,
                                  model_to_dict, save_gp, sparse_from_dict, sparse_to_dict)
from conlearn.atoms.gp.kernels import NBodyKernel
from conlearn.atoms.gp.mapping import map_gp
from conlearn.atoms.gp.sparse import SparseGP
from conlearn.atoms.modelfile import LegacyFileWarning, UntrustedFileError

R2, R3 = 5.0, 3.6


def _kernels():
    return [NBodyKernel(2, 1.0, 0.8), NBodyKernel(3, 0.5, 0.9)]


def _frame(seed: int):
    """8 jittered Al atoms with EMT forces ``[8, 3]`` eV/Å, energy eV, stress ``[6]`` eV/Å^3."""
    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 1, 1))
    atoms.rattle(0.1, seed=seed)
    atoms.calc = EMT()
    return atoms, atoms.get_forces(), atoms.get_potential_energy(), atoms.get_stress()


def _trained(select: str, n_frames: int = 2) -> SparseGP:
    """All labels of ``n_frames`` frames; 8 inducing envs from the first, 2 by ``select``
    from the second (the cap of 10)."""
    sgp = SparseGP(_kernels(), R2, R3, noise=0.05, select=select, n_inducing=10, seed=4)
    for seed in range(n_frames):
        atoms, f, e, s = _frame(seed)
        sgp.add(sgp.environments(atoms), forces=f, energy=[e], stress=s[None])
    return sgp


def _same_predictions(a, b, atoms) -> None:
    envs = a.environments(atoms)
    pa, pb = a.predict(envs, stress=True), b.predict(envs, stress=True)
    assert set(pa) == set(pb) == {"forces", "local_energies", "energy", "force_std",
                                  "local_energy_std", "stress", "stress_std"}
    for key in pa:
        assert np.array_equal(pa[key], pb[key]), key
    assert np.array_equal(a.force_std(envs), b.force_std(envs))


@pytest.mark.parametrize("select", ["greedy", "random", "all"])
def test_sparse_round_trip_predicts_bit_for_bit(select, tmp_path):
    sgp = _trained(select)
    assert sgp.n_latent == 10 and sgp.n_labels == 2 * (24 + 1 + 6)  # the cap binds
    path = tmp_path / "model" / "gp.npz"
    save_gp(sgp, path)
    back = load_gp(path)
    assert type(back) is SparseGP
    assert (back.select, back.n_inducing, back.jitter) == (select, 10, sgp.jitter)
    assert back.hyper_names == sgp.hyper_names
    assert np.array_equal(back.hyperparameters, sgp.hyperparameters)
    for name in ("y", "_is_force", "K_uu", "K_uf", "L_uu", "L_B", "alpha"):
        assert np.array_equal(getattr(back, name), getattr(sgp, name)), name
    assert back.log_likelihood() == sgp.log_likelihood()
    held = _frame(50)[0]
    _same_predictions(sgp, back, held)
    assert np.array_equal(map_gp(sgp).predict(sgp.environments(held))["forces"],
                          map_gp(back).predict(back.environments(held))["forces"])
    # the restored model goes on as the saved one would (the random rule's RNG included)
    atoms, f, _, _ = _frame(7)
    for model in (sgp, back):
        model.n_inducing = 14
        model.add(model.environments(atoms), forces=f)
    assert np.array_equal(sgp.inducing.atom, back.inducing.atom)
    assert np.array_equal(sgp.inducing.frame, back.inducing.frame)
    _same_predictions(sgp, back, held)


def test_empty_sparse_gp_round_trips():
    sgp = SparseGP(_kernels(), R2, R3, select="random", n_inducing=3)
    back = sparse_from_dict(pickle.loads(pickle.dumps(sparse_to_dict(sgp))))
    assert back.inducing is None and back.n_labels == 0 and back.n_latent == 0
    atoms, f, _, _ = _frame(1)
    for model in (sgp, back):
        model.add(model.environments(atoms), forces=f)
    assert back.n_latent == 3 and np.array_equal(sgp.inducing.atom, back.inducing.atom)
    _same_predictions(sgp, back, _frame(2)[0])


def test_kind_field_and_old_files(tmp_path):
    gp = GaussianProcess(_kernels(), R2, R3, noise=0.05)
    atoms, f, e, _ = _frame(0)
    gp.add(gp.environments(atoms), forces=f, energy=[e])
    d = gp_to_dict(gp)
    assert d["kind"] == "gp" and model_to_dict(gp)["kind"] == "gp"
    assert sparse_to_dict(_trained("greedy", 1))["kind"] == "sparse"
    old = {k: v for k, v in d.items() if k != "kind"}  # a file written before the sparse format
    path = tmp_path / "old.pkl"
    path.write_bytes(pickle.dumps(old))
    with pytest.raises(UntrustedFileError, match="old.pkl: .*needs code execution"):
        load_gp(path)  # an earlier version's pickle: only with trust (conlearn.atoms.modelfile)
    with pytest.warns(LegacyFileWarning, match="re-save it"):
        back = load_gp(path, trust=True)
    assert type(back) is GaussianProcess and type(model_from_dict(old)) is GaussianProcess
    envs = gp.environments(_frame(3)[0])
    assert np.array_equal(back.predict(envs)["forces"], gp.predict(envs)["forces"])
    # one kind read as the other, an unknown kind, an unknown model: errors naming them
    with pytest.raises(ValueError, match="kind 'sparse', not 'gp'"):
        gp_from_dict(sparse_to_dict(_trained("all", 1)))
    with pytest.raises(ValueError, match="kind 'gp', not 'sparse'"):
        sparse_from_dict(d)
    with pytest.raises(ValueError, match="unknown GP dict kind 'dense'.*'gp', 'sparse'"):
        model_from_dict({**d, "kind": "dense"})
    with pytest.raises(TypeError, match="no dict format for dict"):
        model_to_dict({})
    with pytest.raises(ValueError, match="version 2"):
        model_from_dict({**d, "version": 2})
