"""The GP in the batch loop: a Trainer that fits one Gaussian process to the labelled frames
and an Explorer that runs MD on its mean and scores each frame by its predicted force std.

The GP's own posterior std replaces the committee deviation: a frame's deviation is
``max_i sqrt(sum_xyz std_i,x²)`` (eV/Å), the largest norm over atoms of the per-component
epistemic std — the analogue of DP-GEN's ``max_devi_f`` (no committee, so ``n_models=1``).
Both components are module-level frozen dataclasses of plain settings (picklable) and pure
functions of their arguments, as :mod:`conlearn.core.protocols` asks.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ...core.records import Candidate, Condition, ExploredBatch, TaskContext, TrainResult
from ..md import langevin_md
from ..frames import atoms_to_frame, frame_stress, frame_to_atoms
from .calculator import GPCalculator, MappedGPCalculator
from .environment import Environments
from .gp import GaussianProcess
from .io import load, model_from_dict, save_gp, save_mapped
from .kernels import NBodyKernel
from .mapping import MappedGP, map_gp


def _frame_rng(frame: dict) -> np.random.Generator:
    """A generator seeded by the frame's positions: the same atoms are picked from a frame
    in every iteration and by every worker."""
    digest = hashlib.blake2b(np.ascontiguousarray(frame["positions"]).tobytes(), digest_size=8).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


def pick_atoms(frame: dict, n: int | None) -> np.ndarray:
    """Sorted indices of the atoms whose forces are labels: ``n`` at random (fixed per frame),
    all when ``n`` is None or not smaller than the frame."""
    n_atoms = len(frame["numbers"])
    if n is None or n >= n_atoms:
        return np.arange(n_atoms)
    return np.sort(_frame_rng(frame).choice(n_atoms, size=n, replace=False))


@dataclass(frozen=True)
class GPTrainer:
    """Trainer protocol over :class:`~conlearn.atoms.gp.gp.GaussianProcess`.

    kernels: ``(body, sigma eV, length Å)`` per n-body term (initial hyperparameters).
    r_cut2, r_cut3: Å.  noise: eV/Å (initial force noise).  energy_noise: eV.
    energy_labels: also train on every frame's energy (all its atoms' environments).
    stress_labels: also train on every periodic frame's stress (-virial / volume, eV/Å^3).
    stress_noise: eV/Å^3.
    atoms_per_frame: force labels per frame (see :func:`pick_atoms`); None: all atoms.
    optimize_at, optimize_every: hyperparameters are refitted in the trainings numbered
        ``optimize_at`` (1 = iteration 0) and every ``optimize_every``-th; otherwise the
        previous model's are kept.  maxiter, noise_min (eV/Å), length_bounds (Å): the fit.
    mapping: also write the spline map of the mean (``mapped.npz``) for fast MD;
        spacing2/3 in units of the length scale, r_min Å (None: 0.75 x shortest edge).

    ``train`` rebuilds the GP from all ``data`` (the hyperparameters of ``previous`` as the
    start), so the result depends only on its arguments. Model files: ``gp.npz`` and, when
    mapping, ``mapped.npz`` (:mod:`conlearn.atoms.gp.io`; a run of an earlier version resumes
    from its ``gp.pkl``/``mapped.pkl``, read as plain data by ``gp.io.load``).
    """

    kernels: tuple[tuple[int, float, float], ...] = ((2, 0.5, 1.0), (3, 0.05, 1.0))
    r_cut2: float = 5.0
    r_cut3: float = 3.6
    cutoff: str = "quadratic"
    noise: float = 0.02
    energy_noise: float = 0.01
    energy_labels: bool = False
    stress_labels: bool = False
    stress_noise: float = 1e-3
    atoms_per_frame: int | None = 8
    optimize_at: tuple[int, ...] = (1, 2, 3)
    optimize_every: int | None = None
    maxiter: int = 30
    noise_min: float = 0.005
    length_bounds: tuple[float, float] = (0.3, 5.0)
    mapping: bool = True
    spacing2: float = 0.05
    spacing3: float = 0.12
    r_min: float | None = None

    @classmethod
    def from_spec(cls, spec: Any) -> "GPTrainer":
        """From a GP spec (``conlearn.atoms.dpgen.config.BatchGPSpec`` or the on-the-fly
        ``GPSpec``, read by attribute)."""
        o, m = spec.optimize, spec.mapping
        return cls(kernels=tuple((k.body, k.sigma, k.length) for k in spec.kernels),
                   r_cut2=spec.r_cut2, r_cut3=spec.r_cut3, cutoff=spec.cutoff, noise=spec.noise,
                   energy_noise=spec.energy_noise, energy_labels=spec.energy_labels,
                   stress_labels=getattr(spec, "stress_labels", False),
                   stress_noise=getattr(spec, "stress_noise", 1e-3),
                   atoms_per_frame=getattr(spec, "atoms_per_frame", None),
                   optimize_at=tuple(o.at_calls), optimize_every=o.every, maxiter=o.maxiter,
                   noise_min=o.noise_min, length_bounds=tuple(o.length_bounds),
                   mapping=m.enabled, spacing2=m.spacing2, spacing3=m.spacing3, r_min=m.r_min)

    def new_gp(self, previous: TrainResult | None) -> GaussianProcess:
        """An empty GP; with ``previous``, at that model's hyperparameters."""
        gp = GaussianProcess([NBodyKernel(b, s, ell) for b, s, ell in self.kernels],
                             self.r_cut2, self.r_cut3, self.cutoff, self.noise, self.energy_noise,
                             stress_noise=self.stress_noise)
        if previous is not None:  # its metrics hold them by name; else read its file
            names, m = gp.hyper_names, previous.metrics
            theta = ([m[n] for n in names] if all(n in m for n in names)
                     else model_from_dict(load(previous.model_paths[0])).hyperparameters)
            gp.set_hyperparameters(theta, refactorize=False)
        return gp

    def refit_due(self, iteration: int) -> bool:
        n = iteration + 1
        return n in self.optimize_at or bool(self.optimize_every and n % self.optimize_every == 0)

    def fit(self, data: Sequence[dict], previous: TrainResult | None, iteration: int) -> GaussianProcess:
        """The GP on ``data`` (labelled frames, [n_atoms, 3] eV/Å forces, eV energies)."""
        gp = self.new_gp(previous)
        envs, forces, whole, energies, cells, stresses = [], [], [], [], [], []
        for frame in data:
            atoms = frame_to_atoms(frame)
            idx = pick_atoms(frame, self.atoms_per_frame)
            envs.append(gp.environments(atoms, idx))
            forces.append(np.asarray(frame["forces"], dtype=np.float64)[idx])
            if self.energy_labels:
                whole.append(gp.environments(atoms))
                energies.append(float(frame["energy"]))
            stress = frame_stress(frame) if self.stress_labels else None
            if stress is not None:
                cells.append(gp.environments(atoms))
                stresses.append(stress)
        gp.add(Environments.concat(envs), forces=np.concatenate(forces))
        if whole:
            gp.add(Environments.concat(whole), energy=np.array(energies))
        if cells:
            gp.add(Environments.concat(cells), stress=np.stack(stresses))
        if self.refit_due(iteration):
            gp.optimize(noise_min=self.noise_min, length_bounds=self.length_bounds, maxiter=self.maxiter)
        return gp

    def train(self, data: Sequence[Any], previous: TrainResult | None, ctx: TaskContext) -> TrainResult:
        if not data:
            raise ValueError("GPTrainer: no labelled frames to train on")
        t0 = time.perf_counter()
        gp = self.fit(list(data), previous, ctx.iteration)
        out = Path(ctx.workdir)
        paths = [out / "gp.npz"]
        save_gp(gp, paths[0])
        if self.mapping:
            spacing = {2: self.spacing2, 3: self.spacing3}
            paths.append(out / "mapped.npz")
            save_mapped(map_gp(gp, spacing, self.r_min), paths[1])
        metrics = {"n_frames": float(len(data)), "n_labels": float(gp.n_labels),
                   "refit": float(self.refit_due(ctx.iteration)), "fit_s": time.perf_counter() - t0,
                   **dict(zip(gp.hyper_names, map(float, gp.hyperparameters)))}
        return TrainResult(member=ctx.index, model_paths=tuple(str(p) for p in paths), metrics=metrics)


def gp_deviation(gp: GaussianProcess, atoms) -> tuple[float, float, float, float]:
    """``(max, mean, min)`` over atoms of ``sqrt(sum_xyz std²)`` and the largest single
    component std, all eV/Å (exact posterior std, label noise excluded)."""
    std = gp.force_std(gp.environments(atoms))
    norm = np.sqrt((std**2).sum(axis=1))
    return float(norm.max()), float(norm.mean()), float(norm.min()), float(std.max())


@dataclass(frozen=True)
class GPExplorer:
    """Explorer protocol: Langevin MD (:func:`~conlearn.atoms.md.langevin_md`: NVT,
    or NPT with a hydrostatic barostat on the GP's stress when the condition has a pressure)
    on the GP mean — the spline map when the trainer wrote one, else the exact mean — and
    every ``trj_freq`` steps a frame recorded with its deviation (:func:`gp_deviation`).

    Condition params as :class:`~conlearn.atoms.dpgen.explorer.MDExplorer`'s (structure,
    temperature K, pressure GPa or None, n_steps, dt_fs, trj_freq). Uses committee member 0
    only. A trajectory stops early ("blew up") when the deviation exceeds ``stop_devi_f`` eV/Å.
    Writes ``traj.extxyz``, ``model_devi.out`` (step, max/avg/min deviation, NaN virial
    column, as DP-GEN's) and ``meta.json`` to ``ctx.workdir``.
    """

    stop_devi_f: float = 2.0
    write_trajectory: bool = True

    def explore(self, models: Sequence[TrainResult], condition: Condition, ctx: TaskContext) -> ExploredBatch:
        p = condition.params
        paths = models[0].model_paths
        gp = model_from_dict(load(paths[0]))  # this run's own files: plain data, never code
        mapped = MappedGP.from_dict(load(paths[1])) if len(paths) > 1 else None
        atoms = frame_to_atoms(p["structure"])
        atoms.calc = MappedGPCalculator(mapped, gp) if mapped is not None else GPCalculator(gp, std=False)
        dyn, _ = langevin_md(atoms, p, np.random.default_rng(ctx.seed))
        trj_freq, n_steps = int(p.get("trj_freq", 10)), int(p["n_steps"])
        candidates, traj, blew_up = [], [], None
        t0 = time.perf_counter()

        def record() -> None:
            nonlocal blew_up
            hi, avg, lo, comp = gp_deviation(gp, atoms)
            devi = {"max_devi_f": hi, "avg_devi_f": avg, "min_devi_f": lo, "max_std_component": comp}
            frame = atoms_to_frame(atoms, meta={"condition": condition.name, "step": int(dyn.nsteps),
                                                "temperature": float(atoms.get_temperature()), **devi})
            candidates.append(Candidate(deviation=hi, payload=frame, meta=dict(frame["meta"])))
            traj.append(atoms.copy())
            if not np.isfinite(hi) or hi > self.stop_devi_f:
                blew_up = f"max_devi_f {hi:.3g} eV/Å > {self.stop_devi_f} at step {dyn.nsteps}"

        record()
        while dyn.nsteps < n_steps and blew_up is None:
            dyn.run(min(trj_freq, n_steps - dyn.nsteps))
            record()
        meta = {"n_steps": int(dyn.nsteps), "n_frames": len(candidates), "ensemble": "nvt",
                "wall_s": time.perf_counter() - t0, "blew_up": blew_up,
                "exact_mean_frames": getattr(atoms.calc, "n_exact", 0)}
        if self.write_trajectory and traj:
            self._write(Path(ctx.workdir), traj, candidates, meta)
        return ExploredBatch(condition=condition, candidates=tuple(candidates), meta=meta)

    @staticmethod
    def _write(out: Path, traj: list, candidates: list, meta: dict) -> None:
        from ase.io import write

        write(out / "traj.extxyz", traj)
        devi = np.array([[c.meta["step"], c.meta["max_devi_f"], c.meta["avg_devi_f"], c.meta["min_devi_f"],
                          np.nan] for c in candidates])
        np.savetxt(out / "model_devi.out", devi, fmt="%12.6g",
                   header="step max_devi_f avg_devi_f min_devi_f max_devi_v  (eV/Å: GP force std norm)")
        (out / "meta.json").write_text(json.dumps(meta))
        meta["trajectory"] = str(out / "traj.extxyz")


__all__ = ["GPTrainer", "GPExplorer", "gp_deviation", "pick_atoms"]
