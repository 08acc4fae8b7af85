"""The Labeler over any reference ASE calculator (DP-GEN's ``fp`` stage).

:class:`ASELabeler` holds only a :class:`~conlearn.atoms.reference.ReferenceSpec`, so it
pickles to workers; there it builds the calculator on first use and keeps it for the
process. Retries, time limits and quarantine are the loop's job
(:func:`conlearn.core.tasks.label_with_retries`); a failed call here simply raises
:class:`LabelError` with the frame key and the reference in the message.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.stress import voigt_6_to_full_3x3_stress

from ..core.records import Candidate, TaskContext
from .frames import frame_to_atoms
from .reference import ReferenceSpec, build_reference
from .stress import stress_to_virial

_POOL: dict[str, list[Calculator]] = {}  # spec -> idle calculators of this process
_POOL_LOCK = threading.Lock()


class LabelError(RuntimeError):
    """The reference failed or returned a non-finite label for one frame."""


def _acquire(spec: ReferenceSpec) -> tuple[str, Calculator]:
    """An idle calculator for ``spec`` (built on first use). A call abandoned by the loop's
    time limit keeps its calculator busy, so a later call never shares it."""
    key = json.dumps(spec.model_dump(), sort_keys=True, default=repr)
    with _POOL_LOCK:
        idle = _POOL.setdefault(key, [])
        if idle:
            return key, idle.pop()
    return key, build_reference(spec)


def _release(key: str, calc: Calculator) -> None:
    with _POOL_LOCK:
        _POOL.setdefault(key, []).append(calc)


def _labels(calc: Calculator, frame: dict, workdir: str | None) -> dict[str, Any]:
    """energy (eV), forces [n, 3] (eV/Å) and, for fully periodic frames with a stress,
    virial [3, 3] (eV, = -stress · volume), from one calculation.

    The energy is the force-consistent (free) energy where the code reports one (DFT with
    smearing; what dpdata reads from VASP's OUTCAR), else the energy.
    """
    atoms = frame_to_atoms(frame)
    if callable(getattr(calc, "reset", None)):
        calc.reset()  # each label from scratch: the same result whatever ran before
    if workdir is not None and hasattr(calc, "directory"):
        calc.directory = workdir  # file-based codes (VASP, QE, ...) write in the task's dir
    periodic = bool(atoms.pbc.all())
    wanted = ["energy", "forces"] + (["stress"] if periodic and "stress" in calc.implemented_properties else [])
    atoms.calc = calc
    calc.atoms = atoms.copy()  # as BaseCalculator.get_property does before calculate()
    calc.calculate(atoms, wanted, all_changes)  # one run for all (QE, CP2K add forces/stress on request)
    res = calc.results
    missing = [p for p in ("energy", "forces") if res.get(p) is None]
    if missing:
        raise PropertyNotImplementedError(f"the calculator returned no {missing}")
    energy = res["free_energy"] if res.get("free_energy") is not None else res["energy"]
    out: dict[str, Any] = {"energy": float(np.asarray(energy)),
                           "forces": np.array(res["forces"], dtype=np.float64)}
    if periodic and res.get("stress") is not None:
        stress = np.asarray(res["stress"], dtype=np.float64)
        stress = voigt_6_to_full_3x3_stress(stress) if stress.shape == (6,) else stress
        out["virial"] = stress_to_virial(stress, atoms.get_volume())
    return out


def label_frame(frame: dict, spec: ReferenceSpec, key: str = "", workdir: str | None = None) -> dict:
    """A labelled copy of ``frame``: energy, forces, virial (see :func:`_labels`) and meta
    ``reference`` (spec name) and ``label_seconds`` (wall s). Raises :class:`LabelError`."""
    t0 = time.perf_counter()
    try:
        cache_key, calc = _acquire(spec)
        labels = _labels(calc, frame, workdir)
    except Exception as err:  # the calculator may be broken now: do not return it to the pool
        raise LabelError(f"reference {spec.name!r} failed on frame {key!r}: "
                         f"{type(err).__name__}: {err}") from err
    _release(cache_key, calc)
    seconds = time.perf_counter() - t0
    for name, value in labels.items():
        if not np.all(np.isfinite(value)):
            raise LabelError(f"reference {spec.name!r} returned NaN/inf in {name!r} for frame {key!r}")
    n = len(frame["numbers"])
    if labels["forces"].shape != (n, 3):
        raise LabelError(f"reference {spec.name!r} returned forces of shape {labels['forces'].shape} "
                         f"for {n} atoms (frame {key!r})")
    out = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in frame.items() if k != "virial"}
    out.update(labels)
    out["meta"] = {**dict(frame.get("meta") or {}), "reference": spec.name, "label_seconds": seconds}
    return out


@dataclass(frozen=True)
class ASELabeler:
    """Labeler protocol over a reference spec (a :class:`ReferenceSpec` or its dict).

    ``label(candidate, ctx)``: ``candidate.payload`` is a frame dict
    (:mod:`conlearn.atoms.frames`); returns a labelled copy (energy eV, forces [n, 3] eV/Å,
    virial [3, 3] eV when fully periodic and the reference gives a stress). File-based
    calculators run in ``ctx.workdir``.
    """

    spec: ReferenceSpec = ReferenceSpec()

    def __post_init__(self) -> None:
        if not isinstance(self.spec, ReferenceSpec):
            object.__setattr__(self, "spec", ReferenceSpec.model_validate(self.spec))

    def label(self, candidate: Candidate, ctx: TaskContext) -> dict:
        return label_frame(candidate.payload, self.spec, key=candidate.key or ctx.key, workdir=ctx.workdir)


def label_frames(frames: Iterable[dict], spec: dict | ReferenceSpec, workdir: str | None = None) -> list[dict]:
    """Label frames one by one in this process (initial data); raises on the first failure.

    workdir: where file-based calculators write (``workdir/<i>``); a temporary directory
    when None.
    """
    spec = spec if isinstance(spec, ReferenceSpec) else ReferenceSpec.model_validate(spec)
    frames = list(frames)
    with tempfile.TemporaryDirectory(prefix="conlearn-label-") as tmp:
        root = workdir or tmp
        out = []
        for i, frame in enumerate(frames):
            sub = os.path.join(root, f"{i:06d}")
            os.makedirs(sub, exist_ok=True)
            out.append(label_frame(frame, spec, key=f"initial/{i:06d}", workdir=sub))
    return out


__all__ = ["ASELabeler", "LabelError", "label_frame", "label_frames"]
