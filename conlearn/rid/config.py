"""The config of a RiD run (``workflow: rid``): YAML -> validated pydantic model, errors naming
file, line and key. See docs/rid.md for every key; examples/rid_toy.yaml for a whole file.

The ``engine`` section is ``{kind: NAME, ...}``: NAME is looked up in
:data:`conlearn.rid.engine.ENGINES`, the other keys go to that engine class as keyword
arguments (with ``cvs`` from the top-level ``cvs`` section when there is one). The engine is
built once at load, so an unknown engine key, a CV atom index the system does not have, or a
CV whose atoms are not right for its kind is an error before anything is written.
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..configfile import ConfigError, read_raw, validate
from ..core.registry import RegistryError
from .cv import CVSpec, check_atoms
from .engine import ENGINES


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CVConfig(_Strict):
    """One CV: ``kind`` dihedral | angle | distance (0-based ``atoms``) or linear
    (``weights`` × ``terms``)."""

    name: str
    kind: Literal["dihedral", "angle", "distance", "linear"]
    atoms: list[int] = []
    weights: list[float] = []
    terms: list["CVConfig"] = []

    def spec(self) -> CVSpec:
        return CVSpec(self.name, self.kind, tuple(self.atoms), tuple(self.weights), tuple(t.spec() for t in self.terms))

    @model_validator(mode="after")
    def _shape(self):
        self.spec()  # the atom count of the kind, weights vs terms (ValueError -> this CV's line)
        return self


class ModelSection(_Strict):
    n_members: int = Field(4, ge=2, description="ensemble size")
    neurons: list[int] = Field([32, 32, 32], min_length=1)


class TrainingSection(_Strict):
    """Full-batch Adam; learning rate decays exponentially from lr to lr_final."""

    n_steps: int = Field(2000, ge=1)
    lr: float = Field(3e-3, gt=0)
    lr_final: float = Field(1e-4, gt=0)
    reuse_n_steps: int = Field(500, ge=1, description="warm-started trainings")
    reuse_lr: float = Field(1e-3, gt=0)
    final_n_steps: Optional[int] = Field(None, ge=1, description="one more training on all labels at the end")
    final_from_scratch: bool = Field(True, description="the final training starts from new weights")
    validation: float = Field(0.0, ge=0, lt=1, description="per-member held-out fraction for early stopping")


class TrustSection(_Strict):
    """Trust levels e0 < e1 on ε (kJ/mol/rad) and the adaptive rise."""

    e0: float = Field(2.0, gt=0)
    e1: float = Field(3.0, gt=0)
    factor: float = Field(1.5, ge=1)
    max_scale: float = Field(4.0, ge=1)
    min_clusters: int = Field(4, ge=0)

    @field_validator("e1")
    @classmethod
    def _order(cls, e1, info):
        e0 = info.data.get("e0")
        if e0 is not None and e0 >= e1:
            raise ValueError(f"e0 must be below e1, got e0={e0} >= e1={e1}")
        return e1


class ExploreSection(_Strict):
    n_walkers: int = Field(4, ge=1)
    n_steps: int = Field(10000, ge=1, description="MD steps per walker and iteration")
    frame_every: int = Field(50, ge=1)


class SelectSection(_Strict):
    cluster_distance: float = Field(0.3, gt=0, description="largest distance within a cluster (CV units)")
    max_select: Optional[int] = Field(30, ge=1)
    converge_fraction: float = Field(1.0, gt=0, le=1)
    max_candidates: int = Field(3000, ge=1)


class LabelSection(_Strict):
    kappa: Union[float, list[float]] = Field(1000.0, description="kJ/mol/unit^2, one for all CVs or one per CV")
    n_steps: int = Field(2000, ge=1)
    frame_every: int = Field(1, ge=1)
    equilibration: float = Field(0.2, ge=0, lt=1)
    n_blocks: int = Field(10, ge=2)
    max_error: float = Field(1.0, gt=0, description="kJ/mol/rad")
    rerun_factor: int = Field(4, ge=1)

    @field_validator("kappa")
    @classmethod
    def _positive(cls, kappa):
        ks = kappa if isinstance(kappa, list) else [kappa]
        if not ks or min(ks) <= 0:
            raise ValueError(f"kappa must be > 0 for every CV, got {kappa}")
        return kappa


class LoopSection(_Strict):
    max_iterations: int = Field(8, ge=1)
    seed: int = 0
    label_retries: int = Field(0, ge=0, description="extra tries of a label whose MD crashed")
    label_timeout_s: Optional[float] = Field(None, gt=0)
    label_last: bool = False


class RidConfig(_Strict):
    workflow: Literal["rid"] = "rid"
    engine: dict[str, Any]
    cvs: Optional[list[CVConfig]] = None
    model: ModelSection = ModelSection()
    training: TrainingSection = TrainingSection()
    trust: TrustSection = TrustSection()
    explore: ExploreSection = ExploreSection()
    select: SelectSection = SelectSection()
    label: LabelSection = LabelSection()
    loop: LoopSection = LoopSection()

    @model_validator(mode="after")
    def _kind(self):
        if not isinstance(self.engine.get("kind"), str):
            raise ValueError(f"engine needs a 'kind' naming the engine ({ENGINES.names()})")
        return self

    def build_engine(self):
        """The engine object (``ENGINES[kind](cvs=..., **other keys)``)."""
        params = {k: v for k, v in self.engine.items() if k != "kind"}
        if self.cvs is not None:
            params["cvs"] = tuple(c.spec() for c in self.cvs)
        for k, v in params.items():  # YAML lists -> tuples (engines are frozen dataclasses)
            if isinstance(v, list):
                params[k] = tuple(v)
        return ENGINES.get(self.engine["kind"])(**params)

    def kappa(self, d: int) -> tuple[float, ...]:
        k = self.label.kappa
        return tuple(float(x) for x in (k if isinstance(k, list) else [k] * d))


def _line(lines: dict, *path) -> str:
    for n in range(len(path), 0, -1):
        if path[:n] in lines:
            return str(lines[path[:n]])
    return "?"


def check_engine(cfg: RidConfig, source: str, lines: dict):
    """Build the engine; its errors, CV atom indices and κ's length named with their lines."""
    where = f"{source}:{_line(lines, 'engine', 'kind')}: engine"
    try:
        engine = cfg.build_engine()
    except RegistryError as err:
        raise ConfigError(f"{where}.kind: {err}") from None
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from None
    n_atoms = getattr(engine, "n_atoms", None)
    if cfg.cvs is not None and n_atoms is not None:
        for i, cv in enumerate(cfg.cvs):
            try:
                check_atoms([cv.spec()], int(n_atoms))
            except ValueError as err:
                raise ConfigError(f"{source}:{_line(lines, 'cvs', i, 'atoms')}: cvs[{i}].atoms: {err}") from None
    d = len(engine.cvs)
    if isinstance(cfg.label.kappa, list) and len(cfg.label.kappa) != d:
        raise ConfigError(f"{source}:{_line(lines, 'label', 'kappa')}: label.kappa: {len(cfg.label.kappa)} values "
                          f"for {d} CVs {[c.name for c in engine.cvs]}")
    return engine


def read_rid_config(path) -> RidConfig:
    """Read and validate a RiD config file (writes nothing); every error names file, line and key."""
    data, lines = read_raw(path)
    cfg = validate(RidConfig, data, source=str(path), lines=lines)
    check_engine(cfg, str(path), lines)
    return cfg
