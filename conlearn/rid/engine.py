"""The MD engine interface of RiD: biased MD (exploration) and restrained MD (labels).

An engine is a picklable object of plain settings (heavy objects such as OpenMM contexts
are built lazily, inside the worker). Engines are registered by name in :data:`ENGINES`;
the run config's ``engine: {kind: NAME, ...}`` builds ``ENGINES.get(NAME)(cvs=..., **rest)``:

* ``cvs``: the config's ``cvs`` section as a tuple of :class:`~conlearn.rid.cv.CVSpec`
  (passed only when the config has one; the toy engine has its own fixed CVs);
* ``rest``: every other key of the ``engine`` section (an unknown key must raise
  TypeError/ValueError naming it).

An engine may expose ``n_atoms`` (int): the config then checks every CV atom index against
it and names the config line of a bad one.

Units: energies kJ/mol, angles rad, distances nm, time ps, temperatures K.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ..core.registry import Registry
from .cv import CVSpec


@dataclass(frozen=True)
class MDResult:
    """What one MD run returns.

    cv:     [n_frames, d] CV values of the saved frames (float64).
    last:   engine state to continue from (positions [n_atoms, 3] nm; the toy: [3]).
    n_steps: MD steps run (summed into summary.json's md_steps_explore / md_steps_label).
    frames: optional [n_frames, *state shape] engine state of every saved frame (the toy
            and OpenMM keep them: a label's restrained MD then starts from the frame that
            was selected instead of from ``initial_state``); None when not kept.
    """

    cv: np.ndarray
    last: np.ndarray
    n_steps: int
    frames: np.ndarray | None = None


@runtime_checkable
class Bias(Protocol):
    """A bias on the CVs. Attributes: ``d`` (int), ``periodic`` (tuple[bool, ...])."""

    d: int
    periodic: tuple[bool, ...]

    def energy_and_grad(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """s [n, d] -> bias V(s) [n] kJ/mol and dV/ds [n, d]; V = -σ(ε(s)) · ⟨A⟩(s)."""
        ...


@runtime_checkable
class Engine(Protocol):
    """Runs MD of one system with CVs ``cvs`` at ``temperature`` (K)."""

    cvs: tuple[CVSpec, ...]
    temperature: float

    def initial_state(self, seed: int) -> np.ndarray:
        """A starting state (positions [n_atoms, 3] nm; the toy: [3])."""
        ...

    def biased_md(self, bias: Bias | None, n_steps: int, frame_every: int, seed: int,
                  start: np.ndarray | None) -> MDResult:
        """MD under ``bias`` (None: unbiased) from ``start`` (None: ``initial_state(seed)``);
        a frame every ``frame_every`` steps."""
        ...

    def restrained_md(self, center: np.ndarray, kappa: np.ndarray, n_steps: int, frame_every: int,
                      seed: int, start: np.ndarray | None) -> MDResult:
        """MD under the restraint 0.5 Σ_j κ_j wrap(s_j - center_j)² (κ [d], kJ/mol/unit²)."""
        ...


ENGINES: Registry = Registry("rid-engine")
ENGINES.register_lazy("toy", "conlearn.rid.toy:ToyLangevinEngine")      # overdamped Langevin in (φ, ψ, z)
ENGINES.register_lazy("openmm", "conlearn.rid.openmm_engine:OpenMMEngine")


def kT(temperature: float) -> float:
    """k_B T in kJ/mol at ``temperature`` K."""
    return 0.0083144626 * temperature


def periodic_of_engine(engine: Engine) -> tuple[bool, ...]:
    return tuple(c.periodic for c in engine.cvs)
