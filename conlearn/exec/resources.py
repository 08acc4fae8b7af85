"""Where tasks run: the resources YAML (kept apart from the science config) -> an executor.

Example ``resources.yaml``::

    cluster:
      kind: slurm            # inprocess | processes | local | address | slurm | pbs
      queue: gpu
      account: proj42
    tasks:                   # one entry per task kind; omitted kinds keep the defaults
      train:   {cores: 8, gpus: 1, memory: 32GB, walltime: "04:00:00", max_jobs: 4}
      explore: {cores: 4, memory: 8GB, walltime: "01:00:00", max_jobs: 8}
      label:   {cores: 16, memory: 64GB, walltime: "12:00:00", max_jobs: 20}

``load_resources(path)`` validates it (an unknown key is an error naming the key, the file
line and the allowed keys); ``build_executor(spec)`` returns the executor. Cluster kinds
live in the ``CLUSTERS`` registry: a new batch system is a new registered builder.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..core.registry import Registry
from .base import Executor, InProcessExecutor
from .local import LocalProcessExecutor

CLUSTERS: Registry = Registry("cluster")
TASK_KINDS = ("train", "explore", "label")
_WALLTIME = re.compile(r"^(\d+-)?\d{1,3}:\d{2}:\d{2}$")
_MEMORY = re.compile(r"^\d+(\.\d+)?\s*([KMGTP]i?)?B$", re.IGNORECASE)


class TaskResources(BaseModel):
    """What one task of a kind needs (one batch job runs ``tasks_per_job`` such tasks).

    cores:         CPU cores reserved per job (Slurm ``--cpus-per-task``, PBS ``ncpus``).
    gpus:          GPUs per job (Slurm ``--gres=gpu:N``, PBS ``ngpus``).
    memory:        memory per job, e.g. "8GB".
    walltime:      job time limit, "HH:MM:SS" or "D-HH:MM:SS".
    tasks_per_job: tasks run at once in one job (Dask worker threads).
    min_jobs, max_jobs: bounds for adaptive scaling of the batch jobs.
    job_extra_directives: extra scheduler lines, e.g. ["--constraint=a100"].
    """

    model_config = ConfigDict(extra="forbid")
    cores: int = Field(1, ge=1)
    gpus: int = Field(0, ge=0)
    memory: str = "4GB"
    walltime: str = "01:00:00"
    tasks_per_job: int = Field(1, ge=1)
    min_jobs: int = Field(0, ge=0)
    max_jobs: int = Field(1, ge=1)
    job_extra_directives: list[str] = Field(default_factory=list)

    @field_validator("walltime")
    @classmethod
    def _walltime(cls, v: str) -> str:
        if not _WALLTIME.match(v):
            raise ValueError(f"walltime {v!r} is not HH:MM:SS or D-HH:MM:SS")
        return v

    @field_validator("memory")
    @classmethod
    def _memory(cls, v: str) -> str:
        if not _MEMORY.match(v):
            raise ValueError(f"memory {v!r} is not like '8GB' or '512MiB'")
        return v


class TaskKinds(BaseModel):
    """Resources per task kind."""

    model_config = ConfigDict(extra="forbid")
    train: TaskResources = Field(default_factory=TaskResources)
    explore: TaskResources = Field(default_factory=TaskResources)
    label: TaskResources = Field(default_factory=TaskResources)


class ClusterSpec(BaseModel):
    """Which machinery runs the tasks, and the batch system's account options.

    kind:       a name in ``CLUSTERS`` (inprocess, processes, local, address, slurm, pbs).
    workers:    worker count for processes/local (default: one per core for processes, 2 local).
    threads_per_worker: numeric threads per local worker (processes) / Dask threads (local).
    processes:  local only: worker processes (True) or threads of this process (False).
    address:    address only: the scheduler, e.g. "tcp://10.0.0.5:8786".
    queue, account: batch partition/queue and account/project.
    interface, local_directory, log_directory, python, job_script_prologue:
                passed to dask-jobqueue (network interface, worker scratch, job logs,
                worker python, shell lines run before the worker starts).
    """

    model_config = ConfigDict(extra="forbid")
    kind: str = "processes"
    workers: int | None = Field(None, ge=1)
    threads_per_worker: int = Field(1, ge=1)
    processes: bool = True
    address: str | None = None
    queue: str | None = None
    account: str | None = None
    interface: str | None = None
    local_directory: str | None = None
    log_directory: str | None = None
    python: str | None = None
    job_script_prologue: list[str] = Field(default_factory=lambda: [
        "export OMP_NUM_THREADS=1", "export MKL_NUM_THREADS=1", "export OPENBLAS_NUM_THREADS=1"])

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        if v not in CLUSTERS:
            raise ValueError(f"unknown cluster kind {v!r}; allowed: {CLUSTERS.names()}")
        return v

    @model_validator(mode="after")
    def _address(self) -> "ClusterSpec":
        if (self.kind == "address") != (self.address is not None):
            raise ValueError("'address' is required with kind 'address' and only there")
        return self


class ResourcesSpec(BaseModel):
    """The whole resources file: ``cluster`` and per-kind ``tasks``."""

    model_config = ConfigDict(extra="forbid")
    cluster: ClusterSpec = Field(default_factory=ClusterSpec)
    tasks: TaskKinds = Field(default_factory=TaskKinds)


def load_resources(path: str | Path) -> ResourcesSpec:
    """Read and validate a resources YAML/JSON file (errors name file, line and key)."""
    from ..configfile import load_config

    return load_config(path, ResourcesSpec, what="resources file")


def resources_from_dict(data: dict, source: str = "<resources>") -> ResourcesSpec:
    from ..configfile import validate

    return validate(ResourcesSpec, data, source=source)


def build_executor(spec: ResourcesSpec) -> Executor:
    """The executor the spec describes (the caller closes it: ``with build_executor(s) as ex``)."""
    builder: Callable[[ResourcesSpec], Executor] = CLUSTERS.get(spec.cluster.kind)
    return builder(spec)


# -- builders ---------------------------------------------------------------------------
@CLUSTERS.register("inprocess")
def _inprocess(spec: ResourcesSpec) -> Executor:
    return InProcessExecutor()


@CLUSTERS.register("processes")
def _processes(spec: ResourcesSpec) -> Executor:
    return LocalProcessExecutor(spec.cluster.workers, threads_per_worker=spec.cluster.threads_per_worker)


@CLUSTERS.register("local")
def _local(spec: ResourcesSpec) -> Executor:
    from .dask import DaskExecutor

    c = spec.cluster
    return DaskExecutor.local(n_workers=c.workers or 2, threads_per_worker=c.threads_per_worker,
                              processes=c.processes)


@CLUSTERS.register("address")
def _address(spec: ResourcesSpec) -> Executor:
    from .dask import DaskExecutor

    return DaskExecutor.from_address(spec.cluster.address)


def _dashboard_host(interface: str | None) -> str:
    """The address dashboards bind to: the cluster interface's (loopback stays loopback), else all."""
    if not interface:
        return ""
    from distributed.utils import get_ip_interface

    try:
        return get_ip_interface(interface)
    except ValueError:  # interface not on this machine (a job script written elsewhere)
        return ""


def jobqueue_cluster(spec: ResourcesSpec, kind: str, **extra: Any) -> Any:
    """The dask-jobqueue cluster (not scaled: no job submitted) for one task kind. With
    ``interface`` set, the scheduler's and (on loopback) the workers' dashboards bind to it too."""
    import dask_jobqueue

    c, t = spec.cluster, getattr(spec.tasks, kind)
    host = _dashboard_host(c.interface)
    common: dict[str, Any] = dict(
        cores=t.tasks_per_job, processes=1, memory=t.memory, walltime=t.walltime, queue=c.queue,
        account=c.account, interface=c.interface, local_directory=c.local_directory,
        log_directory=c.log_directory, job_script_prologue=list(c.job_script_prologue),
        job_name=f"conlearn-{kind}", scheduler_options={"dashboard_address": f"{host}:0"})
    if host.startswith("127."):  # workers on this machine: their HTTP servers on loopback too
        common["worker_extra_args"] = ["--dashboard-address", f"{host}:0"]
    if c.python:
        common["python"] = c.python
    if c.kind == "slurm":
        directives = list(t.job_extra_directives) + ([f"--gres=gpu:{t.gpus}"] if t.gpus else [])
        return dask_jobqueue.SLURMCluster(job_cpu=t.cores, job_extra_directives=directives, **common, **extra)
    if c.kind == "pbs":
        from dask_jobqueue.pbs import pbs_format_bytes_ceil
        from dask.utils import parse_bytes

        select = f"select=1:ncpus={t.cores}:mem={pbs_format_bytes_ceil(parse_bytes(t.memory))}"
        select += f":ngpus={t.gpus}" if t.gpus else ""
        return dask_jobqueue.PBSCluster(resource_spec=select, job_extra_directives=list(t.job_extra_directives),
                                        **common, **extra)
    raise ValueError(f"cluster kind {c.kind!r} is not a batch system (slurm, pbs)")


def job_script(spec: ResourcesSpec, kind: str) -> str:
    """The batch script a job of ``kind`` would be submitted with (nothing is submitted)."""
    cluster = jobqueue_cluster(spec, kind)
    try:
        return cluster.job_script()
    finally:
        cluster.close()


@CLUSTERS.register("slurm")
@CLUSTERS.register("pbs")
def _batch(spec: ResourcesSpec) -> Executor:
    """One adaptive jobqueue cluster per distinct task resources; kinds with equal ones share."""
    from .dask import DaskExecutor

    clusters: dict[str, Any] = {}
    made: dict[str, Any] = {}
    for kind in TASK_KINDS:
        t = getattr(spec.tasks, kind)
        sig = t.model_dump_json()
        if sig not in made:
            made[sig] = jobqueue_cluster(spec, kind)
            made[sig].adapt(minimum_jobs=t.min_jobs, maximum_jobs=t.max_jobs)
        clusters[kind] = made[sig]
    return DaskExecutor.from_clusters(clusters, default="explore")


def default_executor(resources: str | None = None) -> Executor:
    """The executor of ``conlearn run``/``demo``: the resources file when given, else one
    local process per core."""
    import os

    if resources:
        return build_executor(load_resources(resources))
    return build_executor(resources_from_dict({"cluster": {"kind": "processes", "workers": os.cpu_count() or 1}}))
