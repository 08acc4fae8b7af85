"""The metadynamics reference FES: grid, units and the well-tempered estimate."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("openmm")

from conlearn.rid.cv import CVSpec  # noqa: E402
from conlearn.rid.openmm_engine import OpenMMEngine  # noqa: E402
from conlearn.rid.openmm_metad import MetadSettings, metadynamics_fes  # noqa: E402

PHI = CVSpec("phi", "dihedral", (4, 6, 8, 14))
PSI = CVSpec("psi", "dihedral", (6, 8, 14, 16))


def test_metadynamics_fes_grid_and_well_tempered_scale():
    """Grid = linspace(-pi, pi, 72)[:-1] (fes_grid.npz's); 8 Gaussians of height <= 1 kJ/mol
    give a bias of at most 8 kJ/mol, so A spans at most 8 * bias_factor / (bias_factor - 1)."""
    settings = MetadSettings(n_steps=2000, frequency=250, snapshots=2)
    out = metadynamics_fes(settings, OpenMMEngine(cvs=(PHI, PSI)), seed=1)
    np.testing.assert_allclose(out["axis"], np.linspace(-math.pi, math.pi, 72)[:-1])
    assert out["A"].shape == (71, 71) and out["A"].min() == 0.0
    assert 1.0 < out["A"].max() <= 8 * 6 / 5 + 1e-9
    assert out["snapshots"].shape == (2, 71, 71) and out["snapshot_steps"].tolist() == [1000, 2000]


def test_metadynamics_needs_two_dihedrals():
    with pytest.raises(ValueError, match="two dihedral"):
        metadynamics_fes(MetadSettings(n_steps=10), OpenMMEngine(cvs=(PHI, CVSpec("d", "distance", (5, 17)))), 1)
