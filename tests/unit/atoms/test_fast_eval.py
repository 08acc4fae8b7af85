"""FastEvaluator (fixed-shape MD evaluation): same energies, forces and virials as the normal
path, through Verlet rebuilds, for committees and compressed models, chunked over atoms; the
device neighbour search finds vesin's pairs; sel overflow and out-of-table pairs are caught."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from conlearn.atoms.deeppot.compress import compress_model
from conlearn.atoms.deeppot.fast import FastEvaluator, device_pairs, vesin_pairs
from conlearn.atoms.neighbors import SelOverflowError
from conlearn.testing.structures import water_box

from .test_deeppot_model import small_model


def frame(n=27, seed=0):
    atoms = water_box(n_molecules=n, seed=seed)
    types = np.array([0 if z == 8 else 1 for z in atoms.numbers])
    return atoms.positions.copy(), atoms.cell.array.copy(), types


def reference(model, pos, cell, types):
    """The normal path: host neighbour list, graph, autograd through the pair vectors."""
    out = model.evaluate(model.graph([(pos, cell, np.ones(3, bool), types)]), virial=True)
    return {k: v.detach() for k, v in out.items()}


def assert_same(got, want, m=0, tol=1e-10):
    n = want["forces"].shape[0]
    assert abs(float(got["energy"][m] - want["energy"][0])) / n < tol
    assert float((got["forces"][m] - want["forces"]).abs().max()) < tol
    assert float((got["virial"][m] - want["virial"][0]).abs().max()) / n < tol


def pair_set(i, j, m):
    return set(zip(i.tolist(), j.tolist(), map(tuple, m.round().long().tolist())))


@pytest.mark.parametrize("n_mol", [27, 4])  # 4 molecules: box 4.9 Å < rcut, many images
def test_device_search_finds_vesins_pairs(n_mol):
    pos, cell, _ = frame(n_mol)
    p, c = torch.as_tensor(pos), torch.as_tensor(cell)
    got = pair_set(*device_pairs(p, c, [True] * 3, 4.5, chunk=40))
    want = pair_set(*vesin_pairs(p, c, [True] * 3, 4.5))
    assert got == want and len(got) > 100


@pytest.mark.parametrize("search", ["torch", "vesin"])
def test_same_as_normal_path_through_rebuilds(search):
    model = small_model(sel=(60, 120))
    pos, cell, types = frame()
    fe = FastEvaluator(model, types, cell, skin=0.6, headroom=2, search=search)
    rng = np.random.default_rng(1)
    for step, kick in enumerate([0.0, 0.05, 0.05, 0.5]):  # the last moves atoms past skin/2
        pos = pos + rng.normal(scale=kick, size=pos.shape)
        assert_same(fe.compute(pos, virial=True), reference(model, pos, cell, types))
        assert fe.n_builds == (1 if step < 3 else 2)
    # atoms wrapped back into the box (a jump by a lattice vector) are rebuilt, not misread
    wrapped = pos - np.floor(pos @ np.linalg.inv(cell)) @ cell
    assert_same(fe.compute(wrapped, virial=True), reference(model, wrapped, cell, types))
    # a changed cell is a rebuild with that cell
    cell2 = cell * 1.02
    assert_same(fe.compute(pos, cell2, virial=True), reference(model, pos, cell2, types))


def test_committee_in_one_pass():
    members = [small_model(sel=(60, 120), seed=s) for s in (3, 4, 5)]
    pos, cell, types = frame()
    fe = FastEvaluator(members, types, cell)
    assert fe.stacked is not None
    out = fe.compute(pos, virial=True)
    assert out["forces"].shape == (3, len(types), 3)
    for k, m in enumerate(members):
        assert_same(out, reference(m, pos, cell, types), m=k)


def test_compressed_members_and_out_of_table_pairs():
    exact = small_model(sel=(60, 120))
    comp = compress_model(exact, min_dist=0.9, step=0.02)
    pos, cell, types = frame()
    fe = FastEvaluator([comp, exact], types, cell)  # not stackable: one after the other
    assert fe.stacked is None
    out = fe.compute(pos, virial=True)
    assert_same(out, reference(comp, pos, cell, types), m=0)
    assert_same(out, reference(exact, pos, cell, types), m=1)
    assert float((out["forces"][0] - out["forces"][1]).abs().max()) < 1e-6  # table error only
    # a table stopping short of the O-H bonds: the step is repeated on the checked path
    short = compress_model(exact, min_dist=2.0, extrapolate=1.0, step=0.05)
    fe = FastEvaluator(short, types, cell)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fe.compute(pos, virial=True)
    assert fe.n_checked == 1 and sum("outside the tabulated range" in str(w.message) for w in caught) == 1
    assert_same(out, reference(exact, pos, cell, types))


def test_sel_overflow_is_an_error():
    model = small_model(sel=(10, 20))
    pos, cell, types = frame()
    with pytest.raises(SelOverflowError, match="raise sel"):
        FastEvaluator(model, types, cell).compute(pos)


def test_chunked_equals_unchunked_on_replicated_box():
    """A 2x2x2 replica of an 81-atom box (648 atoms): chunks of 100 centres, across types."""
    model = small_model(sel=(60, 120))
    pos, cell, types = frame()
    shifts = np.array(list(np.ndindex(2, 2, 2))) @ cell
    big = (pos[None] + shifts[:, None]).reshape(-1, 3)
    types8, cell8 = np.tile(types, 8), 2 * cell
    ref = FastEvaluator(model, types8, cell8, search="torch").compute(big, virial=True)
    got = FastEvaluator(model, types8, cell8, chunk=100).compute(big, virial=True)
    for k in ("energy", "forces", "virial"):
        assert float((got[k] - ref[k]).abs().max()) < 1e-10
    # and eight copies of the small box give eight times its energy, the same forces
    one = FastEvaluator(model, types, cell).compute(pos)
    assert abs(float(got["energy"][0] - 8 * one["energy"][0])) < 1e-9
    assert float((got["forces"][0, : len(types)] - one["forces"][0]).abs().max()) < 1e-10


def test_float32_and_bad_settings():
    model = small_model("float32", sel=(60, 120))
    pos, cell, types = frame()
    got = FastEvaluator(model, types, cell).compute(pos, virial=True)
    want = reference(model, pos, cell, types)
    assert got["forces"].dtype == torch.float32
    assert float((got["forces"][0] - want["forces"]).abs().max()) < 1e-4
    with pytest.raises(ValueError, match="cuda_graph needs a CUDA model"):
        FastEvaluator(model, types, cell, cuda_graph=True)
    with pytest.raises(ValueError, match="search must be"):
        FastEvaluator(model, types, cell, search="kdtree")
    with pytest.raises(ValueError, match="differ in sel"):
        FastEvaluator([model, small_model("float32", sel=(50, 120))], types, cell)


def test_calculator_fast_path_follows_the_normal_md_trajectory():
    """ASE velocity Verlet with DeepPotCalculator(fast=True) (FastEvaluator, small skin so the
    list is rebuilt on the way) against fast=False: same positions, energies, stresses and
    committee deviations step by step; a new structure and a new cell are picked up."""
    from ase import units
    from ase.md.verlet import VelocityVerlet

    from conlearn.atoms.calculator import DeepPotCalculator

    committee = [small_model(sel=(60, 120), seed=s) for s in (3, 4)]
    traj = {}
    for fast in (False, True):
        atoms = water_box(n_molecules=8, seed=2)
        masses = atoms.get_masses()[:, None]  # Maxwell-Boltzmann momenta at 600 K, seeded
        atoms.set_momenta(np.random.default_rng(0).normal(size=(len(atoms), 3)) * np.sqrt(masses * units.kB * 600))
        calc = DeepPotCalculator(committee, fast=fast, skin=0.15)
        assert calc.fast is fast
        atoms.calc = calc
        rows = []
        dyn = VelocityVerlet(atoms, 1.0 * units.fs)
        dyn.attach(lambda: rows.append((atoms.positions.copy(), atoms.get_potential_energy(),
                                        atoms.get_stress(), calc.results["max_devi_f"])), interval=1)
        dyn.run(25)
        traj[fast] = (rows, calc)
    (slow, _), (quick, calc) = traj[False], traj[True]
    assert calc._fast[1].n_builds >= 2  # the skin was crossed: rebuilt at least once
    for (p0, e0, s0, d0), (p1, e1, s1, d1) in zip(slow, quick):
        assert np.abs(p0 - p1).max() < 1e-9 and abs(e0 - e1) < 1e-9
        assert np.abs(s0 - s1).max() < 1e-10 and abs(d0 - d1) < 1e-9

    other = water_box(n_molecules=6, seed=5)  # new atoms: a new evaluator
    other.calc = calc
    ref = DeepPotCalculator(committee, fast=False).predict([other])[0]
    assert abs(other.get_potential_energy() - ref["energy"]) < 1e-9
    first = calc._fast[1]
    other.set_cell(other.cell.array * 1.02, scale_atoms=True)  # new cell: same evaluator, rebuilt
    ref = DeepPotCalculator(committee, fast=False).predict([other])[0]
    assert np.abs(other.get_forces() - ref["forces"]).max() < 1e-9 and calc._fast[1] is first

    with pytest.raises(ValueError, match="skin"):
        DeepPotCalculator(committee, skin=0.0)
    assert DeepPotCalculator(committee).fast is False  # CPU models: the normal path by default
