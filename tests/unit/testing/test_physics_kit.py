"""The shipped physics kit: passes on smooth ASE oracles, catches broken calculators."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import re  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from ase import Atoms  # noqa: E402
from ase.calculators.calculator import Calculator, all_changes  # noqa: E402
from ase.calculators.emt import EMT  # noqa: E402
from ase.calculators.lj import LennardJones  # noqa: E402
from ase.neighborlist import neighbor_list  # noqa: E402

from conlearn.testing import physics as P  # noqa: E402
from conlearn.testing import structures as S  # noqa: E402

# Argon LJ; ro and rc sit between the fcc shells (6.44, 7.44, 8.32 Å at a=5.26),
# so no pair straddles the C1 kinks of ASE's smooth cutoff within an FD stencil.
LJ = dict(sigma=3.4, epsilon=0.0104, rc=8.0, ro=6.9)


def _emt_clear(atoms: Atoms, margin: float = 5e-3) -> bool:
    """EMT truncates its Fermi cutoff at ``rc_list`` (a ~1e-5 eV step): an FD
    stencil straddling it is a real, if tiny, discontinuity. Keep pairs away."""
    calc, work = EMT(), atoms.copy()
    work.calc = calc
    work.get_potential_energy()
    d = neighbor_list("d", work, calc.rc_list + 1.0)
    return bool(np.min(np.abs(d - calc.rc_list)) > margin)


@pytest.fixture(scope="module", params=[("Cu", 0), ("Al", 4)], ids=["Cu", "Al"])
def metal(request):
    atoms = S.jittered_fcc(request.param[0], seed=request.param[1])
    assert _emt_clear(atoms)
    return atoms


@pytest.fixture(scope="module")
def argon():
    return S.jittered_fcc("Ar", a=5.26, seed=0)


def _dimer(r: float) -> Atoms:
    return Atoms("Ar2", positions=[[0.0, 0.0, 0.0], [r, 0.0, 0.0]])


class Edited(Calculator):
    """Wraps ``base`` and lets ``edit(atoms, results)`` corrupt its results in place."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, base, edit):
        super().__init__()
        self.base, self.edit = base, edit

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        work = self.atoms.copy()
        work.calc = self.base
        res = {"energy": work.get_potential_energy(), "forces": work.get_forces().copy()}
        if self.atoms.pbc.all():
            res["stress"] = work.get_stress().copy()
        self.edit(self.atoms, res)
        res["free_energy"] = res["energy"]
        self.results = res


# ----------------------------------------------------------------------------- passes


def test_emt_passes_everything(metal):
    results = P.run_all(EMT(), metal, n_atoms=4, seed=1)
    assert [r.name for r in results] == ["forces_fd", "virial_fd", "rotation", "translation", "permutation"]
    P.assert_all_passed(results)
    assert results[0].max_error < 1e-8  # the 4-point stencil reaches far below the 1e-6 target
    print("\n" + P.format_results(results))


def test_emt_triclinic_and_cluster_pass():
    tri = S.triclinic_cell(seed=1)
    assert _emt_clear(tri)
    P.assert_all_passed(P.run_all(EMT(), tri))
    cluster = S.molecule_cluster(seed=0)
    results = P.run_all(EMT(), cluster)
    assert "virial_fd" not in [r.name for r in results]
    P.assert_all_passed(results)


def test_smooth_lj_passes_including_cutoff(argon):
    results = P.run_all(LennardJones(**LJ, smooth=True), argon, n_atoms=4, make_atoms=_dimer, r_cut=LJ["rc"])
    assert results[-1].name == "cutoff"
    P.assert_all_passed(results)


def test_float32_model_passes_in_float32_mode(metal):
    def to_float32(atoms, res):  # a float32 model with a realistic -3.5 eV/atom energy
        res["energy"] = float(np.float32(res["energy"] - 3.5 * len(atoms)))
        res["forces"] = res["forces"].astype(np.float32).astype(float)
        res["stress"] = res["stress"].astype(np.float32).astype(float)

    calc = Edited(EMT(), to_float32)
    P.assert_all_passed(P.run_all(calc, metal, n_atoms=4, precision="float32"))
    assert not P.check_forces_fd(calc, metal, n_atoms=4).passed  # float64 targets are out of reach


def test_batch_and_save_load_pass(metal):
    def predict(atoms_list):
        return [P._evaluate(EMT(), a, stress=True) for a in atoms_list]

    results = P.run_all(EMT(), metal, n_atoms=2, predict_batch=predict, reload_fn=lambda c: EMT(**c.parameters))
    assert [r.name for r in results][-2:] == ["batch", "save_load"]
    P.assert_all_passed(results)
    assert P.check_save_load(EMT(), lambda c: EMT(), metal, rtol=0.0).passed  # bitwise


# ----------------------------------------------------------------------------- detects


def test_detects_corrupted_force_component():
    atoms = S.jittered_fcc("Cu", repeat=(1, 1, 1), seed=0)

    def corrupt(atoms, res):
        res["forces"][3, 1] += 1e-3  # eV/Å on atom 3, component y

    result = P.check_forces_fd(Edited(EMT(), corrupt), atoms)
    assert not result.passed and result.max_error > 1e-4
    assert "atom 3 (Cu) component y" in result.message
    with pytest.raises(AssertionError, match=r"atom 3 \(Cu\) component y"):
        P.assert_forces_fd(Edited(EMT(), corrupt), atoms)


def test_detects_broken_rotation_invariance_only():
    cluster = S.molecule_cluster(seed=0)

    def x_spread(atoms, res):  # E += a sum (x - <x>)^2: consistent, translation/permutation invariant
        dx = atoms.positions[:, 0] - atoms.positions[:, 0].mean()
        res["energy"] += 1e-3 * np.sum(dx**2)
        res["forces"][:, 0] -= 2e-3 * dx

    calc = Edited(EMT(), x_spread)
    result = P.check_rotation_invariance(calc, cluster, seed=3)
    assert not result.passed
    assert re.search(r"energy|forces atom \d+ \([HO]\) component [xyz]", result.message)
    for check in (P.check_forces_fd, P.check_translation_invariance, P.check_permutation_invariance):
        assert check(calc, cluster).passed, check.__name__


def test_detects_index_dependent_energy_by_permutation():
    cluster = S.molecule_cluster(seed=0)

    def spring(atoms, res):  # E += k |r0 - r1|^2: rotation/translation invariant, not permutation
        d = atoms.positions[0] - atoms.positions[1]
        res["energy"] += 0.1 * d @ d
        res["forces"][0] -= 0.2 * d
        res["forces"][1] += 0.2 * d

    calc = Edited(EMT(), spring)
    result = P.check_permutation_invariance(calc, cluster, seed=0)
    perm = np.random.default_rng(0).permutation(len(cluster))
    culprits = {0, 1, int(perm[0]), int(perm[1])}
    assert not result.passed
    assert int(re.search(r"forces atom (\d+)", result.message).group(1)) in culprits
    assert P.check_rotation_invariance(calc, cluster).passed


def test_detects_force_discontinuity_at_cutoff():
    result = P.check_cutoff_smoothness(LennardJones(**LJ, smooth=False), _dimer, LJ["rc"])
    # ASE shifts the energy to zero at rc, so energy is continuous and the forces jump.
    assert not result.passed and result.max_error > 100
    assert re.search(r"force on atom [01] \(Ar\) component x changes by .* r=7\.99950 and r=8\.00050", result.message)
    with pytest.raises(AssertionError, match="r_cut=8.0"):
        P.assert_cutoff_smoothness(LennardJones(**LJ, smooth=False), _dimer, LJ["rc"])


def test_detects_energy_step_and_long_tail():
    def step(atoms, res):
        res["energy"] += 1e-4 * (atoms.get_distance(0, 1) < LJ["rc"])

    def tail(atoms, res):  # smooth, but not zero beyond the cutoff
        res["energy"] += 1e-3 * np.exp(-atoms.get_distance(0, 1) / 2)

    lj = LennardJones(**LJ, smooth=True)
    result = P.check_cutoff_smoothness(Edited(lj, step), _dimer, LJ["rc"])
    assert not result.passed and result.message.startswith("energy changes by 0.0001")
    result = P.check_cutoff_smoothness(Edited(lj, tail), _dimer, LJ["rc"])
    assert not result.passed and result.message.startswith("energy at r=")


def test_detects_wrong_stress_sign(metal):
    calc = Edited(EMT(), lambda atoms, res: res.__setitem__("stress", -res["stress"]))
    result = P.check_virial_fd(calc, metal)
    assert not result.passed and result.max_error > 1.0
    ref = P._evaluate(EMT(), metal, stress=True)["stress"]
    i, j = np.unravel_index(np.argmax(np.abs(ref)), (3, 3))
    assert f"stress component {'xyz'[i]}{'xyz'[j]}" in result.message
    assert P.check_forces_fd(calc, metal, n_atoms=2).passed


def test_detects_batch_and_reload_bugs(metal):
    def first_cell_for_all(atoms_list):  # a padding bug: every frame gets frame 0's cell
        cell = atoms_list[0].cell
        return [P._evaluate(EMT(), Atoms(a.numbers, a.positions, cell=cell, pbc=True)) for a in atoms_list]

    strained = metal.copy()
    strained.set_cell(metal.cell * 1.01, scale_atoms=True)
    result = P.check_batch_consistency(first_cell_for_all, [metal, strained])
    assert not result.passed and result.message.startswith("structure 1 ")

    lj = LennardJones(**LJ, smooth=True)
    bad = P.check_save_load(lj, lambda c: LennardJones(**{**LJ, "epsilon": LJ["epsilon"] * (1 + 1e-9)}, smooth=True),
                            S.jittered_fcc("Ar", a=5.26, repeat=(1, 1, 1)))
    assert not bad.passed


def test_result_api():
    with pytest.raises(ValueError, match="precision"):
        P.tolerances("float16")
    with pytest.raises(ValueError, match="periodic"):
        P.check_virial_fd(EMT(), S.molecule_cluster())
    custom = P.Tolerances(**{**P.TOLERANCES["float64"].__dict__, "fd_rtol": 1e-3})
    assert P.tolerances(custom) is custom
    failed = P.CheckResult("x", 2.0, 1.0, False, "atom 0")
    with pytest.raises(AssertionError, match="FAIL  x"):
        P.assert_all_passed([failed])
    assert P.central_derivative(np.sin, 1e-3) == pytest.approx(1.0, abs=1e-12)


# ----------------------------------------------------------------------------- structures


@pytest.mark.parametrize("build", [S.jittered_fcc, S.jittered_bcc, S.triclinic_cell, S.molecule_cluster, S.water_box])
def test_structures_are_deterministic_and_not_overlapping(build):
    a, b, c = build(seed=0), build(seed=0), build(seed=1)
    assert np.array_equal(a.positions, b.positions) and not np.allclose(a.positions, c.positions)
    assert S.min_distance(a) > 0.9


def test_structure_properties():
    tri = S.triclinic_cell()
    assert tri.pbc.all() and len(set(np.round(tri.cell.cellpar(), 3))) == 6
    assert not S.molecule_cluster().pbc.any()
    water = S.water_box(n_molecules=8, seed=2)
    density = water.get_masses().sum() * 1.66053907e-24 / (water.get_volume() * 1e-24)
    assert density == pytest.approx(1.0, rel=1e-3)
    assert water.get_chemical_formula() == "H16O8"
    d = water.get_all_distances(mic=True)
    mol = np.arange(len(water)) // 3
    assert d[mol[:, None] != mol[None, :]].min() >= 1.5
    with pytest.raises(ValueError, match="apart"):
        S.jittered_fcc(jitter=0.8, seed=0)
