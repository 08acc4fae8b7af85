"""Training a DeepPot: Adam on deepmd-kit's energy/force/virial loss, with checkpoints.

``OUT/checkpoint.pt`` is written atomically every ``save_freq`` steps (model, optimizer,
step, random states: tensors and plain values, ``format: conlearn.checkpoint``, read with
``torch.load(weights_only=True)``); re-running into the same ``OUT`` resumes from it and reproduces the
uninterrupted run. ``OUT/model.pt`` is the finished model, ``OUT/lcurve.out`` and
``OUT/lcurve.png`` the learning curve.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from ..dataset import energy_shift, load_systems
from ..system import System
from .config import TrainConfig
from .data import FrameSet, sel_from_data, stat_graphs
from .lcurve import LCurve
from .loss import ExpDecay, energy_loss, prefactors
from .model import DeepPot, default_device, load_model


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device(default_device())
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{name}' requested but CUDA is not available here")
    return dev


def build_model(cfg: TrainConfig, systems: list[System], init_model: str | Path | None = None,
                frames: list | None = None, trust: bool = False) -> DeepPot:
    """A new model with statistics and energy bias from ``systems``, or ``init_model``'s weights.

    ``frames``, when given a list, receives the neighbour lists built for the statistics
    (``FrameSet.graphs``) so that the caller need not build them again. ``trust``: also read
    an ``init_model`` of an earlier version that needs pickle (:mod:`..modelfile`).
    """
    type_map = list(cfg.model.type_map)
    if init_model is not None:
        model = load_model(init_model, trust=trust)
        if hasattr(model, "uncompressed"):  # a compressed file fine-tunes from its exact weights
            model = model.uncompressed()
        if model.type_map != type_map:
            raise ValueError(f"init model {init_model} has type_map {model.type_map}, config has {type_map}")
        return model
    sel = cfg.model.descriptor.sel
    if isinstance(sel, str):
        factor = float(sel.split(":")[1]) if ":" in sel else 1.1
        sel = sel_from_data(systems, type_map, cfg.model.descriptor.rcut, factor)
    if len(sel) != len(type_map):
        raise ValueError(f"descriptor.sel has {len(sel)} entries but type_map {type_map} has {len(type_map)}")
    model = DeepPot(cfg.spec(sel))
    fs = FrameSet(systems, type_map=type_map, rcut=model.spec.rcut, sel=model.spec.sel)
    if frames is not None:
        frames.append(fs.graphs)
    sums = sum(model.descriptor.stat_sums(g) for g in stat_graphs(fs, 10 * cfg.model.data_stat_nbatch))
    model.descriptor.set_stats(sums)
    with torch.no_grad():
        model.bias_atom_e.copy_(torch.as_tensor(energy_shift(systems, type_map)))
    return model


def validate(model: DeepPot, fs: FrameSet, batches) -> dict:
    """RMSEs over ``batches`` (a list of Batch): rmse_e per atom, rmse_f, rmse_v per atom."""
    se = sf = sv = 0.0
    ne = nf = nv = 0
    for b in batches:
        out = model.evaluate(b.graph, virial=b.virial is not None)
        if b.energy is not None:
            se += float((((out["energy"].detach() - b.energy) / b.n_atoms) ** 2).sum()); ne += len(b.energy)
        if b.forces is not None:
            sf += float(((out["forces"].detach() - b.forces) ** 2).sum()); nf += b.forces.numel()
        if b.virial is not None:
            sv += float((((out["virial"].detach() - b.virial) / b.n_atoms) ** 2).sum()); nv += b.virial.numel()
    res = {}
    if ne: res["rmse_e"] = (se / ne) ** 0.5
    if nf: res["rmse_f"] = (sf / nf) ** 0.5
    if nv: res["rmse_v"] = (sv / nv) ** 0.5
    return res


CHECKPOINT_FORMAT = "conlearn.checkpoint"


def read_checkpoint(path: Path, trust: bool = False) -> dict:
    """A training checkpoint, read without running code (tensors and plain values,
    :mod:`..modelfile`); one of an earlier version needing pickle only with ``trust``.
    A truncated or foreign file is an error naming it."""
    from ..modelfile import CHECKPOINT, UnreadableFileError, read

    try:
        fmt, ck = read(path, trust)
    except UnreadableFileError as err:
        raise ValueError(f"{path}: not a readable checkpoint ({err.reason}); move it away to start "
                         "the training afresh") from None
    if fmt != CHECKPOINT or not isinstance(ck.get("model"), dict) or "spec" not in ck["model"]:
        raise ValueError(f"{path}: not a conlearn training checkpoint; move it away to start afresh")
    return ck


def write_checkpoint(ck: dict, path: Path) -> None:
    """Write a checkpoint dict (tensors and plain values) atomically, with its format header."""
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    torch.save({**ck, "format": CHECKPOINT_FORMAT, "version": 1}, tmp)
    tmp.replace(path)


def warn_missing_labels(cfg: TrainConfig, systems: list[System], log) -> list[str]:
    """Say once per training system when the loss asks for a label the system lacks (forces
    or virials with a non-zero prefactor, energies likewise): it then trains without them."""
    c = cfg.loss
    wanted = {"forces": max(c.start_pref_f, c.limit_pref_f), "energies": max(c.start_pref_e, c.limit_pref_e),
              "virials": max(c.start_pref_v, c.limit_pref_v)}
    msgs = []
    for s in systems:
        lacking = [k for k, pref in wanted.items() if pref > 0 and getattr(s, k) is None]
        if lacking:
            files = {"forces": "force.npy", "energies": "energy.npy", "virials": "virial.npy"}
            msgs.append(f"warning: {s.name} has no {', '.join(lacking)} ({', '.join(files[k] for k in lacking)}) "
                        f"although the loss asks for them: this system trains without them")
            log(msgs[-1])
    return msgs


RESUME_KEYS = ("type_map", "rcut", "rcut_smth", "neuron", "axis_neuron", "type_one_side", "embed_resnet_dt",
               "fitting_neuron", "fitting_resnet_dt", "precision")


def check_resume_spec(cfg: TrainConfig, recorded: dict, path: Path) -> None:
    """Resuming into an output directory must use the model the checkpoint holds: a changed
    model section (or rcut) would otherwise be silently ignored. ``sel`` is compared when the
    config gives it explicitly ("auto" is resolved from the data at the first start)."""
    sel = cfg.model.descriptor.sel
    want = asdict(cfg.spec(sel if isinstance(sel, list) else recorded.get("sel", [])))
    keys = RESUME_KEYS + (("sel",) if isinstance(sel, list) else ())
    diff = [f"{k}: {recorded.get(k)!r} -> {want[k]!r}" for k in keys if recorded.get(k) != want[k]]
    if diff:
        raise ValueError(f"{path} holds a training begun with another model ({'; '.join(diff)}); "
                         "use a new output directory (-o) or the original model section")


class Trainer:
    """Runs one training described by a TrainConfig into ``out_dir``.

    ``trust_init``: read an ``init_model`` of an earlier version that needs pickle (CLI
    ``--trust-file``); the run's own checkpoint is always read without running code.
    """

    def __init__(self, cfg: TrainConfig, out_dir: str | Path, *, init_model=None,
                 train_systems: list[System] | None = None, valid_systems: list[System] | None = None,
                 log=None, plot: bool = True, trust_init: bool = False):
        self.cfg, self.out, self.plot = cfg, Path(out_dir), plot
        self.out.mkdir(parents=True, exist_ok=True)
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        t = cfg.training
        self.device = resolve_device(t.device)
        self.train_systems = train_systems if train_systems is not None else load_systems(t.training_data.systems, base_dir=cfg.base_dir)
        if valid_systems is None and t.validation_data is not None:
            valid_systems = load_systems(t.validation_data.systems, base_dir=cfg.base_dir)
        self.valid_systems = valid_systems or []
        warn_missing_labels(cfg, self.train_systems, self.log)
        self.ckpt_path = self.out / "checkpoint.pt"
        self.seed = t.seed if t.seed is not None else 0
        self.step = 0
        self.wall_before = 0.0
        built = []
        if self.ckpt_path.exists():
            ck = read_checkpoint(self.ckpt_path)
            check_resume_spec(cfg, ck["model"]["spec"], self.ckpt_path)
            self.model = DeepPot.deserialize(ck["model"])
            self.log(f"resuming from {self.ckpt_path} at step {ck['step']}")
        else:
            ck = None
            self.model = build_model(cfg, self.train_systems, init_model, frames=built, trust=trust_init)
        self.model.to(self.device)
        spec = self.model.spec
        kw = dict(type_map=spec.type_map, rcut=spec.rcut, sel=spec.sel, dtype=self.model.dtype, device=self.device)
        self.train_set = FrameSet(self.train_systems, batch_size=t.training_data.batch_size, seed=self.seed,
                                  graphs=built[0] if built else None, **kw)
        self.valid_set = None
        if self.valid_systems:
            vb = t.validation_data.batch_size if t.validation_data else 1
            self.valid_set = FrameSet(self.valid_systems, batch_size=vb, seed=self.seed + 1, **kw)
        self.sched = ExpDecay(cfg.learning_rate, t.numb_steps)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=self.sched(0))
        if ck is not None:
            self.opt.load_state_dict(ck["optimizer"])
            self.step, self.wall_before = ck["step"], ck.get("wall_s", 0.0)
            self.train_set.rng.bit_generator.state = ck["rng_train"]
            if self.valid_set is not None and ck.get("rng_valid"):
                self.valid_set.rng.bit_generator.state = ck["rng_valid"]
            torch.set_rng_state(ck["rng_torch"])

    def save_checkpoint(self, wall_s: float) -> None:
        ck = {
            "model": self.model.serialize(), "optimizer": self.opt.state_dict(), "step": self.step,
            "wall_s": wall_s, "rng_train": self.train_set.rng.bit_generator.state,
            "rng_valid": self.valid_set.rng.bit_generator.state if self.valid_set else None,
            "rng_torch": torch.get_rng_state(),
        }
        write_checkpoint(ck, self.ckpt_path)

    def train_step(self, lr: float) -> dict:
        for group in self.opt.param_groups:
            group["lr"] = lr
        batch = self.train_set.sample()
        prefs = prefactors(self.cfg.loss, lr, self.cfg.learning_rate.start_lr)
        want_v = batch.virial is not None and prefs[2] > 0
        pred = self.model.evaluate(batch.graph, virial=want_v, create_graph=True)
        loss, rmse = energy_loss(pred, batch, prefs)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return rmse

    def valid_batches(self):
        n = self.cfg.training.validation_data.numb_btch if self.cfg.training.validation_data else 1
        return [self.valid_set.sample() for _ in range(n)]

    def run(self) -> Path:
        """Train to ``numb_steps`` (or ``max_wall_s``); returns the path of ``model.pt``."""
        t = self.cfg.training
        lc = LCurve(self.out / t.disp_file, resume=self.step > 0)
        start = time.perf_counter() - self.wall_before
        wall = lambda: time.perf_counter() - start  # noqa: E731
        last, last_wall = self.step, wall()
        while self.step < t.numb_steps:
            lr = self.sched(self.step)
            rmse = self.train_step(lr)
            self.step += 1
            done = self.step >= t.numb_steps or (t.max_wall_s is not None and wall() >= t.max_wall_s)
            if self.step % t.disp_freq == 0 or self.step == 1 or done:
                val = validate(self.model, self.valid_set, self.valid_batches()) if self.valid_set else {}
                lc.write(self.step, val, rmse, lr, wall())
                rate = (self.step - last) / max(1e-9, wall() - last_wall)
                self.log(lc.summary(self.step, t.numb_steps, val, rmse, lr, rate))
                last, last_wall = self.step, wall()
            if self.step % t.save_freq == 0 or done:
                self.save_checkpoint(wall())
            if done:
                break
        lc.close()
        if self.plot:
            lc.plot(self.out / "lcurve.png")
        self.model.save(self.out / "model.pt", steps=self.step, wall_s=wall())
        return self.out / "model.pt"
