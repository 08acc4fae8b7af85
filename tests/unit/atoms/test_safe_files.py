"""Model files that cannot run code (issue 15, items 3 and 4): every kind (DeepPot,
compressed DeepPot, training checkpoint, full / sparse / mapped GP) round-trips bit for bit
through its safe container and ``conlearn.load_calculator``; crafted files whose unpickling
would create a marker file are refused and the marker never appears; files of earlier
versions load only with ``trust=True`` (with a warning) and convert once; truncated files
are errors naming them; a committee mixing kinds needs one set of elements.

Data: random-weight DeepPots on 8 water molecules and 4-atom Al; GPs on 8-atom EMT Al.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.emt import EMT

import conlearn
from conlearn.atoms.deeppot.compress import CompressedDeepPot, compress_model
from conlearn.atoms.deeppot.model import DeepPot, DeepPotSpec, load_model
from conlearn.atoms.deeppot.train import read_checkpoint, write_checkpoint
from conlearn.atoms.gp.calculator import GPCalculator, MappedGPCalculator
from conlearn.atoms.gp.gp import GaussianProcess
from conlearn.atoms.gp.io import gp_to_dict, load_gp, load_mapped, save_gp, save_mapped, sparse_to_dict
from conlearn.atoms.gp.kernels import NBodyKernel
from conlearn.atoms.gp.mapping import map_gp
from conlearn.atoms.gp.sparse import SparseGP
from conlearn.atoms.modelfile import (LegacyFileWarning, UnreadableFileError, UntrustedFileError,
                                      convert, read)
from conlearn.testing.structures import water_box


class Payload:
    """Unpickling this runs ``touch MARKER`` (what a malicious model file would do)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def _deeppot(type_map=("O", "H"), seed=3) -> DeepPot:
    spec = DeepPotSpec(type_map=list(type_map), sel=[40, 80][: len(type_map)], rcut=4.0, rcut_smth=1.0,
                       neuron=[4, 8], axis_neuron=2, fitting_neuron=[16, 16], seed=seed)
    m = DeepPot(spec)
    with torch.no_grad():
        m.descriptor.avg[:, 0] = 0.1
        m.descriptor.std[:] = 0.2
        m.bias_atom_e.copy_(torch.linspace(-3.0, -1.0, len(type_map)))
    return m.eval()


def _al(seed: int, repeat=(2, 1, 1)):
    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat(repeat)
    atoms.rattle(0.1, seed=seed)
    return atoms


def _gp(cls=GaussianProcess, **kw):
    gp = cls([NBodyKernel(2, 1.0, 0.8), NBodyKernel(3, 0.5, 0.9)], 5.0, 3.6, noise=0.05, **kw)
    for seed in range(2):
        atoms = _al(seed)
        atoms.calc = EMT()
        gp.add(gp.environments(atoms), forces=atoms.get_forces())
    return gp


def _predict(calc, atoms) -> tuple[float, np.ndarray, np.ndarray]:
    atoms = atoms.copy()
    atoms.calc = calc
    return atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()


def _same(calc_a, calc_b, atoms) -> None:
    for a, b in zip(_predict(calc_a, atoms), _predict(calc_b, atoms)):
        assert np.array_equal(a, b)


def _cut(path: Path) -> Path:
    raw = path.read_bytes()
    out = path.with_name("cut-" + path.name)
    out.write_bytes(raw[: len(raw) // 2])
    return out


# ---- crafted files: refused, nothing runs ---------------------------------------------------
def test_crafted_model_files_are_refused_without_running(tmp_path):
    marker = tmp_path / "MARKER"
    pt = tmp_path / "evil.pt"
    torch.save({**_deeppot().serialize(), "metadata": {"x": Payload(marker)}}, pt)
    for load in (load_model, conlearn.load_calculator, lambda p: read(p)):
        with pytest.raises(UntrustedFileError, match=r"evil.pt: .*naming posix.system: reading it "
                                                     r"needs code execution.*trust=True"):
            load(pt)
    pkl = tmp_path / "gp.pkl"  # an earlier version's GP file name, holding the payload
    pkl.write_bytes(pickle.dumps({**gp_to_dict(_gp()), "x": Payload(marker)}))
    for load in (load_gp, conlearn.load_calculator, load_mapped):
        with pytest.raises(UntrustedFileError, match=r"gp.pkl: .*needs code execution"):
            load(pkl)
    npz = tmp_path / "gp.npz"  # an .npz whose array member is a pickled object array
    save_gp(_gp(), npz)
    raw = npz.read_bytes()
    with open(tmp_path / "a.npy", "wb") as fh:
        np.lib.format.write_array(fh, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    import zipfile

    with zipfile.ZipFile(npz) as z, zipfile.ZipFile(tmp_path / "evil.npz", "w") as out:
        for name in z.namelist():
            out.writestr(name, (tmp_path / "a.npy").read_bytes() if name == "a0.npy" else z.read(name))
    assert raw  # the original is intact
    with pytest.raises(UntrustedFileError, match=r"evil.npz: holds a pickled object array: reading it "
                                                 r"needs code execution"):
        conlearn.load_calculator(tmp_path / "evil.npz")
    assert not marker.exists()
    with pytest.warns(LegacyFileWarning):  # the control: with trust=True the payload does run
        load_model(pt, trust=True)
    assert marker.exists()


# ---- round trips ------------------------------------------------------------------------------
def test_deeppot_and_compressed_round_trip_bit_for_bit(tmp_path):
    model = _deeppot()
    comp = compress_model(model, step=0.05)
    model.save(tmp_path / "m.pt", steps=7, source=tmp_path)  # a Path in metadata is stored as text
    comp.save(tmp_path / "c.pt")
    raw = torch.load(tmp_path / "m.pt", weights_only=True)
    assert raw["format"] == "conlearn.deeppot" and raw["metadata"] == {"steps": 7, "source": str(tmp_path)}
    assert torch.load(tmp_path / "c.pt", weights_only=True)["format"] == "conlearn.deeppot.compressed"
    assert type(load_model(tmp_path / "c.pt")) is CompressedDeepPot
    water = water_box(n_molecules=8, seed=5)
    from conlearn.atoms.calculator import DeepPotCalculator

    _same(DeepPotCalculator(model), conlearn.load_calculator(tmp_path / "m.pt", device="cpu"), water)
    _same(DeepPotCalculator(comp), conlearn.load_calculator(tmp_path / "c.pt", device="cpu"), water)
    # torch's pre-zip container (a pickle stream) of plain values: read safely, no trust needed
    torch.save({**model.serialize(), "metadata": {}}, tmp_path / "z.pt", _use_new_zipfile_serialization=False)
    assert (tmp_path / "z.pt").read_bytes()[:1] == b"\x80"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _same(DeepPotCalculator(model), conlearn.load_calculator(tmp_path / "z.pt", device="cpu"), water)


def test_gp_kinds_round_trip_through_load_calculator(tmp_path):
    held = _al(9)
    gp, sgp = _gp(), _gp(SparseGP, select="greedy", n_inducing=10)
    mapped = map_gp(gp)
    save_gp(gp, tmp_path / "gp.npz")
    save_gp(sgp, tmp_path / "sgp.npz")
    save_mapped(mapped, tmp_path / "mapped.npz")
    assert [read(tmp_path / f)[0] for f in ("gp.npz", "sgp.npz", "mapped.npz")] == [
        "conlearn.gp", "conlearn.gp.sparse", "conlearn.gp.mapped"]
    with np.load(tmp_path / "gp.npz", allow_pickle=False) as z:  # plain numpy reads it
        assert "__header__" in z.files
    for model, name in ((gp, "gp.npz"), (sgp, "sgp.npz")):
        calc = conlearn.load_calculator(tmp_path / name)
        assert type(calc) is GPCalculator and type(calc.gp) is type(model)
        _same(GPCalculator(model), calc, held)
        stds = []
        for c in (GPCalculator(model), calc):
            atoms = held.copy()
            atoms.calc = c
            atoms.get_forces()
            stds.append(c.results["force_std"])
        assert np.array_equal(*stds) and stds[0].max() > 1e-3
    calc = conlearn.load_calculator(tmp_path / "mapped.npz")
    assert type(calc) is MappedGPCalculator
    _same(MappedGPCalculator(mapped), calc, held)
    with pytest.raises(ValueError, match=r"mapped.npz: not a GP file \(a conlearn.gp.mapped file"):
        load_gp(tmp_path / "mapped.npz")
    with pytest.raises(ValueError, match=r"gp.npz: not a conlearn DeepPot model file \(a conlearn.gp file"):
        load_model(tmp_path / "gp.npz")


def test_checkpoint_round_trip_and_not_a_model(tmp_path):
    model = _deeppot()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(model.graph([(np.eye(3), None, np.zeros(3, bool), np.array([0, 1, 1]))])).sum().backward()
    opt.step()
    rng = np.random.default_rng(5)
    ck = {"model": model.serialize(), "optimizer": opt.state_dict(), "step": 3, "wall_s": 1.5,
          "rng_train": rng.bit_generator.state, "rng_valid": None, "rng_torch": torch.get_rng_state()}
    write_checkpoint(ck, tmp_path / "checkpoint.pt")
    back = read_checkpoint(tmp_path / "checkpoint.pt")
    assert back["format"] == "conlearn.checkpoint" and back["rng_train"] == rng.bit_generator.state
    assert torch.equal(back["rng_torch"], ck["rng_torch"])
    assert torch.equal(back["optimizer"]["state"][0]["exp_avg"], ck["optimizer"]["state"][0]["exp_avg"])
    with pytest.raises(ValueError, match=r"checkpoint.pt: not a conlearn DeepPot model file \(a training "
                                         r"checkpoint \(use the model.pt"):
        load_model(tmp_path / "checkpoint.pt")
    with pytest.raises(ValueError, match=r"cut-checkpoint.pt: not a readable checkpoint \(damaged"):
        read_checkpoint(_cut(tmp_path / "checkpoint.pt"))


# ---- files of earlier versions -----------------------------------------------------------------
def test_legacy_files_need_trust_warn_and_convert(tmp_path):
    model, gp = _deeppot(), _gp()
    old_pt = tmp_path / "old.pt"  # earlier versions stored metadata as given (here a Path object)
    torch.save({**model.serialize(), "metadata": {"compressed_from": Path("m.pt")}}, old_pt)
    old_gp = tmp_path / "gp.pkl"
    old_gp.write_bytes(pickle.dumps(gp_to_dict(gp)))
    old_map = tmp_path / "mapped.pkl"
    old_map.write_bytes(pickle.dumps(map_gp(gp).to_dict()))
    water, held = water_box(n_molecules=8, seed=5), _al(9)
    for path, name in ((old_pt, "pathlib.PosixPath"), (old_gp, ""), (old_map, "")):
        with pytest.raises(UntrustedFileError, match=rf"{path.name}: written by an earlier conlearn version"
                                                     rf".*{name}.*needs code execution.*conlearn convert .*{path.name}"):
            conlearn.load_calculator(path)
    with pytest.warns(LegacyFileWarning, match=r"old.pt: an earlier conlearn format .*re-save it"):
        calc = conlearn.load_calculator(old_pt, device="cpu", trust=True)
    from conlearn.atoms.calculator import DeepPotCalculator

    _same(DeepPotCalculator(model), calc, water)
    with pytest.warns(LegacyFileWarning, match=r"gp.pkl: .*\(writes .*gp.npz\)"):
        _same(GPCalculator(gp), conlearn.load_calculator(old_gp, trust=True), held)
    # convert once; afterwards no trust and no warning
    assert convert(old_pt) == old_pt and convert(old_gp) == tmp_path / "gp.npz"
    assert convert(old_map) == tmp_path / "mapped.npz"
    assert torch.load(old_pt, weights_only=True)["metadata"] == {"compressed_from": "m.pt"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _same(DeepPotCalculator(model), conlearn.load_calculator(old_pt, device="cpu"), water)
        _same(GPCalculator(gp), conlearn.load_calculator(tmp_path / "gp.npz"), held)
        _same(MappedGPCalculator(map_gp(gp)), conlearn.load_calculator(tmp_path / "mapped.npz"), held)


# ---- damaged files -----------------------------------------------------------------------------
def test_truncated_files_are_named(tmp_path):
    _deeppot().save(tmp_path / "m.pt")
    compress_model(_deeppot(), step=0.1).save(tmp_path / "c.pt")
    gp = _gp()
    save_gp(gp, tmp_path / "gp.npz")
    save_mapped(map_gp(gp), tmp_path / "mapped.npz")
    for name in ("m.pt", "c.pt", "gp.npz", "mapped.npz"):
        with pytest.raises(UnreadableFileError, match=rf"cut-{name}: not a readable conlearn model file "
                                                      r"\(damaged or truncated"):
            conlearn.load_calculator(_cut(tmp_path / name))
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(UnreadableFileError, match=r"empty.pt: not a readable conlearn model file "
                                                  r"\(empty file\)"):
        load_model(tmp_path / "empty.pt")
    with pytest.raises(FileNotFoundError, match=r"model file .*nothing.pt does not exist"):
        conlearn.load_calculator(tmp_path / "nothing.pt")


# ---- committees --------------------------------------------------------------------------------
def test_mixed_committee_needs_one_type_map(tmp_path):
    gp = _gp()
    save_gp(gp, tmp_path / "gp.npz")
    save_mapped(map_gp(gp), tmp_path / "mapped.npz")
    _deeppot(("O", "H")).save(tmp_path / "water.pt")
    _deeppot(("Al",)).save(tmp_path / "al.pt")
    with pytest.raises(ValueError, match=r"models .*gp.npz and .*water.pt differ in their type maps "
                                         r"\(elements \['Al'\] vs \['H', 'O'\]\)"):
        conlearn.load_calculator([tmp_path / "gp.npz", tmp_path / "water.pt"], device="cpu")
    paths = [tmp_path / "al.pt", tmp_path / "gp.npz", tmp_path / "mapped.npz"]
    calc = conlearn.load_calculator(paths, device="cpu")
    held = _al(9)
    parts = [_predict(conlearn.load_calculator(p, device="cpu"), held) for p in paths]
    e, f, s = _predict(calc, held)
    assert e == pytest.approx(np.mean([p[0] for p in parts]), abs=1e-12)
    assert np.allclose(f, np.mean([p[1] for p in parts], axis=0), atol=1e-12)
    assert np.allclose(s, np.mean([p[2] for p in parts], axis=0), atol=1e-12)
    dev = np.sqrt(((np.stack([p[1] for p in parts]) - f) ** 2).sum(-1).mean(0))
    assert calc.results["max_devi_f"] == pytest.approx(dev.max(), abs=1e-12)


# ---- the GP of `conlearn otf` ------------------------------------------------------------------
def test_load_calculator_reads_the_otf_model(tmp_path):
    from conlearn.atoms.otf.config import load_otf_config
    from conlearn.atoms.otf.loop import run_otf
    from conlearn.atoms.otf.model import OTFModel
    from conlearn.atoms.otf.state import load_checkpoint
    from conlearn.testing.configs import otf_al8, write_yaml

    data = otf_al8(md={"n_steps": 10}, uncertainty={"audit": {"every": None}},
                   gp={"optimize": {"at_calls": [], "maxiter": 5}})
    cfg = load_otf_config(write_yaml(tmp_path / "otf.yaml", data))
    run = tmp_path / "run"
    run_otf(cfg, run)
    _, state = load_checkpoint(run / "checkpoint.pkl")  # the run's final in-memory model
    model = OTFModel.from_dict(state, cfg.gp)
    assert model.gp.n_labels >= 24 and model.mapped is not None
    kinds = [read(run / "model" / f)[0] for f in ("gp.npz", "mapped.npz")]
    assert kinds == ["conlearn.gp", "conlearn.gp.mapped"]
    held = _al(11)
    _same(GPCalculator(model.gp), conlearn.load_calculator(run / "model" / "gp.npz"), held)
    _same(MappedGPCalculator(model.mapped), conlearn.load_calculator(run / "model" / "mapped.npz"), held)
    e_gp, f_gp, _ = _predict(conlearn.load_calculator(run / "model" / "gp.npz"), held)
    e_map, f_map, _ = _predict(model.calc, held)  # what the MD ran on: the mapped mean
    assert abs(e_gp - e_map) < 1e-3 and np.abs(f_gp - f_map).max() < 1e-2


def test_otf_checkpoints_old_and_new_read_as_plain_data(tmp_path):
    from conlearn.atoms.gp.io import load, save

    gp = _gp(SparseGP, select="random", n_inducing=10)
    state = {"version": 1, "model": {"gp": sparse_to_dict(gp), "noise_floor": None},
             "state": {"step": 5, "positions": np.ones((2, 3)), "pbc": np.ones(3, bool), "p_eps": None,
                       "rng": np.random.default_rng(1).bit_generator.state, "calls": [{"step": 0}],
                       "offsets": {"log.jsonl": 120}, "timers": {"md": 0.5}}}
    old = tmp_path / "checkpoint.pkl"
    old.write_bytes(pickle.dumps(state))  # an earlier version's checkpoint: run state, no trust needed
    back = load(old)
    save(back, tmp_path / "new.pkl")
    assert (tmp_path / "new.pkl").read_bytes()[:4] == b"PK\x03\x04"  # now an npz tree
    again = load(tmp_path / "new.pkl")
    assert again["state"]["rng"] == state["state"]["rng"] and again["state"]["calls"] == [{"step": 0}]
    pbc = again["state"]["pbc"]
    assert np.array_equal(pbc, state["state"]["pbc"]) and pbc.dtype == bool
    assert all(np.array_equal(again["model"]["gp"][k], state["model"]["gp"][k]) for k in ("K_uu", "alpha"))
    marker = tmp_path / "MARKER"
    old.write_bytes(pickle.dumps({**state, "x": Payload(marker)}))
    with pytest.raises(UntrustedFileError, match=r"checkpoint.pkl: refused to unpickle the global "
                                                 r"posix.system"):
        load(old)
    assert not marker.exists()
