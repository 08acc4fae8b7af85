"""CVs: values against hand-built geometry, gradients by finite differences, wrapping, errors."""

import math

import numpy as np
import pytest
import torch

from conlearn.rid.cv import CVSpec, check_atoms, cv_values, wrap

torch.set_default_dtype(torch.float64)

SPECS = (CVSpec("phi", "dihedral", (0, 1, 2, 3)), CVSpec("a", "angle", (0, 1, 2)),
         CVSpec("r", "distance", (0, 3)),
         CVSpec("lin", "linear", weights=(0.5, -2.0),
                terms=(CVSpec("t1", "distance", (1, 4)), CVSpec("t2", "angle", (2, 3, 4)))))


def test_dihedral_matches_constructed_angle_and_sign():
    for phi in (-3.0, -1.2, 0.0, 0.7, 2.9, math.pi):
        x = torch.tensor([[1.0, 0, 0], [0, 0, 0], [0, 0, 1.0],
                          [math.cos(phi), math.sin(phi), 1.0]])
        got = cv_values(SPECS[:1], x)[0, 0].item()
        assert abs(wrap(np.array([got - phi]), [True])[0]) < 1e-12
    # IUPAC sign: looking along 1->2, atom 3 rotated clockwise from atom 0 is positive... checked against
    # the cis/trans values of an explicit helix-like case
    x = torch.tensor([[1.0, 0, 0], [0, 0, 0], [0, 0, 1.0], [0, 1.0, 1.0]])
    assert cv_values(SPECS[:1], x)[0, 0].item() == pytest.approx(math.pi / 2)


def test_angle_distance_linear_values():
    x = torch.tensor([[1.0, 0, 0], [0, 0, 0], [0, 2.0, 0], [0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    s = cv_values(SPECS, x)[0]
    assert s[1].item() == pytest.approx(math.pi / 2)
    assert s[2].item() == pytest.approx(math.sqrt(1 + 4 + 9))
    t1 = math.sqrt(1 + 4 + 9)
    assert s[3].item() == pytest.approx(0.5 * t1 - 2.0 * math.pi / 2)


def test_gradients_match_finite_differences():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(5, 5, 3, generator=g)
    x.requires_grad_(True)
    s = cv_values(SPECS, x)
    assert s.shape == (5, 4)
    for j in range(4):
        (grad,) = torch.autograd.grad(s[:, j].sum(), x, retain_graph=True)
        h = 1e-6
        num = torch.zeros_like(x)
        with torch.no_grad():
            for a in range(5):
                for k in range(3):
                    d = torch.zeros_like(x)
                    d[:, a, k] = h
                    diff = cv_values(SPECS, x + d)[:, j] - cv_values(SPECS, x - d)[:, j]
                    num[:, a, k] = torch.as_tensor(wrap(diff.numpy(), [SPECS[j].periodic])) / (2 * h)
        assert torch.allclose(grad, num, atol=1e-6), (j, (grad - num).abs().max())


def test_wrap_range_and_periodicity_numpy_and_torch():
    ds = np.array([[math.pi, -math.pi, 3 * math.pi, 0.1 - 4 * math.pi, 7.0]]).T
    ds = np.hstack([ds, ds])
    w = wrap(ds, [True, False])
    assert np.all(w[:, 0] > -math.pi) and np.all(w[:, 0] <= math.pi)
    assert np.allclose(w[:, 0], [math.pi, math.pi, math.pi, 0.1, 7.0 - 2 * math.pi])
    assert np.array_equal(w[:, 1], ds[:, 1])  # non-periodic untouched
    wt = wrap(torch.tensor(ds), (True, False))
    assert np.allclose(wt.numpy(), w)
    # the dihedral is periodic: rotating the last atom by 2π gives the same value
    assert SPECS[0].periodic and not SPECS[1].periodic and not SPECS[3].periodic


def test_bad_atom_index_and_shapes_are_errors_naming_the_cv():
    with pytest.raises(ValueError, match=r"CV 'r' \(distance\) uses atom index 22.*22 atoms"):
        check_atoms([CVSpec("phi", "dihedral", (0, 1, 2, 3)), CVSpec("r", "distance", (0, 22))], 22, "f.yaml:3: ")
    with pytest.raises(ValueError, match="uses atom index -1"):
        check_atoms([CVSpec("x", "angle", (0, -1, 2))], 5)
    with pytest.raises(ValueError, match="CV 'lin'.*uses atom index 9"):
        check_atoms([CVSpec("lin", "linear", weights=(1.0,), terms=(CVSpec("t", "distance", (0, 9)),))], 5)
    with pytest.raises(ValueError, match="a dihedral needs 4 atoms"):
        CVSpec("phi", "dihedral", (0, 1, 2))
    with pytest.raises(ValueError, match="unknown kind 'torsion'"):
        CVSpec("phi", "torsion", (0, 1, 2, 3))
    with pytest.raises(ValueError, match="repeats an atom"):
        check_atoms([CVSpec("r", "distance", (1, 1))], 5)
