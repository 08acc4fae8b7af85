"""Which conlearn model file is this? Read any of them without running code.

Two safe containers, told apart by their first bytes and their header:

=============================  ===========================================================
``format`` (header field)      container
=============================  ===========================================================
``conlearn.deeppot``           ``torch.save`` zip of tensors and plain values, read with
``conlearn.deeppot.compressed``  ``torch.load(weights_only=True)``
``conlearn.checkpoint``        (a training checkpoint: model, optimizer, RNG states)
``conlearn.gp``                ``.npz`` of arrays + JSON header (:mod:`.npzfile`), read with
``conlearn.gp.sparse``           ``allow_pickle=False``
``conlearn.gp.mapped``
=============================  ===========================================================

Files written by earlier versions (``gp.pkl``/``mapped.pkl`` pickles, a ``.pt`` naming a
Python class) can only be read by running code named inside them: :func:`read` refuses
them with :class:`UntrustedFileError` unless ``trust=True``, and then warns
(:class:`LegacyFileWarning`) to re-save with :func:`convert`. A truncated or damaged file is
a ValueError naming it and what is wrong. :func:`load` returns the model object of any
kind; :func:`conlearn.load_calculator` an ASE calculator over it.
"""

from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path
from typing import Any

from ..core.safepickle import UntrustedFileError
from . import npzfile

DEEPPOT, COMPRESSED, CHECKPOINT = "conlearn.deeppot", "conlearn.deeppot.compressed", "conlearn.checkpoint"
GP, SPARSE, MAPPED = "conlearn.gp", "conlearn.gp.sparse", "conlearn.gp.mapped"
FORMATS = (DEEPPOT, COMPRESSED, CHECKPOINT, GP, SPARSE, MAPPED)
TORCH_MAGIC = 0x1950A86A20F9469CFC6C  # first pickle of torch's pre-1.6 (non-zip) files


class UnreadableFileError(ValueError):
    """A missing-format, truncated or damaged file; ``reason`` says what is wrong."""

    def __init__(self, path, reason: str, what: str = "conlearn model file"):
        super().__init__(f"{path}: not a readable {what} ({reason})")
        self.path, self.reason = path, reason


def _damaged(err: Exception) -> str:
    return f"damaged or truncated: {type(err).__name__}: {str(err)[:120]}"


class LegacyFileWarning(UserWarning):
    """A file of an earlier conlearn version was read by running its pickle (trust=True)."""


def _new_path(path: Path, fmt: str) -> Path:
    return path.with_suffix(".npz") if fmt in (GP, SPARSE, MAPPED) else path


def untrusted_message(path: Path, detail: str = "") -> str:
    return (f"{path}: written by an earlier conlearn version (or by another program) as a "
            f"pickle{f' naming {detail}' if detail else ''}: reading it needs code execution, "
            "which a model file must never need. If you trust the file, load it with trust=True "
            f"(CLI: --trust-file) and convert it once: conlearn convert {path}")


def _legacy_warning(path: Path, fmt: str) -> None:
    warnings.warn(
        f"{path}: an earlier conlearn format read by running its pickle (trust=True); re-save it "
        f"in the safe format once: conlearn convert {path} (writes {_new_path(path, fmt)})",
        LegacyFileWarning, stacklevel=3)


def guess_format(data: Any) -> str | None:
    """The format of a loaded dict, also of one written before files had a ``format``."""
    if not isinstance(data, dict):
        return None
    fmt = data.get("format")
    if fmt in FORMATS:
        return COMPRESSED if fmt == DEEPPOT and "compression" in data else fmt
    if "spec" in data and "state" in data:
        return COMPRESSED if "compression" in data else DEEPPOT
    if isinstance(data.get("model"), dict) and "optimizer" in data:
        return CHECKPOINT
    if "kernels" in data:
        return SPARSE if data.get("kind") == "sparse" else GP
    if "tables" in data and "r_min" in data:
        return MAPPED
    return None


def _torch_read(path: Path, trust: bool) -> dict:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights only" not in str(err).lower():
            raise UnreadableFileError(path, _damaged(err)) from None
        m = re.search(r"GLOBAL (\S+)", str(err))
        if not trust:
            raise UntrustedFileError(untrusted_message(path, m.group(1) if m else "")) from None
    except Exception as err:  # zip / EOF errors of a truncated or foreign file
        raise UnreadableFileError(path, _damaged(err)) from None
    data = torch.load(path, map_location="cpu", weights_only=False)
    _legacy_warning(path, guess_format(data) or DEEPPOT)
    return data


def _first_pickle(path: Path) -> Any:
    """The first object pickled in ``path``, read as plain data only (None if it is not)."""
    from ..core.safepickle import SafeUnpickler

    try:
        with open(path, "rb") as fh:
            return SafeUnpickler(fh, str(path)).load()
    except Exception:  # noqa: BLE001 - any failure: not torch's container
        return None


def _pickle_read(path: Path, trust: bool) -> Any:
    if not trust:
        raise UntrustedFileError(untrusted_message(path))
    try:
        with open(path, "rb") as fh:
            data = pickle.load(fh)
    except Exception as err:
        raise UnreadableFileError(path, _damaged(err)) from None
    _legacy_warning(path, guess_format(data) or GP)
    return data


def read(path: str | Path, trust: bool = False) -> tuple[str, Any]:
    """``(format, data)`` of a conlearn model or checkpoint file: ``data`` the saved dict
    (torch files) or tree (``.npz`` files); ``format`` None when the file is readable but
    is no conlearn file (callers say what they wanted). See the module docstring for
    ``trust``; unreadable files raise :class:`UnreadableFileError`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    with open(path, "rb") as fh:
        first = fh.read(4)
    if not first:
        raise UnreadableFileError(path, "empty file")
    if first == npzfile.ZIP_MAGIC:
        try:
            head = npzfile.read_header(path)
        except ValueError as err:
            raise UnreadableFileError(path, str(err).split(": ", 1)[-1]) from None
    if first == npzfile.ZIP_MAGIC and head is not None:
        try:
            head, data = npzfile.load_tree(path)
        except UntrustedFileError:
            raise
        except ValueError as err:
            raise UnreadableFileError(path, str(err).split(": ", 1)[-1]) from None
        fmt = head.get("format")
    elif first == npzfile.ZIP_MAGIC:
        data = _torch_read(path, trust)
        fmt = guess_format(data)
    elif first[:1] == b"\x80" and _first_pickle(path) == TORCH_MAGIC:  # torch's pre-zip container
        data = _torch_read(path, trust)
        fmt = guess_format(data)
    elif first[:1] == b"\x80":
        data = _pickle_read(path, trust)
        fmt = guess_format(data)
    else:
        raise UnreadableFileError(path, "neither a torch zip nor an .npz archive")
    if isinstance(data, dict) and isinstance(data.get("version"), int) and data["version"] > 1:
        raise ValueError(f"{path}: file version {data['version']} is newer than this conlearn (1)")
    return (fmt if fmt in FORMATS else None), data


def build(fmt: str, data: Any, path: Path | str = "<dict>"):
    """The model object of ``read``'s ``(format, data)``: a DeepPot, CompressedDeepPot,
    GaussianProcess, SparseGP or MappedGP (CPU, eval mode). Errors name ``path``."""
    try:
        if fmt == DEEPPOT:
            from .deeppot.model import DeepPot

            return DeepPot.deserialize(data).eval()
        if fmt == COMPRESSED:
            from .deeppot.compress import CompressedDeepPot

            return CompressedDeepPot.deserialize(data).eval()
        if fmt in (GP, SPARSE):
            from .gp.io import model_from_dict

            return model_from_dict(data)
        if fmt == MAPPED:
            from .gp.mapping import MappedGP

            return MappedGP.from_dict(data)
    except (ValueError, KeyError, TypeError, RuntimeError) as err:
        raise ValueError(f"{path}: {type(err).__name__}: {err}") from None
    raise ValueError(f"{path}: {describe(fmt)}, not a model")


def describe(fmt: str | None) -> str:
    """What a file of ``read``'s format is, for error messages."""
    if fmt is None:
        return (f"not a conlearn model file (no known format header; known: {', '.join(FORMATS)}; "
                "a deepmd-kit model: convert it with `conlearn import`)")
    if fmt == CHECKPOINT:
        return "a training checkpoint (use the model.pt written next to it)"
    return f"a {fmt} file"


def load(path: str | Path, trust: bool = False):
    """The model in ``path``, whatever its kind (see :func:`build`)."""
    fmt, data = read(path, trust)
    return build(fmt, data, path)


def save(model, path: str | Path, **metadata) -> Path:
    """Write any conlearn model in its safe format; returns the path written."""
    from .gp.io import save_gp, save_mapped
    from .gp.mapping import MappedGP

    if hasattr(model, "serialize"):
        model.save(path, **metadata)
    elif isinstance(model, MappedGP):
        save_mapped(model, path)
    else:
        save_gp(model, path)
    return Path(path)


def convert(path: str | Path, out: str | Path | None = None) -> Path:
    """Re-save a file of an earlier version (read with trust: only for files you trust) in
    the safe format: ``out`` defaults to ``path`` for torch files and to ``path`` with the
    suffix ``.npz`` for GP files. Returns the path written."""
    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LegacyFileWarning)
        fmt, data = read(path, trust=True)
    out = Path(out) if out is not None else _new_path(path, fmt)
    if fmt == CHECKPOINT:
        from .deeppot.train import write_checkpoint

        write_checkpoint(data, out)
    else:
        meta = data.get("metadata", {}) if fmt in (DEEPPOT, COMPRESSED) else {}
        save(build(fmt, data, path), out, **meta)
    return out


__all__ = ["CHECKPOINT", "COMPRESSED", "DEEPPOT", "FORMATS", "GP", "LegacyFileWarning", "MAPPED",
           "SPARSE", "UnreadableFileError", "UntrustedFileError", "build", "convert", "describe",
           "guess_format", "load", "read", "save"]
