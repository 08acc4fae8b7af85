"""Where tasks run: one executor interface over this process, local processes and Dask.

``DaskExecutor`` is imported lazily (``distributed`` costs ~0.7 s to import).
"""

from .base import Executor, InProcessExecutor, callback_as_completed
from .local import LocalProcessExecutor, limit_threads
from .resources import (CLUSTERS, ClusterSpec, ResourcesSpec, TaskResources, build_executor, job_script,
                        load_resources, resources_from_dict, default_executor)

__all__ = ["Executor", "InProcessExecutor", "LocalProcessExecutor", "DaskExecutor", "callback_as_completed",
           "limit_threads", "CLUSTERS", "ClusterSpec", "ResourcesSpec", "TaskResources", "build_executor",
           "job_script", "load_resources", "resources_from_dict", "default_executor"]


def __getattr__(name: str):
    if name == "DaskExecutor":
        from .dask import DaskExecutor

        return DaskExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
