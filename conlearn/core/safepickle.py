"""Reading pickled run state without running code ("Restricting Globals", Python's pickle docs).

A pickle names the callables that rebuild its objects (``GLOBAL module name``) and the
unpickler calls them: a crafted file can name ``os.system``. :func:`loads` / :func:`load`
use an unpickler whose ``find_class`` returns only

* the plain types and reconstructors of :data:`ALLOWED` (numpy arrays, dtypes and scalars,
  sets, ``OrderedDict``/``defaultdict``, complex numbers, paths, ``copyreg``'s object
  rebuilders),
* dataclasses defined in ``conlearn`` modules (the records the loops store and their
  payloads: plain data, rebuilt field by field), and
* classes registered with :func:`register` (a domain's non-dataclass payload types).

Anything else is refused *before* it is called: :class:`UntrustedFileError` names the file
and the global. The manifest (:mod:`conlearn.core.manifest`) reads every recorded output
this way; writing stays ``pickle.dumps``.
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import pickle
from typing import Any

#: ``(module, name)`` pairs any safe pickle may name
ALLOWED = frozenset({
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "complex"),
    ("builtins", "slice"), ("builtins", "range"), ("builtins", "bytearray"),
    ("builtins", "object"), ("builtins", "int"), ("builtins", "float"), ("builtins", "str"),
    ("builtins", "tuple"), ("builtins", "list"), ("builtins", "dict"),
    ("collections", "OrderedDict"), ("collections", "defaultdict"), ("collections", "Counter"),
    ("copyreg", "_reconstructor"), ("copyreg", "__newobj__"),
    ("datetime", "datetime"), ("datetime", "date"), ("datetime", "timedelta"),
    ("pathlib", "Path"), ("pathlib", "PosixPath"), ("pathlib", "PurePosixPath"),
    ("pathlib", "WindowsPath"), ("pathlib", "PureWindowsPath"),
    ("_codecs", "encode"),  # bytes in protocol-2 pickles of numpy arrays
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy.random._pickle", "__bit_generator_ctor"),
    ("numpy.random._pickle", "__generator_ctor"),
})
_REGISTERED: set[tuple[str, str]] = set()


class UntrustedFileError(ValueError):
    """A file that can only be read by running code named inside it (refused unread)."""


def register(cls: type) -> type:
    """Allow ``cls`` (a plain payload type that is not a dataclass) in safe pickles;
    usable as a class decorator."""
    _REGISTERED.add((cls.__module__, cls.__qualname__))
    return cls


def _numpy_dtype_class(module: str, name: str) -> bool:
    """numpy >= 1.25 pickles dtypes through their classes, e.g. ``numpy.dtypes.Float64DType``."""
    return module == "numpy.dtypes" and name.endswith("DType")


def allowed(module: str, name: str) -> Any | None:
    """The object ``module.name`` when a safe pickle may use it, else None (nothing called)."""
    if (module, name) in ALLOWED or (module, name) in _REGISTERED or _numpy_dtype_class(module, name):
        obj = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
        return obj
    if module == "conlearn" or module.startswith("conlearn."):
        if "." in name or name.startswith("_") or any(p.startswith("_") for p in module.split(".")):
            return None  # no private names, and never conlearn.__main__ (importing it runs the CLI)
        obj = getattr(importlib.import_module(module), name, None)
        if isinstance(obj, type) and dataclasses.is_dataclass(obj):
            return obj
    return None


class SafeUnpickler(pickle.Unpickler):
    """A :class:`pickle.Unpickler` that resolves only :func:`allowed` globals."""

    def __init__(self, fh, source: str):
        super().__init__(fh)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            obj = allowed(module, name)
        except (ImportError, AttributeError):
            raise ValueError(f"{self.source}: names {module}.{name}, which this installation does not "
                             "have (written by another conlearn or numpy version?)") from None
        if obj is None:
            raise UntrustedFileError(
                f"{self.source}: refused to unpickle the global {module}.{name} (not plain data: "
                "reading it would call it); the file was not written by conlearn or was altered")
        return obj


def loads(data: bytes, source: str = "<bytes>") -> Any:
    """Unpickle ``data`` allowing only plain data (see the module docstring).

    ``source`` names the file (or record) in errors; a damaged pickle is a ValueError
    naming it too.
    """
    try:
        return SafeUnpickler(io.BytesIO(data), source).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError,
            TypeError, ValueError, KeyError) as err:
        if isinstance(err, ValueError) and str(err).startswith(source):
            raise  # refused or unknown global: already says so
        raise ValueError(f"{source}: damaged or truncated pickle ({type(err).__name__}: "
                         f"{str(err)[:160]})") from None


def load_file(path) -> Any:
    """:func:`loads` of the file at ``path``."""
    with open(path, "rb") as fh:
        return loads(fh.read(), str(path))


__all__ = ["ALLOWED", "SafeUnpickler", "UntrustedFileError", "allowed", "load_file", "loads",
           "register"]
