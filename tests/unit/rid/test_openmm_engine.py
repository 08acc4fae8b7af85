"""OpenMM engine: CVs, biases and restraints as OpenMM forces against the torch CVs (cv.py).

Alanine dipeptide in vacuum (22 atoms), Reference platform, double precision.
"""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch

pytest.importorskip("openmm")
pytest.importorskip("openmmtools")

from conlearn.rid.cv import CVSpec, cv_values, wrap  # noqa: E402
from conlearn.rid.engine import ENGINES  # noqa: E402
from conlearn.rid.openmm_engine import OpenMMEngine, _Simulation, set_linearised  # noqa: E402
from conlearn.rid.openmm_forces import BIAS_GROUP, CVForces  # noqa: E402

PHI = CVSpec("phi", "dihedral", (4, 6, 8, 14))
PSI = CVSpec("psi", "dihedral", (6, 8, 14, 16))
D_C7 = CVSpec("d_c7", "distance", (5, 17))        # O(ACE) .. H(NME): the C7 hydrogen bond
ANGLE = CVSpec("a_n_ca_c", "angle", (6, 8, 14))
MIX = CVSpec("mix", "linear", weights=(0.5, 2.0), terms=(PHI, D_C7))
PHI_SIDE = [0, 1, 2, 3, 4, 5, 7]                   # atoms that move with phi about N(6)-CA(8)


class Analytic:
    """A smooth periodic bias on the first two CVs plus a quadratic in the others (kJ/mol)."""

    def __init__(self, d: int):
        self.d = d
        self.periodic = (True, True) + (False,) * (d - 2)

    def energy_and_grad(self, s):
        s = np.asarray(s, dtype=float)
        p, q = s[:, 0], s[:, 1]
        v = 6 * np.cos(p) + 4 * np.sin(q) + 3 * np.cos(p - q)
        g = np.zeros_like(s)
        g[:, 0] = -6 * np.sin(p) - 3 * np.sin(p - q)
        g[:, 1] = 4 * np.cos(q) + 3 * np.sin(p - q)
        for j in range(2, self.d):
            v = v + 50 * (s[:, j] - 0.3) ** 2
            g[:, j] = 100 * (s[:, j] - 0.3)
        return v, g


def rotate_phi(x: np.ndarray, target: float) -> np.ndarray:
    """Positions with phi set to ``target`` by a rigid rotation of the ACE side about N-CA."""
    x = x.copy()
    now = float(cv_values((PHI,), torch.as_tensor(x))[0, 0])
    axis = (x[8] - x[6]) / np.linalg.norm(x[8] - x[6])
    for sign in (1.0, -1.0):
        a = sign * (target - now)
        k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
        rot = np.eye(3) + math.sin(a) * k + (1 - math.cos(a)) * k @ k
        y = x.copy()
        y[PHI_SIDE] = (x[PHI_SIDE] - x[6]) @ rot.T + x[6]
        if abs(float(cv_values((PHI,), torch.as_tensor(y))[0, 0]) - target) < 1e-9:
            return y
    raise AssertionError("rotation did not reach the target phi")


@pytest.fixture(scope="module")
def configs() -> list[np.ndarray]:
    """Four configurations: the shipped one, two from short MD, one with phi near -pi."""
    eng = OpenMMEngine(cvs=(PHI, PSI))
    x0 = eng.initial_state(0)
    md = eng.biased_md(None, 400, 200, seed=3, start=None)
    return [x0, md.frames[0], md.frames[1], rotate_phi(md.frames[1], -3.1)]


def bias_force(sim: _Simulation) -> np.ndarray:
    """Forces [n_atoms, 3] (kJ/mol/nm) of the CV force group alone."""
    state = sim.context.getState(getForces=True, groups={BIAS_GROUP})
    return state.getForces(asNumpy=True)._value


def chain_rule_force(specs, x: np.ndarray, dv_ds: np.ndarray) -> np.ndarray:
    """-dV/ds . ds/dx [n_atoms, 3] from the torch CVs."""
    xt = torch.tensor(x, requires_grad=True)
    s = cv_values(specs, xt)[0]
    (grad,) = torch.autograd.grad((s * torch.as_tensor(dv_ds)).sum(), xt)
    return -grad.numpy()


def test_openmm_cvs_equal_torch_cvs(configs):
    specs = (PHI, PSI, D_C7, ANGLE, MIX)
    eng = OpenMMEngine(cvs=specs)
    cvf = CVForces(specs)
    assert len(cvf.leaves) == 4                       # MIX reuses the phi and d_c7 leaves
    for x in configs:
        force = cvf.restraint()
        sim = _Simulation(eng, force, seed=1, start=x)
        sim.context.setPositions(x)                   # undo applyConstraints: compare on x itself
        ours = cvf.values(force, sim.context)
        ref = cv_values(specs, torch.as_tensor(x))[0].numpy()
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-9)


@pytest.mark.parametrize("specs", [(PHI, PSI), (PHI, PSI, D_C7, MIX)], ids=["2cv", "4cv"])
def test_linearised_bias_force_is_chain_rule(configs, specs):
    """At the point where the bias is frozen, force = -dV/ds . ds/dx and energy = V(s)."""
    bias = Analytic(len(specs))
    eng = OpenMMEngine(cvs=specs, bias_route="linear")
    cvf = CVForces(specs)
    for x in configs:
        force = cvf.linearised()
        sim = _Simulation(eng, force, seed=1, start=x)
        sim.context.setPositions(x)
        s = set_linearised(sim.context, cvf, force, bias)
        v, g = bias.energy_and_grad(s[None])
        f = bias_force(sim)
        np.testing.assert_allclose(f, chain_rule_force(specs, x, g[0]), rtol=1e-7, atol=1e-6)
        energy = sim.context.getState(getEnergy=True, groups={BIAS_GROUP}).getPotentialEnergy()._value
        assert energy == pytest.approx(v[0], abs=1e-9)
        cap = 0.5 * np.abs(g).max()                                     # clips at least one component
        set_linearised(sim.context, cvf, force, bias, max_force=cap)
        np.testing.assert_allclose(bias_force(sim), chain_rule_force(specs, x, np.clip(g[0], -cap, cap)),
                                   rtol=1e-7, atol=1e-6)


def test_tabulated_bias_force_is_chain_rule(configs):
    """The periodic 72x72 spline of the bias gives its energy to 1e-3 and forces to 1 % of their scale."""
    specs = (PHI, PSI)
    bias = Analytic(2)
    eng = OpenMMEngine(cvs=specs)
    assert eng.route(bias) == "grid"
    cvf = CVForces(specs)
    for x in configs:
        sim = _Simulation(eng, cvf.tabulated(bias, 72), seed=1, start=x)
        sim.context.setPositions(x)
        s = cv_values(specs, torch.as_tensor(x)).numpy()
        v, g = bias.energy_and_grad(s)
        ref = chain_rule_force(specs, x, g[0])
        f = bias_force(sim)
        assert np.abs(f - ref).max() < 1e-2 * np.abs(ref).max()
        energy = sim.context.getState(getEnergy=True, groups={BIAS_GROUP}).getPotentialEnergy()._value
        assert energy == pytest.approx(v[0], abs=1e-3)


def test_restraint_wraps_through_pi(configs):
    """Centre 3.1 rad with phi at -3.1 rad: a 0.0832 rad displacement (not 6.2), energy and force."""
    x = configs[3]                                    # phi = -3.1
    eng = OpenMMEngine(cvs=(PHI,))
    cvf = CVForces((PHI,))
    sim = _Simulation(eng, cvf.restraint(), seed=1, start=x)
    sim.context.setPositions(x)
    kappa = 500.0
    sim.context.setParameter("rid_k0", kappa)
    sim.context.setParameter("rid_c0", 3.1)
    disp = 2 * math.pi - 6.2                          # s - c = -3.1 - 3.1 + 2 pi = +0.0832
    energy = sim.context.getState(getEnergy=True, groups={BIAS_GROUP}).getPotentialEnergy()._value
    assert energy == pytest.approx(0.5 * kappa * disp**2, rel=1e-9)
    np.testing.assert_allclose(bias_force(sim), chain_rule_force((PHI,), x, np.array([kappa * disp])),
                               rtol=1e-7, atol=1e-6)
    assert float(wrap(np.array([-3.1 - 3.1]), (True,))[0]) == pytest.approx(disp)


def test_restrained_md_holds_the_centre_and_gives_the_mean_force_sign():
    """At phi = -0.5 (uphill of C7eq) a stiff restraint keeps <phi> within 0.15 rad and the
    label kappa (<phi> - c) is strongly negative (A rises with phi there): 25 kJ/mol/rad or more."""
    eng = OpenMMEngine(cvs=(PHI, PSI))
    center, kappa = np.array([-0.5, 1.0]), np.array([500.0, 500.0])
    labels = []
    for seed in (1, 2):
        out = eng.restrained_md(center, kappa, 4000, 10, seed=seed, start=None)  # start at phi = -pi
        assert out.cv.shape == (400, 2) and out.frames.shape == (400, 22, 3) and out.n_steps == 4000
        ds = wrap(out.cv[100:] - center, (True, True))
        assert np.all(np.abs(ds.mean(0)) < 0.15)
        labels.append(kappa * ds.mean(0))
    labels = np.array(labels)
    assert np.all(labels[:, 0] < -25.0)
    assert abs(labels[0, 0] - labels[1, 0]) < 10.0


def test_seeds_reproduce_and_differ():
    eng = OpenMMEngine(cvs=(PHI, PSI))
    a = eng.biased_md(Analytic(2), 300, 100, seed=7, start=None)
    b = pickle.loads(pickle.dumps(eng)).biased_md(Analytic(2), 300, 100, seed=7, start=None)
    c = eng.biased_md(Analytic(2), 300, 100, seed=8, start=None)
    np.testing.assert_array_equal(a.cv, b.cv)
    assert np.abs(a.cv - c.cv).max() > 1e-3
    lin = OpenMMEngine(cvs=(PHI, PSI), bias_route="linear", linear_every=7)
    out = lin.biased_md(Analytic(2), 50, 20, seed=1, start=a.last)   # frames at 20, 40; 50 steps
    assert out.cv.shape == (2, 2) and out.n_steps == 50
    np.testing.assert_allclose(out.cv, cv_values((PHI, PSI), torch.as_tensor(out.frames)).numpy())


def test_registry_and_bad_settings():
    assert ENGINES.get("openmm") is OpenMMEngine
    with pytest.raises(ValueError, match="engine.timestep"):
        OpenMMEngine(cvs=(PHI,), timestep=-0.002)
    with pytest.raises(ValueError, match="engine.bias_route"):
        OpenMMEngine(cvs=(PHI, D_C7), bias_route="grid")
    with pytest.raises(ValueError, match="engine.platform"):
        OpenMMEngine(cvs=(PHI,), platform="NoSuchPlatform")
    bad = OpenMMEngine(cvs=(CVSpec("bad", "distance", (0, 22)),))
    assert bad.n_atoms == 22                          # the config checks atom indices against it
    with pytest.raises(ValueError, match="'bad'.*atom index 22"):
        bad.biased_md(None, 10, 5, seed=0, start=None)
    with pytest.raises(TypeError, match="frictoin"):
        OpenMMEngine(cvs=(PHI,), frictoin=1.0)
    eng = OpenMMEngine(cvs=(PHI, PSI))
    with pytest.raises(ValueError, match="kappa must be > 0"):
        eng.restrained_md(np.zeros(2), np.array([500.0, 0.0]), 10, 5, seed=0, start=None)
    with pytest.raises(ValueError, match="d=3"):
        eng.biased_md(Analytic(3), 10, 5, seed=0, start=None)
