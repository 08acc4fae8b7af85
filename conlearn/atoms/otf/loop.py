"""The on-the-fly loop: Langevin MD on the GP mean; the reference when the GP is unsure.

Every ``uncertainty.check_every`` steps (and whenever a frame leaves the spline map) the
exact posterior std of every force component is computed; when its maximum exceeds the
threshold (eV/Å) the reference labels the frame, the most uncertain atoms' forces (and the
frame energy) join the training set, the hyperparameters are refitted when the schedule
says so, the mean is re-mapped and MD goes on from the same positions.  The first frame
is always labelled.  After ``uncertainty.audit.every`` steps without a call the next check
labels the frame anyway (an audit): its out-of-sample errors set a floor under the force
noise (:func:`conlearn.atoms.otf.model.calibrated_noise`).  Same config and seed -> the
same trajectory and the same calls; a killed run resumes from its checkpoint
(:mod:`conlearn.atoms.otf.state`).  With ``md.pressure_GPa`` the run is NPT (ASE's
LangevinBAOAB, hydrostatic barostat on the model's stress); the cell and the barostat's
momentum are part of the checkpoint.
"""

from __future__ import annotations

import io
import json
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write
from ase.md.langevin import Langevin
from ase.md.langevinbaoab import LangevinBAOAB

from ...configfile import check_recorded_config
from ...core.manifest import Manifest, atomic_write_bytes
from ..frames import atoms_to_frame, frame_stress
from ..initial import check_no_overlap
from ..labeler import label_frame
from ..thermal import thermalize
from .config import AddSpec, AuditSpec, OTFConfig
from .model import OTFModel
from .state import OTFState, Outputs, load_checkpoint, save_checkpoint


def _same_config(cfg: OTFConfig, path: Path) -> None:
    """Record the config of a new run; refuse to resume a run under a different one (only
    ``md.n_steps`` may change, to extend a run)."""
    if not path.exists():
        atomic_write_bytes(path, cfg.model_dump_json(indent=1).encode())
        return
    check_recorded_config(cfg, path, ("md.n_steps",))


class _NPT(LangevinBAOAB):
    """LangevinBAOAB that takes the atoms' and the cell's forces afresh at the start of
    every step: BAOAB keeps the previous step's, which a reference call has made stale
    (the model changed), and a resumed run has not got."""

    def step(self):
        self._update_accel()
        self._update_force_eps()
        super().step()


def dynamics(atoms: Atoms, md, rng: np.random.Generator, p_eps=None):
    """NVT Langevin, or NPT (:class:`_NPT`) when ``md.pressure_GPa`` is set; ``p_eps``:
    the barostat momentum to resume from."""
    if md.pressure_GPa is None:
        return Langevin(atoms, md.timestep_fs * units.fs, temperature_K=md.temperature_K,
                        friction=md.friction / units.fs, fixcm=False, rng=rng)
    with warnings.catch_warnings():  # ASE reports its heuristic barostat mass: expected
        warnings.simplefilter("ignore", UserWarning)
        dyn = _NPT(atoms, md.timestep_fs * units.fs, temperature_K=md.temperature_K,
                   externalstress=-md.pressure_GPa * units.GPa, hydrostatic=True,
                   T_tau=units.fs / md.friction, P_tau=md.barostat_tau_fs * units.fs, rng=rng)
    if p_eps is not None:
        dyn.p_eps = p_eps
    return dyn


def initial_state(cfg: OTFConfig) -> OTFState:
    """The jittered structure with Maxwell-Boltzmann velocities; seeds from ``cfg.seed``."""
    atoms = cfg.structure_spec().build()[0]
    check_no_overlap(atoms, "structure")
    r_pos, r_vel, r_md = (np.random.default_rng(s)
                          for s in np.random.SeedSequence(cfg.seed).spawn(3))
    if cfg.rattle:
        atoms.positions += r_pos.normal(scale=cfg.rattle, size=atoms.positions.shape)
    t0 = cfg.md.temperature_K if cfg.md.init_temperature_K is None else cfg.md.init_temperature_K
    thermalize(atoms, t0, r_vel)
    return OTFState(step=0, positions=atoms.positions.copy(), momenta=atoms.get_momenta(),
                    numbers=atoms.numbers.copy(), cell=atoms.cell.array.copy(),
                    pbc=atoms.pbc.copy(), rng=r_md.bit_generator.state)


def select_atoms(std: np.ndarray, threshold: float, spec: AddSpec, first: bool,
                 audit: AuditSpec | None = None) -> np.ndarray:
    """Atoms to train on from a labelled frame, most uncertain first.

    std: ``[n_atoms, 3]`` eV/Å.  ``first``: the first call (``spec.initial`` atoms, all by
    default).  ``audit``: given for an audited frame (nothing there is above the
    threshold): its ``audit.n`` (else ``spec.n``, else all) most uncertain atoms."""
    per_atom = std.max(axis=1)
    order = np.argsort(-per_atom, kind="stable")
    if first or audit is not None:
        n = spec.initial if first else audit.n or spec.n
        return np.sort(order[:n]) if n else np.arange(len(std))
    if spec.kind == "above_threshold":
        order = order[per_atom[order] > threshold]
    return np.sort(order[:spec.n] if spec.n else order)


class OTFRun:
    """One on-the-fly run in ``run_dir`` (fresh or resumed); ``run()`` drives it."""

    def __init__(self, cfg: OTFConfig, run_dir: str | Path):
        self.cfg, self.dir = cfg, Path(run_dir).resolve()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.manifest = Manifest(self.dir).open()  # also locks the directory
        try:
            ck = self.dir / "checkpoint.pkl"
            if ck.exists():
                _same_config(cfg, self.dir / "config.json")
                self.state, model = load_checkpoint(ck)
                self.model = OTFModel.from_dict(model, cfg.gp)
            else:  # the structure is checked before the config is recorded: a fixed config can reuse the dir
                self.state, self.model = initial_state(cfg), OTFModel.from_spec(cfg.gp)
                _same_config(cfg, self.dir / "config.json")
        except BaseException:
            self.manifest.close()
            raise
        s = self.state
        self.out = Outputs(self.dir, s.offsets)
        self.atoms = Atoms(numbers=s.numbers, positions=s.positions, cell=s.cell, pbc=s.pbc)
        self.atoms.set_momenta(s.momenta)
        self.atoms.calc = self.model.calc
        rng = np.random.Generator(np.random.PCG64())
        rng.bit_generator.state = s.rng
        self.dyn = dynamics(self.atoms, cfg.md, rng, s.p_eps)
        self.rng = rng

    # ---- bookkeeping -------------------------------------------------------------------
    @contextmanager
    def timer(self, name: str):
        t0 = time.process_time()
        try:
            yield
        finally:
            self.state.timers[name] = self.state.timers.get(name, 0.0) + time.process_time() - t0

    def checkpoint(self) -> None:
        """Flush the append-only files, then write the state atomically."""
        with self.timer("io"):
            s = self.state
            s.positions, s.momenta = self.atoms.positions.copy(), self.atoms.get_momenta()
            s.cell = self.atoms.cell.array.copy()
            if self.cfg.md.pressure_GPa is not None:
                s.p_eps = np.array(self.dyn.p_eps, dtype=np.float64)
            s.rng = self.rng.bit_generator.state
            s.offsets = self.out.sync()
            save_checkpoint(self.dir / "checkpoint.pkl", s, self.model.to_dict())

    # ---- the decision rule ---------------------------------------------------------------
    def check(self) -> dict:
        """Exact uncertainty at this step; call the reference when it is too high."""
        with self.timer("check"):
            std = None if self.model.empty else self.model.force_std(self.atoms)
        threshold = self.cfg.uncertainty.threshold.value_at(self.model.gp.noise)
        max_std = float("inf") if std is None else float(std.max())
        audit = max_std <= threshold and self.audit_due()
        entry = {"max_std": None if std is None else max_std, "threshold": threshold,
                 "call": bool(max_std > threshold or audit)}
        if audit:
            entry["audit"] = True
        if entry["call"]:
            self.call(std, max_std, threshold, audit)
        self.state.checked = True
        return entry

    def audit_due(self) -> bool:
        """``uncertainty.audit.every`` MD steps since the last reference call."""
        every, calls = self.cfg.uncertainty.audit.every, self.state.calls
        return bool(every and calls and self.state.step - calls[-1]["step"] >= every)

    def label(self, key: str) -> dict:
        """The reference label of the current frame, from the manifest when it was already
        computed (a call replayed after a resume), else from the reference (recorded)."""
        frame = atoms_to_frame(self.atoms, {"step": self.state.step})
        rec = self.manifest.get(key)
        if rec is not None:
            done = self.manifest.load(key)
            if np.allclose(done["positions"], frame["positions"], rtol=0, atol=1e-10):
                return done
        workdir = self.manifest.workdir(key)
        workdir.mkdir(parents=True, exist_ok=True)
        with self.timer("label"):
            out = label_frame(frame, self.cfg.reference, key=key, workdir=str(workdir))
        with self.timer("io"):
            self.manifest.record(key, out, {"step": self.state.step})
        return out

    def call(self, std, max_std: float, threshold: float, audit: bool = False) -> None:
        """Label this frame, train on its selected atoms, refit when due, re-map.  An audit
        first records the frame's out-of-sample errors (the noise floor) and always refits."""
        s, first, unc = self.state, self.model.empty, self.cfg.uncertainty
        labelled = self.label(f"label/step-{s.step:07d}")
        record = {"step": s.step, "max_std": None if std is None else max_std,
                  "threshold": threshold}
        if audit:
            err = self.atoms.get_forces() - labelled["forces"]  # the mean MD ran on
            record.update(audit=True, rmse=float(np.sqrt(np.mean(err**2))),
                          mean_std=float(std.mean()))
            if unc.audit.calibrate_noise:
                record["noise_needed"] = self.model.audit(err, std)
        idx = select_atoms(np.zeros((len(self.atoms), 3)) if std is None else std, threshold,
                           unc.add, first, unc.audit if audit else None)
        with self.timer("update"):
            self.model.add(self.atoms, idx, labelled["forces"], labelled["energy"], frame_stress(labelled))
        n_call = len(s.calls) + 1
        with self.timer("optimize"):
            if audit or self.cfg.gp.optimize.due(n_call, self.model.gp.n_labels):
                self.model.optimize()
            self.model.raise_noise()  # a no-op unless an audit lifted the floor
        with self.timer("map"):
            self.model.remap()
        s.calls.append({**record, "atoms": idx.tolist(), "n_labels": self.model.gp.n_labels,
                        "hyperparameters": dict(zip(self.model.gp.hyper_names,
                                                    self.model.gp.hyperparameters.tolist()))})
        self._write_labelled(labelled, std, idx)

    def _write_labelled(self, labelled: dict, std, idx) -> None:
        with self.timer("io"):
            a = self.atoms.copy()
            a.calc = SinglePointCalculator(a, energy=labelled["energy"], forces=labelled["forces"])
            a.info.update(step=self.state.step, call=len(self.state.calls))
            added = np.zeros(len(a), dtype=bool)
            added[idx] = True
            a.arrays["added"] = added
            if std is not None:
                a.arrays["force_std"] = std
            buf = io.StringIO()
            write(buf, a, format="extxyz")
            self.out["labelled.extxyz"].write(buf.getvalue(), sync=True)

    # ---- MD ----------------------------------------------------------------------------
    def _log(self, entry: dict) -> None:
        s, a = self.state, self.atoms
        line = {"step": s.step, "time_fs": s.step * self.cfg.md.timestep_fs,
                "temperature_K": a.get_temperature(), "epot": a.get_potential_energy(),
                "mapped": bool(a.calc.results.get("mapped", True)), **entry}
        if self.cfg.md.pressure_GPa is not None:
            line.update(volume_A3=a.get_volume(), pressure_GPa=-a.get_stress()[:3].mean() / units.GPa)
        self.out["log.jsonl"].write(json.dumps(line) + "\n")
        if s.step % self.cfg.md.trajectory_every == 0:
            buf = io.StringIO()
            snap = a.copy()
            snap.info["step"] = s.step
            write(buf, snap, format="extxyz")
            self.out["trajectory.extxyz"].write(buf.getvalue())

    def step(self) -> None:
        """Check (when due), log, then one Langevin step."""
        s, cfg = self.state, self.cfg
        if s.step % cfg.output.checkpoint_every == 0 and not s.checked and s.step:
            self.checkpoint()
        with self.timer("md"):
            self.atoms.get_forces()
        covered = bool(self.atoms.calc.results.get("mapped", True))
        if not s.checked:  # checked: resumed right after this step's call and log line
            entry = {}
            if s.step % cfg.uncertainty.check_every == 0 or not covered or self.model.empty:
                entry = self.check()
            self._log(entry)
            if entry.get("call"):
                self.checkpoint()  # after the call's log line
        with self.timer("md"):
            self.dyn.step()
        s.step += 1
        s.checked = False

    def run(self, max_steps: int | None = None) -> dict:
        """Run to ``md.n_steps`` (or ``max_steps`` more steps); returns the summary."""
        s = self.state
        end = self.cfg.md.n_steps if max_steps is None else min(self.cfg.md.n_steps, s.step + max_steps)
        c0, w0 = time.process_time(), time.perf_counter()
        try:
            while s.step < end:
                self.step()
                s.cpu_s += time.process_time() - c0
                s.wall_s += time.perf_counter() - w0
                c0, w0 = time.process_time(), time.perf_counter()
            self.checkpoint()
        finally:
            self.out.close()
            self.manifest.close()
        return self.summary()

    def summary(self) -> dict:
        s, gp = self.state, self.model.gp
        n = max(s.step, 1)
        return {"steps": s.step, "n_calls": len(s.calls), "call_steps": [c["step"] for c in s.calls],
                "audit_steps": [c["step"] for c in s.calls if c.get("audit")],
                "noise_floor": self.model.noise_floor,
                "cpu_s_per_step": s.cpu_s / n, "wall_s_per_step": s.wall_s / n,
                "cpu_s": s.cpu_s, "wall_s": s.wall_s, "timers_cpu_s": dict(s.timers),
                "n_labels": gp.n_labels,
                "hyperparameters": dict(zip(gp.hyper_names, gp.hyperparameters.tolist())),
                "exact_mean_frames": getattr(self.model.calc, "n_exact", 0)}


def run_otf(cfg: OTFConfig, run_dir: str | Path, max_steps: int | None = None) -> dict:
    """Run (or resume) an on-the-fly run to the end; write ``model/``, ``summary.json`` and
    the plots.  ``max_steps``: stop after that many more steps (no final outputs then).
    Returns the summary."""
    run = OTFRun(cfg, run_dir)
    summary = run.run(max_steps)
    if run.state.step < cfg.md.n_steps:
        return summary
    from ..gp.io import save_gp, save_mapped

    d = run.dir
    save_gp(run.model.gp, d / "model" / "gp.npz")
    if run.model.mapped is not None:
        save_mapped(run.model.mapped, d / "model" / "mapped.npz")
    atomic_write_bytes(d / "summary.json", json.dumps(summary, indent=1).encode())
    if cfg.output.plots:
        from .plots import write_plots

        model = run.model

        def forces(atoms):
            atoms = atoms.copy()
            atoms.calc = model.calc
            return atoms.get_forces()

        write_plots(d, forces)
    return summary
