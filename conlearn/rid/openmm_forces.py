"""Collective variables, biases and restraints as OpenMM forces.

Every CV of a :class:`~conlearn.rid.cv.CVSpec` tuple becomes a sum of *leaf* CVs (dihedral,
angle, distance), each a one-term OpenMM force (``CustomTorsionForce("theta")``,
``CustomAngleForce("theta")``, ``CustomBondForce("r")``) inside one ``CustomCVForce``, whose
energy expression names the CVs ``s0 .. s{d-1}`` as weighted sums of the leaves ``t0 ..``.
Three energy expressions use them (kJ/mol; angles rad, distances nm):

* restraint   ``0.5 * sum_j kappa_j * w_j^2``, ``w_j = wrap(s_j - c_j)`` on periodic CVs;
* linearised  ``V0 + sum_j g_j * wrap(s_j - r_j)``: a bias evaluated at ``r`` (V0, g = dV/ds)
  and applied with its gradient frozen until the parameters are set again;
* tabulated   ``table(s0[, s1])``: a periodic natural-spline table over (-pi, pi]^d of the bias
  on a grid (d <= 2, every CV periodic).

The centres, spring constants and gradients are global parameters (``rid_c0``, ``rid_k0``,
``rid_g0``, ...), so one Context serves a whole run and ``context.setParameter`` moves them.
"""

from __future__ import annotations

import math

import numpy as np
import openmm

from .cv import CVSpec

BIAS_GROUP = 1  # force group of the CV force, so tests and diagnostics can read it alone
_LEAF_KINDS = ("dihedral", "angle", "distance")


def _leaves(spec: CVSpec, weight: float = 1.0) -> list[tuple[CVSpec, float]]:
    """``spec`` as (leaf CV, weight) pairs: a linear CV flattened through its terms."""
    if spec.kind == "linear":
        out: list[tuple[CVSpec, float]] = []
        for w, term in zip(spec.weights, spec.terms):
            out += _leaves(term, weight * float(w))
        return out
    if spec.kind not in _LEAF_KINDS:
        raise ValueError(f"CV {spec.name!r}: unknown kind {spec.kind!r} (known: {_LEAF_KINDS + ('linear',)})")
    return [(spec, weight)]


def _leaf_force(leaf: CVSpec) -> openmm.Force:
    """A force whose energy is the leaf's value (rad or nm)."""
    if leaf.kind == "dihedral":
        force = openmm.CustomTorsionForce("theta")
        force.addTorsion(*leaf.atoms, [])
    elif leaf.kind == "angle":
        force = openmm.CustomAngleForce("theta")
        force.addAngle(*leaf.atoms, [])
    else:
        force = openmm.CustomBondForce("r")
        force.addBond(*leaf.atoms, [])
    return force


def _wrapped(j: int, ref: str, periodic: bool) -> str:
    """Expression of s_j - ref, wrapped to [-pi, pi) when s_j is periodic."""
    if not periodic:
        return f"(s{j} - {ref})"
    return f"(s{j} - {ref} - {2 * math.pi!r} * floor((s{j} - {ref} + {math.pi!r}) / {2 * math.pi!r}))"


class CVForces:
    """The CVs ``specs`` (d of them) as leaf forces and expressions ``s_j = sum_k W[j, k] t_k``."""

    def __init__(self, specs: tuple[CVSpec, ...]):
        self.specs = tuple(specs)
        self.periodic = tuple(bool(s.periodic) for s in self.specs)
        keys: dict[tuple, int] = {}
        rows = []
        for spec in self.specs:
            row: dict[int, float] = {}
            for leaf, w in _leaves(spec):
                k = keys.setdefault((leaf.kind, tuple(leaf.atoms)), len(keys))
                row[k] = row.get(k, 0.0) + w
            rows.append(row)
        self.leaves = [CVSpec(name=f"t{k}", kind=kind, atoms=atoms) for (kind, atoms), k in keys.items()]
        self.weights = np.zeros((len(self.specs), len(self.leaves)))  # [d, n_leaves]
        for j, row in enumerate(rows):
            for k, w in row.items():
                self.weights[j, k] = w

    @property
    def d(self) -> int:
        return len(self.specs)

    def _definitions(self) -> str:
        defs = []
        for j, row in enumerate(self.weights):
            terms = [f"{float(w)!r}*t{k}" for k, w in enumerate(row) if w != 0.0]
            defs.append(f"s{j} = " + (" + ".join(terms) if terms else "0"))
        return "; ".join(defs)

    def force(self, energy: str) -> openmm.CustomCVForce:
        """A CustomCVForce of ``energy`` (an expression in s0..s{d-1}) over these CVs."""
        force = openmm.CustomCVForce(f"{energy}; {self._definitions()}")
        for k, leaf in enumerate(self.leaves):
            force.addCollectiveVariable(f"t{k}", _leaf_force(leaf))
        force.setForceGroup(BIAS_GROUP)
        return force

    def values(self, force: openmm.CustomCVForce, context: openmm.Context) -> np.ndarray:
        """The CVs [d] at the context's current positions."""
        return self.weights @ np.asarray(force.getCollectiveVariableValues(context), dtype=float)

    # -- the three energies -------------------------------------------------------------------
    def restraint(self) -> openmm.CustomCVForce:
        """0.5 sum_j rid_k{j} wrap(s_j - rid_c{j})^2 (kJ/mol)."""
        terms = [f"0.5*rid_k{j}*{_wrapped(j, f'rid_c{j}', p)}^2" for j, p in enumerate(self.periodic)]
        force = self.force(" + ".join(terms))
        for j in range(self.d):
            force.addGlobalParameter(f"rid_k{j}", 0.0)
            force.addGlobalParameter(f"rid_c{j}", 0.0)
        return force

    def linearised(self) -> openmm.CustomCVForce:
        """rid_v + sum_j rid_g{j} wrap(s_j - rid_r{j}) (kJ/mol): a bias frozen to first order at r."""
        terms = [f"rid_g{j}*{_wrapped(j, f'rid_r{j}', p)}" for j, p in enumerate(self.periodic)]
        force = self.force("rid_v + " + " + ".join(terms))
        force.addGlobalParameter("rid_v", 0.0)
        for j in range(self.d):
            force.addGlobalParameter(f"rid_g{j}", 0.0)
            force.addGlobalParameter(f"rid_r{j}", 0.0)
        return force

    def tabulated(self, bias, n: int) -> openmm.CustomCVForce:
        """The bias tabulated on a periodic n^d grid over [-pi, pi] (d <= 2, periodic CVs only).

        bias: has ``energy_and_grad(s [m, d]) -> (V [m], dV/ds [m, d])`` (kJ/mol).
        """
        if self.d > 2 or not all(self.periodic):
            raise ValueError(f"a tabulated bias needs 1 or 2 periodic CVs, got {[s.name for s in self.specs]}")
        axis = np.linspace(-math.pi, math.pi, n + 1)
        if self.d == 1:
            values = _grid_energy(bias, axis[:-1, None])
            table = openmm.Continuous1DFunction(np.append(values, values[0]).tolist(), -math.pi, math.pi, True)
            force = self.force("rid_table(s0)")
        else:
            x, y = np.meshgrid(axis[:-1], axis[:-1], indexing="ij")
            values = _grid_energy(bias, np.stack([x.ravel(), y.ravel()], axis=1)).reshape(n, n)
            values = np.pad(values, ((0, 1), (0, 1)), mode="wrap")  # [n + 1, n + 1], last = first
            # OpenMM orders values[i + xsize * j] = f(x_i, y_j): x runs fastest
            table = openmm.Continuous2DFunction(n + 1, n + 1, values.T.ravel().tolist(),
                                                -math.pi, math.pi, -math.pi, math.pi, True)
            force = self.force("rid_table(s0, s1)")
        force.addTabulatedFunction("rid_table", table)
        return force


def _grid_energy(bias, points: np.ndarray) -> np.ndarray:
    """Bias energies [m] (kJ/mol) at points [m, d], evaluated in chunks."""
    out = [np.asarray(bias.energy_and_grad(points[i:i + 8192])[0], dtype=float)
           for i in range(0, len(points), 8192)]
    values = np.concatenate(out)
    if not np.all(np.isfinite(values)):
        raise ValueError("the bias is not finite on the tabulation grid")
    return values
