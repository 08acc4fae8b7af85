"""The science config of an atomistic concurrent-learning run (``conlearn run CONFIG.yaml``).

Where tasks run is not here: that is the resources file (``conlearn.exec.resources``).
Units: temperatures K, pressures GPa, time step fs, deviations eV/Å.

Two model families (``model_kind``): ``deeppot`` (default; a DeepPot-SE committee from the
``model`` and ``training`` sections, deviation = committee force deviation) and ``gp`` (one
Gaussian process from the ``gp`` section, deviation = its predicted force std). The initial
data may include already-labelled frames (``initial.data``: on-the-fly run directories,
extxyz/ASE files, deepmd systems); see docs/otf.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, ValidationError, model_validator

from ...configfile import ConfigError, coerced_numbers, config_error, read_raw, strict_validate, validate
from ..deeppot.config import LearningRateConfig, LossConfig, ModelConfig
from ..initial import resolve_structure_files
from ..otf.config import GPSpec, KernelSpec


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InitialData(_Strict):
    """The labelled data the loop starts from (both parts are optional, not both empty).

    data: already-labelled frames, used as they are (no reference call): an on-the-fly run
          directory (its ``labelled.extxyz``), any file ASE reads with energy and forces
          (extxyz, ...), a deepmd npy system directory or a directory of them. Relative
          paths are taken against the config file's directory.
    n_frames_per_structure, cell_strain, atom_displacement: DP-GEN's init_bulk, perturbed
          and strained copies of every structure labelled by the reference (0: none).
    """

    data: list[str] = Field([], description="labelled frames: OTF run dirs, extxyz, deepmd systems")
    n_frames_per_structure: int = Field(8, ge=0)
    cell_strain: float = Field(0.03, ge=0, le=0.3)
    atom_displacement: float = Field(0.1, ge=0, le=1.0, description="Å")


class TrainingSettings(_Strict):
    n_models: int = Field(4, ge=2)
    numb_steps: int = Field(2000, ge=1)
    reuse_numb_steps: int = Field(1000, ge=1)
    reuse_start_lr: float = Field(5e-4, gt=0)
    final_numb_steps: Optional[int] = Field(
        None, ge=1, description="after the last iteration, train every member this many more steps "
                                "(warm start, from reuse_start_lr) on the whole data set; None: no final training")
    final_from_scratch: bool = Field(False, description="the final training starts from new weights (learning_rate "
                                                        "as given) instead of the members' last models")
    # typed sections: a misspelt key (stop_lr -> stop_rl) is an error at load, naming its line
    learning_rate: LearningRateConfig = Field(
        default_factory=lambda: LearningRateConfig(start_lr=1e-3, stop_lr=1e-5, decay_steps=100))
    loss: LossConfig = Field(default_factory=lambda: LossConfig(
        start_pref_e=0.02, limit_pref_e=2, start_pref_f=1000, limit_pref_f=1, start_pref_v=0.0, limit_pref_v=0.0))
    disp_freq: int = Field(100, ge=1)


class ExplorationStage(_Strict):
    """One block of the exploration schedule: structures × temperatures × pressures."""

    iterations: Optional[list[int]] = Field(None, description="iterations using this stage; None: the rest")
    structures: list[str] | str = "all"
    temperatures: list[PositiveFloat] = Field(min_length=1, description="K, > 0")
    pressures: list[Optional[float]] = [None]
    n_steps: int = Field(1000, ge=1)
    dt_fs: float = Field(2.0, gt=0)
    trj_freq: int = Field(10, ge=1)


class MDOptions(_Strict):
    """How exploration MD runs (model_kind deeppot).

    drive: "committee" — the committee mean drives MD and every frame's deviation comes with
    the step (one batched evaluation of all members); "first" — member 0 drives (DP-GEN).
    stop_devi_f: eV/Å, a trajectory whose ε_f exceeds this is stopped (it blew up).
    """

    drive: Literal["committee", "first"] = "committee"
    stop_devi_f: float = Field(2.0, gt=0)
    continue_trajectories: bool = Field(False, description="start each condition where its last trajectory ended")


class SelectionSettings(_Strict):
    trust_lo: float = Field(0.05, ge=0, description="eV/Å")
    trust_hi: float = Field(0.25, gt=0, description="eV/Å")
    max_select: Optional[int] = Field(50, ge=0)
    converge_fraction: float = Field(0.99, gt=0, le=1)
    order: Literal["random", "largest", "balanced", "balanced-largest"] = "random"
    min_gap: int = Field(0, ge=0, description="frames between two picks of one trajectory (balanced-largest)")

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
    # label the last iteration's selection too: only a final training (training.final_numb_steps) uses it
    label_last: bool = False


class HeldOut(_Strict):
    """Final check: independent reference MD at every exploration condition."""

    n_frames: int = Field(10, ge=1)
    n_steps: int = Field(400, ge=1)
    temperatures: Optional[list[PositiveFloat]] = None


class BatchGPSpec(GPSpec):
    """``gp:`` of ``model_kind: gp``: the on-the-fly loop's GP spec (docs/otf.md) read for
    the batch loop, plus how many atoms of each labelled frame give force labels.

    optimize: hyperparameters are refitted (warm-started from the previous model) in the
              trainings numbered ``at_calls`` (1 = iteration 0) and every ``every``-th;
              other iterations keep the previous model's hyperparameters.
    mapping:  the explorer's MD runs on the spline-mapped mean (the std stays exact).
    atoms_per_frame: force labels of that many atoms per frame (a random subset, fixed
              per frame), for cost: the GP solve grows as (3 x atoms)³. None: all atoms.
    stress_labels: also train on every periodic frame's stress (from its virial), which
              NPT exploration (``pressures``) drives the cell with.
    """

    # Default start: sigma3 = 0.5 eV, not GPSpec's 0.05. From 0.05 the likelihood fit left the
    # 3-body term off (its gradient scales as sigma3^2): on 10 frames of 16-atom Al the
    # log-likelihood reached 327 vs 487 and the force RMSE at 1200 K was 0.45 vs 0.03 eV/Å.
    kernels: list[KernelSpec] = Field(
        default_factory=lambda: [KernelSpec(body=2, sigma=1.0, length=1.0),
                                 KernelSpec(body=3, sigma=0.5, length=1.0)], min_length=1)
    atoms_per_frame: Optional[int] = Field(8, ge=1)
    stress_labels: bool = False
    stress_noise: float = Field(1e-3, gt=0, description="eV/Å^3, stress label noise (1e-3 = 0.16 GPa)")

    @model_validator(mode="after")
    def _one_per_body(self):
        bodies = [k.body for k in self.kernels]
        if len(set(bodies)) != len(bodies):
            raise ValueError(f"kernels: one kernel per body order, got bodies {bodies}")
        return self


class RunConfig(_Strict):
    workflow: Literal["dpgen"] = Field("dpgen", description="which loop runs this config (conlearn.workflows)")
    type_map: list[str] = Field(min_length=1)
    reference: dict[str, Any] = {"kind": "emt"}
    structures: list[dict[str, Any]] = Field(min_length=1)
    initial: InitialData = InitialData()
    model_kind: Literal["deeppot", "gp"] = "deeppot"
    model: dict[str, Any] = Field({}, description="DeepPot network (model_kind deeppot)")
    training: TrainingSettings = TrainingSettings()
    gp: BatchGPSpec = BatchGPSpec()
    exploration: list[ExplorationStage] = Field(min_length=1)
    md: MDOptions = MDOptions()
    selection: SelectionSettings = SelectionSettings()
    loop: LoopOptions = LoopOptions()
    heldout: Optional[HeldOut] = None

    @model_validator(mode="after")
    def _initial(self):
        if self.initial.n_frames_per_structure == 0 and not self.initial.data:
            raise ValueError("initial: no initial data; list labelled frames in initial.data "
                             "or set initial.n_frames_per_structure >= 1")
        return self

    @model_validator(mode="after")
    def _model(self):
        if self.model_kind == "gp":
            return self._gp_only()
        if not self.model:
            raise ValueError("model: required with model_kind deeppot (the DeepPot network: "
                             "descriptor, fitting_net)")
        if self.gp != BatchGPSpec():
            raise ValueError("gp: is the model of model_kind gp; set model_kind: gp or drop it")
        model = {"type_map": self.type_map, **self.model}
        if model["type_map"] != self.type_map:
            raise ValueError(f"model.type_map {model['type_map']} differs from type_map {self.type_map}")
        try:  # a typo (or a quoted number) in the network section is caught here
            strict_validate(ModelConfig, model)
        except ValidationError as err:  # errors located under model.*, for their line in the file
            raise ValidationError.from_exception_data("model", [
                {"type": e["type"], "loc": ("model", *e["loc"]), "input": e["input"], "ctx": e.get("ctx", {})}
                for e in err.errors()]) from None
        return self

    def _gp_only(self):
        """model_kind gp: no DeepPot sections."""
        for name, default in (("model", {}), ("training", TrainingSettings())):
            if getattr(self, name) != default:
                raise ValueError(f"{name}: is the DeepPot committee's section; with model_kind gp "
                                 "the model is the gp section (one GP, no committee)")
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
    """Read and validate ``path``; ``initial.data`` and ``kind: file`` structure paths become
    absolute (relative ones are taken against the config file's directory) and must exist.
    Errors name file, line, key."""
    data, lines = read_raw(path)
    base = Path(path).resolve().parent
    if isinstance(data.get("structures"), list):  # kind: file paths are relative to the config file
        resolve_structure_files([(("structures", i), s) for i, s in enumerate(data["structures"])],
                                base, str(path), lines)
    cfg = validate(RunConfig, data, source=str(path), lines=lines)
    check_reference(cfg, str(path), lines)
    resolved = []
    for i, item in enumerate(cfg.initial.data):
        p = Path(item).expanduser()
        p = p if p.is_absolute() else base / p
        if not p.exists():
            line = lines.get(("initial", "data", i)) or lines.get(("initial", "data"))
            raise ConfigError(f"invalid config:\n  {path}:{line}: initial.data[{i}]: {p} does not exist")
        resolved.append(str(p))
    cfg = cfg.model_copy(update={"initial": cfg.initial.model_copy(update={"data": resolved})})
    check_structures(cfg, str(path), lines)
    check_initial_data(cfg, str(path), lines)
    return cfg


def check_initial_data(cfg: RunConfig, source: str, lines: dict) -> None:
    """Every ``initial.data`` entry is read once at load (labels finite and complete, elements
    in ``type_map``), so that bad data is named before the run directory is written."""
    from ..system import DataError
    from .run import read_labelled

    for i, p in enumerate(cfg.initial.data):
        try:
            read_labelled(p, list(cfg.type_map))
        except (DataError, OSError) as err:
            line = lines.get(("initial", "data", i)) or lines.get(("initial", "data"))
            raise ConfigError(f"{source}:{line}: initial.data[{i}]: {err}") from None


def check_reference(cfg: RunConfig, source: str, lines: dict) -> None:
    """The reference kind and its options are valid (and importable, for ``kind: ase``)."""
    from ..reference import ReferenceSpec

    try:
        spec = strict_validate(ReferenceSpec, cfg.reference)
        raw = cfg.reference.get("options", {k: v for k, v in cfg.reference.items() if k != "kind"})
        quoted = coerced_numbers(raw, spec.options)  # the options' own numbers, flat or under options:
        if quoted:
            raise ValidationError.from_exception_data("reference", quoted)
    except ValidationError as err:
        raise config_error(err, source=source, lines=lines, prefix=("reference",)) from None


def check_structures(cfg: RunConfig, source: str, lines: dict) -> None:
    """Every structure is built (files read, overlaps checked), its elements are in
    ``type_map``, and every exploration stage names existing structures: found at load,
    before a run directory is written or a reference call is spent."""
    from ..initial import build_structures, parse_structure

    for i, spec in enumerate(cfg.structures):  # each spec's own errors, at their line
        try:
            parse_structure(spec)
        except ValidationError as err:
            raise config_error(err, source=source, lines=lines, prefix=("structures", i),
                               tag=spec.get("kind")) from None
    try:
        structs = build_structures(cfg.structures)
    except (ValueError, FileNotFoundError, OSError) as err:
        raise ConfigError(f"invalid config:\n  {source}:{lines.get(('structures',))}: structures: {err}") from None
    names = [n for n, _ in structs]
    specs = [s.get("name") for s in cfg.structures]
    for name, atoms in structs:
        missing = sorted(set(atoms.get_chemical_symbols()) - set(cfg.type_map))
        if missing:
            k = next((i for i, n in enumerate(specs) if n and (name == n or name.startswith(f"{n}-"))), None)
            line = lines.get(("structures", k)) if k is not None else lines.get(("structures",))
            raise ConfigError(f"invalid config:\n  {source}:{line}: structure {name!r} has element(s) {missing} "
                              f"not in type_map {list(cfg.type_map)}")
    for i, st in enumerate(cfg.exploration):
        if st.structures == "all":
            continue
        wanted = [st.structures] if isinstance(st.structures, str) else list(st.structures)
        unknown = [n for n in wanted if n not in names]
        if unknown:
            line = lines.get(("exploration", i, "structures"))
            raise ConfigError(f"invalid config:\n  {source}:{line}: exploration[{i}].structures: unknown "
                              f"structure(s) {unknown}; defined: {names} (or 'all')")
