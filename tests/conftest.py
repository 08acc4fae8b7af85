"""Shared fixtures."""

from pathlib import Path

import pytest

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass


@pytest.fixture
def water_small() -> Path:
    """The small copy of the water data inside the repository (examples/water_small:
    data_0 with 20 frames, data_3 with 6; see its README)."""
    return Path(__file__).resolve().parents[1] / "examples" / "water_small"


@pytest.fixture
def water_dir() -> Path:
    """The whole deepmd-kit water example data (../shared/data/water beside the checkout),
    skipped when absent; tests that need only a few frames use ``water_small``."""
    d = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "water"
    if not d.is_dir():
        pytest.skip(f"water data not found at {d}")
    return d


# -- Slurm (scripts/slurm-local.sh) --------------------------------------------------------
def pytest_configure(config):
    config.addinivalue_line("markers", "slurm: needs the local Slurm cluster of scripts/slurm-local.sh "
                                       "(skipped with a message when it is not running)")


def slurm_conf_or_reason() -> tuple[str | None, str]:
    """``(slurm.conf path, "")`` when the local cluster answers with a usable node, else
    ``(None, why not)``. The path comes from ``$CONLEARN_SLURM_DIR/slurm.env`` (default
    directory: ``<tmp>/conlearn-slurm``), written by ``scripts/slurm-local.sh start``."""
    import os
    import shutil
    import subprocess
    import tempfile

    d = Path(os.environ.get("CONLEARN_SLURM_DIR") or Path(tempfile.gettempdir()) / "conlearn-slurm")
    env_file = d / "slurm.env"
    start = "start it with `sudo scripts/slurm-local.sh start`"
    if not env_file.is_file():
        return None, f"no local Slurm cluster ({env_file} not found): {start}"
    try:  # the script's controller runs (saves sinfo's 10 s of connection retries when not)
        os.kill(int((d / "slurmctld.pid").read_text().split()[0]), 0)
    except PermissionError:  # alive, another user's
        pass
    except (OSError, ValueError, IndexError):
        return None, f"the local Slurm cluster is not running (no slurmctld of {d}): {start}"
    conf = dict(line.split("=", 1) for line in env_file.read_text().split() if "=" in line).get("SLURM_CONF")
    if not conf or not Path(conf).is_file():
        return None, f"{env_file} names no slurm.conf that exists: {start}"
    sinfo = shutil.which("sinfo")
    if sinfo is None:
        return None, f"sinfo not found (slurm-wlm not installed): {start}"
    try:
        out = subprocess.run([sinfo, "-h", "-N", "-o", "%t"], env={**os.environ, "SLURM_CONF": conf},
                             capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return None, f"sinfo did not answer in 20 s (SLURM_CONF={conf}): {start}"
    states = out.stdout.split()
    if out.returncode != 0 or not any(s in ("idle", "mix", "alloc") for s in states):
        why = out.stderr.strip().splitlines()[-1:] or [f"node state {states}"]
        return None, f"the local Slurm cluster is not usable ({why[0]}; SLURM_CONF={conf}): {start}"
    return conf, ""


@pytest.fixture(scope="module")
def slurm_conf():
    """The local cluster's slurm.conf, exported as SLURM_CONF for this module's tests
    (dask-jobqueue's sbatch/squeue/scancel and the jobs inherit it); skips when Slurm is down."""
    conf, why = slurm_conf_or_reason()
    if conf is None:
        pytest.skip(why)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLURM_CONF", conf)
        yield conf
