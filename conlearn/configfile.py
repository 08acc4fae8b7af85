"""Read a YAML or JSON config file into a pydantic model, with errors naming file, line and key.

Keys that start with ``_`` (deepmd-kit's ``_comment``) are dropped before validation.

Numbers are strict: a numeric setting must be a YAML/JSON number, never a string
(``numb_steps: "20"`` is an error naming the key and line), and an integer setting an integer
(``20``, not ``20.0``); a float setting takes integers. Booleans are ``true``/``false``. Every
config (run, training, resources; all workflows) is validated this way (:func:`strict_validate`).
"""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path
from typing import Iterable, TypeVar

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

from .errors import UserError

M = TypeVar("M", bound=BaseModel)


class ConfigError(UserError, ValueError):
    """A config file that cannot be used; the message lists every problem with its line
    (one problem: one line, ``file:line: key: what is wrong``)."""

    def __init__(self, msg: str):
        head, _, rest = msg.partition("\n")
        if head == "invalid config:" and rest and "\n" not in rest:
            msg = rest.strip()
        super().__init__(msg)


_NUMBER_TYPES = ((bool, "bool_type"), (int, "int_type"), (float, "float_type"))
_NUMBER_ERRORS = {t for _, t in _NUMBER_TYPES}


def coerced_numbers(raw, value, loc: tuple = ()) -> list[dict]:
    """pydantic errors for every place where a raw YAML/JSON value was coerced into a number or
    boolean of another kind: a string (``"20"``, ``"yes"``) or a float into an integer (``20.0``)
    or a number into a boolean (``1``)."""
    if isinstance(raw, dict) and isinstance(value, dict):
        return [e for k, v in raw.items() if k in value for e in coerced_numbers(v, value[k], loc + (k,))]
    if isinstance(raw, (list, tuple)) and isinstance(value, (list, tuple)) and len(raw) == len(value):
        return [e for i, (r, v) in enumerate(zip(raw, value)) for e in coerced_numbers(r, v, loc + (i,))]
    for kind, err_type in _NUMBER_TYPES:
        if isinstance(value, kind):
            if isinstance(raw, str) or (isinstance(raw, float) and kind is not float) or (
                    isinstance(raw, (int, float)) and not isinstance(raw, bool) and kind is bool):
                return [{"type": err_type, "loc": loc, "input": raw}]
            return []
    return []


def strict_validate(model, data):
    """``model`` (a pydantic model class or a TypeAdapter) validated from ``data`` (plain
    YAML/JSON) with no coercion into numbers: pydantic's ValidationError also for a quoted
    number (``"20"``), a quoted boolean (``"yes"``), a float for an integer (``20.0``) or a
    number for a boolean. Lists still fill tuples, strings paths."""
    if isinstance(model, TypeAdapter):
        obj = model.validate_python(data)
        dumped, title = model.dump_python(obj, by_alias=True), "config"
    else:
        obj = model.model_validate(data)
        dumped, title = obj.model_dump(by_alias=True), model.__name__
    errors = coerced_numbers(data, dumped)
    if errors:
        raise ValidationError.from_exception_data(title, errors)
    return obj


def _problem(e: dict) -> str:
    """pydantic's message for one error, with a hint for a quoted number."""
    msg = e["msg"].removeprefix("Value error, ")
    if isinstance(e.get("input"), str) and e["type"] in _NUMBER_ERRORS:
        msg += " (write it without quotes: numbers are never read from strings)"
    return msg


def unknown_keys(model: type[BaseModel], data) -> list[str]:
    """Keys of a mapping ``data`` that ``model`` has no field for (sorted); [] for non-mappings.

    For models validated outside :func:`validate` (nested inside free-form dicts), so that
    their own error can list ``sorted(model.model_fields)`` as the allowed keys.
    """
    return sorted(set(data) - set(model.model_fields)) if isinstance(data, dict) else []


def _lines(node, prefix=(), out=None) -> dict[tuple, int]:
    """Map each key path (tuple of keys/indices) to its 1-based line in the file."""
    out = {} if out is None else out
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            path = prefix + (k.value,)
            out[path] = k.start_mark.line + 1
            _lines(v, path, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            out[prefix + (i,)] = v.start_mark.line + 1
            _lines(v, prefix + (i,), out)
    return out


def _strip_comments(data):
    if isinstance(data, dict):
        return {k: _strip_comments(v) for k, v in data.items() if not str(k).startswith("_")}
    if isinstance(data, list):
        return [_strip_comments(v) for v in data]
    return data


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader reading numbers as YAML 1.2 and JSON do: ``1e-5`` and ``1E5`` are
    floats (YAML 1.1, PyYAML's default, makes them strings, which the strict number check
    would then refuse)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def read_raw(path: str | Path, what: str = "config file") -> tuple[dict, dict[tuple, int]]:
    """The file's data (comments dropped) and the line of every key; ``what`` names the kind
    of file in the error when it does not exist."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist")
    text = path.read_text()
    try:
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as err:  # one line: where, what, and what it was inside
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        what = " ".join(str(x) for x in (getattr(err, "problem", None) or err,
                                         getattr(err, "context", None) or "") if x)
        raise ConfigError(f"{where}: not valid YAML/JSON: {what}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return _strip_comments(data), _lines(node)


def _model_in(annotation) -> type[BaseModel] | None:
    """The model class inside an annotation: ``M``, ``Optional[M]``, ``list[M]``, ``M | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _allowed(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names allowed at the parent of ``loc`` (best effort through nested models,
    optional sections and lists of sections)."""
    cls = model
    for part in loc[:-1]:
        if isinstance(part, int):  # an element of a list of sections: same model
            continue
        field = cls.model_fields.get(part)
        found = _model_in(field.annotation) if field is not None else None
        if found is None:
            return []
        cls = found
    return sorted(cls.model_fields)


def config_error(err: ValidationError, model: type[BaseModel] | None = None, *, source: str = "<config>",
                 lines: dict[tuple, int] | None = None, prefix: tuple = (), tag: str | None = None) -> ConfigError:
    """pydantic's errors as a ConfigError: each names ``source:line``, the dotted key (under
    ``prefix``, for a part of the file validated on its own; ``tag``: the value of a tagged
    union's tag, which leads pydantic's locations and is dropped) and, for an unknown key, what ``model`` allows."""
    msgs = []
    for e in err.errors():
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        loc = prefix + (loc[1:] if tag is not None and loc[:1] == (tag,) else loc)
        key = ".".join(str(p) for p in loc) or "(top level)"
        line = None
        for n in range(len(loc), 0, -1):
            if lines and loc[:n] in lines:
                line = lines[loc[:n]]
                break
        where = f"{source}:{line}" if line else source
        if e["type"] == "extra_forbidden":
            allowed = _allowed(model, loc) if model is not None and not prefix else []
            msgs.append(f"{where}: unknown key '{key}'" + (f"; allowed here: {allowed}" if allowed else ""))
        else:
            got = "" if isinstance(e.get("input"), (dict, list)) else f" (got {e.get('input')!r})"
            msgs.append(f"{where}: {key}: {_problem(e)}{got}")
    return ConfigError(msgs[0] if len(msgs) == 1 else "invalid config:\n  " + "\n  ".join(msgs))


def validate(model: type[M], data: dict, *, source: str = "<config>",
             lines: dict[tuple, int] | None = None) -> M:
    """Validate ``data``; every error names ``source:line``, the dotted key and what is allowed."""
    try:
        return strict_validate(model, data)
    except ValidationError as err:
        raise config_error(err, model, source=source, lines=lines) from None


def load_config(path: str | Path, model: type[M], what: str = "config file") -> M:
    """Read and validate ``path`` (YAML or JSON) as ``model``."""
    data, lines = read_raw(path, what)
    return validate(model, data, source=str(path), lines=lines)


def _flat(d, prefix: str = "") -> dict:
    """Nested dicts -> {"dotted.key": leaf value}."""
    if isinstance(d, dict):
        return {k: v for key, sub in d.items() for k, v in _flat(sub, f"{prefix}{key}.").items()}
    return {prefix[:-1]: d}


def check_recorded_config(cfg: BaseModel, path: Path, may_change: Iterable[str] = ()) -> None:
    """A run directory's recorded config (``path``, JSON) must equal ``cfg``, except at the
    dotted keys ``may_change`` (and below them): a re-run replays recorded work, so a changed
    setting would silently mix two runs. The error names every differing key with both
    values. The recorded config is validated again as ``type(cfg)``, so options added since
    the run began compare at their defaults. No file: nothing to check."""
    path = Path(path)
    if not path.exists():
        return
    try:
        old = json.loads(type(cfg).model_validate(json.loads(path.read_text())).model_dump_json())
    except ValueError as err:  # pydantic's ValidationError is one
        raise ValueError(f"{path}: the recorded config is not valid any more: {err}") from err
    a, b = _flat(old), _flat(json.loads(cfg.model_dump_json()))
    free = tuple(may_change)
    diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k)
                  and not any(k == r or k.startswith(r + ".") for r in free))
    if diff:
        shown = "; ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in diff[:6]) + (" ..." if len(diff) > 6 else "")
        raise ValueError(f"{path.parent} holds a run begun with a different config ({shown}); "
                         "use a new --out directory, or the run's own config (its config.json)")
