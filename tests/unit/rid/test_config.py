"""RiD config errors name the file, the line and the key; nothing is written."""

from dataclasses import dataclass

import pytest

from conlearn.configfile import ConfigError
from conlearn.rid.config import read_rid_config
from conlearn.rid.engine import ENGINES


@dataclass(frozen=True)
class AtomsEngine:
    """A stand-in engine with 22 atoms (what the OpenMM alanine dipeptide engine has)."""

    cvs: tuple = ()
    temperature: float = 300.0
    n_atoms = 22


ENGINES.register("test-22-atoms", AtomsEngine, replace=True)

GOOD = """workflow: rid
engine:
  kind: test-22-atoms
  temperature: 300
cvs:
  - {name: phi, kind: dihedral, atoms: [4, 6, 8, 14]}
  - name: psi
    kind: dihedral
    atoms: [6, 8, 14, 16]
trust:
  e0: 2.0
  e1: 3.0
label:
  kappa: [500, 500]
"""


def load(tmp_path, text):
    p = tmp_path / "rid.yaml"
    p.write_text(text)
    return p, read_rid_config(p)


def error(tmp_path, text) -> str:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, text)
    assert list(tmp_path.iterdir()) == [tmp_path / "rid.yaml"]  # nothing written
    return str(err.value)


def test_good_config_builds_the_engine_with_its_cvs(tmp_path):
    _, cfg = load(tmp_path, GOOD)
    eng = cfg.build_engine()
    assert isinstance(eng, AtomsEngine) and [c.name for c in eng.cvs] == ["phi", "psi"]
    assert eng.cvs[1].atoms == (6, 8, 14, 16) and cfg.kappa(2) == (500.0, 500.0)
    assert cfg.workflow == "rid"


def test_cv_atom_index_the_system_does_not_have(tmp_path):
    msg = error(tmp_path, GOOD.replace("atoms: [6, 8, 14, 16]", "atoms: [6, 8, 14, 22]"))
    assert "rid.yaml:9: cvs[1].atoms" in msg and "atom index 22" in msg and "22 atoms" in msg


def test_cv_with_wrong_atoms_for_its_kind(tmp_path):
    msg = error(tmp_path, GOOD.replace("atoms: [4, 6, 8, 14]", "atoms: [4, 6, 8]"))
    assert "rid.yaml:6" in msg and "cvs.0" in msg and "needs 4 atoms" in msg


def test_kappa_not_positive(tmp_path):
    msg = error(tmp_path, GOOD.replace("kappa: [500, 500]", "kappa: [500, 0]"))
    assert "rid.yaml:14" in msg and "label.kappa" in msg and "kappa must be > 0" in msg
    msg = error(tmp_path, GOOD.replace("kappa: [500, 500]", "kappa: -3"))
    assert "rid.yaml:14" in msg and "label.kappa" in msg


def test_kappa_count_must_match_the_cvs(tmp_path):
    msg = error(tmp_path, GOOD.replace("kappa: [500, 500]", "kappa: [500, 500, 500]"))
    assert "rid.yaml:14: label.kappa: 3 values for 2 CVs" in msg


def test_e0_not_below_e1(tmp_path):
    msg = error(tmp_path, GOOD.replace("e1: 3.0", "e1: 2.0"))
    assert "rid.yaml:12" in msg and "trust.e1" in msg and "e0 must be below e1" in msg


def test_unknown_keys_and_engines(tmp_path):
    msg = error(tmp_path, GOOD.replace("trust:", "trsut:"))
    assert "rid.yaml:10" in msg and "unknown key 'trsut'" in msg and "trust" in msg
    msg = error(tmp_path, GOOD.replace("  temperature: 300", "  temprature: 300"))
    assert "rid.yaml:3: engine" in msg and "temprature" in msg
    msg = error(tmp_path, GOOD.replace("kind: test-22-atoms", "kind: gromacs"))
    assert "rid.yaml:3: engine.kind" in msg and "'gromacs'" in msg and "toy" in msg


def test_toy_engine_refuses_a_cvs_section(tmp_path):
    text = "workflow: rid\nengine: {kind: toy}\ncvs:\n  - {name: x, kind: distance, atoms: [0, 1]}\n"
    msg = error(tmp_path, text)
    assert "rid.yaml:2: engine" in msg and "fixed (phi, psi)" in msg
