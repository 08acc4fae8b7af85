"""Kinetic gas dynamics (BGK) domain: kinetic solver, baselines and the ML moment closure.

    from conlearn.kinetic import load_closure, simulate
    model = load_closure("RUN_DIR")            # or a closure directory (closure.json)
    out = simulate(model, x, rho, u, T, kn=0.1, t_end=0.1, bc="periodic")   # also "kinetic", "euler", "ns"
"""

from .mlsolver import load_closure
from .simulate import simulate

__all__ = ["load_closure", "simulate"]
