"""No silent wrong answer (issue 16, item 3/4): committees of mismatched models, a training
resumed with another model section, empty model lists and broken model files are refused
with one line naming the files, before any number is printed."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

import conlearn
from conlearn import cli
from conlearn.atoms.deeppot.config import read_train_config
from conlearn.atoms.deeppot.model import DeepPot, DeepPotSpec, load_model
from conlearn.atoms.deeppot.train import Trainer
from conlearn.atoms.io_deepmd import read_deepmd, write_deepmd

from .test_deeppot_train import small_config, write_cfg


def _save(spec: DeepPotSpec, path: Path) -> Path:
    torch.save(DeepPot(spec).serialize(), path)
    return path


@pytest.fixture
def two_maps(tmp_path):
    small = dict(sel=[4, 8], rcut=4.0, neuron=[4, 8], axis_neuron=2, fitting_neuron=[8])
    a = _save(DeepPotSpec(type_map=["O", "H"], **small), tmp_path / "oh.pt")
    b = _save(DeepPotSpec(type_map=["H", "O"], **small), tmp_path / "ho.pt")
    return a, b


def test_committee_of_different_type_maps_is_refused(two_maps, tmp_path, water_small, capsys):
    a, b = two_maps
    with pytest.raises(ValueError, match=r"oh.pt and .*ho.pt differ in type_map"):
        conlearn.load_calculator([a, b], device="cpu")
    data = tmp_path / "d"
    write_deepmd(read_deepmd(water_small / "data_3").subset(slice(0, 1)), data)
    rc = cli.main(["test", "-m", str(a), "-m", str(b), "-d", str(data), "--json", "--device", "cpu"])
    out = capsys.readouterr()
    assert rc == 2 and out.out == "" and "differ in type_map" in out.err and "ho.pt" in out.err


def test_no_model_given():
    with pytest.raises(ValueError, match="^no model given$"):
        conlearn.load_calculator([])


@pytest.mark.parametrize("content", [b"", b"not a model at all\n", b"PK\x03\x04truncated"])
def test_broken_model_file_is_named(tmp_path, content):
    p = tmp_path / "model.pt"
    p.write_bytes(content)
    with pytest.raises(ValueError, match=r"model.pt: not a readable conlearn model file"):
        load_model(p)


def test_truncated_real_model_is_named(two_maps, tmp_path):
    raw = two_maps[0].read_bytes()
    p = tmp_path / "cut.pt"
    p.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match=r"cut.pt: not a readable conlearn model file"):
        load_model(p)


def test_checkpoint_is_not_a_model(tmp_path):
    p = tmp_path / "checkpoint.pt"
    torch.save({"model": {}, "step": 3}, p)
    with pytest.raises(ValueError, match="checkpoint.pt: not a conlearn DeepPot model file"):
        load_model(p)


def test_resume_with_changed_model_section_is_refused(tmp_path, water_small):
    write_deepmd(read_deepmd(water_small / "data_0").subset(slice(0, 4)), tmp_path / "train")
    write_deepmd(read_deepmd(water_small / "data_3").subset(slice(0, 2)), tmp_path / "valid")
    cfg = small_config(tmp_path / "train", tmp_path / "valid", steps=10)
    out = tmp_path / "out"
    Trainer(read_train_config(write_cfg(tmp_path / "a.yaml", cfg)), out, log=lambda m: None, plot=False).run()
    assert (out / "checkpoint.pt").exists()
    same = copy.deepcopy(cfg)
    same["training"]["numb_steps"] = 12  # more steps: a legal resume
    Trainer(read_train_config(write_cfg(tmp_path / "b.yaml", same)), out, log=lambda m: None, plot=False)
    changed = copy.deepcopy(cfg)
    changed["model"]["descriptor"]["rcut"] = 5.0
    changed["model"]["fitting_net"]["neuron"] = [16, 16]
    with pytest.raises(ValueError, match=r"begun with another model \(rcut: 6\.0 -> 5\.0; "
                                         r"fitting_neuron: \[32, 32\] -> \[16, 16\]\)"):
        Trainer(read_train_config(write_cfg(tmp_path / "c.yaml", changed)), out, log=lambda m: None, plot=False)
    (out / "checkpoint.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"checkpoint.pt: not a readable checkpoint"):
        Trainer(read_train_config(write_cfg(tmp_path / "d.yaml", same)), out, log=lambda m: None, plot=False)


def test_missing_forces_are_said_once_per_system(tmp_path, water_small):
    from conlearn.atoms.deeppot.train import warn_missing_labels

    s = read_deepmd(water_small / "data_0").subset(slice(0, 2))
    write_deepmd(s, tmp_path / "full")
    write_deepmd(s, tmp_path / "noforce")
    for f in (tmp_path / "noforce").glob("set.*/force.npy"):
        f.unlink()
    cfg = read_train_config(write_cfg(tmp_path / "c.yaml", small_config([tmp_path / "full", tmp_path / "noforce"],
                                                                       tmp_path / "full")))
    systems = [read_deepmd(tmp_path / "full"), read_deepmd(tmp_path / "noforce")]
    logged = []
    msgs = warn_missing_labels(cfg, systems, logged.append)
    assert len(msgs) == 1 and logged == msgs
    assert "noforce has no forces (force.npy) although the loss asks for them" in msgs[0]
