"""The public solve call: one signature for the kinetic reference, the baselines and ML closures.

    simulate(model, x, rho, u, T, kn, t_end, bc="periodic") -> {"x", "rho", "u", "T", ...}

model: "kinetic" (BGK, :func:`conlearn.kinetic.bgk.kinetic_solve`), "euler", "ns", or any object
with ``solve(x, rho, u, T, kn, t_end, bc) -> dict`` (a loaded ML closure). Inputs are checked
here, before any solver runs, with one error line naming what is wrong (and the cell).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from . import fv
from .bgk import kinetic_solve
from .euler import euler_solve
from .ns import ns_solve

SOLVERS: dict[str, Callable[..., dict]] = {"kinetic": kinetic_solve, "euler": euler_solve, "ns": ns_solve}


def check_inputs(x, rho, u, T, kn, t_end, bc) -> tuple:
    """Validated (x, rho, u, T, kn, t_end, bc); ValueError on the first bad input."""
    fv.check_cells(x)
    rho, u, T = fv.check_state(rho, u, T)
    if rho.size != len(x):
        raise ValueError(f"rho, u, T: need one value per cell of x ({len(x)}), got {rho.size}")
    return (np.asarray(x, float), rho, u, T, fv.check_kn(kn), float(fv.check_times(t_end)[-1]),
            fv.check_boundary(bc))


def simulate(model: str | Any, x, rho, u, T, kn, t_end, bc: str = "periodic", **options) -> dict:
    """rho, u, T [nx] at t_end on the cell centres x [nx] from the initial rho, u, T [nx].

    options go to the named solver (e.g. grid=, cfl= for "kinetic").
    """
    args = check_inputs(x, rho, u, T, kn, t_end, bc)
    if isinstance(model, str):
        if model not in SOLVERS:
            raise ValueError(f"model: unknown solver {model!r}; allowed: {', '.join(SOLVERS)} "
                             "or an object with .solve(x, rho, u, T, kn, t_end, bc)")
        return SOLVERS[model](*args, **options)
    if not callable(getattr(model, "solve", None)):
        raise TypeError(f"model: {type(model).__name__} has no solve(x, rho, u, T, kn, t_end, bc) method")
    return model.solve(*args, **options)
