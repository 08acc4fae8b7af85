"""The ASE adapter: one Calculator over one DeepPot or a committee of them, and
:func:`load_calculator` for every conlearn model file (DeepPot, compressed, GP, mapped GP).

Results: ``energy`` (eV), ``forces`` ``[n, 3]`` (eV/Å), ``stress`` (eV/Å³, Voigt, periodic
cells only) — committee means — and for a committee DP-GEN's deviations:
``max_devi_f``/``avg_devi_f``/``min_devi_f`` over atoms of ``sqrt(<|f_i - f̄_i|²>)`` (eV/Å) and
``max_devi_v``/``avg_devi_v``/``min_devi_v`` over the 9 components of the virial's standard
deviation divided by the number of atoms (eV/atom).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes

from .deeppot.committee import StackedCommittee, stackable
from .deeppot.model import DeepPot, types_for, check_committee
from .stress import virial_to_stress


def _voigt(s: np.ndarray) -> np.ndarray:
    return np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])


def committee_deviation(forces: np.ndarray, virials: np.ndarray | None, n_atoms: int) -> dict:
    """DP-GEN deviations from committee predictions ``forces [M, n, 3]``, ``virials [M, 3, 3]``."""
    out = {}
    devi_f = np.sqrt(((forces - forces.mean(0)) ** 2).sum(-1).mean(0))  # [n]
    out.update(max_devi_f=float(devi_f.max()), avg_devi_f=float(devi_f.mean()), min_devi_f=float(devi_f.min()))
    if virials is not None:
        devi_v = virials.reshape(len(virials), 9).std(0) / n_atoms
        out.update(max_devi_v=float(devi_v.max()), avg_devi_v=float(devi_v.mean()), min_devi_v=float(devi_v.min()))
    return out


class DeepPotCalculator(Calculator):
    """ASE calculator over ``models`` (one DeepPot or a list: a committee).

    ``fast``: evaluate successive calls on one structure (MD: same atoms, moving positions)
    with a :class:`~.deeppot.fast.FastEvaluator` (Verlet list kept on the model's device,
    fixed shapes, the step captured as a CUDA graph on a GPU); rebuilt when the atoms, their
    elements or the periodicity change, given the new cell when it changes. Default (None):
    on when the models are on a GPU, where it removes the host work of every step; on a CPU the
    normal path is as fast (the skin's extra pairs cost what the saved neighbour search does).
    ``skin``: the Verlet skin, Å. Results are the normal path's to round-off.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, models: DeepPot | list[DeepPot], *, fast: bool | None = None,
                 skin: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.models = list(models) if isinstance(models, (list, tuple)) else [models]
        tm = {tuple(m.type_map) for m in self.models}
        if len(tm) != 1:
            raise ValueError(f"committee models disagree on type_map: {sorted(tm)}")
        self.type_map = self.models[0].type_map
        # members sharing one architecture are evaluated as one batched model
        self.stacked = StackedCommittee(self.models) if stackable(self.models) else None
        self.fast = self.models[0].device.type == "cuda" if fast is None else bool(fast)
        if skin <= 0:
            raise ValueError(f"skin must be positive (Å), got {skin}")
        self.skin = float(skin)
        self._fast: tuple | None = None  # (key of the structure, FastEvaluator)

    def predict(self, atoms_list, *, stress: bool = True) -> list[dict]:
        """Batched evaluation of many structures (same results as one by one)."""
        frames = []
        for k, a in enumerate(atoms_list):
            pbc = np.asarray(a.pbc, dtype=bool)
            frames.append((a.positions, a.cell.array if pbc.any() else None, pbc,
                           types_for(self.type_map, a.get_chemical_symbols(), f"structure {k}")))
        if self.stacked is not None:
            out = self.stacked.evaluate(self.models[0].graph(frames), virial=True)
            arrays = {k: v.detach().cpu().numpy().astype(np.float64) for k, v in out.items()}
            per_model = [{k: v[m] for k, v in arrays.items()} for m in range(len(self.models))]
        else:
            per_model = self._one_by_one(frames)
        n_per = np.array([len(f[3]) for f in frames])
        splits = np.cumsum(n_per)[:-1]
        results = []
        for k, a in enumerate(atoms_list):
            energy = np.array([p["energy"][k] for p in per_model])
            forces = np.stack([np.split(p["forces"], splits)[k] for p in per_model])
            virial = np.stack([p["virial"][k] for p in per_model])
            results.append(self._results(a, energy, forces, virial, stress))
        return results

    def _results(self, atoms, energy: np.ndarray, forces: np.ndarray, virial: np.ndarray,
                 stress: bool) -> dict:
        """Committee means (and deviations) of ``energy [M]``, ``forces [M, n, 3]``, ``virial [M, 3, 3]``."""
        r = {"energy": float(energy.mean()), "free_energy": float(energy.mean()), "forces": forces.mean(0)}
        if stress and np.all(atoms.pbc):
            r["stress"] = _voigt(virial_to_stress(virial.mean(0), atoms.get_volume()))
        r["virial"] = virial.mean(0)
        if len(self.models) > 1:
            r.update(committee_deviation(forces, virial, len(atoms)))
            r["energy_std"] = float(energy.std())
        return r

    def _fast_results(self, atoms) -> dict:
        """One structure through the (cached) FastEvaluator."""
        from .deeppot.fast import FastEvaluator

        pbc = np.asarray(atoms.pbc, dtype=bool)
        key = (atoms.numbers.tobytes(), pbc.tobytes())
        cell = atoms.cell.array if pbc.any() else None
        if self._fast is None or self._fast[0] != key:
            types = types_for(self.type_map, atoms.get_chemical_symbols(), "the structure")
            self._fast = (key, FastEvaluator(self.models, types, cell, pbc, skin=self.skin))
        out = self._fast[1].compute(atoms.positions, cell, virial=True)
        arrays = {k: v.detach().cpu().numpy().astype(np.float64) for k, v in out.items()}
        return self._results(atoms, arrays["energy"], arrays["forces"], arrays["virial"], True)

    def _one_by_one(self, frames) -> list[dict]:
        per_model, graphs = [], {}
        for m in self.models:
            key = (m.spec.rcut, tuple(m.spec.sel), m.dtype, str(m.device))
            if key not in graphs:
                graphs[key] = m.graph(frames)
            out = m.evaluate(graphs[key], virial=True)
            per_model.append({k: v.detach().cpu().numpy().astype(np.float64) for k, v in out.items()})
        return per_model

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if "stress" in properties and not np.all(self.atoms.pbc):
            raise PropertyNotImplementedError("stress needs a cell periodic in all three directions")
        self.results = self._fast_results(self.atoms) if self.fast else self.predict([self.atoms])[0]


def elements(model) -> list[str]:
    """Chemical symbols a model knows, sorted: a DeepPot's type map; the species of a GP's
    training environments; those of a mapped GP's tables."""
    from ase.data import chemical_symbols

    if hasattr(model, "type_map"):
        return sorted(model.type_map)
    if hasattr(model, "tables"):
        z = {int(s) for t in model.tables.values() for key in t for s in key}
    else:
        z = {int(n) for e in model._sets.values() for n in np.unique(e.numbers)}
    return sorted(chemical_symbols[n] for n in z)


class CommitteeCalculator(Calculator):
    """Committee of ASE calculators of any kinds (DeepPot, GP, mapped GP): the means of
    ``energy`` (eV), ``forces`` ``[n, 3]`` (eV/Å) and, when every member gives it, ``stress``
    (eV/Å³, Voigt); DP-GEN's force deviations (``max_devi_f``, ... eV/Å, see
    :func:`committee_deviation`) and ``energy_std`` (eV)."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, calcs: list[Calculator], **kwargs):
        super().__init__(**kwargs)
        self.calcs = list(calcs)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if "stress" in properties and not np.all(self.atoms.pbc):
            raise PropertyNotImplementedError("stress needs a cell periodic in all three directions")
        energy, forces, stress = [], [], []
        for calc in self.calcs:
            a = self.atoms.copy()
            a.calc = calc
            energy.append(a.get_potential_energy())
            forces.append(a.get_forces())
            if "stress" in properties:
                stress.append(a.get_stress())
        energy, forces = np.array(energy), np.stack(forces)
        self.results = {"energy": float(energy.mean()), "free_energy": float(energy.mean()),
                        "forces": forces.mean(0), "energy_std": float(energy.std()),
                        **committee_deviation(forces, None, len(self.atoms))}
        if stress:
            self.results["stress"] = np.mean(stress, axis=0)


def calculator_for(model, std: bool = False) -> Calculator:
    """The ASE calculator over one loaded model of any kind (see ``modelfile.build``)."""
    from .gp.calculator import GPCalculator, MappedGPCalculator
    from .gp.mapping import MappedGP

    if isinstance(model, DeepPot):
        return DeepPotCalculator(model)
    if isinstance(model, MappedGP):
        return MappedGPCalculator(model)
    return GPCalculator(model, std=std)


def load_calculator(paths: str | Path | list, device: str | None = None,
                    trust: bool = False) -> Calculator:
    """An ASE calculator from one saved model or several (a committee), of any kind.

    Each file's header names its kind (:mod:`.modelfile`): a DeepPot or compressed DeepPot
    (``model.pt``) gives a :class:`DeepPotCalculator` on ``device`` (default CUDA when
    available, else CPU); a full or sparse GP (``gp.npz``, e.g. ``RUN/model/gp.npz`` of
    ``conlearn otf``) a ``GPCalculator`` with the force std; a mapped GP (``mapped.npz``) a
    ``MappedGPCalculator`` (no fallback: frames must lie inside its tables). A committee of
    DeepPots must share type_map, rcut and sel; one that mixes kinds a
    :class:`CommitteeCalculator` whose members know the same elements. Files of earlier
    versions that need pickle load only with ``trust=True`` (with a warning to convert them).
    """
    from .modelfile import build, read

    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = list(paths)
    if not paths:
        raise ValueError("no model given")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    models = []
    for p in paths:
        m = build(*read(p, trust), p)
        models.append(m.to(device).eval() if isinstance(m, DeepPot) else m)
    if all(isinstance(m, DeepPot) for m in models):
        check_committee(models, paths)
        return DeepPotCalculator(models)
    for m, p in zip(models[1:], paths[1:]):
        a, b = elements(models[0]), elements(m)
        if a != b:
            raise ValueError(f"models {paths[0]} and {p} differ in their type maps (elements {a} vs "
                             f"{b}); a committee needs one; use them one at a time")
    if len(models) == 1:
        return calculator_for(models[0], std=True)
    return CommitteeCalculator([calculator_for(m) for m in models])
