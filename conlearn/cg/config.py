"""The science config of a CG concurrent-learning run (``workflow: cg``).

Units: nm, fs (time steps), ps, K, kJ/mol, kJ/mol/nm (deviations, trust window).
``system.liquid``: ``spce`` or ``methanol`` (all-atom OpenMM reference, mapped to one bead per
molecule by ``mapping``) or ``mw`` (the mW bead oracle, :mod:`conlearn.cg.toy`: a cheap
synthetic liquid whose exact forces are the labels). Every error names file, line and key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..configfile import read_raw, validate


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


NM3_PER_MOLECULE = {"spce": 18.015 / 0.997 / 602.214, "methanol": 32.042 / 0.787 / 602.214}  # at 298-300 K


class SystemSettings(_Strict):
    """The liquid; ``dt_fs`` is the reference's time step, ``cutoff_nm`` the all-atom cutoff
    (at most half the box edge, which follows from ``n_molecules`` at the liquid's density)."""

    liquid: Literal["spce", "methanol", "mw"] = "spce"
    n_molecules: int = Field(236, ge=8)
    temperature: float = Field(300.0, gt=0, description="K")
    dt_fs: float = Field(2.0, gt=0, description="all-atom time step, fs")
    cutoff_nm: float = Field(0.9, gt=0)
    platform: str = "CPU"

    @model_validator(mode="after")
    def _box(self):
        if self.liquid == "methanol" and self.n_molecules != 125:
            raise ValueError(f"the methanol box (openmmtools) has 125 molecules, not n_molecules={self.n_molecules}")
        if self.liquid in NM3_PER_MOLECULE:
            half = 0.5 * (self.n_molecules * NM3_PER_MOLECULE[self.liquid]) ** (1 / 3)
            if self.cutoff_nm > half:
                raise ValueError(f"cutoff_nm {self.cutoff_nm} exceeds half the box ({half:.3f} nm for "
                                 f"{self.n_molecules} molecules); lower it or add molecules")
        return self


class MappingSettings(_Strict):
    """One bead per molecule: ``com`` (centre of mass), ``cog`` (centre of geometry) or
    ``atom`` (the molecule's atom number ``atom``)."""

    kind: Literal["com", "cog", "atom"] = "com"
    atom: Optional[int] = Field(None, ge=0)

    @model_validator(mode="after")
    def _atom(self):
        if (self.kind == "atom") != (self.atom is not None):
            raise ValueError("atom: needed with kind atom (the chosen atom's number in the molecule), "
                             "and only then")
        return self


class InitialSettings(_Strict):
    """The passive reference trajectory: ``equil_steps`` then ``n_steps`` steps saved every
    ``save_every``; the last ``heldout_fraction`` of the frames is held out (evaluation)."""

    equil_steps: int = Field(1000, ge=0)
    n_steps: int = Field(5000, ge=1)
    save_every: int = Field(50, ge=1)
    heldout_fraction: float = Field(0.5, gt=0, lt=1)
    train_frames: Optional[int] = Field(None, ge=1, description="use at most this many (evenly spaced)")

    @model_validator(mode="after")
    def _frames(self):
        n = self.n_steps // self.save_every
        if int(n * (1 - self.heldout_fraction)) < 2 or int(n * self.heldout_fraction) < 2:
            raise ValueError(f"{n} saved frames leave fewer than 2 for training or held out; "
                             "raise n_steps or lower save_every")
        return self


class AngularSettings(_Strict):
    """A three-body term ``g(r_ij) g(r_ik) P(cos theta)`` force-matched with the pair
    (:mod:`conlearn.cg.threebody`); defaults: mW's range (gamma 0.2871 nm, cutoff 0.43065 nm)."""

    gamma: float = Field(0.2871, gt=0, description="nm")
    a: float = Field(0.43065, gt=0, description="nm, the three-body cutoff")
    degree: int = Field(4, ge=0, le=8, description="of P in cos theta")


class BaselineSettings(_Strict):
    """The force-matched physics baseline (MS-CG): a pair table, and with ``angular`` a
    three-body term fitted in the same least squares."""

    rcut: float = Field(0.9, gt=0, description="nm")
    n_basis: int = Field(60, ge=4)
    angular: Optional[AngularSettings] = None

    def angular_tuple(self):
        a = self.angular
        return None if a is None else (a.gamma, a.a, a.degree)


class NetSettings(_Strict):
    rcut: float = Field(0.6, gt=0, description="nm")
    rcut_smth: float = Field(0.3, ge=0)
    sel: int = Field(48, ge=1)
    neuron: list[int] = Field([8, 16, 32], min_length=1)
    axis_neuron: int = Field(4, ge=1)
    fitting_neuron: list[int] = Field([32, 32], min_length=1)

    @model_validator(mode="after")
    def _cut(self):
        if self.rcut_smth >= self.rcut:
            raise ValueError(f"rcut_smth ({self.rcut_smth}) must be below rcut ({self.rcut})")
        return self


class FitOptions(_Strict):
    n_steps: int = Field(400, ge=1)
    batch_frames: int = Field(4, ge=1)
    lr: float = Field(3e-3, gt=0)
    lr_end: float = Field(1e-4, gt=0)


class ModelSettings(_Strict):
    kind: Literal["delta", "ml"] = "delta"
    committee: int = Field(4, ge=2)
    net: NetSettings = NetSettings()
    fit: FitOptions = FitOptions()
    reuse: FitOptions = FitOptions(n_steps=200, lr=1e-3)


class MDSettings(_Strict):
    """Exploration: committee-mean Langevin MD at each temperature."""

    temperatures: list[float] = Field([300.0], min_length=1)
    dt_fs: float = Field(5.0, gt=0)
    friction_per_ps: float = Field(5.0, ge=0)
    n_steps: int = Field(2000, ge=1)
    save_every: int = Field(50, ge=1)
    continue_trajectories: bool = Field(True, description="each iteration starts where the last one's MD ended")


class LabelSettings(_Strict):
    """Restrained all-atom MD per selected configuration (not used for ``mw``)."""

    k_restraint: float = Field(5e4, gt=0, description="kJ/mol/nm^2")
    n_steps: int = Field(2000, ge=1)
    equil_steps: int = Field(500, ge=0)


class SelectionSettings(_Strict):
    trust_lo: float = Field(20.0, ge=0, description="kJ/mol/nm")
    trust_hi: float = Field(200.0, gt=0, description="kJ/mol/nm")
    max_select: Optional[int] = Field(16, ge=0)
    converge_fraction: float = Field(0.95, gt=0, le=1)

    @model_validator(mode="after")
    def _window(self):
        if self.trust_lo >= self.trust_hi:
            raise ValueError(f"trust_lo ({self.trust_lo}) must be below trust_hi ({self.trust_hi})")
        return self


class LoopOptions(_Strict):
    max_iterations: int = Field(3, ge=1)
    label_retries: int = Field(1, ge=0)
    label_timeout_s: Optional[float] = Field(None, gt=0)
    seed: int = 0


class EvaluationSettings(_Strict):
    """Final check of the pair baseline and the learned model: CG MD of ``equil_steps`` +
    ``n_steps`` from the first held-out frame, compared with the held-out reference."""

    n_steps: int = Field(4000, ge=10)
    equil_steps: int = Field(1000, ge=0)
    save_every: int = Field(20, ge=1)
    dt_fs: float = Field(5.0, gt=0)
    friction_per_ps: float = Field(5.0, ge=0)
    r_max: float = Field(1.0, gt=0.2, description="nm, RDF range")
    ml_every: int = Field(1, ge=1, description="steps between evaluations of a Δ model's ML part (r-RESPA)")

    @model_validator(mode="after")
    def _respa(self):
        if self.save_every % self.ml_every:
            raise ValueError(f"ml_every ({self.ml_every}) must divide save_every ({self.save_every})")
        return self


class CGConfig(_Strict):
    workflow: Literal["cg"] = "cg"
    system: SystemSettings = SystemSettings()
    mapping: MappingSettings = MappingSettings()
    initial: InitialSettings = InitialSettings()
    baseline: BaselineSettings = BaselineSettings()
    model: ModelSettings = ModelSettings()
    md: MDSettings = MDSettings()
    labeling: LabelSettings = LabelSettings()
    selection: SelectionSettings = SelectionSettings()
    loop: LoopOptions = LoopOptions()
    evaluation: EvaluationSettings = EvaluationSettings()

    @model_validator(mode="after")
    def _mw(self):
        if self.system.liquid == "mw" and self.mapping != MappingSettings():
            raise ValueError("mapping: the mw liquid is already one bead per molecule; drop mapping")
        return self


def read_config(path: str | Path) -> CGConfig:
    """Read and validate ``path`` (YAML/JSON); errors name file, line and key. A mapping that
    does not fit the liquid's molecules is an error naming the mapping key's line."""
    data, lines = read_raw(path)
    cfg = validate(CGConfig, data, source=str(path), lines=lines)
    if cfg.system.liquid != "mw" and cfg.mapping.kind == "atom":
        from ..configfile import ConfigError

        n_atoms = {"spce": 3, "methanol": 6}[cfg.system.liquid]
        if cfg.mapping.atom >= n_atoms:
            line = lines.get(("mapping", "atom")) or lines.get(("mapping",))
            raise ConfigError(f"invalid config:\n  {path}:{line}: mapping.atom: a {cfg.system.liquid} molecule "
                              f"has {n_atoms} atoms (0..{n_atoms - 1}), got {cfg.mapping.atom}")
    return cfg
