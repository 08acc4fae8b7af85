"""Every DP-GEN config error before the first label (issue 16 item 2): typed learning_rate and
loss sections, structures whose elements are not in type_map, exploration stages naming
unknown structures, non-positive temperatures. Each is one line naming file:line and key,
raised at load by `conlearn run`, with nothing written to the run directory."""

from __future__ import annotations

import copy
import re

import pytest
import yaml

from conlearn import cli
from conlearn.atoms.dpgen.config import read_run_config
from conlearn.configfile import ConfigError

BASE = {
    "type_map": ["Al"],
    "reference": {"kind": "emt"},
    "structures": [{"kind": "bulk", "element": "Al", "lattice": "fcc", "a": 4.05, "cubic": True, "name": "fcc"},
                   {"kind": "bulk", "element": "Cu", "lattice": "fcc", "a": 3.6, "cubic": True, "name": "cu"}],
    "model": {"descriptor": {"type": "se_e2_a", "sel": "auto", "rcut": 5.0, "neuron": [8, 16], "axis_neuron": 4},
              "fitting_net": {"neuron": [16, 16]}},
    "training": {"learning_rate": {"start_lr": 3e-3, "stop_lr": 1e-4, "decay_steps": 10}},
    "exploration": [{"temperatures": [300], "structures": ["fcc"]}],
}


def _case(mutate):
    cfg = copy.deepcopy(BASE)
    cfg["type_map"] = ["Al", "Cu"]
    mutate(cfg)
    return cfg


CASES = {  # name: (mutation, text at the reported line or just below it, message)
    "learning_rate typo": (lambda c: c["training"]["learning_rate"].update(stop_rl=1e-5),
                           "stop_rl", "unknown key 'training.learning_rate.stop_rl'; allowed here: "),
    "loss typo": (lambda c: c["training"].update(loss={"start_pref_ff": 1}),
                  "start_pref_ff", "unknown key 'training.loss.start_pref_ff'"),
    "element not in type_map": (lambda c: c.update(type_map=["Al"]),
                                "element: Cu", "structure 'cu' has element(s) ['Cu'] not in type_map ['Al']"),
    "unknown structure": (lambda c: c["exploration"][0].update(structures=["fcc", "hcp"]),
                          "structures:", "exploration[0].structures: unknown structure(s) ['hcp']"),
    "negative temperature": (lambda c: c["exploration"][0].update(temperatures=[300, -50]),
                             "-50", "exploration.0.temperatures.1: Input should be greater than 0"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_error_at_load_names_line_and_writes_nothing(tmp_path, name, capsys):
    mutate, anchor, message = CASES[name]
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(_case(mutate), sort_keys=False))
    with pytest.raises(ConfigError) as err:
        read_run_config(path)
    assert message in str(err.value)
    line = int(re.search(r"run\.yaml:(\d+):", str(err.value)).group(1))
    assert anchor in "\n".join(path.read_text().splitlines()[line - 1: line + 2])
    out = tmp_path / "out"
    assert cli.main(["run", str(path), "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()  # no config.json locking the directory to a bad config


def test_good_config_still_loads(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(_case(lambda c: None), sort_keys=False))
    cfg = read_run_config(path)
    assert cfg.training.learning_rate.stop_lr == 1e-4 and cfg.training.loss.limit_pref_e == 2
    assert cfg.workflow == "dpgen"
