"""DeepPot-SE: the physics kit, deepmd-kit's padded formulation, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule

from conlearn.atoms.calculator import DeepPotCalculator, committee_deviation
from conlearn.atoms.deeppot.descriptor import switch
from conlearn.atoms.deeppot.model import DeepPot, DeepPotSpec, load_model
from conlearn.atoms.neighbors import NeighborError, SelOverflowError
from conlearn.testing import physics
from conlearn.testing.structures import triclinic_cell, water_box


def small_model(precision="float64", type_one_side=False, type_map=("O", "H"), sel=(40, 80), rcut=4.0,
                seed=3) -> DeepPot:
    spec = DeepPotSpec(type_map=list(type_map), sel=list(sel), rcut=rcut, rcut_smth=1.0,
                       neuron=[8, 16, 32], axis_neuron=4, type_one_side=type_one_side,
                       fitting_neuron=[32, 32], precision=precision, seed=seed)
    m = DeepPot(spec)
    with torch.no_grad():  # non-trivial statistics, as after training data
        m.descriptor.avg[:, 0] = torch.tensor([0.1, 0.08][: len(type_map)] + [0.05] * (len(type_map) - 2))
        m.descriptor.std[:, 0] = 0.2
        m.descriptor.std[:, 1:] = 0.15
        m.bias_atom_e.copy_(torch.linspace(-3.0, -1.0, len(type_map)))
    return m


def water(n=8, seed=0):
    return water_box(n_molecules=n, seed=seed)


def batch_fn(calc):
    """The calculator's batched predictions with stress as a 3x3 tensor (the kit's form)."""
    from ase.stress import voigt_6_to_full_3x3_stress

    def predict(atoms_list):
        out = calc.predict(atoms_list)
        for r in out:
            if "stress" in r:
                r["stress"] = voigt_6_to_full_3x3_stress(r["stress"])
        return out

    return predict


@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("type_one_side", [False, True])
def test_physics_kit_periodic_water(precision, type_one_side):
    model = small_model(precision, type_one_side)
    atoms = water(seed=1)
    calc = DeepPotCalculator(model)
    results = physics.run_all(calc, atoms, precision=precision, n_atoms=6,
                              predict_batch=batch_fn(calc),
                              batch_atoms=[atoms, water(seed=2), atoms[:9]])
    print(physics.format_results(results))
    physics.assert_all_passed(results)


def test_physics_kit_triclinic_and_cluster():
    model = small_model(type_map=["Cu", "Al"], sel=[60, 60], rcut=4.5)
    calc = DeepPotCalculator(model)
    tri = triclinic_cell()
    syms = tri.get_chemical_symbols()
    if not set(syms) <= {"Cu", "Al"}:
        tri.set_chemical_symbols(["Cu" if k % 2 else "Al" for k in range(len(tri))])
    physics.assert_all_passed(physics.run_all(calc, tri, n_atoms=4))
    cluster = Atoms("Cu4Al3", positions=np.random.default_rng(0).uniform(0, 5, (7, 3)), pbc=False)
    while min(np.linalg.norm(cluster.positions[i] - cluster.positions[j])
              for i in range(7) for j in range(i)) < 1.8:
        cluster.positions = np.random.default_rng(len(cluster.positions.sum().hex())).uniform(0, 5, (7, 3))
    physics.assert_all_passed(physics.run_all(calc, cluster))


def test_slab_mixed_pbc_forces_and_smoothness():
    model = small_model(type_map=["Al"], sel=[80], rcut=5.0)
    calc = DeepPotCalculator(model)
    slab = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 2, 2))
    slab.center(vacuum=6.0, axis=2)
    slab.pbc = [True, True, False]
    slab.rattle(0.05, seed=2)
    physics.assert_forces_fd(calc, slab, n_atoms=4)

    def dimer(r):
        return Atoms("Al2", positions=[[0, 0, 0], [r, 0, 0]], pbc=False)

    physics.assert_cutoff_smoothness(calc, dimer, r_cut=5.0)


def reference_padded_energy(model: DeepPot, atoms: Atoms) -> float:
    """deepmd-kit's se_e2_a written naively: per atom, sel-padded slots sorted by type."""
    from ase.neighborlist import neighbor_list

    spec, d = model.spec, model.descriptor
    types = np.array([spec.type_map.index(s) for s in atoms.get_chemical_symbols()])
    i, j, D = neighbor_list("ijD", atoms, spec.rcut)
    energy = 0.0
    with torch.no_grad():
        for a in range(len(atoms)):
            rows = []
            for t in range(len(spec.type_map)):
                sel_j = [(np.linalg.norm(v), v) for ii, jj, v in zip(i, j, D) if ii == a and types[jj] == t]
                sel_j.sort(key=lambda x: x[0])
                block = np.zeros((spec.sel[t], 4))
                for k, (r, v) in enumerate(sel_j):
                    sw = float(switch(torch.tensor(r), spec.rcut_smth, spec.rcut))
                    block[k] = [sw / r, *(sw * v / r**2)]
                rows.append((t, block))
            avg, std = d.avg[types[a]].numpy(), d.std[types[a]].numpy()
            tsum = np.zeros((4, spec.neuron[-1]))
            for t, block in rows:
                r_hat = (block - avg) / std
                g = d.net(types[a], t)(torch.tensor(r_hat[:, :1])).numpy()
                tsum += r_hat.T @ g
            tsum /= sum(spec.sel)
            desc = tsum.T @ tsum[:, : spec.axis_neuron]
            e = model.fitting[types[a]](torch.tensor(desc.reshape(1, -1)))[0] + model.bias_atom_e[types[a]]
            energy += float(e)
    return energy


@pytest.mark.parametrize("type_one_side", [False, True])
def test_matches_deepmd_padded_formulation(type_one_side):
    model = small_model(type_one_side=type_one_side)
    atoms = water(seed=4)
    ours = DeepPotCalculator(model).get_potential_energy(atoms)
    ref = reference_padded_energy(model, atoms)
    assert abs(ours - ref) < 1e-9 * max(1.0, abs(ref))


def test_save_load_identical(tmp_path):
    def reload(calc):
        calc.models[0].save(tmp_path / "m.pt")
        return DeepPotCalculator(load_model(tmp_path / "m.pt"))

    physics.assert_save_load(DeepPotCalculator(small_model()), reload, water(seed=5), rtol=0, atol=0)


def test_sel_overflow_names_atom_and_frame():
    model = small_model(sel=(2, 80))
    atoms = water(seed=1)
    with pytest.raises(SelOverflowError, match=r"frame .*atom \d+ \((O|H)\) has \d+ O neighbours.*sel\[0\] = 2"):
        DeepPotCalculator(model).get_potential_energy(atoms)


def test_unknown_element_and_overlap_errors():
    calc = DeepPotCalculator(small_model())
    with pytest.raises(ValueError, match=r"\['N'\].*type_map \['O', 'H'\]"):
        calc.get_potential_energy(molecule("NH3"))
    bad = molecule("H2O")
    bad.positions[1] = bad.positions[0] + [0.01, 0, 0]
    with pytest.raises(NeighborError, match="atoms 0 and 1 overlap"):
        calc.get_potential_energy(bad)


def test_committee_deviation_matches_definition():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(4, 5, 3))
    dev = committee_deviation(f, None, 5)
    per_atom = [np.sqrt(np.mean([np.sum((f[m, i] - f[:, i].mean(0)) ** 2) for m in range(4)])) for i in range(5)]
    assert dev["max_devi_f"] == pytest.approx(max(per_atom), rel=1e-12)
    assert dev["min_devi_f"] == pytest.approx(min(per_atom), rel=1e-12)
    models = [small_model(seed=s) for s in (1, 2, 3)]
    atoms = water(seed=6)
    calc = DeepPotCalculator(models)
    calc.get_potential_energy(atoms)
    singles = [DeepPotCalculator(m).get_forces(atoms) for m in models]
    assert np.allclose(calc.results["forces"], np.mean(singles, 0), atol=1e-12)
    assert calc.results["max_devi_f"] == pytest.approx(committee_deviation(np.array(singles), None, len(atoms))["max_devi_f"])
    assert "max_devi_v" in calc.results
