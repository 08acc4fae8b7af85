"""Resources YAML: validation messages, executor building, batch scripts generated offline."""

import re

import pytest

from conlearn.configfile import ConfigError
from conlearn.exec import (InProcessExecutor, LocalProcessExecutor, ResourcesSpec, build_executor, job_script,
                           load_resources, resources_from_dict)

SLURM_YAML = """\
cluster:
  kind: slurm
  queue: gpu
  account: proj42
tasks:
  train: {cores: 8, gpus: 1, memory: 32GB, walltime: "04:00:00", max_jobs: 4}
  label:
    cores: 16
    memory: 64GB
    walltime: "1-12:00:00"
"""


def write(tmp_path, text):
    p = tmp_path / "resources.yaml"
    p.write_text(text)
    return p


def test_yaml_loads_with_defaults_for_omitted_kinds(tmp_path):
    spec = load_resources(write(tmp_path, SLURM_YAML))
    assert spec.cluster.kind == "slurm" and spec.cluster.account == "proj42"
    assert (spec.tasks.train.cores, spec.tasks.train.gpus, spec.tasks.train.max_jobs) == (8, 1, 4)
    assert spec.tasks.label.walltime == "1-12:00:00"
    assert spec.tasks.explore == ResourcesSpec().tasks.explore


@pytest.mark.parametrize("text, key, allowed", [
    ("tasks:\n  lable: {cores: 2}\n", "tasks.lable", "['explore', 'label', 'train']"),
    ("tasks:\n  train:\n    corez: 2\n", "tasks.train.corez", "'cores'"),
    ("clustr: {kind: local}\n", "clustr", "['cluster', 'tasks']"),
])
def test_unknown_key_names_key_line_and_allowed_keys(tmp_path, text, key, allowed):
    with pytest.raises(ConfigError) as err:
        load_resources(write(tmp_path, text))
    msg = str(err.value)
    assert f"unknown key '{key}'" in msg and allowed in msg and "resources.yaml:" in msg


def test_bad_values_are_named():
    with pytest.raises(ConfigError, match=r"unknown cluster kind 'slurmm'; allowed: \[.*'pbs'.*'slurm'"):
        resources_from_dict({"cluster": {"kind": "slurmm"}})
    with pytest.raises(ConfigError, match="tasks.train.walltime"):
        resources_from_dict({"tasks": {"train": {"walltime": "4h"}}})
    with pytest.raises(ConfigError, match="tasks.label.memory"):
        resources_from_dict({"tasks": {"label": {"memory": "lots"}}})
    with pytest.raises(ConfigError, match="'address' is required"):
        resources_from_dict({"cluster": {"kind": "address"}})


def test_build_local_executors():
    with build_executor(resources_from_dict({"cluster": {"kind": "inprocess"}})) as ex:
        assert isinstance(ex, InProcessExecutor)
    with build_executor(resources_from_dict({"cluster": {"kind": "processes", "workers": 1}})) as ex:
        assert isinstance(ex, LocalProcessExecutor) and ex.max_workers == 1


def test_slurm_job_script_is_generated_offline(tmp_path):
    spec = load_resources(write(tmp_path, SLURM_YAML))
    train = job_script(spec, "train")
    assert "#SBATCH -t 04:00:00" in train and "#SBATCH --cpus-per-task=8" in train
    assert "#SBATCH --gres=gpu:1" in train and "#SBATCH -A proj42" in train and "#SBATCH -p gpu" in train
    assert "#SBATCH -J conlearn-train" in train and "export OMP_NUM_THREADS=1" in train
    assert re.search(r"--nthreads 1\b", train)  # one task at a time per job
    label = job_script(spec, "label")
    assert "#SBATCH -t 1-12:00:00" in label and "#SBATCH --cpus-per-task=16" in label and "gres" not in label


def test_pbs_job_script_is_generated_offline():
    spec = resources_from_dict({"cluster": {"kind": "pbs", "queue": "workq", "account": "p1"},
                                "tasks": {"train": {"cores": 4, "gpus": 2, "memory": "16GB",
                                                    "walltime": "02:30:00"}}})
    script = job_script(spec, "train")
    assert "#PBS -l walltime=02:30:00" in script and "#PBS -q workq" in script and "#PBS -A p1" in script
    assert re.search(r"#PBS -l select=1:ncpus=4:mem=\d+GB:ngpus=2", script), script


def test_slurm_executor_has_one_adaptive_cluster_per_distinct_resources():
    """Built offline: jobs would only be submitted once tasks arrive (adaptive, minimum 0)."""
    spec = resources_from_dict({"cluster": {"kind": "slurm", "queue": "q"},
                                "tasks": {"train": {"cores": 8, "gpus": 1}}})
    with build_executor(spec) as ex:
        assert ex.client_for("train") is not ex.client_for("label")
        assert ex.client_for("explore") is ex.client_for("label")  # equal specs share a cluster
        assert sorted(type(c).__name__ for c in ex._owned) == ["SLURMCluster", "SLURMCluster"]
        assert all(len(c.workers) == 0 for c in ex._owned)


def test_loopback_interface_keeps_dashboards_on_loopback():
    """With interface lo, the workers' HTTP servers bind to 127.0.0.1, not to every address."""
    spec = resources_from_dict({"cluster": {"kind": "slurm", "interface": "lo"}})
    script = job_script(spec, "label")
    assert "--dashboard-address 127.0.0.1:0" in script and "--interface lo" in script
    plain = job_script(resources_from_dict({"cluster": {"kind": "slurm"}}), "label")
    assert "--dashboard-address" not in plain
