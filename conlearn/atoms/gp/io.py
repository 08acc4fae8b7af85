"""Versioned plain-dict (de)serialisation of the GP models and their mapped mean.

Two kinds, named by the dict's ``kind`` field: ``"gp"`` (``GaussianProcess``, ``gp_to_dict``)
and ``"sparse"`` (``SparseGP``, ``sparse_to_dict``).  ``model_to_dict`` / ``model_from_dict``
and ``save_gp`` / ``load_gp`` take either; a dict without ``kind`` (written before the sparse
GP had a format) is a full GP.  Everything is kept, the factors included, so a restored
model predicts bit for bit what the saved one did (a resumed on-the-fly run then follows
the same trajectory); the sparse GP also keeps the state of its ``"random"`` rule's RNG.
The dicts hold only numbers, strings, lists, dicts and numpy arrays.

Files: ``save_gp`` / ``save_mapped`` write ``.npz`` archives of the arrays with a JSON header
(:mod:`conlearn.atoms.npzfile`; ``format`` ``conlearn.gp``, ``conlearn.gp.sparse`` or
``conlearn.gp.mapped``), read with ``allow_pickle=False``: reading never runs code
(``gp.npz``, ``mapped.npz``). ``load_gp`` / ``load_mapped`` read those, and the pickles
earlier versions wrote (``gp.pkl``, ``mapped.pkl``) only with ``trust=True``
(:mod:`conlearn.atoms.modelfile`). ``save`` / ``load`` store any plain dict the same way
(run state such as the on-the-fly checkpoint); ``load`` reads an older pickled one through
the restricted unpickler of :mod:`conlearn.core.safepickle` (plain data only).
"""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path

import numpy as np

from ...core import safepickle
from .. import modelfile, npzfile
from .environment import Clusters, Environments
from .gp import GaussianProcess
from .kernels import NBodyKernel
from .sparse import SparseGP

VERSION = 1


def _envs_to_dict(e: Environments) -> dict:
    return asdict(e)


def _envs_from_dict(d: dict) -> Environments:
    d = dict(d)
    d["pairs"], d["triplets"] = Clusters(**d["pairs"]), Clusters(**d["triplets"])
    return Environments(**{f.name: d[f.name] for f in fields(Environments) if f.name in d})


def _check(d: dict, kind: str) -> None:
    if d.get("version") != VERSION:
        raise ValueError(f"GP dict version {d.get('version')!r} is not {VERSION}")
    if d.get("kind", "gp") != kind:
        raise ValueError(f"a GP dict of kind {d.get('kind')!r}, not {kind!r}; "
                         "model_from_dict reads either")


def _common(gp) -> dict:
    """Kernels, cutoffs and noises (eV, Å, eV/Å, eV/Å^3), shared by both kinds."""
    return {"version": VERSION,
            "kernels": [{"body": k.body, "sigma": k.sigma, "length": k.length} for k in gp.kernels],
            "r_cut2": gp.r_cut2, "r_cut3": gp.r_cut3, "cutoff": gp.cutoff,
            "noise": gp.noise, "energy_noise": gp.energy_noise, "jitter": gp.jitter,
            "stress_noise": gp.stress_noise}


def gp_to_dict(gp: GaussianProcess) -> dict:
    """Hyperparameters, training environments and labels, and the factorisation."""
    return {**_common(gp), "kind": "gp",
            "sets": {k: _envs_to_dict(e) for k, e in gp._sets.items()},
            "rows": {k: np.asarray(r) for k, r in gp._rows.items()},
            "y": gp.y, "is_force": gp._is_force, "K": gp.K, "L": gp.L, "alpha": gp.alpha}


def gp_from_dict(d: dict) -> GaussianProcess:
    _check(d, "gp")
    gp = GaussianProcess([NBodyKernel(**k) for k in d["kernels"]], d["r_cut2"], d["r_cut3"],
                         d["cutoff"], d["noise"], d["energy_noise"], d["jitter"], d.get("stress_noise", 1e-3))
    gp._sets = {k: _envs_from_dict(e) for k, e in d["sets"].items()}
    gp._rows = {k: np.asarray(r) for k, r in d["rows"].items()}
    gp.y, gp._is_force = np.asarray(d["y"]), np.asarray(d["is_force"], dtype=bool)
    gp.K, gp.L, gp.alpha = np.asarray(d["K"]), np.asarray(d["L"]), np.asarray(d["alpha"])
    return gp


def sparse_to_dict(sgp: SparseGP) -> dict:
    """Hyperparameters, the inducing rule and cap, the RNG state, the inducing and the
    labelled environments, the labels, ``K_uu`` ``[m, m]``, ``K_uf`` ``[m, n_labels]`` and
    the DTC factors ``L_uu``, ``L_B`` ``[m, m]``, ``alpha`` ``[m]``."""
    return {**_common(sgp), "kind": "sparse",
            "select": sgp.select, "n_inducing": sgp.n_inducing,
            "rng": sgp.rng.bit_generator.state,
            "inducing": None if sgp.inducing is None else _envs_to_dict(sgp.inducing),
            "labels": {k: _envs_to_dict(e) for k, e in sgp._labels.items()},
            "label_rows": {k: np.asarray(r) for k, r in sgp._label_rows.items()},
            "y": sgp.y, "is_force": sgp._is_force, "K_uu": sgp.K_uu, "K_uf": sgp.K_uf,
            "L_uu": sgp.L_uu, "L_B": sgp.L_B, "alpha": sgp.alpha}


def sparse_from_dict(d: dict) -> SparseGP:
    _check(d, "sparse")
    sgp = SparseGP([NBodyKernel(**k) for k in d["kernels"]], d["r_cut2"], d["r_cut3"],
                   d["cutoff"], d["noise"], d["energy_noise"], select=d["select"],
                   n_inducing=d["n_inducing"], jitter=d["jitter"], stress_noise=d["stress_noise"])
    rng = np.random.Generator(np.random.PCG64())
    rng.bit_generator.state = d["rng"]
    sgp.rng = rng
    sgp.inducing = None if d["inducing"] is None else _envs_from_dict(d["inducing"])
    sgp._labels = {k: _envs_from_dict(e) for k, e in d["labels"].items()}
    sgp._label_rows = {k: np.asarray(r) for k, r in d["label_rows"].items()}
    sgp.y, sgp._is_force = np.asarray(d["y"]), np.asarray(d["is_force"], dtype=bool)
    for name in ("K_uu", "K_uf", "L_uu", "L_B", "alpha"):
        setattr(sgp, name, np.asarray(d[name]))
    return sgp


KINDS = {"gp": (GaussianProcess, gp_to_dict, gp_from_dict),
         "sparse": (SparseGP, sparse_to_dict, sparse_from_dict)}


def model_to_dict(gp: GaussianProcess | SparseGP) -> dict:
    """The dict of either kind (``kind`` names it)."""
    for cls, to_dict, _ in KINDS.values():
        if type(gp) is cls:
            return to_dict(gp)
    raise TypeError(f"no dict format for {type(gp).__name__}; known: "
                    f"{[c.__name__ for c, _, _ in KINDS.values()]}")


def model_from_dict(d: dict) -> GaussianProcess | SparseGP:
    """The model of a ``model_to_dict`` dict; no ``kind`` (an old file): a full GP."""
    kind = d.get("kind", "gp")
    if kind not in KINDS:
        raise ValueError(f"unknown GP dict kind {kind!r}; known: {sorted(KINDS)}")
    return KINDS[kind][2](d)


TREE_FORMAT = "conlearn.tree"
FORMAT_OF_KIND = {"gp": modelfile.GP, "sparse": modelfile.SPARSE}


def save(obj: dict, path: str | Path) -> None:
    """Write a plain dict as ``.npz`` + JSON header, atomically (readers see the old file
    or the whole new one)."""
    npzfile.save_tree(obj, path, {"format": TREE_FORMAT, "version": VERSION})


def load(path: str | Path) -> dict:
    """A ``save`` file (or any GP file); a pickle of an earlier version is read with the
    restricted unpickler (plain data only, never code). Errors name the file."""
    if npzfile.is_zip(path):
        return npzfile.load_tree(path)[1]
    return safepickle.load_file(path)


def save_gp(gp: GaussianProcess | SparseGP, path: str | Path) -> None:
    """Write a full or sparse GP (``model_to_dict``) atomically as ``.npz`` (e.g. ``gp.npz``)."""
    d = model_to_dict(gp)
    npzfile.save_tree(d, path, {"format": FORMAT_OF_KIND[d["kind"]], "version": VERSION})


def load_gp(path: str | Path, trust: bool = False) -> GaussianProcess | SparseGP:
    """Read a ``save_gp`` file of either kind; a pickled ``gp.pkl`` of an earlier version
    only with ``trust=True`` (old dicts without ``kind``: a full GP)."""
    fmt, data = modelfile.read(path, trust)
    if fmt not in (modelfile.GP, modelfile.SPARSE):
        raise ValueError(f"{path}: not a GP file ({modelfile.describe(fmt)}; "
                         "conlearn.load_calculator reads every kind)")
    return modelfile.build(fmt, data, path)


def save_mapped(mapped, path: str | Path) -> None:
    """Write a :class:`~.mapping.MappedGP` atomically as ``.npz`` (e.g. ``mapped.npz``)."""
    npzfile.save_tree(mapped.to_dict(), path, {"format": modelfile.MAPPED, "version": VERSION})


def load_mapped(path: str | Path, trust: bool = False):
    """Read a ``save_mapped`` file; a pickled ``mapped.pkl`` only with ``trust=True``."""
    fmt, data = modelfile.read(path, trust)
    if fmt != modelfile.MAPPED:
        raise ValueError(f"{path}: not a mapped GP file ({modelfile.describe(fmt)})")
    return modelfile.build(fmt, data, path)


__all__ = ["gp_to_dict", "gp_from_dict", "sparse_to_dict", "sparse_from_dict",
           "model_to_dict", "model_from_dict", "save_gp", "load_gp", "save_mapped", "load_mapped",
           "save", "load"]
