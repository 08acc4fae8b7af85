"""Reference calculators, the ASE labeler and initial structures, on real calculators."""

import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT
from ase.io import write

from conlearn.atoms.frames import atoms_to_frame, frame_to_atoms
from conlearn.atoms.initial import build_structures, min_distance, perturbed_frames
from conlearn.atoms.labeler import ASELabeler, LabelError, label_frames
from conlearn.atoms.reference import PySCFCalculator, ReferenceSpec, build_reference
from conlearn.core.protocols import Labeler
from conlearn.core.records import Candidate, TaskContext


class NaNCalculator(Calculator):
    """Returns finite energy and NaN forces (a reference gone wrong)."""

    implemented_properties = ["energy", "forces"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results = {"energy": 1.0, "forces": np.full((len(self.atoms), 3), np.nan)}


class BrokenCalculator(Calculator):
    implemented_properties = ["energy", "forces"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        raise RuntimeError("SCF exploded")


def _ctx(tmp_path, key="iter-000/label/000000"):
    return TaskContext(key=key, iteration=0, index=0, seed=1, workdir=str(tmp_path))


def _label(spec, frame, tmp_path, key="c/0"):
    return ASELabeler(spec).label(Candidate(deviation=0.1, payload=frame, key=key), _ctx(tmp_path))


def _fd_forces(calc, atoms, comps, h=1e-3):
    """Central finite differences -dE/dx_ik (eV/Å) for the (atom, axis) pairs in comps."""
    out = []
    for i, k in comps:
        e = []
        for s in (1, -1):
            a = atoms.copy()
            a.positions[i, k] += s * h
            a.calc = calc
            e.append(a.get_potential_energy())
        out.append(-(e[0] - e[1]) / (2 * h))
    return np.array(out)


@pytest.fixture(scope="module")
def al_frame():
    return perturbed_frames(bulk("Al", "fcc", a=4.05, cubic=True) * (2, 1, 1), 1, seed=3)[0]


def test_emt_labels_match_emt_directly(al_frame, tmp_path):
    before = {k: np.copy(v) for k, v in al_frame.items() if k != "meta"}
    out = _label({"kind": "emt"}, al_frame, tmp_path)
    assert isinstance(ASELabeler(), Labeler)
    assert out["forces"].shape == (8, 3) and np.abs(out["forces"].sum(0)).max() < 1e-10
    assert np.abs(out["forces"]).max() > 0.05  # perturbed: real forces
    np.testing.assert_allclose(out["virial"], out["virial"].T, atol=1e-10)
    atoms = frame_to_atoms(al_frame)
    atoms.calc = EMT()
    assert out["energy"] == pytest.approx(atoms.get_potential_energy(), abs=1e-12)
    np.testing.assert_allclose(out["forces"], atoms.get_forces(), atol=1e-12)
    np.testing.assert_allclose(out["virial"], -atoms.get_stress(voigt=False) * atoms.get_volume(), atol=1e-12)
    assert out["meta"]["reference"] == "emt" and out["meta"]["label_seconds"] >= 0
    assert out["meta"]["perturbation"] == 0  # provenance kept
    for k, v in before.items():  # the input frame is untouched
        np.testing.assert_array_equal(al_frame[k], v)
    assert "energy" not in al_frame


def test_kind_ase_equals_emt_and_slab_has_no_virial(al_frame, tmp_path):
    a = _label({"kind": "emt"}, al_frame, tmp_path)
    b = _label({"kind": "ase", "calculator": "ase.calculators.emt.EMT"}, al_frame, tmp_path)
    assert a["energy"] == b["energy"]
    np.testing.assert_array_equal(a["forces"], b["forces"])
    np.testing.assert_array_equal(a["virial"], b["virial"])
    assert b["meta"]["reference"] == "ase:ase.calculators.emt.EMT"
    (_, slab), = build_structures([{"kind": "surface", "element": "Al", "facet": "fcc100", "size": [2, 2, 3]}])
    out = _label({"kind": "emt"}, atoms_to_frame(slab), tmp_path)
    assert "virial" not in out and np.isfinite(out["energy"])


def test_lj_is_smooth_and_labels(tmp_path):
    calc = build_reference({"kind": "lj", "sigma": 2.6, "epsilon": 0.01, "rc": 6.0})
    assert calc.parameters.smooth is True and calc.parameters.rc == 6.0
    frame = atoms_to_frame(bulk("Ar", "fcc", a=5.26, cubic=True))
    out = label_frames([frame], {"kind": "lj", "options": {"sigma": 3.4, "epsilon": 0.0104, "rc": 8.0}})[0]
    assert out["energy"] < 0 and out["virial"].shape == (3, 3)


def test_xtb_water_forces_match_finite_differences(tmp_path):
    water = molecule("H2O")
    water.rattle(0.05, seed=1)
    out = _label({"kind": "xtb", "accuracy": 0.01}, atoms_to_frame(water), tmp_path)
    assert np.isfinite(out["energy"]) and out["energy"] < -100  # GFN2 H2O ≈ -137 eV
    comps = [(0, 0), (0, 2), (1, 1), (2, 2)]
    fd = _fd_forces(build_reference({"kind": "xtb", "accuracy": 0.01}), water, comps)
    np.testing.assert_allclose([out["forces"][i, k] for i, k in comps], fd, atol=1e-4)
    assert "virial" not in out


def test_pyscf_forces_are_minus_energy_gradient_in_ev_per_angstrom(tmp_path):
    water = molecule("H2O")
    water.rattle(0.05, seed=2)
    out = _label({"kind": "pyscf", "xc": "PBE", "basis": "sto-3g"}, atoms_to_frame(water), tmp_path)
    assert -2100 < out["energy"] < -2000  # ≈ -75.9 Hartree, in eV
    comps = [(0, 2), (1, 1), (2, 0)]
    fd = _fd_forces(PySCFCalculator(xc="PBE", basis="sto-3g"), water, comps)
    np.testing.assert_allclose([out["forces"][i, k] for i, k in comps], fd, atol=1e-3)


def test_pyscf_rejects_periodic_input(tmp_path):
    with pytest.raises(LabelError, match=r"'pyscf'.*'c/0'.*molecules only"):
        _label({"kind": "pyscf"}, atoms_to_frame(bulk("Al")), tmp_path)


def test_spec_errors_name_the_key_and_the_allowed_values():
    with pytest.raises(ValueError, match=r"'sigmaa'.*allowed: \['epsilon', 'rc', 'sigma'\]"):
        ReferenceSpec.model_validate({"kind": "lj", "sigmaa": 2.0})
    with pytest.raises(ValueError, match=r"unknown reference 'vaspp'.*'ase', 'emt', 'lj', 'pyscf', 'xtb'"):
        build_reference({"kind": "vaspp"})
    with pytest.raises(ValueError, match=r"cannot be imported"):
        ReferenceSpec.model_validate({"kind": "ase", "calculator": "ase.calculators.nope.Nope"})
    spec = ReferenceSpec.model_validate({"kind": "xtb"})
    assert spec.options["method"] == "GFN2-xTB" and spec == ReferenceSpec(kind="xtb", options={})


def test_nan_and_calculator_errors_raise_with_key_and_reference(al_frame, tmp_path):
    nan = {"kind": "ase", "calculator": f"{NaNCalculator.__module__}.NaNCalculator"}
    with pytest.raises(LabelError, match=r"NaN.*'forces'.*'c/7'"):
        _label(nan, al_frame, tmp_path, key="c/7")
    broken = {"kind": "ase", "calculator": f"{BrokenCalculator.__module__}:BrokenCalculator"}
    with pytest.raises(LabelError, match=r"BrokenCalculator'.*'c/8'.*SCF exploded"):
        _label(broken, al_frame, tmp_path, key="c/8")


def test_labeler_pickles_and_runs_in_a_spawned_process(al_frame, tmp_path):
    labeler = ASELabeler({"kind": "emt"})
    clone = pickle.loads(pickle.dumps(labeler))
    assert clone == labeler and clone.spec.kind == "emt"
    cand, ctx = Candidate(deviation=0.0, payload=al_frame, key="w/0"), _ctx(tmp_path)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        remote = pool.submit(labeler.label, cand, ctx).result(timeout=60)  # as the loop submits it
    local = labeler.label(cand, ctx)
    assert remote["energy"] == local["energy"]
    np.testing.assert_array_equal(remote["forces"], local["forces"])


def test_build_structures_names_and_sizes(tmp_path):
    write(tmp_path / "water.extxyz", [molecule("H2O"), molecule("CH4")])
    specs = [
        {"kind": "bulk", "element": "Al", "lattice": "fcc", "repeat": [2, 2, 2]},
        {"kind": "bulk", "element": "Al", "lattice": "fcc", "repeat": [2, 2, 2], "cubic": True},
        {"kind": "bulk", "element": "Mg", "lattice": "hcp", "a": 3.21, "repeat": [2, 2, 1]},
        {"kind": "surface", "element": "Al", "facet": "fcc111", "size": [2, 2, 4]},
        {"kind": "surface", "element": "Fe", "facet": "bcc110", "size": [2, 2, 3], "name": "fe-slab"},
        {"kind": "file", "path": "water.extxyz"},
        {"kind": "file", "path": "water.extxyz", "index": ":", "name": "mols"},
    ]
    got = {name: len(a) for name, a in build_structures(specs, root=tmp_path)}
    assert got == {"fcc-Al-2x2x2": 8, "fcc-Al-2x2x2-cubic": 32, "hcp-Mg-2x2x1": 8, "fcc111-Al-2x2x4": 16,
                   "fe-slab": 12, "water": 5, "mols-0": 3, "mols-1": 5}
    with pytest.raises(FileNotFoundError, match="missing.xyz"):
        build_structures([{"kind": "file", "path": str(tmp_path / "missing.xyz")}])
    with pytest.raises(ValueError, match=r"'repat'.*allowed"):
        build_structures([{"kind": "bulk", "element": "Al", "lattice": "fcc", "repat": [2, 2, 2]}])
    with pytest.raises(ValueError, match="duplicate structure name"):
        build_structures(specs[:1] * 2)


def test_overlapping_atoms_are_named_with_their_structure(tmp_path):
    from ase import Atoms

    from conlearn.atoms.otf.config import OTFConfig
    from conlearn.atoms.otf.loop import initial_state

    # 1.51 Å between Al atoms is short but allowed (limit 0.5 x 2 x 1.21 Å); a duplicated atom
    # 0.4 Å from the second one is not
    bad = Atoms("Al3", positions=[[0, 0, 0], [1.51, 0, 0], [1.51, 0.4, 0]], cell=[10, 10, 10], pbc=True)
    write(tmp_path / "dup.extxyz", bad)
    with pytest.raises(ValueError, match=r"structure 'dup' \(dup.extxyz\): atoms 1 \(Al\) and 2 \(Al\) overlap, "
                                         r"0.400 Å apart.*1 such pair"):
        build_structures([{"kind": "file", "path": "dup.extxyz"}], root=tmp_path)
    # a bad lattice constant: fcc with a = 1.6 Å puts neighbours 1.13 Å apart
    with pytest.raises(ValueError, match=r"structure 'fcc-Al-1x1x1-cubic': atoms .* overlap, 1.131 Å apart"):
        build_structures([{"kind": "bulk", "element": "Al", "lattice": "fcc", "a": 1.6, "cubic": True}])
    # periodic images count: one atom in a 0.5 Å cubic box overlaps its own image
    write(tmp_path / "tiny.extxyz", Atoms("Al", cell=[0.5, 0.5, 0.5], pbc=True))
    with pytest.raises(ValueError, match=r"atoms 0 \(Al\) and 0 \(Al\) overlap, 0.500 Å"):
        build_structures([{"kind": "file", "path": "tiny.extxyz"}], root=tmp_path)
    # the on-the-fly loop checks its structure before any MD or reference call
    cfg = OTFConfig.model_validate({"structure": {"kind": "file", "path": str(tmp_path / "dup.extxyz")},
                                    "md": {"n_steps": 2, "temperature_K": 300}, "reference": {"kind": "emt"}})
    with pytest.raises(ValueError, match=r"structure: atoms 1 \(Al\) and 2 \(Al\) overlap"):
        initial_state(cfg)
    # molecules and every demo structure pass
    ok = [{"kind": "file", "path": "water.extxyz", "index": ":"}]
    write(tmp_path / "water.extxyz", [molecule("H2O"), molecule("CH4"), molecule("H2")])
    assert len(build_structures(ok, root=tmp_path)) == 3


def test_perturbed_frames_are_deterministic_and_bounded():
    atoms = bulk("Al", "fcc", a=4.05) * (2, 2, 2)
    a, b = perturbed_frames(atoms, 5, seed=7), perturbed_frames(atoms, 5, seed=7)
    c = perturbed_frames(atoms, 5, seed=8)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["positions"], y["positions"])
        np.testing.assert_array_equal(x["cell"], y["cell"])
    assert not np.allclose(a[0]["positions"], c[0]["positions"])
    for i, f in enumerate(a):
        deform = np.linalg.solve(atoms.cell.array, f["cell"])  # cell @ F = new cell
        eps = deform - np.eye(3)
        np.testing.assert_allclose(eps, eps.T, atol=1e-12)
        assert np.abs(np.diag(eps)).max() <= 0.03 and np.abs(eps - np.diag(np.diag(eps))).max() <= 0.015
        shift = np.linalg.norm(f["positions"] - atoms.positions @ deform, axis=1)
        assert shift.max() <= 0.1 + 1e-12
        assert np.all(f["pbc"]) and f["meta"]["perturbation"] == i


def test_perturbed_frames_redraw_keeps_the_minimum_distance():
    atoms = bulk("Al", "fcc", a=4.05) * (2, 2, 2)
    floor = 0.6 * min_distance(atoms)
    assert min_distance(atoms) == pytest.approx(4.05 / np.sqrt(2))  # periodic images count
    frames = perturbed_frames(atoms, 10, cell_strain=0.1, atom_displacement=1.2, seed=0)  # ~4 redraws each
    assert all(min_distance(frame_to_atoms(f)) >= floor for f in frames)
    with pytest.raises(ValueError, match="draws"):
        perturbed_frames(atoms, 1, atom_displacement=5.0, seed=0, max_tries=3)


def test_slab_is_strained_in_plane_only_and_keeps_its_vacuum():
    (_, slab), = build_structures([{"kind": "surface", "element": "Al", "facet": "fcc111", "vacuum": 6.0}])
    assert slab.pbc.tolist() == [True, True, False]
    frames = perturbed_frames(slab, 4, cell_strain=0.05, atom_displacement=0.1, seed=1)
    thickness = np.ptp(slab.positions[:, 2])
    for f in frames:
        assert f["pbc"].tolist() == [True, True, False]
        np.testing.assert_array_equal(f["cell"][2], slab.cell[2])
        assert not np.allclose(f["cell"][:2], slab.cell[:2])
        eps = np.array(f["meta"]["strain"])
        assert np.abs(eps[2]).max() == 0 and np.abs(eps[:, 2]).max() == 0
        gap = f["cell"][2, 2] - np.ptp(f["positions"][:, 2])
        assert gap >= 2 * 6.0 - 0.2 - 1e-9 and np.ptp(f["positions"][:, 2]) <= thickness + 0.2 + 1e-9
    assert min_distance(frame_to_atoms(frames[0])) > 0.6 * min_distance(slab)


def test_surface_with_an_adatom():
    from conlearn.atoms.initial import build_structures

    spec = {"kind": "surface", "element": "Al", "facet": "fcc100", "size": [2, 2, 4], "vacuum": 6.0,
            "a": 4.05, "adatom": "ontop", "adatom_height": 2.1}
    ((name, atoms),) = build_structures([spec])
    assert name == "fcc100-Al-2x2x4-adatom-ontop" and len(atoms) == 17
    z = np.sort(atoms.positions[:, 2])
    assert z[-1] - z[-2] == pytest.approx(2.1)
    d = np.linalg.norm(atoms.positions[:-1] - atoms.positions[-1], axis=1)
    assert d.min() == pytest.approx(2.1)  # on top of one atom
    with pytest.raises(ValueError, match="adatom"):
        build_structures([{**spec, "adatom": "threefold"}])
