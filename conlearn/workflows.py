"""Which workflow runs a config, and which one a run directory belongs to.

A run config names its workflow in the top-level key ``workflow`` (default ``dpgen``); the
run directory's ``config.json`` records it, so ``conlearn status|report DIR`` dispatch
without being told. Built-in workflows are registered lazily (their torch/OpenMM imports
are paid only when used); third-party ones register in :data:`conlearn.core.registry.WORKFLOWS`
or through the ``conlearn.workflows`` entry-point group.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .configfile import ConfigError, read_raw
from .core.registry import WORKFLOWS, RegistryError

BUILTIN = {
    "dpgen": "conlearn.atoms.dpgen.workflow:WORKFLOW",  # ML interatomic potentials (DP-GEN)
    "rid": "conlearn.rid.workflow:WORKFLOW",            # free energies, reinforced dynamics
    "kinetic": "conlearn.kinetic.workflow:WORKFLOW",    # ML moment closures of BGK gas dynamics
    "cg": "conlearn.cg.workflow:WORKFLOW",              # ML coarse-grained MD
}
for _name, _target in BUILTIN.items():
    if _name not in WORKFLOWS._items and _name not in WORKFLOWS._lazy:
        WORKFLOWS.register_lazy(_name, _target)

DEFAULT = "dpgen"


@dataclass(frozen=True)
class FunctionWorkflow:
    """A :class:`~conlearn.core.protocols.Workflow` from a domain's four functions:
    ``load(path) -> cfg``, ``run(cfg, run_dir, executor, observers=...) -> summary``,
    ``status(run_dir) -> str`` and ``report(run_dir) -> Path``."""

    name: str
    load_fn: Callable[[str], Any]
    run_fn: Callable[..., dict]
    status_fn: Callable[[Path], str]
    report_fn: Callable[[Path], Path]

    def load(self, path):
        return self.load_fn(path)

    def run(self, cfg, run_dir, executor, observers=()):
        return self.run_fn(cfg, Path(run_dir), executor, observers=observers)

    def status(self, run_dir):
        return self.status_fn(Path(run_dir))

    def report(self, run_dir):
        return self.report_fn(Path(run_dir))


def get_workflow(name: str, where: str = ""):
    try:
        return WORKFLOWS.get(name)
    except RegistryError as err:
        raise ConfigError(f"{where}{err}") from None


def workflow_of_config(path: str | Path):
    """The workflow named by the config file's ``workflow`` key (an error names the line)."""
    data, lines = read_raw(path)
    name = data.get("workflow", DEFAULT)
    line = lines.get(("workflow",))
    if not isinstance(name, str):
        raise ConfigError(f"{path}:{line}: workflow: expected a name, got {name!r}")
    return get_workflow(name, f"{path}:{line}: workflow: " if line else f"{path}: ")


def workflow_of_run(run_dir: str | Path):
    """The workflow recorded in ``run_dir/config.json`` (runs from before the key: dpgen)."""
    run_dir = Path(run_dir)
    cfg = run_dir / "config.json"
    if not cfg.is_file():
        if not (run_dir / "manifest.jsonl").exists():
            raise FileNotFoundError(f"{run_dir} is not a conlearn run directory (no config.json, no manifest.jsonl)")
        return get_workflow(DEFAULT)
    try:
        name = json.loads(cfg.read_text()).get("workflow", DEFAULT)
    except ValueError as err:
        raise ConfigError(f"{cfg}: not valid JSON: {err}") from None
    return get_workflow(name, f"{cfg}: workflow: ")
