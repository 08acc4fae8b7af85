"""The model-file commands of the CLI: ``conlearn import | export | convert`` and ``--trust-file``,
through ``cli.main`` (exit status, files written, predictions kept)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conlearn import cli
from conlearn.atoms.deeppot.model import load_model

FIXTURE = Path(__file__).resolve().parents[2] / "data" / "deepmd_se_e2_a"


def _energy_forces(model, frame):
    from conlearn.atoms.calculator import DeepPotCalculator

    atoms = frame.copy()
    atoms.calc = DeepPotCalculator(model)
    return atoms.get_potential_energy(), atoms.get_forces()


def _frame():
    from conlearn.testing.structures import water_box

    return water_box(seed=1)


def test_import_export_import_round_trip_is_bit_identical(tmp_path, capsys):
    assert cli.main(["import", str(FIXTURE / "model.dp"), "-o", str(tmp_path / "a.pt")]) == 0
    assert cli.main(["export", str(tmp_path / "a.pt"), "-o", str(tmp_path / "a.dp")]) == 0
    assert cli.main(["import", str(tmp_path / "a.dp"), "-o", str(tmp_path / "b.pt")]) == 0
    assert "se_e2_a" in capsys.readouterr().out
    a, b = load_model(tmp_path / "a.pt"), load_model(tmp_path / "b.pt")
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    ea, fa = _energy_forces(a, _frame())
    eb, fb = _energy_forces(b, _frame())
    assert ea == eb and np.array_equal(fa, fb)


def test_export_refuses_a_non_dp_name_and_a_foreign_file(tmp_path, capsys):
    cli.main(["import", str(FIXTURE / "model.dp"), "-o", str(tmp_path / "a.pt")])
    capsys.readouterr()
    assert cli.main(["export", str(tmp_path / "a.pt"), "-o", str(tmp_path / "a.pth")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ".dp" in err and "Traceback" not in err
    assert cli.main(["export", str(FIXTURE / "model.dp"), "-o", str(tmp_path / "x.dp")]) == 2
    assert "model.dp" in capsys.readouterr().err and not (tmp_path / "x.dp").exists()


def test_legacy_pickle_model_needs_trust_file_then_converts(tmp_path, capsys):
    cli.main(["import", str(FIXTURE / "model.dp"), "-o", str(tmp_path / "a.pt")])
    model = load_model(tmp_path / "a.pt")
    old = tmp_path / "old.pt"  # an earlier version's file: metadata holding a Path needs pickle
    torch.save({**model.serialize(), "metadata": {"from": Path("x")}}, old)
    data = str(Path(__file__).resolve().parents[3] / "examples" / "water_small" / "data_3")
    capsys.readouterr()
    assert cli.main(["test", "-m", str(old), "-d", data, "--json"]) == 2
    assert "trust" in capsys.readouterr().err
    with pytest.warns(Warning, match="conlearn convert"):
        assert cli.main(["test", "-m", str(old), "-d", data, "--json", "--trust-file"]) == 0
    assert cli.main(["convert", str(old)]) == 0
    capsys.readouterr()
    assert cli.main(["test", "-m", str(old), "-d", data, "--json"]) == 0  # safe now, no trust
