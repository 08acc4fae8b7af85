"""Config cases and checks shared by the test suite (test files cannot import each other).

``OTF_AL8``: the small on-the-fly case (8 EMT aluminium atoms at 1500 K, 60 steps) that
``tests/integration/test_otf.py`` and, with a sparse GP, ``test_otf_sparse.py`` run.
``write_yaml`` and ``unknown_key_error`` serve the bad-config tests of every config kind.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import yaml

from ..configfile import ConfigError

OTF_AL8: dict = {
    "seed": 3,
    "structure": {"kind": "bulk", "element": "Al", "lattice": "fcc", "a": 4.05, "cubic": True,
                  "repeat": [2, 1, 1]},
    "rattle": 0.05,
    "md": {"temperature_K": 1500, "timestep_fs": 2.0, "n_steps": 60, "trajectory_every": 5},
    "gp": {"r_cut2": 5.0, "r_cut3": 3.6, "energy_labels": False,
           "optimize": {"at_calls": [1, 2], "maxiter": 15}},
    "uncertainty": {"threshold": {"kind": "absolute", "value": 0.05}, "check_every": 5,
                    "add": {"kind": "top_n", "n": 4}, "audit": {"every": 20}},
    "output": {"checkpoint_every": 10, "plots": False},
}


def otf_al8(**sections: dict) -> dict:
    """A deep copy of :data:`OTF_AL8` with the given sections updated (one level deep)."""
    out = copy.deepcopy(OTF_AL8)
    for name, values in sections.items():
        out[name] = {**out.get(name, {}), **copy.deepcopy(values)}
    return out


def write_yaml(path: Path, data: dict) -> Path:
    """``data`` as block-style YAML at ``path`` (key order kept)."""
    path = Path(path)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def unknown_key_error(load: Callable[[Path], Any], path: Path, typo: str) -> tuple[str, int]:
    """Load a config holding the misspelt key ``typo``; return the ConfigError's message and
    the line of ``typo`` in the file (for asserting ``file:line: unknown key ...``).
    Raises AssertionError when loading does not fail with a ConfigError."""
    try:
        load(path)
    except ConfigError as err:
        lines = Path(path).read_text().splitlines()
        return str(err), next(i for i, text in enumerate(lines, 1) if f"{typo}:" in text)
    raise AssertionError(f"{path} with the key {typo!r} loaded without a ConfigError")
