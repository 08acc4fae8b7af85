"""The domain-free core of concurrent learning: records, protocols, selection, manifest,
registries and the batch loop. Imports neither torch nor ASE (a test checks it).

A domain plugs in four components (see :mod:`conlearn.core.protocols`)::

    report = BatchLoop(trainer=..., explorer=..., selector=TrustWindowSelector(lo, hi),
                       labeler=..., conditions=[Condition("T300", {"T": 300})],
                       initial_data=data, run_dir="runs/x", executor=InProcessExecutor(),
                       settings=LoopSettings(n_models=4)).run()
"""

from .loop import BatchLoop, LoopSettings, StageError
from .manifest import Manifest, ManifestError, Record, atomic_write_bytes
from .observers import BaseObserver, LoggingObserver, SummaryFileObserver
from .protocols import Executor, Explorer, Labeler, Observer, Selector, Trainer, Workflow
from .records import (Candidate, Condition, ExploredBatch, LabelResult, Selection, TaskContext, TaskOutput,
                      TrainResult, derive_seed)
from .registry import EXPLORERS, LABELERS, SELECTORS, TRAINERS, WORKFLOWS, Registry, RegistryError
from .report import IterationReport, LoopReport, Timing
from .selection import TrustWindowSelector

__all__ = [
    "BatchLoop", "LoopSettings", "StageError", "Manifest", "ManifestError", "Record", "atomic_write_bytes",
    "BaseObserver", "LoggingObserver", "SummaryFileObserver", "Executor", "Explorer", "Labeler", "Observer",
    "Selector", "Trainer", "Workflow", "Candidate", "Condition", "ExploredBatch", "LabelResult", "Selection",
    "TaskContext", "TaskOutput", "TrainResult", "derive_seed", "EXPLORERS", "LABELERS", "SELECTORS",
    "TRAINERS", "WORKFLOWS", "Registry", "RegistryError", "IterationReport", "LoopReport", "Timing", "TrustWindowSelector",
]
