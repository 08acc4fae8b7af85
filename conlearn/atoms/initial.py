"""Initial structures and DP-GEN's ``init_bulk`` data: strained and rattled copies.

Structure specs (one dict each in the run config's ``structures`` list)::

    {"kind": "bulk", "element": "Al", "lattice": "fcc", "a": 4.05, "repeat": [2, 2, 2]}
    {"kind": "surface", "element": "Al", "facet": "fcc111", "size": [2, 2, 4], "vacuum": 6.0}
    {"kind": "file", "path": "POSCAR", "index": -1}

Every spec takes an optional ``name``; otherwise names are derived from the spec
("fcc-Al-2x2x2", "fcc111-Al-2x2x4", the file's stem) and must be unique, since
exploration stages refer to structures by name. Lengths are in Å.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Iterable, Literal, Optional, Union

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers
from ase.neighborlist import neighbor_list
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from ..configfile import strict_validate, unknown_keys
from .frames import atoms_to_frame

Triple = tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Optional[str] = Field(None, min_length=1, description="overrides the derived name")

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        unknown = unknown_keys(cls, data)
        if unknown:
            raise ValueError(f"unknown key(s) {unknown} in a {data.get('kind')!r} structure; "
                             f"allowed: {sorted(cls.model_fields)}")
        return data


class _Element(_Spec):
    element: str

    @field_validator("element")
    @classmethod
    def _element(cls, v: str) -> str:
        if v not in atomic_numbers:
            raise ValueError(f"unknown element {v!r}")
        return v


class BulkSpec(_Element):
    """A bulk crystal from :func:`ase.build.bulk`, repeated ``repeat`` times.

    a, c: lattice constants (Å); ``a`` defaults to ASE's reference state of the element,
    which exists only for its own lattice (e.g. fcc Al); ``c`` is for hcp (default ideal c/a).
    cubic: the conventional cubic cell (fcc 4, bcc 2, diamond 8 atoms) instead of primitive.
    """

    kind: Literal["bulk"] = "bulk"
    lattice: Literal["fcc", "hcp", "bcc", "sc", "diamond"]
    a: Optional[float] = Field(None, gt=0)
    c: Optional[float] = Field(None, gt=0)
    repeat: Triple = (1, 1, 1)
    cubic: bool = False

    def default_name(self) -> str:
        return f"{self.lattice}-{self.element}-{'x'.join(map(str, self.repeat))}" + ("-cubic" if self.cubic else "")

    def build(self, root: Path | None = None) -> list[Atoms]:
        from ase.build import bulk

        if self.cubic and self.lattice == "hcp":
            raise ValueError(f"structure {self.default_name()}: hcp has no cubic cell; set cubic: false")
        try:
            atoms = bulk(self.element, self.lattice, a=self.a, c=self.c, cubic=self.cubic)
        except ValueError as err:
            raise ValueError(f"structure {self.default_name()}: {err} (give 'a' in Å)") from None
        return [atoms.repeat(self.repeat)]


class SurfaceSpec(_Element):
    """A slab from ``ase.build.<facet>``: ``size`` = (in-plane a, in-plane b, layers),
    ``vacuum`` Å on each side along z, periodic in x and y only.  ``adatom``: one more atom
    of the element on the top layer at that site (``ontop``, ``bridge``, ``hollow``),
    ``adatom_height`` Å above it: low-coordination environments for the initial data."""

    kind: Literal["surface"] = "surface"
    facet: Literal["fcc100", "fcc111", "fcc110", "bcc100", "bcc110", "hcp0001"]
    size: Triple = (2, 2, 4)
    vacuum: float = Field(6.0, gt=0, description="Å on each side")
    a: Optional[float] = Field(None, gt=0)
    c: Optional[float] = Field(None, gt=0, description="Å, hcp0001 only")
    adatom: Optional[Literal["ontop", "bridge", "hollow"]] = None
    adatom_height: float = Field(2.0, gt=0, description="Å above the top layer")

    def default_name(self) -> str:
        tail = f"-adatom-{self.adatom}" if self.adatom else ""
        return f"{self.facet}-{self.element}-{'x'.join(map(str, self.size))}{tail}"

    def build(self, root: Path | None = None) -> list[Atoms]:
        import ase.build

        kw = {"c": self.c} if self.facet == "hcp0001" else {}
        if self.c is not None and not kw:
            raise ValueError(f"structure {self.default_name()}: 'c' is only for hcp0001")
        try:
            atoms = getattr(ase.build, self.facet)(self.element, size=self.size, a=self.a,
                                                   vacuum=self.vacuum, **kw)
        except ValueError as err:
            raise ValueError(f"structure {self.default_name()}: {err} (give 'a' in Å)") from None
        if self.adatom:
            try:
                ase.build.add_adsorbate(atoms, self.element, self.adatom_height, self.adatom)
            except (KeyError, TypeError):
                raise ValueError(f"structure {self.default_name()}: facet {self.facet} has no "
                                 f"'{self.adatom}' site") from None
        atoms.pbc = (True, True, False)
        return [atoms]


class FileSpec(_Spec):
    """Structure(s) read by :func:`ase.io.read`; ``index`` as there (default: last image;
    a slice string such as ":" gives several structures, named ``<name>-<k>``)."""

    kind: Literal["file"] = "file"
    path: str
    index: Union[int, str] = -1
    format: Optional[str] = None

    def default_name(self) -> str:
        return Path(self.path).stem or Path(self.path).name

    def build(self, root: Path | None = None) -> list[Atoms]:
        from ase.io import read

        path = Path(self.path).expanduser()
        if root is not None and not path.is_absolute():
            path = Path(root) / path
        if not path.is_file():
            raise FileNotFoundError(f"structure file {str(path)!r} does not exist")
        images = read(path, index=self.index, format=self.format)
        return list(images) if isinstance(images, list) else [images]


StructureSpec = Annotated[Union[BulkSpec, SurfaceSpec, FileSpec], Field(discriminator="kind")]
_ADAPTER: TypeAdapter = TypeAdapter(StructureSpec)


def parse_structure(spec: dict | BulkSpec | SurfaceSpec | FileSpec) -> BulkSpec | SurfaceSpec | FileSpec:
    """Validate one structure spec (unknown kind or key -> error naming the allowed ones)."""
    return spec if isinstance(spec, BaseModel) else strict_validate(_ADAPTER, spec)  # no quoted numbers


def resolve_structure_files(specs: list[tuple[tuple, Any]], base: Path, source: str, lines: dict) -> None:
    """In raw config data (before validation): make every ``kind: file`` spec's relative
    ``path`` absolute against ``base`` (the config file's directory) and check that the file
    exists. ``specs``: ``(key in the config, spec dict)`` pairs, the key for the error's line."""
    from ..configfile import ConfigError

    for key, spec in specs:
        if not (isinstance(spec, dict) and spec.get("kind") == "file" and isinstance(spec.get("path"), str)):
            continue  # validation will name what is wrong
        p = Path(spec["path"]).expanduser()
        p = p if p.is_absolute() else Path(base) / p
        if not p.is_file():
            line = lines.get(key + ("path",)) or lines.get(key)
            dotted = ".".join(str(k) for k in key + ("path",))
            raise ConfigError(f"invalid config:\n  {source}:{line}: {dotted}: structure file {p} does not exist")
        spec["path"] = str(p)


def build_structures(specs: Iterable[dict | BaseModel], root: str | Path | None = None) -> list[tuple[str, Atoms]]:
    """``(name, Atoms)`` for every spec, in order; relative file paths are read from ``root``."""
    out: list[tuple[str, Atoms]] = []
    for raw in specs:
        spec = parse_structure(raw)
        images = spec.build(Path(root) if root is not None else None)
        base = spec.name or spec.default_name()
        named = [(base if len(images) == 1 else f"{base}-{k}", a) for k, a in enumerate(images)]
        for name, atoms in named:
            check_no_overlap(atoms, f"structure {name!r}" + (f" ({spec.path})" if isinstance(spec, FileSpec) else ""))
        out += named
    names = [n for n, _ in out]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise ValueError(f"duplicate structure name(s) {dups}; give each spec a distinct 'name'")
    return out


OVERLAP = 0.5  # atoms closer than this fraction of their covalent radii sum overlap


def check_no_overlap(atoms: Atoms, what: str) -> None:
    """Raise ValueError naming ``what`` and the closest offending pair if two atoms (periodic
    images included) are closer than ``OVERLAP`` x the sum of their covalent radii: a
    structure file in the wrong units, duplicated atoms, a bad lattice constant."""
    from ase.data import covalent_radii

    if len(atoms) == 0:
        return
    radii = covalent_radii[atoms.numbers]
    i, j, d = neighbor_list("ijd", atoms, OVERLAP * 2 * float(radii.max()))
    if len(d) == 0:
        return
    limit = OVERLAP * (radii[i] + radii[j])
    bad = np.flatnonzero(d < limit)
    if len(bad):
        k = bad[np.argmin(d[bad] / limit[bad])]
        sym = atoms.get_chemical_symbols()
        raise ValueError(f"{what}: atoms {i[k]} ({sym[i[k]]}) and {j[k]} ({sym[j[k]]}) overlap, {d[k]:.3f} Å "
                         f"apart (< {OVERLAP} x their covalent radii sum, {limit[k]:.2f} Å); "
                         f"{len(bad) // 2 or 1} such pair(s). Wrong units, duplicated atoms or a bad lattice constant?")


def min_distance(atoms: Atoms, upto: float = 32.0) -> float:
    """Smallest interatomic distance (Å), periodic images included; inf if none within ``upto``."""
    cutoff = 2.0
    while cutoff <= upto:
        d = neighbor_list("d", atoms, cutoff)
        if len(d):
            return float(d.min())
        cutoff *= 2
    return float("inf")


def _plane_projector(cell: np.ndarray, pbc: np.ndarray) -> np.ndarray:
    """[3, 3] projector onto the span of the periodic lattice vectors (0 when none)."""
    vecs = np.asarray(cell)[np.asarray(pbc, dtype=bool)]
    if len(vecs) == 0:
        return np.zeros((3, 3))
    q, _ = np.linalg.qr(vecs.T)
    proj = q @ q.T
    proj[np.abs(proj) < 1e-12] = 0.0  # exact zeros: a slab's normal vector stays bit-identical
    return proj


def perturbed_frames(atoms: Atoms, n: int, cell_strain: float = 0.03, atom_displacement: float = 0.1,
                     seed: int = 0, meta: dict | None = None, max_tries: int = 1000) -> list[dict]:
    """``n`` strained and rattled frames of ``atoms`` (DP-GEN's init_bulk / dpdata perturb).

    Cell: ``cell @ (I + ε)`` with ε symmetric, diagonal entries uniform in ±cell_strain,
    off-diagonal in ±cell_strain/2, restricted to the periodic directions (a slab keeps its
    normal vector and vacuum; a molecule is not strained); positions follow affinely.
    Atoms: each displaced uniformly within a ball of radius ``atom_displacement`` (Å).
    A draw that brings two atoms closer than 0.6 × the smallest original distance is
    redrawn. Deterministic in ``seed``; every frame's meta holds ``perturbation`` (its
    number) and ``strain`` ([3, 3], ε), plus ``meta``.
    """
    rng = np.random.default_rng(seed)
    pbc = np.asarray(atoms.pbc, dtype=bool)
    proj = _plane_projector(atoms.cell.array, pbc)
    floor = 0.6 * min_distance(atoms)
    frames = []
    for i in range(n):
        for _ in range(max_tries):
            e = rng.uniform(-cell_strain, cell_strain, size=6)
            eps = np.array([[e[0], e[5] / 2, e[4] / 2], [e[5] / 2, e[1], e[3] / 2], [e[4] / 2, e[3] / 2, e[2]]])
            eps = proj @ eps @ proj
            deform = np.eye(3) + eps
            direction = rng.normal(size=(len(atoms), 3))
            direction /= np.linalg.norm(direction, axis=1, keepdims=True)
            radius = atom_displacement * rng.uniform(size=(len(atoms), 1)) ** (1 / 3)
            new = atoms.copy()
            new.calc = None
            new.set_cell(atoms.cell.array @ deform, scale_atoms=False)
            new.positions = atoms.positions @ deform + direction * radius
            if not np.isfinite(floor) or len(neighbor_list("d", new, floor)) == 0:
                break
        else:
            raise ValueError(f"no perturbation of {atoms.get_chemical_formula()} in {max_tries} draws keeps "
                             f"atoms {floor:.3f} Å apart; lower atom_displacement/cell_strain")
        frames.append(atoms_to_frame(new, {**(meta or {}), "perturbation": i, "strain": eps.tolist()}))
    return frames


__all__ = ["BulkSpec", "SurfaceSpec", "FileSpec", "StructureSpec", "parse_structure", "build_structures",
           "check_no_overlap", "min_distance", "perturbed_frames", "resolve_structure_files"]
