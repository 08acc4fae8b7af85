"""The CG run config: defaults, and errors that name file, line and key before anything runs."""

from __future__ import annotations

import pytest

from conlearn.cg.config import read_config
from conlearn.configfile import ConfigError


def write(tmp_path, text: str):
    p = tmp_path / "cg.yaml"
    p.write_text(text)
    return p


def test_defaults_and_a_valid_file(tmp_path):
    cfg = read_config(write(tmp_path, "workflow: cg\nsystem: {liquid: methanol, n_molecules: 125}\n"))
    small = read_config(write(tmp_path, "workflow: cg\nsystem: {n_molecules: 64, cutoff_nm: 0.6}\n"))
    assert small.system.n_molecules == 64
    assert cfg.system.liquid == "methanol" and cfg.model.kind == "delta" and cfg.mapping.kind == "com"


@pytest.mark.parametrize("text, where, words", [
    ("workflow: cg\nmodel:\n  kind: gp\n", "cg.yaml:3", "model.kind"),
    ("workflow: cg\nselection:\n  trust_low: 1\n", "cg.yaml:3", "unknown key 'selection.trust_low'"),
    ("workflow: cg\nselection:\n  trust_lo: 50\n  trust_hi: 10\n", "cg.yaml:2", "trust_lo (50.0) must be below"),
    ("workflow: cg\nmapping:\n  kind: atom\n", "cg.yaml:2", "atom: needed with kind atom"),
    ("workflow: cg\nmapping:\n  kind: atom\n  atom: 3\n", "cg.yaml:4", "spce molecule has 3 atoms"),
    ("workflow: cg\nsystem: {liquid: mw}\nmapping: {kind: cog}\n", "cg.yaml", "mw liquid is already one bead"),
    ("workflow: cg\ninitial:\n  n_steps: 100\n  save_every: 50\n", "cg.yaml:2", "fewer than 2"),
    ("workflow: cg\nsystem:\n  n_molecules: 64\n", "cg.yaml:2", "cutoff_nm 0.9 exceeds half the box (0.621"),
    ("workflow: cg\nsystem: {liquid: methanol, n_molecules: 64, cutoff_nm: 0.5}\n", "cg.yaml:2", "125 molecules"),
    ("workflow: cg\nbaseline:\n  angular:\n    degree: 9\n", "cg.yaml:4", "baseline.angular.degree"),
    ("workflow: cg\nbaseline:\n  angular: {gama: 0.3}\n", "cg.yaml:3", "unknown key 'baseline.angular.gama'"),
    ("workflow: cg\nevaluation:\n  save_every: 10\n  ml_every: 4\n", "cg.yaml:2", "ml_every (4) must divide"),
])
def test_errors_name_file_line_and_key(tmp_path, text, where, words):
    with pytest.raises(ConfigError) as err:
        read_config(write(tmp_path, text))
    assert where in str(err.value) and words in str(err.value), str(err.value)
