"""Data layer: deepmd npy and ASE I/O, loading, energy shift, split, type remapping."""

from __future__ import annotations

import numpy as np
import pytest

from conlearn.atoms.dataset import energy_shift, load_systems, remap_types, split
from conlearn.atoms.io_ase import atoms_to_system, read_ase, system_to_atoms, write_ase
from conlearn.atoms.io_deepmd import read_deepmd, write_deepmd
from conlearn.atoms.system import DataError, System


def _toy(n_frames=4, periodic=True, seed=0, virial=True, type_map=("O", "H"), types=(0, 1, 1)):
    rng = np.random.default_rng(seed)
    n = len(types)
    cells = None
    if periodic:
        cells = np.eye(3) * 6.0 + rng.normal(scale=0.3, size=(n_frames, 3, 3))
    vir = rng.normal(size=(n_frames, 3, 3)) if virial else None
    if vir is not None:
        vir = vir + vir.transpose(0, 2, 1)  # a real virial is symmetric
    return System(
        type_map=list(type_map), types=np.array(types),
        coords=rng.uniform(0, 6, size=(n_frames, n, 3)), cells=cells,
        energies=rng.normal(-10, 1, size=n_frames), forces=rng.normal(size=(n_frames, n, 3)),
        virials=vir, name="toy",
    )


def _assert_same(a: System, b: System, atol=0.0):
    assert a.type_map == b.type_map
    np.testing.assert_array_equal(a.types, b.types)
    np.testing.assert_array_equal(a.pbc, b.pbc)
    for k in ("coords", "cells", "energies", "forces", "virials"):
        x, y = getattr(a, k), getattr(b, k)
        assert (x is None) == (y is None), k
        if x is not None:
            np.testing.assert_allclose(x, y, rtol=0, atol=atol, err_msg=k)


# ---------------------------------------------------------------- deepmd npy


def test_read_water_data_1(water_dir):
    d = water_dir / "data_1"
    s = read_deepmd(d)
    assert (s.n_frames, s.n_atoms) == (160, 192)
    assert s.type_map == ["O", "H"]
    np.testing.assert_array_equal(np.bincount(s.types), [64, 128])
    assert s.coords.shape == (160, 192, 3) and s.forces.shape == (160, 192, 3)
    assert s.cells.shape == (160, 3, 3) and s.virials is None and s.pbc.all()
    c0, c1 = np.load(d / "set.000/coord.npy"), np.load(d / "set.001/coord.npy")
    e1 = np.load(d / "set.001/energy.npy")
    f0 = np.load(d / "set.000/force.npy")
    np.testing.assert_array_equal(s.coords[0, 0], c0[0, :3])
    np.testing.assert_array_equal(s.coords[80, 191], c1[0, -3:])  # second set follows the first
    np.testing.assert_array_equal(s.energies[80:], e1)
    np.testing.assert_array_equal(s.forces[79, 5], f0[79, 15:18])
    assert s.energies[80] == pytest.approx(-29944.06, abs=1e-2)  # read with numpy by hand
    assert s.coords[0, 0, 0] == pytest.approx(7.3582306, abs=1e-6)
    np.testing.assert_allclose(np.diag(s.cells[0]), 12.444661, atol=1e-5)
    assert s.cells[0][0, 1] == 0.0


def test_deepmd_round_trip_multi_set(tmp_path):
    s = _toy(n_frames=7)
    write_deepmd(s, tmp_path / "sys", set_size=3)
    assert sorted(p.name for p in (tmp_path / "sys").glob("set.*")) == ["set.000", "set.001", "set.002"]
    _assert_same(s, read_deepmd(tmp_path / "sys"))


def test_deepmd_round_trip_water(water_small, tmp_path):
    s = read_deepmd(water_small / "data_0")
    write_deepmd(s, tmp_path / "w")
    _assert_same(s, read_deepmd(tmp_path / "w"))
    with pytest.raises(DataError, match="not empty"):
        write_deepmd(s, tmp_path / "w")
    write_deepmd(s.subset(slice(0, 2)), tmp_path / "w", overwrite=True)
    assert read_deepmd(tmp_path / "w").n_frames == 2


def test_deepmd_nopbc_round_trip(tmp_path):
    s = _toy(periodic=False, virial=False)
    write_deepmd(s, tmp_path / "mol")
    assert (tmp_path / "mol" / "nopbc").exists()
    assert not (tmp_path / "mol" / "set.000" / "box.npy").exists()
    r = read_deepmd(tmp_path / "mol")
    assert r.cells is None and not r.pbc.any()
    _assert_same(s, r)


def test_deepmd_no_type_map_no_labels(tmp_path):
    s = System(type_map=["A", "B"], types=[0, 1, 1], coords=np.zeros((2, 3, 3)), cells=np.tile(np.eye(3), (2, 1, 1)))
    write_deepmd(s, tmp_path / "s")
    (tmp_path / "s" / "type_map.raw").unlink()
    r = read_deepmd(tmp_path / "s")
    assert r.type_map == ["Type_0", "Type_1"]
    assert r.energies is None and r.forces is None and r.virials is None


# ---------------------------------------------------------------- deepmd errors


def test_error_missing_dir_and_type_raw(tmp_path):
    with pytest.raises(DataError, match="nowhere"):
        read_deepmd(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="type.raw"):
        read_deepmd(tmp_path / "empty")


def test_error_missing_coord(tmp_path):
    write_deepmd(_toy(), tmp_path / "s")
    (tmp_path / "s/set.000/coord.npy").unlink()
    with pytest.raises(DataError, match=r"set\.000/coord\.npy"):
        read_deepmd(tmp_path / "s")


def test_error_bad_force_shape_names_file_and_shapes(water_small, tmp_path):
    s = read_deepmd(water_small / "data_0").subset(slice(0, 3))
    write_deepmd(s, tmp_path / "s")
    f = tmp_path / "s/set.000/force.npy"
    np.save(f, np.load(f)[:, :575])
    with pytest.raises(DataError) as e:
        read_deepmd(tmp_path / "s")
    msg = str(e.value)
    assert "set.000/force.npy" in msg and "[3, 575]" in msg and "[3, 576]" in msg and "192 atoms" in msg


def test_error_nan_label(tmp_path):
    write_deepmd(_toy(), tmp_path / "s")
    f = tmp_path / "s/set.000/energy.npy"
    e = np.load(f)
    e[2] = np.nan
    np.save(f, e)
    with pytest.raises(DataError, match=r"energy\.npy.*NaN.*frame 2"):
        read_deepmd(tmp_path / "s")


def test_error_label_in_some_sets_only(tmp_path):
    write_deepmd(_toy(n_frames=4), tmp_path / "s", set_size=2)
    (tmp_path / "s/set.001/virial.npy").unlink()
    with pytest.raises(DataError, match=r"set\.001/virial\.npy"):
        read_deepmd(tmp_path / "s")


# ---------------------------------------------------------------- ASE


def test_extxyz_round_trip_with_virial(tmp_path):
    a, b = _toy(seed=1), _toy(seed=2, n_frames=2, type_map=("H", "O"), types=(1, 0, 0, 1))
    write_ase([a, b], tmp_path / "x.extxyz")
    back = read_ase(tmp_path / "x.extxyz")
    assert [s.n_frames for s in back] == [4, 2]
    assert back[0].name.endswith("x.extxyz#0")
    for orig, r in zip((a, b), back):
        assert r.type_map == ["H", "O"]  # sorted unique symbols
        assert r.symbols == orig.symbols
        r.type_map, r.types = orig.type_map, remap_types(r, orig.type_map)
        _assert_same(orig, r, atol=1e-8)


def test_extxyz_nonperiodic_and_unlabelled(tmp_path):
    s = _toy(periodic=False, virial=False)
    write_ase(s, tmp_path / "m.xyz", format="extxyz")
    r = read_ase(tmp_path / "m.xyz", format="extxyz")[0]
    assert r.cells is None and r.virials is None
    r.type_map, r.types = s.type_map, remap_types(r, s.type_map)
    _assert_same(s, r, atol=1e-8)
    assert atoms_to_system([system_to_atoms(s, 0)]).energies is not None
    a = system_to_atoms(s, 1)
    a.calc = None
    assert atoms_to_system([a]).energies is None


def test_atoms_conversion_stress_sign():
    s = _toy(n_frames=1)
    a = system_to_atoms(s, 0)
    vol = abs(np.linalg.det(s.cells[0]))
    np.testing.assert_allclose(a.get_stress(voigt=False), -s.virials[0] / vol, rtol=1e-12)
    assert a.get_potential_energy() == s.energies[0]
    r = atoms_to_system([a], type_map=["O", "H"])
    _assert_same(s, r, atol=1e-12)


def test_ase_errors(tmp_path):
    with pytest.raises(DataError, match="nope.extxyz"):
        read_ase(tmp_path / "nope.extxyz")
    a = system_to_atoms(_toy(n_frames=1), 0)
    with pytest.raises(DataError, match="'O'"):
        atoms_to_system([a], type_map=["H"])
    b = a.copy()
    b.calc = None
    with pytest.raises(DataError, match="frame 1"):
        atoms_to_system([a, b])


# ---------------------------------------------------------------- loading


def test_load_systems_dirs_globs_files(water_dir, tmp_path):
    all_water = load_systems(water_dir)
    assert [s.n_frames for s in all_water] == [80, 160, 80, 80]
    g = load_systems(["data_[02]", "data_3"], base_dir=water_dir)
    assert [s.name.rsplit("/", 1)[-1] for s in g] == ["data_0", "data_2", "data_3"]
    write_ase(_toy(), tmp_path / "t.extxyz")
    write_deepmd(_toy(seed=3), tmp_path / "deep" / "sub" / "sys")
    mixed = load_systems(["t.extxyz", "deep"], base_dir=tmp_path)
    assert [s.n_frames for s in mixed] == [4, 4]


def test_load_systems_missing(tmp_path):
    with pytest.raises(DataError, match="absent_dir"):
        load_systems("absent_dir", base_dir=tmp_path)
    with pytest.raises(DataError, match=r"nomatch\*"):
        load_systems([str(tmp_path / "nomatch*")])
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(DataError, match="emptydir"):
        load_systems(tmp_path / "emptydir")


# ---------------------------------------------------------------- energy shift


def test_energy_shift_water(water_dir):
    systems = load_systems(water_dir)
    shift = energy_shift(systems, ["O", "H"])
    e = np.concatenate([s.energies for s in systems])
    n = 192
    counts = np.array([64, 128])
    resid = e - counts @ shift
    rmse_per_atom = np.sqrt(np.mean(resid**2)) / n
    raw_rms_per_atom = np.sqrt(np.mean(e**2)) / n
    print(f"water shift O={shift[0]:.4f} H={shift[1]:.4f} eV/atom; residual RMSE "
          f"{rmse_per_atom:.2e} eV/atom vs raw RMS {raw_rms_per_atom:.2f} eV/atom")
    assert rmse_per_atom < 1e-4 * raw_rms_per_atom
    assert rmse_per_atom == pytest.approx(np.std(e) / n, rel=1e-6)  # one composition: the mean
    # one composition: minimum-norm solution, shift ∝ counts
    np.testing.assert_allclose(shift[1] / shift[0], 2.0, rtol=1e-6)
    # a different type_map order and an element absent from the data (=> 0)
    s2 = energy_shift(systems, ["H", "C", "O"])
    np.testing.assert_allclose(s2, [shift[1], 0.0, shift[0]], rtol=1e-10)


def test_energy_shift_exact_synthetic():
    rng = np.random.default_rng(0)
    ref = {"H": -13.6, "C": -1029.5, "O": -2041.3, "Cu": -1.25}
    systems = []
    for k in range(6):
        tm = ["H", "C", "O"] if k % 2 else ["O", "C", "H"]  # per-system type_maps differ
        types = rng.integers(0, 3, size=rng.integers(3, 12))
        e = sum(ref[tm[t]] for t in types)
        systems.append(System(type_map=tm, types=types, coords=np.zeros((2, len(types), 3)),
                              energies=np.full(2, e)))
    shift = energy_shift(systems, ["Cu", "O", "C", "H"])
    np.testing.assert_allclose(shift, [0.0, ref["O"], ref["C"], ref["H"]], rtol=0, atol=1e-8)


# ---------------------------------------------------------------- split / remap


def test_split_by_frame_reproducible_disjoint(water_dir):
    systems = [read_deepmd(water_dir / "data_0"), read_deepmd(water_dir / "data_1")]
    tr, va = split(systems, by="frame", fraction=0.25, seed=7)
    tr2, va2 = split(systems, by="frame", fraction=0.25, seed=7)
    _, va3 = split(systems, by="frame", fraction=0.25, seed=8)
    assert [s.n_frames for s in va] == [20, 40] and [s.n_frames for s in tr] == [60, 120]
    for a, b in zip(va, va2):
        np.testing.assert_array_equal(a.energies, b.energies)
    assert not np.array_equal(va[1].energies, va3[1].energies)
    for s, t, v in zip(systems, tr, va):
        keys = lambda x: {row.tobytes() for row in x.coords[:, 0]}  # noqa: E731
        assert keys(t).isdisjoint(keys(v)) and keys(t) | keys(v) == keys(s)


def test_split_by_system(water_dir):
    systems = load_systems(water_dir)
    tr, va = split(systems, by="system", fraction=0.25, seed=1)
    tr2, va2 = split(systems, by="system", fraction=0.25, seed=1)
    assert len(va) == 1 and len(tr) == 3
    assert [s.name for s in va] == [s.name for s in va2]
    assert {s.name for s in tr}.isdisjoint({s.name for s in va})
    with pytest.raises(DataError):
        split(systems[:1], by="system")


def test_remap_types():
    s = _toy(type_map=("O", "H", "Pt"))  # Pt unused: allowed
    np.testing.assert_array_equal(remap_types(s, ["H", "O"]), [1, 0, 0])
    with pytest.raises(DataError, match=r"element 'O' in toy is not in the model's type_map \['H'\]"):
        remap_types(s, ["H"])
