"""Shared molecular dynamics of the atomistic domain: one Langevin integrator setup used by
the DP-GEN explorer, its held-out check and the GP batch explorer (workflows and models both
take it from here, none from another's workflow)."""

from __future__ import annotations

import warnings

import numpy as np
from ase import units
from ase.md.langevinbaoab import LangevinBAOAB

from .thermal import thermalize

GPA = units.GPa  # eV/Å³ per GPa


def langevin_md(atoms, params: dict, rng: np.random.Generator):
    """BAOAB Langevin MD of ``atoms`` for condition ``params`` (temperature K, pressure GPa or
    None, dt_fs); velocities drawn from Maxwell-Boltzmann. Returns ``(dynamics, is_npt)``."""
    temperature = float(params["temperature"])
    thermalize(atoms, temperature, rng)
    npt = params.get("pressure") is not None and bool(np.all(atoms.pbc))
    kw = dict(externalstress=-float(params["pressure"]) * GPA, hydrostatic=True) if npt else {}
    dt = float(params.get("dt_fs", 2.0)) * units.fs
    with warnings.catch_warnings():  # ASE reports its heuristic barostat mass: expected
        warnings.simplefilter("ignore", UserWarning)
        dyn = LangevinBAOAB(atoms, dt, temperature_K=temperature, T_tau=100 * units.fs,
                            P_tau=1000 * units.fs if npt else None, rng=rng, **kw)
    return dyn, npt
