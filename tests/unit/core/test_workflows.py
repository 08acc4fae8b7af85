"""Workflows: `conlearn run | status | report` dispatch on the config's `workflow` key and on
the run directory's recorded config.json; lazy registration imports a domain only when used."""

import json
from pathlib import Path

import pytest

from conlearn import cli
from conlearn.configfile import ConfigError
from conlearn.core import WORKFLOWS, Registry, RegistryError, Workflow
from conlearn.core.manifest import atomic_write_bytes
from conlearn.testing.toy import toy_loop
from conlearn.exec import InProcessExecutor
from conlearn.workflows import BUILTIN, workflow_of_config, workflow_of_run


class ToyWorkflow:
    """The 1-D toy loop as a workflow: the smallest thing the CLI can run end to end."""

    name = "toy-test"

    def load(self, path):
        import yaml

        cfg = yaml.safe_load(Path(path).read_text())
        if cfg.get("lo", 0.02) <= 0:
            raise ConfigError(f"{path}: lo: must be > 0")
        return cfg

    def run(self, cfg, run_dir, executor, observers=()):
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(run_dir / "config.json", json.dumps(cfg).encode())
        report = toy_loop(run_dir, InProcessExecutor(), lo=cfg.get("lo", 0.02), observers=observers).run()
        summary = {"iterations": len(report.iterations), "n_labelled": report.n_labelled}
        (run_dir / "summary.json").write_text(json.dumps(summary))
        return summary

    def status(self, run_dir):
        return "toy status: " + (Path(run_dir) / "summary.json").read_text()

    def report(self, run_dir):
        out = Path(run_dir) / "report.html"
        out.write_text("<html>toy</html>")
        return out


@pytest.fixture
def toy_workflow():
    WORKFLOWS.register("toy-test", ToyWorkflow(), replace=True)
    yield
    WORKFLOWS._items.pop("toy-test", None)


def test_lazy_registration_imports_on_first_get():
    reg = Registry("widget")
    reg.register_lazy("sel", "conlearn.core.selection:TrustWindowSelector")
    assert "sel" in reg.names() and "sel" in reg
    from conlearn.core.selection import TrustWindowSelector

    assert reg.get("sel") is TrustWindowSelector
    reg.register_lazy("broken", "conlearn.core.nope:Thing")
    with pytest.raises(RegistryError, match=r"widget 'broken' \(conlearn.core.nope:Thing\) failed to load"):
        reg.get("broken")
    with pytest.raises(ValueError, match="package.module:attr"):
        reg.register_lazy("bad", "no_colon")


def test_builtin_workflows_are_registered_and_dpgen_is_one():
    assert set(BUILTIN) <= set(WORKFLOWS.names())
    wf = WORKFLOWS.get("dpgen")
    assert isinstance(wf, Workflow) and wf.name == "dpgen"


def test_config_without_workflow_key_is_dpgen(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("type_map: [Al]\n")
    assert workflow_of_config(cfg).name == "dpgen"


def test_unknown_workflow_names_line_and_known(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("# a comment\nworkflow: ridd\n")
    with pytest.raises(ConfigError, match=r"c.yaml:2: workflow: unknown workflow 'ridd'; known: \[.*'rid'.*\]"):
        workflow_of_config(cfg)
    assert cli.main(["run", str(cfg), "--out", str(tmp_path / "r")]) == 2
    assert not (tmp_path / "r").exists()  # nothing written


def test_run_dir_dispatch(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a conlearn run directory"):
        workflow_of_run(tmp_path)
    (tmp_path / "manifest.jsonl").write_text("")
    assert workflow_of_run(tmp_path).name == "dpgen"  # runs from before the key
    (tmp_path / "config.json").write_text(json.dumps({"workflow": "nope"}))
    with pytest.raises(ConfigError, match="config.json: workflow: unknown workflow 'nope'"):
        workflow_of_run(tmp_path)


def test_cli_run_status_report_go_through_the_named_workflow(tmp_path, toy_workflow, capsys):
    cfg = tmp_path / "toy.yaml"
    cfg.write_text("workflow: toy-test\nlo: 0.02\n")
    out = tmp_path / "run"
    assert cli.main(["run", str(cfg), "--out", str(out), "--resources", str(_inprocess(tmp_path))]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["iterations"] >= 2 and summary["n_labelled"] > 0
    assert json.loads((out / "config.json").read_text())["workflow"] == "toy-test"
    capsys.readouterr()
    assert cli.main(["status", str(out)]) == 0
    assert capsys.readouterr().out.startswith("toy status:")
    assert cli.main(["report", str(out)]) == 0
    assert (out / "report.html").read_text() == "<html>toy</html>"
    bad = tmp_path / "bad.yaml"
    bad.write_text("workflow: toy-test\nlo: -1\n")
    assert cli.main(["run", str(bad), "--out", str(tmp_path / "bad")]) == 2
    assert "lo: must be > 0" in capsys.readouterr().err


def _inprocess(tmp_path):
    res = tmp_path / "res.yaml"
    res.write_text("cluster: {kind: inprocess}\n")
    return res
