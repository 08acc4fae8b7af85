"""``kind: file`` structures: a relative path is taken against the config file's directory
(not the working directory), a missing file is named with the config's file, line and key
at load, and a structure with overlapping atoms stops a run before anything is recorded."""

import os

import pytest
import yaml
from ase import Atoms
from ase.build import bulk
from ase.io import write

from conlearn.atoms.dpgen.config import read_run_config
from conlearn.atoms.otf.config import load_otf_config
from conlearn.configfile import ConfigError
from conlearn.demo import CONFIG

OTF = """structure: {kind: file, path: %s}
md: {temperature_K: 300, n_steps: 2}
reference: {kind: emt}
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "proj" / "geo").mkdir(parents=True)
    write(tmp_path / "proj" / "geo" / "al.extxyz", bulk("Al", "fcc", a=4.05, cubic=True))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the user runs from another directory
    return tmp_path / "proj"


def test_otf_structure_path_is_relative_to_the_config(project):
    (project / "otf.yaml").write_text(OTF % "geo/al.extxyz")
    cfg = load_otf_config(project / "otf.yaml")
    assert cfg.structure["path"] == str(project / "geo" / "al.extxyz")
    assert len(cfg.structure_spec().build()[0]) == 4
    (project / "bad.yaml").write_text(OTF % "geo/nothere.extxyz")
    with pytest.raises(ConfigError, match=rf"bad.yaml:1: structure.path: structure file "
                                          rf"{project / 'geo' / 'nothere.extxyz'} does not exist"):
        load_otf_config(project / "bad.yaml")


def test_run_structure_path_is_relative_to_the_config(project):
    raw = yaml.safe_load(CONFIG.read_text())
    raw["structures"].append({"kind": "file", "path": "geo/al.extxyz", "name": "mine"})
    (project / "run.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    cfg = read_run_config(project / "run.yaml")
    assert cfg.structures[-1]["path"] == str(project / "geo" / "al.extxyz")
    raw["structures"][-1]["path"] = "geo/missing.xyz"
    text = yaml.safe_dump(raw, sort_keys=False)
    (project / "run.yaml").write_text(text)
    line = text.splitlines().index("  path: geo/missing.xyz") + 1
    with pytest.raises(ConfigError, match=rf"run.yaml:{line}: structures.{len(raw['structures']) - 1}.path: "
                                          r"structure file .*missing.xyz does not exist"):
        read_run_config(project / "run.yaml")


def test_overlapping_structure_stops_before_anything_is_recorded(project, tmp_path):
    from conlearn.atoms.dpgen.run import run
    from conlearn.atoms.otf.loop import run_otf
    from conlearn.exec import InProcessExecutor

    write(project / "geo" / "dup.extxyz",
          Atoms("Al3", positions=[[0, 0, 0], [2.0, 0, 0], [2.0, 0.3, 0]], cell=[10, 10, 10], pbc=True))
    (project / "otf.yaml").write_text(OTF % "geo/dup.extxyz")
    with pytest.raises(ValueError, match=r"atoms 1 \(Al\) and 2 \(Al\) overlap, 0.300 Å"):
        run_otf(load_otf_config(project / "otf.yaml"), tmp_path / "otf")
    assert not (tmp_path / "otf" / "config.json").exists()  # a fixed config may reuse the directory
    raw = yaml.safe_load(CONFIG.read_text())
    raw["structures"].append({"kind": "file", "path": "geo/dup.extxyz"})
    (project / "run.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    with pytest.raises(ValueError, match=r"structure 'dup' \(.*dup.extxyz\): atoms 1 \(Al\) and 2 \(Al\) overlap"):
        run(read_run_config(project / "run.yaml"), tmp_path / "dp", InProcessExecutor(), log=lambda m: None)
    assert not os.path.exists(tmp_path / "dp")


def test_a_rerun_must_use_the_config_the_run_began_with(tmp_path):
    """Recorded tasks are replayed on a re-run: a changed trust window, reference or model
    would mix two runs silently, so it is refused; more iterations are allowed."""
    from conlearn.atoms.dpgen.run import check_same_config, run
    from conlearn.exec import InProcessExecutor

    cfg = read_run_config(CONFIG)
    recorded = tmp_path / "run" / "config.json"
    recorded.parent.mkdir()
    recorded.write_text(cfg.model_dump_json(indent=1))
    check_same_config(cfg, recorded)  # the same config: fine
    longer = cfg.model_copy(update={"loop": cfg.loop.model_copy(update={"max_iterations": 9})})
    check_same_config(longer, recorded)  # extending a run: fine
    changed = cfg.model_copy(update={"selection": cfg.selection.model_copy(update={"trust_lo": 0.08})})
    with pytest.raises(ValueError, match=r"holds a run begun with a different config \(selection.trust_lo: 0.05 -> 0.08\)"):
        check_same_config(changed, recorded)
    before = recorded.read_text()
    with pytest.raises(ValueError, match="selection.trust_lo"):
        run(changed, tmp_path / "run", InProcessExecutor(), log=lambda m: None)
    assert recorded.read_text() == before and sorted(p.name for p in recorded.parent.iterdir()) == ["config.json"]
