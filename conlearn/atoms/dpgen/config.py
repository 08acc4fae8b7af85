"""The science config of an atomistic concurrent-learning run (``conlearn run CONFIG.yaml``).

Where tasks run is not here: that is the resources file (``conlearn.exec.resources``).
Units: temperatures K, pressures GPa, time step fs, deviations eV/Å.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ...configfile import load_config
from ..deeppot.config import ModelConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InitialData(_Strict):
    """DP-GEN's init_bulk: perturbed and strained copies of every structure, labelled."""

    n_frames_per_structure: int = Field(8, ge=1)
    cell_strain: float = Field(0.03, ge=0, le=0.3)
    atom_displacement: float = Field(0.1, ge=0, le=1.0, description="Å")


class TrainingSettings(_Strict):
    n_models: int = Field(4, ge=2)
    numb_steps: int = Field(2000, ge=1)
    reuse_numb_steps: int = Field(1000, ge=1)
    reuse_start_lr: float = Field(5e-4, gt=0)
    learning_rate: dict[str, Any] = {"start_lr": 1e-3, "stop_lr": 1e-5, "decay_steps": 100}
    loss: dict[str, Any] = {"start_pref_e": 0.02, "limit_pref_e": 2, "start_pref_f": 1000,
                            "limit_pref_f": 1, "start_pref_v": 0.0, "limit_pref_v": 0.0}
    disp_freq: int = Field(100, ge=1)


class ExplorationStage(_Strict):
    """One block of the exploration schedule: structures × temperatures × pressures."""

    iterations: Optional[list[int]] = Field(None, description="iterations using this stage; None: the rest")
    structures: list[str] | str = "all"
    temperatures: list[float] = Field(min_length=1)
    pressures: list[Optional[float]] = [None]
    n_steps: int = Field(1000, ge=1)
    dt_fs: float = Field(2.0, gt=0)
    trj_freq: int = Field(10, ge=1)


class SelectionSettings(_Strict):
    trust_lo: float = Field(0.05, ge=0, description="eV/Å")
    trust_hi: float = Field(0.25, gt=0, description="eV/Å")
    max_select: Optional[int] = Field(50, ge=0)
    converge_fraction: float = Field(0.99, gt=0, le=1)
    order: str = "random"

    @model_validator(mode="after")
    def _window(self):
        if self.trust_lo >= self.trust_hi:
            raise ValueError(f"trust_lo ({self.trust_lo}) must be below trust_hi ({self.trust_hi})")
        return self


class LoopOptions(_Strict):
    max_iterations: int = Field(6, ge=1)
    label_retries: int = Field(2, ge=0)
    label_timeout_s: Optional[float] = Field(None, gt=0)
    seed: int = 0


class HeldOut(_Strict):
    """Final check: independent reference MD at every exploration condition."""

    n_frames: int = Field(10, ge=1)
    n_steps: int = Field(400, ge=1)
    temperatures: Optional[list[float]] = None


class RunConfig(_Strict):
    type_map: list[str] = Field(min_length=1)
    reference: dict[str, Any] = {"kind": "emt"}
    structures: list[dict[str, Any]] = Field(min_length=1)
    initial: InitialData = InitialData()
    model: dict[str, Any]
    training: TrainingSettings = TrainingSettings()
    exploration: list[ExplorationStage] = Field(min_length=1)
    selection: SelectionSettings = SelectionSettings()
    loop: LoopOptions = LoopOptions()
    heldout: Optional[HeldOut] = None

    @model_validator(mode="after")
    def _model(self):
        model = {"type_map": self.type_map, **self.model}
        if model["type_map"] != self.type_map:
            raise ValueError(f"model.type_map {model['type_map']} differs from type_map {self.type_map}")
        ModelConfig.model_validate(model)  # a typo in the network section is caught here
        return self

    def model_section(self) -> dict:
        return {"type_map": list(self.type_map), **{k: v for k, v in self.model.items() if k != "type_map"}}

    def stage_for(self, iteration: int) -> ExplorationStage:
        for st in self.exploration:
            if st.iterations is not None and iteration in st.iterations:
                return st
        rest = [st for st in self.exploration if st.iterations is None]
        return rest[0] if rest else self.exploration[-1]


def read_run_config(path: str | Path) -> RunConfig:
    return load_config(path, RunConfig)
