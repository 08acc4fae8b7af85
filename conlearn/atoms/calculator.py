"""The ASE adapter: one Calculator over one DeepPot or a committee of them.

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
from .deeppot.model import DeepPot, load_model, types_for, check_committee
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
    """ASE calculator over ``models`` (one DeepPot or a list: a committee)."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, models: DeepPot | list[DeepPot], **kwargs):
        super().__init__(**kwargs)
        self.models = list(models) if isinstance(models, (list, tuple)) else [models]
        tm = {tuple(m.type_map) for m in self.models}
        if len(tm) != 1:
            raise ValueError(f"committee models disagree on type_map: {sorted(tm)}")
        self.type_map = self.models[0].type_map
        # members sharing one architecture are evaluated as one batched model
        self.stacked = StackedCommittee(self.models) if stackable(self.models) else None

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
            r = {"energy": float(energy.mean()), "free_energy": float(energy.mean()), "forces": forces.mean(0)}
            if stress and np.all(a.pbc):
                r["stress"] = _voigt(virial_to_stress(virial.mean(0), a.get_volume()))
            r["virial"] = virial.mean(0)
            if len(self.models) > 1:
                r.update(committee_deviation(forces, virial, len(a)))
                r["energy_std"] = float(energy.std())
            results.append(r)
        return results

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
        self.results = self.predict([self.atoms])[0]


def load_calculator(paths: str | Path | list, device: str | None = None) -> DeepPotCalculator:
    """An ASE calculator from one saved model (``model.pt``) or several (a committee).

    ``device`` defaults to CUDA when available, else CPU.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = list(paths)
    if not paths:
        raise ValueError("no model given")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    models = [load_model(p, device) for p in paths]
    check_committee(models, paths)
    return DeepPotCalculator(models)
