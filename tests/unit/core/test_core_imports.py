"""The core and the executors stay free of torch and ASE (they must load on any login node)."""

import json
import subprocess
import sys

MODULES = [
    "conlearn.core", "conlearn.core.loop", "conlearn.core.manifest", "conlearn.core.observers",
    "conlearn.core.protocols", "conlearn.core.records", "conlearn.core.registry", "conlearn.core.report",
    "conlearn.core.selection", "conlearn.core.tasks", "conlearn.testing.toy", "conlearn.core.progress",
    "conlearn.workflows",
    "conlearn.exec", "conlearn.exec.base", "conlearn.exec.local", "conlearn.exec.dask", "conlearn.exec.resources",
]


def test_core_and_exec_import_neither_torch_nor_ase():
    code = (
        "import importlib, json, sys\n"
        f"for m in {MODULES!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'ase'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_core_import_is_light():
    """``import conlearn.core, conlearn.exec`` does not pull in Dask (imported on first use)."""
    code = ("import sys, conlearn.core, conlearn.exec\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'distributed', 'dask', 'dask_jobqueue', 'torch', 'ase'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
