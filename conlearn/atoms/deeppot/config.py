"""Training config: deepmd-kit's ``input.json`` layout (se_e2_a), validated strictly.

The same schema reads a deepmd-kit ``input.json`` unchanged and conlearn's YAML form (the
same sections). Defaults are deepmd-kit's. conlearn additions are marked as such.
Unknown keys are errors naming the key, its line and what is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator

from ...configfile import load_config
from .model import DeepPotSpec


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


Precision = Literal["float64", "float32", "default"]


class DescriptorConfig(_Strict):
    type: Literal["se_e2_a", "se_a"] = "se_e2_a"
    sel: Union[list[int], str] = "auto"
    rcut: float = Field(6.0, gt=0)
    rcut_smth: float = Field(0.5, ge=0)
    neuron: list[PositiveInt] = [10, 20, 40]
    axis_neuron: int = Field(4, gt=0)
    type_one_side: bool = False
    resnet_dt: bool = False
    precision: Precision = "default"
    seed: int | None = None
    activation_function: Literal["tanh"] = "tanh"
    trainable: Literal[True] = True
    exclude_types: list[list[int]] = Field(default_factory=list, max_length=0)
    set_davg_zero: Literal[False] = False
    env_protection: Literal[0.0] = 0.0

    @field_validator("sel")
    @classmethod
    def _sel(cls, v):
        if isinstance(v, str) and not (v == "auto" or v.startswith("auto:")):
            raise ValueError("sel must be a list of ints, 'auto' or 'auto:FACTOR'")
        return v

    @model_validator(mode="after")
    def _smooth_inside_cut(self):
        if self.rcut_smth >= self.rcut:
            raise ValueError(f"rcut_smth ({self.rcut_smth}) must be below rcut ({self.rcut}), Å")
        return self


class FittingConfig(_Strict):
    type: Literal["ener"] = "ener"
    neuron: list[PositiveInt] = [120, 120, 120]
    resnet_dt: bool = True
    precision: Precision = "default"
    seed: int | None = None
    activation_function: Literal["tanh"] = "tanh"
    trainable: Union[bool, list[bool]] = True
    numb_fparam: Literal[0] = 0
    numb_aparam: Literal[0] = 0


class ModelConfig(_Strict):
    type_map: list[str] = Field(min_length=1)
    descriptor: DescriptorConfig
    fitting_net: FittingConfig = FittingConfig()
    data_stat_nbatch: int = Field(10, gt=0)

    @model_validator(mode="after")
    def _one_sel_per_type(self):
        sel = self.descriptor.sel
        if isinstance(sel, list) and len(sel) != len(self.type_map):
            raise ValueError(f"descriptor.sel has {len(sel)} entries for the {len(self.type_map)} "
                             f"type(s) of type_map {self.type_map}: one neighbour count per type")
        return self


class LearningRateConfig(_Strict):
    type: Literal["exp"] = "exp"
    start_lr: float = Field(1e-3, gt=0)
    stop_lr: float = Field(1e-8, gt=0)
    decay_steps: int = Field(5000, gt=0)
    scale_by_worker: str = "linear"


class LossConfig(_Strict):
    type: Literal["ener"] = "ener"
    start_pref_e: float = 0.02
    limit_pref_e: float = 1.0
    start_pref_f: float = 1000.0
    limit_pref_f: float = 1.0
    start_pref_v: float = 0.0
    limit_pref_v: float = 0.0


class DataConfig(_Strict):
    systems: Union[list[str], str]
    batch_size: Union[int, str] = "auto"
    numb_btch: int = Field(1, gt=0)
    auto_prob: str = "prob_sys_size"
    set_prefix: Literal["set"] = "set"

    @field_validator("systems")
    @classmethod
    def _systems(cls, v):
        return [v] if isinstance(v, str) else v

    @field_validator("batch_size")
    @classmethod
    def _bs(cls, v):
        if isinstance(v, str) and not (v == "auto" or v.startswith("auto:")):
            raise ValueError("batch_size must be an int, 'auto' or 'auto:N'")
        return v


class TrainingConfig(_Strict):
    training_data: DataConfig
    validation_data: DataConfig | None = None
    numb_steps: int = Field(alias="numb_steps", gt=0)
    seed: int | None = None
    disp_file: str = "lcurve.out"
    disp_freq: int = Field(1000, gt=0)
    save_freq: int = Field(1000, gt=0)
    save_ckpt: str = "model.ckpt"
    disp_training: bool = True
    time_training: bool = True
    profiling: bool = False
    tensorboard: bool = False
    # conlearn additions
    max_wall_s: float | None = Field(None, gt=0, description="stop after this much wall time (s)")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")


class TrainConfig(_Strict):
    """A whole training input; ``base_dir`` resolves relative system paths."""

    model: ModelConfig
    learning_rate: LearningRateConfig = LearningRateConfig()
    loss: LossConfig = LossConfig()
    training: TrainingConfig
    base_dir: str = "."

    def spec(self, sel: list[int]) -> DeepPotSpec:
        """The model hyper-parameters (``sel`` resolved)."""
        d, f = self.model.descriptor, self.model.fitting_net
        precision = d.precision if d.precision != "default" else "float64"
        seed = d.seed if d.seed is not None else (self.training.seed or 0)
        return DeepPotSpec(
            type_map=list(self.model.type_map), sel=list(sel), rcut=d.rcut,
            rcut_smth=d.rcut_smth, neuron=list(d.neuron), axis_neuron=d.axis_neuron,
            type_one_side=d.type_one_side, embed_resnet_dt=d.resnet_dt,
            fitting_neuron=list(f.neuron), fitting_resnet_dt=f.resnet_dt,
            precision=precision, seed=seed,
        )


def read_train_config(path: str | Path) -> TrainConfig:
    """Load a deepmd ``input.json`` or conlearn YAML; paths resolve relative to the file."""
    cfg = load_config(path, TrainConfig)
    base = Path(path).resolve().parent
    return cfg.model_copy(update={"base_dir": str(base / cfg.base_dir)})
