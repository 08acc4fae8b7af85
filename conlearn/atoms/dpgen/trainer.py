"""Training one committee member on the labelled frames (DP-GEN's ``train`` stage).

Members differ by seed (network initialisation and batch order). From the second iteration
on, a member starts from its own previous model (warm start) and trains fewer steps, as
DP-GEN's ``training_reuse_iter``; the learning rate restarts from ``reuse_start_lr``.
With ``final_numb_steps`` set, the loop trains the members once more after its last
iteration for that many steps (``final_trainer``; warm-started unless
``final_from_scratch``): a longer production training on the whole data set, so the
iterations themselves can stay short.
A task killed mid-training resumes from the checkpoint in its work directory.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from ...core.records import TaskContext, TrainResult
from ..deeppot.config import TrainConfig
from ..deeppot.train import Trainer
from ..frames import frames_to_systems


@dataclass(frozen=True)
class DeepPotTrainer:
    """Trainer protocol over DeepPot-SE.

    model:  the ``model`` section of a training input (type_map, descriptor, fitting_net).
    loss, learning_rate: those sections (deepmd-kit semantics).
    numb_steps: steps of a member trained from scratch; reuse_numb_steps: warm-started.
    final_numb_steps: steps of the final training after the loop; None: none.
    final_from_scratch: the final training starts from new weights (with ``learning_rate``
        as given) instead of each member's last model (from ``reuse_start_lr``).
    from_scratch: always ignore ``previous`` (set on the final trainer by the option above).
    """

    model: dict
    numb_steps: int = 2000
    reuse_numb_steps: int = 1000
    reuse_start_lr: float = 5e-4
    learning_rate: dict = field(default_factory=lambda: {"start_lr": 1e-3, "stop_lr": 1e-5, "decay_steps": 100})
    loss: dict = field(default_factory=lambda: {"start_pref_e": 0.02, "limit_pref_e": 2, "start_pref_f": 1000,
                                                 "limit_pref_f": 1, "start_pref_v": 0.0, "limit_pref_v": 0.0})
    disp_freq: int = 100
    final_numb_steps: int | None = None
    final_from_scratch: bool = False
    from_scratch: bool = False

    @property
    def final_trainer(self) -> "DeepPotTrainer | None":
        """The trainer of the loop's final stage: ``final_numb_steps`` steps, warm-started
        unless ``final_from_scratch``."""
        if self.final_numb_steps is None:
            return None
        return replace(self, numb_steps=self.final_numb_steps, reuse_numb_steps=self.final_numb_steps,
                       final_numb_steps=None, final_from_scratch=False, from_scratch=self.final_from_scratch)

    def config(self, warm: bool, seed: int) -> TrainConfig:
        model = copy.deepcopy(self.model)
        model.setdefault("descriptor", {})["seed"] = seed % (2**31)
        model.setdefault("fitting_net", {})["seed"] = (seed // 7) % (2**31)
        lr = dict(self.learning_rate)
        steps = self.reuse_numb_steps if warm else self.numb_steps
        if warm:
            lr["start_lr"] = self.reuse_start_lr
        lr["decay_steps"] = max(1, min(int(lr.get("decay_steps", 100)), steps // 10))
        return TrainConfig.model_validate({
            "model": model, "learning_rate": lr, "loss": self.loss,
            "training": {"training_data": {"systems": []}, "numb_steps": steps, "seed": seed % (2**31),
                         "disp_freq": self.disp_freq, "save_freq": max(50, steps // 10), "device": "auto"},
        })

    def train(self, data: Sequence[Any], previous: TrainResult | None, ctx: TaskContext) -> TrainResult:
        systems = frames_to_systems(list(data), list(self.model["type_map"]), name="labelled frames")
        warm = previous is not None and not self.from_scratch
        cfg = self.config(warm, ctx.seed)
        out = Path(ctx.workdir)
        trainer = Trainer(cfg, out, init_model=previous.model_paths[0] if warm else None,
                          train_systems=systems, valid_systems=systems, log=lambda m: None, plot=False)
        path = trainer.run()
        metrics = _last_metrics(out / "lcurve.out")
        metrics.update(n_frames=float(sum(s.n_frames for s in systems)), steps=float(trainer.step))
        return TrainResult(member=ctx.index, model_paths=(str(path),), metrics=metrics)


def _last_metrics(lcurve: Path) -> dict:
    from ..deeppot.lcurve import read_lcurve

    d = read_lcurve(lcurve)
    out = {}
    for k in ("rmse_e_trn", "rmse_f_trn", "rmse_e_val", "rmse_f_val"):
        if len(d[k]) and d[k][-1] == d[k][-1]:
            out[k] = float(d[k][-1])
    return out
