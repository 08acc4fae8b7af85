"""Plain-data trees in ``.npz`` files: arrays as ``.npy`` members, the rest as a JSON header.

A *tree* is nested dicts, lists and tuples of ``None``, bools, ints, floats, strings and
numpy arrays or scalars — what the GP models' ``to_dict`` functions return. :func:`save_tree`
writes it as an uncompressed ``.npz`` (a zip archive) whose member ``__header__`` is a JSON
string::

    {"format": "conlearn.gp", "version": 1, "tree": <the tree, arrays by reference>}

and one member ``a<k>`` per array (numeric, bool or fixed-width string dtypes). Numpy
reads it with ``allow_pickle=False``, so reading never runs code. The round trip is exact:
float64 values are written bit for bit, tuples stay tuples, dict keys that are not strings
(ints, tuples of ints) are kept, ints of any size (a PCG64 state) are kept.

JSON encoding of what JSON lacks: ``{"__array__": "a3"}``, ``{"__tuple__": [...]}``,
``{"__dict__": [[key, value], ...]}`` (a dict with a non-string key), ``{"__scalar__": v,
"dtype": "float32"}`` (a numpy scalar); a dict whose own keys start with ``__`` is stored
as ``__dict__`` too, so no user dict is ever mistaken for an encoding.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..core.manifest import atomic_write_bytes
from ..core.safepickle import UntrustedFileError

HEADER = "__header__"
ZIP_MAGIC = b"PK\x03\x04"


def _encode(obj: Any, arrays: dict[str, np.ndarray]) -> Any:
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise TypeError(f"an object array (dtype {obj.dtype}) cannot be stored without pickle")
        name = f"a{len(arrays)}"
        arrays[name] = obj
        return {"__array__": name}
    if isinstance(obj, np.generic):
        return {"__scalar__": obj.item(), "dtype": obj.dtype.str}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, arrays) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, arrays) for v in obj]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _encode(v, arrays) for k, v in obj.items()}
        return {"__dict__": [[_encode(k, arrays), _encode(v, arrays)] for k, v in obj.items()]}
    raise TypeError(f"{type(obj).__name__} is not plain data (dicts, lists, numbers, strings, "
                    "numpy arrays)")


def _decode(obj: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, arrays) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__array__" in obj:
        return arrays[obj["__array__"]]
    if "__tuple__" in obj:
        return tuple(_decode(v, arrays) for v in obj["__tuple__"])
    if "__dict__" in obj:
        return {_hashable(_decode(k, arrays)): _decode(v, arrays) for k, v in obj["__dict__"]}
    if "__scalar__" in obj:
        return np.dtype(obj["dtype"]).type(obj["__scalar__"])
    return {k: _decode(v, arrays) for k, v in obj.items()}


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, (list, tuple)) else key


def tree_bytes(tree: Any, header: dict) -> bytes:
    """The ``.npz`` bytes of ``tree`` with ``header`` fields (``format``, ``version``)."""
    arrays: dict[str, np.ndarray] = {}
    head = {**header, "tree": _encode(tree, arrays)}
    buf = io.BytesIO()
    np.savez(buf, **{HEADER: np.array(json.dumps(head))}, **arrays)
    return buf.getvalue()


def save_tree(tree: Any, path: str | Path, header: dict) -> None:
    """Write ``tree`` to ``path`` atomically (readers see the old file or the whole new one)."""
    atomic_write_bytes(path, tree_bytes(tree, header))


def is_zip(path: str | Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) == ZIP_MAGIC


def read_header(path: str | Path) -> dict | None:
    """The JSON header of a :func:`save_tree` file without its arrays, None when ``path``
    is a zip archive without one (e.g. a torch file). Errors name the file."""
    try:
        with zipfile.ZipFile(path) as z:
            if HEADER + ".npy" not in z.namelist():
                return None
            with z.open(HEADER + ".npy") as fh:
                text = np.lib.format.read_array(fh, allow_pickle=False)
        return json.loads(str(text))
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        raise ValueError(f"{path}: damaged or truncated: {type(err).__name__}: "
                         f"{str(err)[:120]}") from None


def load_tree(path: str | Path) -> tuple[dict, Any]:
    """``(header, tree)`` of a :func:`save_tree` file; nothing in it can run code.

    A truncated, damaged or foreign file is a ValueError naming ``path`` and what is wrong.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            files = z.files
            head = json.loads(str(z[HEADER])) if HEADER in files else None
            arrays = {k: z[k] for k in files if k != HEADER}
        tree = None if head is None else _decode(head.pop("tree"), arrays)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, TypeError) as err:
        if "allow_pickle" in str(err):
            raise UntrustedFileError(f"{path}: holds a pickled object array: reading it needs code "
                                     "execution; conlearn never writes one (refused unread)") from None
        raise ValueError(f"{path}: damaged or truncated: {type(err).__name__}: "
                         f"{str(err)[:160]}") from None
    if head is None:
        raise ValueError(f"{path}: an .npz file without a {HEADER} member: not a conlearn file")
    return head, tree


__all__ = ["HEADER", "is_zip", "load_tree", "read_header", "save_tree", "tree_bytes"]
