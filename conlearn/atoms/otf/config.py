"""The config of an on-the-fly run (``conlearn otf CONFIG.yaml``), validated once here.

Units: Å, eV, eV/Å for forces and their uncertainty, K, fs.  Every section forbids
unknown keys, so a typo is an error naming the file, line and key (``load_otf_config``).

The trigger threshold always carries its unit (eV/Å on the predicted std of one force
component); see :class:`AbsoluteThreshold` and :class:`NoiseMultipleThreshold`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ...configfile import read_raw, validate
from ..initial import StructureSpec, parse_structure, resolve_structure_files
from ..reference import ReferenceSpec


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KernelSpec(_Strict):
    """One n-body kernel: ``sigma`` eV (signal), ``length`` Å (initial values)."""

    body: Literal[2, 3]
    sigma: float = Field(gt=0, description="eV")
    length: float = Field(gt=0, description="Å")


class OptimizeSpec(_Strict):
    """When to refit hyperparameters by maximum likelihood: after the reference calls
    numbered ``at_calls`` (1 = the first) and after every ``every``-th call if set, but
    not while the GP holds fewer than ``min_labels`` labels (a few dozen force components
    of one or two frames do not determine five hyperparameters: the fit then lands wherever
    L-BFGS-B stops).  An audit (``uncertainty.audit``) always refits."""

    at_calls: list[int] = [1, 2, 3]
    every: Optional[int] = Field(None, ge=1)
    min_labels: int = Field(0, ge=0, description="labels before the first fit")
    maxiter: int = Field(30, ge=1)
    noise_min: float = Field(0.005, gt=0, description="eV/Å, lower bound of the force noise")
    length_bounds: tuple[float, float] = Field((0.3, 5.0), description="Å")

    def due(self, n_calls: int, n_labels: int | None = None) -> bool:
        if n_labels is not None and n_labels < self.min_labels:
            return False
        return n_calls in self.at_calls or bool(self.every and n_calls % self.every == 0)


class MappingSpec(_Strict):
    """Spline map of the mean (MD forces); grid spacings in units of the length scale."""

    enabled: bool = True
    spacing2: float = Field(0.05, gt=0, le=0.5)
    spacing3: float = Field(0.12, gt=0, le=0.5)
    r_min: Optional[float] = Field(None, gt=0, description="Å; default 0.75 x shortest training edge")


class GPSpec(_Strict):
    """The full GP: kernels, cutoffs, noises, fits, map (shared with the batch loop's
    ``BatchGPSpec``)."""

    kernels: list[KernelSpec] = Field(
        default_factory=lambda: [KernelSpec(body=2, sigma=0.5, length=1.0),
                                 KernelSpec(body=3, sigma=0.05, length=1.0)], min_length=1)
    r_cut2: float = Field(5.0, gt=0, description="Å")
    r_cut3: float = Field(3.6, gt=0, description="Å")
    cutoff: Literal["quadratic", "cosine"] = "quadratic"
    noise: float = Field(0.02, gt=0, description="eV/Å, initial force noise")
    energy_noise: float = Field(0.01, gt=0, description="eV, frame energy noise")
    energy_labels: bool = Field(True, description="also train on each labelled frame's energy")
    optimize: OptimizeSpec = OptimizeSpec()
    mapping: MappingSpec = MappingSpec()


class SparseSpec(_Strict):
    """The DTC sparse GP (``conlearn.atoms.gp.sparse.SparseGP``) instead of the full one:
    at most ``n_inducing`` inducing environments (their local energies are the latent
    variables), chosen among the atoms each reference call adds by ``select``: ``greedy``
    (largest residual local-energy variance first), ``random`` (seeded by ``seed``) or
    ``all`` (in order), until the cap is reached.  ``grow``: when a reference call finds
    the cap reached, raise it by that many first (0: a fixed cap), so that a cap set too
    small cannot make every later check call the reference."""

    n_inducing: int = Field(ge=1, description="cap on the inducing environments")
    grow: int = Field(0, ge=0, description="raise the cap by this many when a call finds it reached")
    select: Literal["greedy", "random", "all"] = "greedy"
    seed: int = Field(0, description="of the random rule")


class OTFGPSpec(GPSpec):
    """``gp:`` of ``conlearn otf``: :class:`GPSpec` plus ``sparse`` (None, the default: the
    full GP).  The batch loop's ``BatchGPSpec`` derives from :class:`GPSpec`, so a
    ``gp.sparse`` there is an unknown key, not silently ignored."""

    sparse: Optional[SparseSpec] = None
    stress_labels: bool = Field(False, description="also train on each labelled periodic frame's stress")
    stress_noise: float = Field(1e-3, gt=0, description="eV/Å^3, stress label noise (1e-3 = 0.16 GPa)")


class AbsoluteThreshold(_Strict):
    """Call the reference when some force component's std exceeds ``value`` eV/Å."""

    kind: Literal["absolute"] = "absolute"
    value: float = Field(gt=0, description="eV/Å")

    def value_at(self, noise: float) -> float:
        return self.value


class NoiseMultipleThreshold(_Strict):
    """``value x max(noise, floor)`` eV/Å: follows the fitted force noise but never drops
    below ``value x floor`` when the likelihood drives the noise to its bound."""

    kind: Literal["noise_multiple"] = "noise_multiple"
    value: float = Field(gt=0, description="dimensionless multiple")
    floor: float = Field(gt=0, description="eV/Å")

    def value_at(self, noise: float) -> float:
        return self.value * max(noise, self.floor)


Threshold = Annotated[Union[AbsoluteThreshold, NoiseMultipleThreshold], Field(discriminator="kind")]


class AddSpec(_Strict):
    """Which atoms of a labelled frame join the training set.

    ``top_n``: the ``n`` atoms with the largest std (max over components);
    ``above_threshold``: every atom above the threshold, at most ``n`` (None: no cap).
    ``initial``: atoms added from the first frame (None: all).
    """

    kind: Literal["top_n", "above_threshold"] = "top_n"
    n: Optional[int] = Field(8, ge=1)
    initial: Optional[int] = Field(None, ge=1)


class AuditSpec(_Strict):
    """Label a frame although the GP is sure of it, after ``every`` MD steps without a
    reference call (None: never).  Its errors are out of sample and the frame is not
    chosen by the model's own uncertainty, so (with ``calibrate_noise``) the force noise is
    kept at least at the value that makes the predictive std ``sqrt(std^2 + noise^2)``
    fit the errors of all its atoms (maximum likelihood over all audits); then its ``n``
    most uncertain atoms (None: ``add.n``, all if that is None) join the training set and
    the hyperparameters are refitted."""

    every: Optional[int] = Field(None, ge=1, description="MD steps without a call")
    n: Optional[int] = Field(None, ge=1, description="atoms added (None: uncertainty.add.n)")
    calibrate_noise: bool = True


class UncertaintySpec(_Strict):
    threshold: Threshold = AbsoluteThreshold(value=0.05)
    check_every: int = Field(10, ge=1, description="MD steps between exact std evaluations")
    add: AddSpec = AddSpec()
    audit: AuditSpec = AuditSpec()


class MDSpec(_Strict):
    """Langevin MD (ASE).  ``friction``: 1/fs.  ``init_temperature_K``: Maxwell-Boltzmann
    velocities (default: the temperature).  ``pressure_GPa``: NPT instead of NVT, ASE's
    LangevinBAOAB with a hydrostatic barostat of time scale ``barostat_tau_fs`` (thermostat
    time scale 1/friction); the structure must be periodic in 3D, and the model's stress
    drives the cell (train it on stresses with ``gp.stress_labels``)."""

    integrator: Literal["langevin"] = "langevin"
    temperature_K: float = Field(gt=0)
    timestep_fs: float = Field(2.0, gt=0)
    friction: float = Field(0.01, gt=0, description="1/fs")
    n_steps: int = Field(gt=0)
    init_temperature_K: Optional[float] = Field(None, ge=0)
    trajectory_every: int = Field(10, ge=1)
    pressure_GPa: Optional[float] = Field(None, description="NPT at this pressure; None: NVT")
    barostat_tau_fs: float = Field(1000.0, gt=0, description="fs, time scale of the cell's fluctuations")


class OutputSpec(_Strict):
    checkpoint_every: int = Field(50, ge=1, description="MD steps; also after every call")
    plots: bool = True


class OTFConfig(_Strict):
    """``conlearn otf`` run: structure, MD, GP, trigger, reference, outputs, seed."""

    structure: dict
    rattle: float = Field(0.0, ge=0, description="Å, std of the initial position jitter")
    md: MDSpec
    gp: OTFGPSpec = OTFGPSpec()
    uncertainty: UncertaintySpec = UncertaintySpec()
    reference: ReferenceSpec = ReferenceSpec()
    output: OutputSpec = OutputSpec()
    seed: int = 0

    @field_validator("structure")
    @classmethod
    def _structure(cls, v: dict) -> dict:
        parse_structure(v)  # unknown kind or key -> error naming the allowed ones
        return v

    @model_validator(mode="after")
    def _one_per_body(self) -> "OTFConfig":
        bodies = [k.body for k in self.gp.kernels]
        if len(set(bodies)) != len(bodies):
            raise ValueError(f"gp.kernels: one kernel per body order, got bodies {bodies}")
        return self

    @model_validator(mode="after")
    def _npt_needs_a_periodic_cell(self) -> "OTFConfig":
        if self.md.pressure_GPa is not None:
            pbc = self.structure_spec().build()[0].pbc
            if not pbc.all():
                raise ValueError(f"md.pressure_GPa: NPT needs a structure periodic in 3D, this one has "
                                 f"pbc {pbc.tolist()}; remove pressure_GPa for NVT")
        return self

    def structure_spec(self) -> StructureSpec:
        return parse_structure(self.structure)


def load_otf_config(path: str | Path) -> OTFConfig:
    """Read and validate a YAML/JSON OTF config (errors name ``file:line`` and the key); a
    ``kind: file`` structure path is taken against the config file's directory."""
    data, lines = read_raw(path)
    resolve_structure_files([(("structure",), data.get("structure"))], Path(path).resolve().parent, str(path), lines)
    return validate(OTFConfig, data, source=str(path), lines=lines)
