"""Reference ("labeler") calculators by name: a spec in the run config -> an ASE calculator.

A spec is ``{"kind": NAME, **options}`` (or ``{"kind": NAME, "options": {...}}``)::

    emt    ASE EMT (Al, Cu, Ag, Au, Ni, Pd, Pt, H, C, N, O): the cheap embedded default
    lj     ASE LennardJones, smooth cut-off;  sigma Å, epsilon eV, rc Å
    xtb    GFN2-xTB / GFN1-xTB via tblite;    method, accuracy, electronic_temperature K,
                                              charge e, multiplicity, max_iterations
    pyscf  molecular DFT/HF via PySCF;        xc, basis, charge e, spin (2S), conv_tol Eh,
                                              max_memory MB, grid_response
    ase    any ASE calculator by import path: calculator "ase.calculators.vasp.Vasp",
                                              options {...} passed to its constructor

Every kind's options are a pydantic model that forbids extra keys, so a typo is an error
naming the key and the allowed ones; specs are validated when built (in the engine), and
calculators are built later, inside workers (:class:`conlearn.atoms.labeler.ASELabeler`).
A new kind is a registered options class with a ``build()`` method (here, in any module
as ``"package.module:Class"``, or as an entry point of group ``conlearn.references``).
"""

from __future__ import annotations

import importlib
from typing import Any, Optional

import numpy as np
from ase.calculators.calculator import Calculator, CalculationFailed, CalculatorSetupError, all_changes
from ase.units import Bohr, Hartree
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..configfile import unknown_keys
from ..core.registry import Registry, RegistryError

REFERENCES: Registry = Registry("reference")


class Options(BaseModel):
    """Base of the per-kind options: extra keys are errors naming the allowed keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        unknown = unknown_keys(cls, data)
        if unknown:
            raise ValueError(f"unknown option(s) {unknown}; allowed: {sorted(cls.model_fields)}")
        return data

    def build(self) -> Calculator:  # pragma: no cover - abstract
        raise NotImplementedError


@REFERENCES.register("emt")
class EMTOptions(Options):
    """ASE's effective-medium theory (no options)."""

    def build(self) -> Calculator:
        from ase.calculators.emt import EMT

        return EMT()


@REFERENCES.register("lj")
class LJOptions(Options):
    """ASE LennardJones with the smooth cut-off (energy and forces go to 0 at ``rc``)."""

    sigma: float = Field(1.0, gt=0, description="Å")
    epsilon: float = Field(1.0, gt=0, description="eV")
    rc: Optional[float] = Field(None, gt=0, description="Å; default 3 sigma")

    def build(self) -> Calculator:
        from ase.calculators.lj import LennardJones

        return LennardJones(sigma=self.sigma, epsilon=self.epsilon, rc=self.rc, smooth=True)


@REFERENCES.register("xtb")
class XTBOptions(Options):
    """Semi-empirical tight binding via tblite (molecules and periodic cells)."""

    method: str = Field("GFN2-xTB", description="GFN2-xTB, GFN1-xTB or IPEA1-xTB")
    accuracy: float = Field(1.0, gt=0, description="SCF accuracy factor; smaller is tighter")
    electronic_temperature: float = Field(300.0, ge=0, description="K")
    charge: Optional[float] = Field(None, description="total charge, e; default from atoms")
    multiplicity: Optional[int] = Field(None, ge=1, description="2S+1; default from atoms")
    max_iterations: int = Field(250, ge=1)

    def build(self) -> Calculator:
        from tblite.ase import TBLite

        # cache_api=False: every frame starts from the same guess (reproducible labels)
        return TBLite(method=self.method, accuracy=self.accuracy,
                      electronic_temperature=self.electronic_temperature, charge=self.charge,
                      multiplicity=self.multiplicity, max_iterations=self.max_iterations,
                      verbosity=0, cache_api=False)


@REFERENCES.register("pyscf")
class PySCFOptions(Options):
    """Molecular Kohn-Sham DFT (or ``xc: HF``) via PySCF; non-periodic frames only.

    ``sto-3g`` is the default because it is fast enough for tests; production labels
    want at least ``def2-svp`` (better ``def2-tzvp``) and a functional fit for the system.
    """

    xc: str = "PBE"
    basis: str = "sto-3g"
    charge: int = 0
    spin: int = Field(0, ge=0, description="2S = N_alpha - N_beta; > 0 runs unrestricted")
    conv_tol: float = Field(1e-10, gt=0, description="Hartree")
    max_memory: float = Field(4000, gt=0, description="MB")
    grid_response: bool = Field(True, description="forces = -dE/dx exactly on the DFT grid")

    def build(self) -> Calculator:
        return PySCFCalculator(**self.model_dump())


@REFERENCES.register("ase")
class ASEOptions(Options):
    """Any ASE calculator by import path (``pkg.mod.Class`` or ``pkg.mod:Class``).

    ``options`` are passed to the constructor unchanged. Machine settings (executable,
    pseudopotential paths) belong to the worker's environment or ASE's config file, not here.
    """

    calculator: str = Field(min_length=1)
    options: dict[str, Any] = {}

    @model_validator(mode="after")
    def _importable(self) -> "ASEOptions":
        self.factory()  # fail at config time, not in a worker
        return self

    def factory(self) -> Any:
        module, sep, attr = self.calculator.partition(":")
        if not sep:
            module, _, attr = self.calculator.rpartition(".")
        if not module or not attr:
            raise ValueError(f"calculator {self.calculator!r} is not an import path like "
                             f"'ase.calculators.emt.EMT'")
        try:
            obj = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as err:
            raise ValueError(f"calculator {self.calculator!r} cannot be imported: {err}") from None
        if not callable(obj):
            raise ValueError(f"calculator {self.calculator!r} is not a class or factory")
        return obj

    def build(self) -> Calculator:
        return self.factory()(**self.options)


class ReferenceSpec(BaseModel):
    """A validated reference: ``kind`` (a registered name) and its options (a plain dict,
    defaults filled in, so the spec records exactly what computed the labels)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = "emt"
    options: dict[str, Any] = {}

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, data: Any) -> Any:
        if isinstance(data, dict) and set(data) - {"kind", "options"} or (
                isinstance(data, dict) and data.get("kind") == "ase" and "calculator" in data):
            return {"kind": data.get("kind", "emt"), "options": {k: v for k, v in data.items() if k != "kind"}}
        return data

    @model_validator(mode="after")
    def _check(self) -> "ReferenceSpec":
        object.__setattr__(self, "options", self.options_model().model_dump())
        return self

    def options_model(self) -> Options:
        try:
            cls = REFERENCES.get(self.kind)
        except RegistryError as err:
            raise ValueError(str(err)) from None
        try:
            return cls.model_validate(self.options)
        except ValidationError as err:
            msgs = "; ".join(".".join(map(str, e["loc"])) + (": " if e["loc"] else "")
                             + e["msg"].removeprefix("Value error, ") for e in err.errors())
            raise ValueError(f"reference {self.kind!r}: {msgs}") from None

    @property
    def name(self) -> str:
        """Short provenance label: the kind, or the import path for ``kind: ase``."""
        return f"ase:{self.options['calculator']}" if self.kind == "ase" else self.kind


def build_reference(spec: dict | ReferenceSpec) -> Calculator:
    """A fresh ASE calculator from a spec dict (``{"kind": "xtb", "accuracy": 0.1}``) or spec."""
    spec = spec if isinstance(spec, ReferenceSpec) else ReferenceSpec.model_validate(spec)
    return spec.options_model().build()


class PySCFCalculator(Calculator):
    """ASE calculator over PySCF SCF for molecules: energy (eV) and forces [n, 3] (eV/Å).

    PySCF works in Hartree and Bohr: energy E_h -> eV by ``Hartree``, the nuclear gradient
    dE/dR (E_h/Bohr) -> forces by ``-gradient * Hartree / Bohr``. Periodic input raises
    :class:`CalculatorSetupError` (use ``kind: ase`` with a plane-wave code for solids);
    an SCF that does not converge raises :class:`CalculationFailed`.
    """

    implemented_properties = ["energy", "free_energy", "forces"]
    default_parameters = dict(xc="PBE", basis="sto-3g", charge=0, spin=0, conv_tol=1e-10,
                              max_memory=4000, grid_response=True)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        a, p = self.atoms, self.parameters
        if a.pbc.any():
            raise CalculatorSetupError(f"PySCFCalculator handles molecules only, got pbc={a.pbc.tolist()}")
        from pyscf import dft, gto, scf

        mol = gto.M(atom=[(s, tuple(x)) for s, x in zip(a.get_chemical_symbols(), a.positions)],
                    unit="Angstrom", basis=p.basis, charge=p.charge, spin=p.spin, verbose=0,
                    max_memory=p.max_memory)
        hf = p.xc.upper() == "HF"
        if hf:
            mf = scf.RHF(mol) if p.spin == 0 else scf.UHF(mol)
        else:
            mf = dft.RKS(mol) if p.spin == 0 else dft.UKS(mol)
            mf.xc = p.xc
        mf.conv_tol = p.conv_tol
        energy = mf.kernel()
        if not mf.converged:
            raise CalculationFailed(f"PySCF SCF ({p.xc}/{p.basis}) did not converge")
        grad = mf.nuc_grad_method()
        if not hf:
            grad.grid_response = p.grid_response
        gradient = np.asarray(grad.kernel())  # [n, 3] Hartree/Bohr
        self.results["energy"] = self.results["free_energy"] = float(energy) * Hartree
        self.results["forces"] = -gradient * (Hartree / Bohr)


__all__ = ["REFERENCES", "ReferenceSpec", "Options", "build_reference", "PySCFCalculator",
           "EMTOptions", "LJOptions", "XTBOptions", "PySCFOptions", "ASEOptions"]
