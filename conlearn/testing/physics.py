"""The physics test kit: checks that any ASE calculator obeys basic physics.

Every conlearn potential is exposed as an ASE ``Calculator``, so these checks
take one and need only numpy and ASE. Each ``check_*`` returns a
:class:`CheckResult`; each ``assert_*`` twin raises ``AssertionError`` with the
result's message when the check fails.

Units: energy eV, forces eV/Å (``[n_atoms, 3]``), stress eV/Å^3 as a 3x3
tensor (ASE sign: ``stress = (1/V) dE/dstrain``, so ``virial = -stress * V``).

Errors are relative: ``max|got - expected| / max(max|expected|, atol / rtol)``
and a check passes when that is ``<= rtol``; equivalently
``max|got - expected| <= max(rtol * max|expected|, atol)``. Defaults come from
a :class:`Tolerances` preset chosen by ``precision`` ("float64" or "float32"),
or pass a :class:`Tolerances` of your own.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from ase import Atoms

from conlearn.testing.structures import random_rotation

__all__ = [
    "CheckResult", "Tolerances", "TOLERANCES", "tolerances", "central_derivative",
    "check_forces_fd", "check_virial_fd", "check_rotation_invariance",
    "check_translation_invariance", "check_permutation_invariance",
    "check_cutoff_smoothness", "check_batch_consistency", "check_save_load",
    "run_all", "format_results", "assert_all_passed",
    "assert_forces_fd", "assert_virial_fd", "assert_rotation_invariance",
    "assert_translation_invariance", "assert_permutation_invariance",
    "assert_cutoff_smoothness", "assert_batch_consistency", "assert_save_load",
]

_XYZ = "xyz"


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one check: ``max_error`` (dimensionless unless the message
    says otherwise) compared with ``tolerance``; ``message`` names the worst
    atom/component."""

    name: str
    max_error: float
    tolerance: float
    passed: bool
    message: str

    def __str__(self) -> str:
        flag = "PASS" if self.passed else "FAIL"
        return f"{flag}  {self.name:<22} {self.max_error:9.2e} <= {self.tolerance:7.1e}?  {self.message}"


@dataclass(frozen=True)
class Tolerances:
    """Step sizes and tolerances for one floating-point precision.

    Attributes:
        delta: finite-difference displacement, Å (4-point central stencil).
        strain: finite-difference strain step, dimensionless.
        fd_rtol: relative tolerance of FD forces and FD stress.
        fd_atol_forces: absolute floor for FD forces, eV/Å.
        fd_atol_stress: absolute floor for FD stress, eV/Å^3.
        rtol: relative tolerance of invariance, batch and cutoff-tail checks.
        atol_energy, atol_forces, atol_stress: their absolute floors
            (eV, eV/Å, eV/Å^3).
        jump_factor: largest allowed ratio of a step change to the typical
            step change in :func:`check_cutoff_smoothness`.
    """

    delta: float
    strain: float
    fd_rtol: float
    fd_atol_forces: float
    fd_atol_stress: float
    rtol: float
    atol_energy: float
    atol_forces: float
    atol_stress: float
    jump_factor: float = 10.0

    def atol(self, key: str) -> float:
        return {"energy": self.atol_energy, "forces": self.atol_forces, "stress": self.atol_stress}[key]


TOLERANCES = {
    "float64": Tolerances(delta=1e-4, strain=1e-4, fd_rtol=1e-6, fd_atol_forces=1e-8,
                          fd_atol_stress=1e-10, rtol=1e-9, atol_energy=1e-9,
                          atol_forces=1e-9, atol_stress=1e-11),
    "float32": Tolerances(delta=1e-2, strain=1e-2, fd_rtol=1e-2, fd_atol_forces=1e-3,
                          fd_atol_stress=1e-5, rtol=1e-4, atol_energy=1e-4,
                          atol_forces=1e-5, atol_stress=1e-7),
}


def tolerances(precision: str | Tolerances = "float64") -> Tolerances:
    """The :class:`Tolerances` preset for ``precision`` (or ``precision`` itself)."""
    if isinstance(precision, Tolerances):
        return precision
    if precision not in TOLERANCES:
        raise ValueError(f"precision must be one of {sorted(TOLERANCES)} or a Tolerances, got {precision!r}")
    return TOLERANCES[precision]


# ----------------------------------------------------------------------------- helpers

def central_derivative(f: Callable[[float], float], h: float) -> float:
    """df/dx at 0 by the 4-point stencil, truncation error O(h^4)."""
    return (8.0 * (f(h) - f(-h)) - (f(2 * h) - f(-2 * h))) / (12.0 * h)


def _or(value, default):
    return default if value is None else value


def _has_stress(calc, atoms: Atoms) -> bool:
    return bool(atoms.pbc.all()) and atoms.cell.rank == 3 and \
        "stress" in getattr(calc, "implemented_properties", ())


def _evaluate(calc, atoms: Atoms, stress: bool = False) -> dict:
    """Energy (eV), forces ``[n, 3]`` (eV/Å) and optionally 3x3 stress (eV/Å^3)."""
    work = atoms.copy()
    work.calc = calc
    out = {"energy": np.float64(work.get_potential_energy()),
           "forces": np.array(work.get_forces(), dtype=np.float64)}
    if stress:
        out["stress"] = np.array(work.get_stress(voigt=False), dtype=np.float64)
    return out


def _rel_error(got, expected, rtol: float, atol: float) -> tuple[float, tuple, float]:
    """(relative error, index of the worst entry, scale) -- see module docstring."""
    diff = np.abs(np.atleast_1d(got) - np.atleast_1d(expected))
    scale = max(float(np.max(np.abs(expected))), atol / rtol)
    worst = np.unravel_index(int(np.argmax(diff)), diff.shape)  # a NaN wins: it fails
    return float(diff[worst]) / scale if diff[worst] else 0.0, worst, scale


def _where(key: str, index: tuple, atoms: Atoms) -> str:
    if key == "forces":
        atom = int(index[0])
        return f"forces atom {atom} ({atoms[atom].symbol}) component {_XYZ[index[1]]}"
    if key == "stress":
        return f"stress component {_XYZ[index[0]]}{_XYZ[index[1]]}"
    return key


def _compare(name, expected: dict, got: dict, rtol: float, atols: Callable[[str], float],
             atoms: Atoms, prefix: str = "") -> CheckResult:
    """Compare ``got`` against ``expected`` on their common keys."""
    rows = []
    for key in ("energy", "forces", "stress"):
        if key in expected and key in got:
            exp, obt = np.asarray(expected[key]), np.asarray(got[key])
            if exp.shape != obt.shape:
                rows.append((np.inf, rtol, f"{prefix}{key} shape {obt.shape} != {exp.shape}"))
                continue
            err, idx, _ = _rel_error(obt, exp, rtol, atols(key))
            where, e, o = (_where(key, idx, atoms), exp[idx], obt[idx]) if exp.ndim else (key, exp, obt)
            rows.append((err, rtol, f"{prefix}{where}: expected {e:.10g}, got {o:.10g}"))
    return _worst(name, rows)


def _worst(name: str, rows: Sequence[tuple[float, float, str]]) -> CheckResult:
    """Combine criteria ``(error, tolerance, message)``: the check fails if any
    fails; it reports the largest error/tolerance ratio and lists the other failures."""
    order = np.argsort([e / t for e, t, _ in rows])[::-1]
    err, tol, msg = rows[order[0]]
    others = [rows[i][2] for i in order[1:] if rows[i][0] > rows[i][1]]
    return CheckResult(name, err, tol, all(e <= t for e, t, _ in rows),
                       "; ".join([msg] + [f"also {m}" for m in others]))


# ----------------------------------------------------------------------------- FD checks

def check_forces_fd(calc, atoms: Atoms, delta: float | None = None, rtol: float | None = None,
                    atol: float | None = None, n_atoms: int | None = None, seed: int = 0,
                    precision: str | Tolerances = "float64") -> CheckResult:
    """Forces vs 4-point central finite differences of the energy.

    Args:
        delta: displacement, Å. rtol / atol: tolerance and floor (eV/Å).
        n_atoms: check a random subset of this many atoms (None: all).
        seed: seed of the subset.
    The error is ``max|F_fd - F| / max(max|F|, atol/rtol)`` over the checked
    atoms, where ``max|F|`` runs over all atoms. A calculator with a step in
    its energy (e.g. ASE's EMT truncates its Fermi cutoff at ``rc_list``)
    fails where a pair distance lies within ``2 * delta`` of the step.
    """
    tol = tolerances(precision)
    delta, rtol, atol = _or(delta, tol.delta), _or(rtol, tol.fd_rtol), _or(atol, tol.fd_atol_forces)
    forces = _evaluate(calc, atoms)["forces"]
    n = len(atoms)
    idx = np.arange(n) if n_atoms is None or n_atoms >= n else \
        np.sort(np.random.default_rng(seed).choice(n, n_atoms, replace=False))
    work, pos0 = atoms.copy(), atoms.get_positions()
    work.calc = calc

    def energy(i, c, h):
        pos = pos0.copy()
        pos[i, c] += h
        work.set_positions(pos)
        return work.get_potential_energy()

    fd = np.array([[-central_derivative(functools.partial(energy, i, c), delta) for c in range(3)]
                   for i in idx])
    err, (k, c), scale = _rel_error(fd, forces[idx], rtol, atol)
    i = int(idx[k])
    msg = (f"atom {i} ({atoms[i].symbol}) component {_XYZ[c]}: F={forces[i, c]:.8g}, "
           f"F_fd={fd[k, c]:.8g} eV/Å (|dF|={abs(fd[k, c] - forces[i, c]):.2e}, scale {scale:.3g})")
    return CheckResult("forces_fd", err, rtol, err <= rtol, msg)


def check_virial_fd(calc, atoms: Atoms, delta: float | None = None, rtol: float | None = None,
                    atol: float | None = None, precision: str | Tolerances = "float64") -> CheckResult:
    """Stress vs finite differences of the energy under symmetric strain.

    Cell and positions are deformed together by ``I + eps`` (eps symmetric,
    step ``delta``, dimensionless); ``stress_ij = (1/V) dE/deps_ij`` in eV/Å^3.
    Needs a fully periodic cell. ``atol`` is in eV/Å^3.
    """
    if not (atoms.pbc.all() and atoms.cell.rank == 3):
        raise ValueError("check_virial_fd needs a fully periodic 3D cell")
    tol = tolerances(precision)
    delta, rtol, atol = _or(delta, tol.strain), _or(rtol, tol.fd_rtol), _or(atol, tol.fd_atol_stress)
    stress = _evaluate(calc, atoms, stress=True)["stress"]
    work, pos0, cell0 = atoms.copy(), atoms.get_positions(), atoms.cell.array.copy()
    work.calc = calc
    volume = atoms.get_volume()

    def energy(i, j, h):
        eps = np.zeros((3, 3))
        eps[i, j] = eps[j, i] = h
        work.set_cell(cell0 @ (np.eye(3) + eps), scale_atoms=False)
        work.set_positions(pos0 @ (np.eye(3) + eps))
        return work.get_potential_energy()

    fd = np.zeros((3, 3))
    for i in range(3):
        for j in range(i, 3):
            d = central_derivative(functools.partial(energy, i, j), delta)
            fd[i, j] = fd[j, i] = d / volume / (1 if i == j else 2)
    err, (i, j), scale = _rel_error(stress, fd, rtol, atol)
    msg = (f"stress component {_XYZ[i]}{_XYZ[j]}: stress={stress[i, j]:.8g}, "
           f"stress_fd={fd[i, j]:.8g} eV/Å^3 (virial_fd={-fd[i, j] * volume:.6g} eV)")
    return CheckResult("virial_fd", err, rtol, err <= rtol, msg)


# ----------------------------------------------------------------------------- symmetry checks

def check_rotation_invariance(calc, atoms: Atoms, seed: int = 0, rtol: float | None = None,
                              precision: str | Tolerances = "float64") -> CheckResult:
    """Rotate positions and cell by a random ``R``: E unchanged, F -> F R^T,
    stress -> R stress R^T."""
    tol = tolerances(precision)
    rot = random_rotation(np.random.default_rng(seed))
    moved = atoms.copy()
    moved.set_cell(atoms.cell.array @ rot.T, scale_atoms=False)
    moved.set_positions(atoms.positions @ rot.T)
    stress = _has_stress(calc, atoms)
    ref, got = _evaluate(calc, atoms, stress), _evaluate(calc, moved, stress)
    expected = {"energy": ref["energy"], "forces": ref["forces"] @ rot.T}
    if stress:
        expected["stress"] = rot @ ref["stress"] @ rot.T
    return _compare("rotation", expected, got, _or(rtol, tol.rtol), tol.atol, atoms)


def check_translation_invariance(calc, atoms: Atoms, seed: int = 0, rtol: float | None = None,
                                 precision: str | Tolerances = "float64") -> CheckResult:
    """Shift all atoms by a random vector (~1 Å per component, wrapped back
    into the cell where periodic): energy, forces and stress unchanged."""
    tol = tolerances(precision)
    moved = atoms.copy()
    moved.positions += np.random.default_rng(seed).normal(size=3)
    if atoms.pbc.any():
        moved.wrap()
    stress = _has_stress(calc, atoms)
    ref, got = _evaluate(calc, atoms, stress), _evaluate(calc, moved, stress)
    return _compare("translation", ref, got, _or(rtol, tol.rtol), tol.atol, atoms)


def check_permutation_invariance(calc, atoms: Atoms, seed: int = 0, rtol: float | None = None,
                                 precision: str | Tolerances = "float64") -> CheckResult:
    """Reorder atoms randomly: energy/stress unchanged, forces reorder with
    them. Atom indices in the message are those of the original order."""
    tol = tolerances(precision)
    perm = np.random.default_rng(seed).permutation(len(atoms))
    stress = _has_stress(calc, atoms)
    ref, got = _evaluate(calc, atoms, stress), _evaluate(calc, atoms[perm], stress)
    back = np.empty_like(got["forces"])
    back[perm] = got["forces"]
    return _compare("permutation", ref, {**got, "forces": back}, _or(rtol, tol.rtol), tol.atol, atoms)


def check_save_load(calc, reload_fn: Callable, atoms: Atoms, rtol: float = 1e-12,
                    atol: float = 1e-12) -> CheckResult:
    """``reload_fn(calc) -> calc`` (save, then load) predicts the same numbers.

    Energy, forces (and stress if periodic) agree to ``rtol`` relative with a
    floor of ``atol/rtol`` in their units; ``rtol=0`` demands bitwise equality.
    """
    stress = _has_stress(calc, atoms)
    before = _evaluate(calc, atoms, stress)
    after = _evaluate(reload_fn(calc), atoms, stress)
    if rtol == 0:
        bad = [k for k in before if not np.array_equal(before[k], after[k])]
        return CheckResult("save_load", float(bool(bad)), 0.0, not bad,
                           f"not bitwise equal: {bad}" if bad else "bitwise equal")
    return _compare("save_load", before, after, rtol, lambda key: atol, atoms)


def check_batch_consistency(predict_batch: Callable[[list[Atoms]], list[dict]],
                            atoms_list: Sequence[Atoms], rtol: float | None = None,
                            precision: str | Tolerances = "float64") -> CheckResult:
    """``predict_batch(list[Atoms]) -> list[dict]`` (keys ``energy`` eV,
    ``forces`` ``[n_atoms, 3]`` eV/Å, optional ``stress`` 3x3 eV/Å^3) on the
    whole list equals calling it one structure at a time."""
    tol = tolerances(precision)
    rtol = _or(rtol, tol.rtol)
    batched = predict_batch(list(atoms_list))
    if len(batched) != len(atoms_list):
        return CheckResult("batch", np.inf, rtol, False,
                           f"{len(batched)} results for {len(atoms_list)} structures")
    results = []
    for s, (atoms, got) in enumerate(zip(atoms_list, batched)):
        single = predict_batch([atoms])[0]
        expected = {k: np.asarray(v, dtype=np.float64) for k, v in single.items()}
        got = {k: np.asarray(v, dtype=np.float64) for k, v in got.items()}
        results.append(_compare("batch", expected, got, rtol, tol.atol, atoms, f"structure {s} "))
    return max(results, key=lambda r: r.max_error)


def _jump(name: str, rs, values, inside, atol: float, factor: float, r_cut: float, atoms):
    """Largest change between consecutive samples vs the median change inside r_cut."""
    d = np.abs(np.diff(values, axis=0))  # [n_r - 1, n_values]
    dmax = d.max(axis=1)
    typical = max(float(np.median(dmax[inside])), atol)
    k = int(np.argmax(dmax))
    what, unit = "energy", "eV"
    if name == "forces":
        what, unit = _where("forces", divmod(int(np.argmax(d[k])), 3), atoms), "eV/Å"
        what = what.replace("forces atom", "force on atom")
    msg = (f"{what} changes by {dmax[k]:.3g} {unit} between r={rs[k]:.5f} and r={rs[k + 1]:.5f} Å "
           f"(r_cut={r_cut}), {dmax[k] / typical:.3g}x the typical step {typical:.3g}")
    return dmax[k] / typical, factor, msg


def check_cutoff_smoothness(calc, make_atoms: Callable[[float], Atoms], r_cut: float,
                            width: float = 0.05, step: float = 1e-3, r_far: float | None = None,
                            jump_factor: float | None = None, rtol: float | None = None,
                            precision: str | Tolerances = "float64") -> CheckResult:
    """Energy and forces are continuous through the cutoff and constant beyond it.

    ``make_atoms(r)`` builds a structure (same atoms for every r) in which a
    separation ``r`` (Å) crosses the cutoff: a dimer, or an atom approaching a
    cluster. It is sampled at ``r_cut +- (k + 1/2) * step`` out to ``width`` Å.
    Criteria, the worst of which is reported:

    1. jump: the largest change of the energy (eV), and of any force component
       (eV/Å), between consecutive samples, over the median change across the
       samples inside ``r_cut`` (floored at the precision's atol), must not
       exceed ``jump_factor``; ``step`` must resolve the cutoff's taper.
    2. tail: for ``r > r_cut``, energy and forces must equal those at
       ``r_far`` (the isolated value; default ``2 * r_cut``) to ``rtol``.
    """
    tol = tolerances(precision)
    factor, rtol = _or(jump_factor, tol.jump_factor), _or(rtol, tol.rtol)
    k = np.arange(max(1, int(round(width / step))))
    rs = np.concatenate([r_cut - (k[::-1] + 0.5) * step, r_cut + (k + 0.5) * step])
    samples = [_evaluate(calc, make_atoms(float(r))) for r in rs]
    energies = np.array([s["energy"] for s in samples])
    forces = np.array([s["forces"] for s in samples])  # [n_r, n_atoms, 3]
    far = _evaluate(calc, make_atoms(r_far or 2.0 * r_cut))
    atoms, inside, beyond = make_atoms(float(rs[0])), rs[1:] < r_cut, rs > r_cut
    rows = [_jump("energy", rs, energies[:, None], inside, tol.atol_energy, factor, r_cut, atoms),
            _jump("forces", rs, forces.reshape(len(rs), -1), inside, tol.atol_forces, factor,
                  r_cut, atoms)]
    e_tail, f_tail = energies[beyond], forces[beyond]
    err, (j,), _ = _rel_error(e_tail, np.full_like(e_tail, far["energy"]), rtol, tol.atol_energy)
    rows.append((err, rtol, f"energy at r={rs[beyond][j]:.5f} Å > r_cut: {e_tail[j]:.10g} eV, "
                            f"isolated {far['energy']:.10g} eV"))
    expected = np.broadcast_to(far["forces"], f_tail.shape)
    err, (j, a, c), _ = _rel_error(f_tail, expected, rtol, tol.atol_forces)
    rows.append((err, rtol, f"{_where('forces', (a, c), atoms)} at r={rs[beyond][j]:.5f} Å > "
                            f"r_cut: {f_tail[j, a, c]:.6g} eV/Å, isolated {expected[j, a, c]:.6g}"))
    return _worst("cutoff", rows)


def run_all(calc, atoms: Atoms, precision: str | Tolerances = "float64", seed: int = 0,
            n_atoms: int | None = None, make_atoms: Callable[[float], Atoms] | None = None,
            r_cut: float | None = None, predict_batch: Callable | None = None,
            batch_atoms: Sequence[Atoms] | None = None,
            reload_fn: Callable | None = None) -> list[CheckResult]:
    """Run every check that applies and return the results (see
    :func:`format_results`, :func:`assert_all_passed`).

    Always: FD forces (``n_atoms`` random atoms, all if None), rotation,
    translation and permutation invariance. Periodic with stress: FD virial.
    ``make_atoms`` and ``r_cut``: cutoff smoothness. ``predict_batch``: batch
    consistency on ``batch_atoms`` (default: ``atoms`` and its first half).
    ``reload_fn``: save/load.
    """
    kw = dict(precision=precision)
    results = [check_forces_fd(calc, atoms, n_atoms=n_atoms, seed=seed, **kw)]
    if _has_stress(calc, atoms):
        results.append(check_virial_fd(calc, atoms, **kw))
    results += [check(calc, atoms, seed=seed, **kw) for check in (
        check_rotation_invariance, check_translation_invariance, check_permutation_invariance)]
    if make_atoms is not None and r_cut is not None:
        results.append(check_cutoff_smoothness(calc, make_atoms, r_cut, **kw))
    if predict_batch is not None:
        batch = batch_atoms or [atoms, atoms[: max(1, len(atoms) // 2)]]
        results.append(check_batch_consistency(predict_batch, batch, **kw))
    if reload_fn is not None:
        results.append(check_save_load(calc, reload_fn, atoms))
    return results


def assert_all_passed(results: Sequence[CheckResult]) -> None:
    """Raise ``AssertionError`` listing every failed result."""
    failed = [r for r in results if not r.passed]
    if failed:
        raise AssertionError("physics checks failed:\n" + format_results(failed))


def format_results(results: Sequence[CheckResult]) -> str:
    """A printable table, one line per result."""
    head = f"{'':4}  {'check':<22} {'max error':>9}    {'tol':>7}   worst"
    return "\n".join([head] + [str(r) for r in results])


def _asserting(check: Callable[..., CheckResult]) -> Callable[..., CheckResult]:
    @functools.wraps(check)
    def wrapper(*args, **kwargs):
        result = check(*args, **kwargs)
        if not result.passed:
            raise AssertionError(str(result))
        return result

    wrapper.__name__ = wrapper.__qualname__ = check.__name__.replace("check_", "assert_")
    wrapper.__doc__ = f"Like :func:`{check.__name__}` but raises AssertionError on failure."
    return wrapper


assert_forces_fd = _asserting(check_forces_fd)
assert_virial_fd = _asserting(check_virial_fd)
assert_rotation_invariance = _asserting(check_rotation_invariance)
assert_translation_invariance = _asserting(check_translation_invariance)
assert_permutation_invariance = _asserting(check_permutation_invariance)
assert_batch_consistency = _asserting(check_batch_consistency)
assert_save_load = _asserting(check_save_load)
assert_cutoff_smoothness = _asserting(check_cutoff_smoothness)
