"""Malformed inputs through the real command line: each is one line on stderr naming the file
and the key, line or atom at fault, exit status 2, no traceback, nothing written to the run or
output directory and no reference call spent (the DP-GEN configs use a reference that leaves a
marker file when it computes anything).

The CLI runs in-process (``conlearn.cli.main``, as the console script does) to keep the table
fast; ``test_entry_point_*`` run ``python -m conlearn`` as a subprocess.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import yaml

import conlearn
from conlearn import cli

ROOT = Path(__file__).resolve().parents[2]
WATER = ROOT / "examples" / "water_small"
AL_EMT = (ROOT / "conlearn" / "examples" / "al_emt.yaml").read_text()
MARKER_MODULE = '''
import os
from pathlib import Path
from ase.calculators.emt import EMT

class MarkerEMT(EMT):
    """EMT that leaves the file $CONLEARN_TEST_MARKER behind when it computes anything."""
    def calculate(self, *args, **kwargs):
        Path(os.environ["CONLEARN_TEST_MARKER"]).touch()
        super().calculate(*args, **kwargs)
'''


@pytest.fixture
def marker(tmp_path, monkeypatch) -> Path:
    """The path the marker reference writes when called; the module is importable here."""
    (tmp_path / "conlearn_marker_ref.py").write_text(MARKER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "REFERENCE_CALLED"
    monkeypatch.setenv("CONLEARN_TEST_MARKER", str(path))
    return path


def dpgen_text() -> str:
    return AL_EMT.replace("reference: {kind: emt}", "reference: {kind: ase, calculator: 'conlearn_marker_ref:MarkerEMT'}")


def edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


# ----------------------------------------------------------------- small DeepPot files
def train_config(train: Path | str, valid: Path | str | None = None, *, type_map=("O", "H"), rcut=4.0,
                 steps=2, numb_steps=None) -> dict:
    cfg = {
        "model": {"type_map": list(type_map),
                  "descriptor": {"type": "se_e2_a", "sel": [32, 32], "rcut": rcut, "rcut_smth": 0.5,
                                 "neuron": [4, 8], "axis_neuron": 2, "seed": 1},
                  "fitting_net": {"neuron": [8], "seed": 1}},
        "learning_rate": {"start_lr": 1e-3, "stop_lr": 1e-4, "decay_steps": 1},
        "loss": {"start_pref_e": 0.02, "limit_pref_e": 1, "start_pref_f": 1000, "limit_pref_f": 1},
        "training": {"training_data": {"systems": [str(train)], "batch_size": 1},
                     "numb_steps": steps if numb_steps is None else numb_steps, "seed": 1, "disp_freq": 1, "save_freq": steps},
    }
    if valid is not None:
        cfg["training"]["validation_data"] = {"systems": [str(valid)], "batch_size": 1, "numb_btch": 1}
    return cfg


def write_yaml(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Two trained runs of the tiny DeepPot on the bundled water frames: type maps [O, H]
    (with its checkpoint) and [H, O]."""
    base = tmp_path_factory.mktemp("models")
    out = {}
    for name, tm in (("oh", ("O", "H")), ("ho", ("H", "O"))):
        cfg = write_yaml(base / f"{name}.yaml", train_config(WATER / "data_0", type_map=tm))
        assert cli.main(["train", str(cfg), "-o", str(base / name)]) == 0
        out[name] = base / name
    return out


def copy_system(src: Path, dst: Path) -> Path:
    """A copy of a deepmd system directory (its arrays cut to 3 frames) to break."""
    (dst / "set.000").mkdir(parents=True)
    for f in ("type.raw", "type_map.raw"):
        (dst / f).write_bytes((src / f).read_bytes())
    for f in (src / "set.000").glob("*.npy"):
        np.save(dst / "set.000" / f.name, np.load(f)[:3])
    return dst


# ----------------------------------------------------------------- the table
@dataclass
class Case:
    """``setup(tmp_path, models) -> argv``; ``expect``: regexes stderr must match."""

    name: str
    setup: Callable[[Path, dict], list[str]]
    expect: tuple[str, ...]


def run_cfg(text: str, *extra: str) -> Callable:
    def setup(tmp, _models):
        (tmp / "c.yaml").write_text(text)
        return ["run", str(tmp / "c.yaml"), "--out", str(tmp / "run"), *extra]
    return setup


def dpgen(old: str, new: str) -> Callable:
    return run_cfg(edit(dpgen_text(), old, new))


def example(name: str, old: str, new: str) -> Callable:
    return run_cfg(edit((ROOT / "examples" / name).read_text(), old, new))


def train_with(breaker: Callable[[Path], None] | None = None, **cfg_kw) -> Callable:
    """``conlearn train`` on a broken copy of data_0 (``breaker(system_dir)``)."""
    def setup(tmp, _models):
        data = copy_system(WATER / "data_0", tmp / "sys")
        if breaker is not None:
            breaker(data)
        cfg = write_yaml(tmp / "train.yaml", train_config(data, **cfg_kw))
        return ["train", str(cfg), "-o", str(tmp / "run")]
    return setup


def set_npy(name: str, fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path], None]:
    def breaker(d: Path):
        f = d / "set.000" / name
        np.save(f, fn(np.load(f)))
    return breaker


def with_nan(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a[1, 3 * 7 + 2] = np.nan  # frame 1, atom 7, z
    return a


def initial_data(breaker: Callable[[Path], None] | None) -> Callable:
    """``conlearn run`` of the DP-GEN config seeded with a (broken) copy of water data_0:
    water for an Al run is itself an error (elements not in type_map)."""
    def setup(tmp, _models):
        data = copy_system(WATER / "data_0", tmp / "sys")
        if breaker is not None:
            breaker(data)
        return run_cfg(edit(dpgen_text(), "initial:\n", "initial:\n  data: [sys]\n"))(tmp, _models)
    return setup


def model_file(make: Callable[[Path, dict], Path]) -> Callable:
    """``conlearn test`` of a broken model file on the bundled data_3."""
    def setup(tmp, models):
        return ["test", "-m", str(make(tmp, models)), "-d", str(WATER / "data_3"), "-o", str(tmp / "run")]
    return setup


def truncated(tmp, models):
    raw = (models["oh"] / "model.pt").read_bytes()
    (tmp / "cut.pt").write_bytes(raw[: len(raw) // 2])
    return tmp / "cut.pt"


def written(tmp, name: str, content: bytes) -> Path:
    (tmp / name).write_bytes(content)
    return tmp / name


def resources(text: str) -> Callable:
    def setup(tmp, _models):
        (tmp / "c.yaml").write_text(dpgen_text())
        (tmp / "res.yaml").write_text(text)
        return ["run", str(tmp / "c.yaml"), "--out", str(tmp / "run"), "--resources", str(tmp / "res.yaml")]
    return setup


def resume_changed_rcut(tmp, models):
    import shutil

    shutil.copytree(models["oh"], tmp / "run")
    cfg = write_yaml(tmp / "train.yaml", train_config(WATER / "data_0", rcut=4.5, steps=4))
    return ["train", str(cfg), "-o", str(tmp / "run")]


LINE = r"c\.yaml:\d+"
CASES = [
    # --- configs: DP-GEN (conlearn run), the marker reference
    Case("yaml-syntax", dpgen("type_map: [Al]", "type_map: [Al"), (r"c\.yaml:\d+:\d+: not valid YAML",)),
    Case("top-level-list", run_cfg("- a\n- b\n"), (r"c\.yaml: expected a mapping",)),
    Case("empty-file", run_cfg(""), (r"c\.yaml: expected a mapping",)),
    Case("missing-config", lambda tmp, m: ["run", str(tmp / "absent.yaml"), "--out", str(tmp / "run")],
         (r"absent\.yaml does not exist",)),
    Case("unknown-workflow", run_cfg("workflow: ridd\n" + dpgen_text()), (LINE, r"unknown workflow 'ridd'")),
    Case("unknown-top-key", dpgen("selection:", "selction:"), (LINE, "unknown key 'selction'", "allowed")),
    Case("typo-in-learning-rate", dpgen("learning_rate: {start_lr", "learning_rate: {strat_lr"),
         (LINE, r"unknown key 'training\.learning_rate\.strat_lr'",)),
    Case("quoted-numb_steps", dpgen("numb_steps: 4000", 'numb_steps: "4000"'),
         (LINE, r"training\.numb_steps", "without quotes")),
    Case("quoted-structure-a", dpgen("lattice: fcc, a: 4.05, cubic", 'lattice: fcc, a: "4.05", cubic'),
         (LINE, r"structures\.0\.a", "without quotes")),
    Case("negative-layer-width", dpgen("neuron: [16, 32, 64]", "neuron: [16, -32, 64]"),
         (LINE, r"model\.descriptor\.neuron\.1", "greater than 0")),
    Case("rcut_smth-beyond-rcut", dpgen("rcut: 5.0, rcut_smth: 2.0", "rcut: 2.0, rcut_smth: 5.0"),
         (LINE, r"model\.descriptor: rcut_smth \(5\.0\) must be below rcut \(2\.0\)",)),
    Case("sel-per-type", dpgen("sel: [64]", "sel: [64, 3]"), (LINE, r"model: descriptor\.sel has 2 entries for the 1 type",)),
    Case("wrong-type-temperatures", dpgen("temperatures: [50, 300]", "temperatures: hot"),
         (LINE, r"exploration\.0\.temperatures",)),
    Case("negative-temperature", dpgen("temperatures: [50, 300]", "temperatures: [-50, 300]"),
         (LINE, r"exploration\.0\.temperatures",)),
    Case("element-not-in-type_map", dpgen("type_map: [Al]", "type_map: [Cu]"), (LINE, r"\['Al'\] not in type_map")),
    Case("unknown-structure-name", dpgen("[fcc-Al-2x2x2-cubic,", "[fcc-Al-2x2x2-cubc,"),
         (LINE, r"exploration\[0\]\.structures: unknown structure\(s\) \['fcc-Al-2x2x2-cubc'\]")),
    Case("missing-structure-file", dpgen("initial:\n", "  - {kind: file, path: nowhere.xyz}\ninitial:\n"),
         (LINE, r"structures\.6\.path: structure file .*nowhere\.xyz does not exist")),
    Case("missing-initial-data", dpgen("initial:\n", "initial:\n  data: [no_such_data]\n"),
         (LINE, r"initial\.data\[0\]: .*no_such_data does not exist")),
    Case("initial-data-nan", initial_data(set_npy("coord.npy", with_nan)),
         (LINE, r"initial\.data\[0\]: .*sys/set\.000/coord\.npy: 1 non-finite", r"frame 1, atom 7 \(z\)")),
    Case("initial-data-other-elements", initial_data(None), (LINE, r"initial\.data\[0\]: .*sys", r"type_map")),
    Case("unknown-reference", dpgen("reference: {kind: ase, calculator: 'conlearn_marker_ref:MarkerEMT'}",
                                    "reference: {kind: vasp2}"), (LINE, "reference", "vasp2")),
    Case("reference-quoted-option", dpgen("reference: {kind: ase, calculator: 'conlearn_marker_ref:MarkerEMT'}",
                                          'reference: {kind: lj, sigma: "2.6"}'),
         (LINE, r"reference\.sigma", "without quotes")),
    Case("trust-window-inverted", dpgen("trust_lo: 0.05", "trust_lo: 0.5"), (LINE, "trust_lo")),
    # --- configs: the other workflows
    Case("rid-quoted-kappa", example("rid_toy.yaml", "kappa: 1000", 'kappa: "1000"'),
         (LINE, r"label\.kappa", "without quotes")),
    Case("rid-unknown-key", example("rid_toy.yaml", "n_walkers: 4", "n_walker: 4"),
         (LINE, r"unknown key 'explore\.n_walker'")),
    Case("kinetic-quoted-nx", example("kinetic_bgk.yaml", "nx: 100", 'nx: "100"'), (LINE, r"grid\.nx", "without quotes")),
    Case("kinetic-unknown-key", example("kinetic_bgk.yaml", "degree: 5", "degre: 5"),
         (LINE, r"unknown key 'closure\.degre'")),
    Case("cg-quoted-n_molecules", example("cg_water.yaml", "n_molecules: 236", 'n_molecules: "236"'),
         (LINE, r"system\.n_molecules", "without quotes")),
    Case("cg-bad-mapping", example("cg_water.yaml", "mapping: {kind: com}", "mapping: {kind: comm}"),
         (LINE, "mapping", "comm")),
    Case("otf-quoted-n_steps", lambda tmp, m: [
        "otf", str(write_text(tmp / "c.yaml", edit((ROOT / "examples" / "otf_al.yaml").read_text(),
                                                      "n_steps: 400", 'n_steps: "400"'))),
        "--out", str(tmp / "run")], (LINE, r"md\.n_steps", "without quotes")),
    # --- training data (conlearn train)
    Case("train-quoted-numb_steps", train_with(numb_steps="20"), (r"train\.yaml:\d+", r"training\.numb_steps", "without quotes")),
    Case("data-missing-dir", lambda tmp, m: ["train", str(write_yaml(tmp / "train.yaml", train_config(tmp / "nodata"))),
                                             "-o", str(tmp / "run")], (r"nodata",)),
    Case("data-missing-type.raw", train_with(lambda d: (d / "type.raw").unlink()), (r"sys: no deepmd systems \(directories with type\.raw\)",)),
    Case("data-coord-shape", train_with(set_npy("coord.npy", lambda a: a[:, :-3])), (r"sys/set\.000/coord\.npy", "shape")),
    Case("data-energy-frames", train_with(set_npy("energy.npy", lambda a: a[:2])), (r"sys/set\.000/energy\.npy",)),
    Case("data-nan-coord", train_with(set_npy("coord.npy", with_nan)), (r"sys/set\.000/coord\.npy", "non-finite", r"frame 1, atom 7 \(z\)")),
    Case("data-type-index", train_with(lambda d: (d / "type.raw").write_text("5\n" * 192)), (r"sys", r"type")),
    # --- model files (conlearn test, train --init-model, resume)
    Case("model-truncated", model_file(truncated), (r"cut\.pt", "model")),
    Case("model-foreign", model_file(lambda tmp, m: written(tmp, "notes.pt", b"not a model at all\n")), (r"notes\.pt", "model")),
    Case("model-empty", model_file(lambda tmp, m: written(tmp, "empty.pt", b"")), (r"empty\.pt", "model")),
    Case("model-directory", model_file(lambda tmp, m: m["oh"]), (r"oh: is a directory, not a model file",)),
    Case("model-missing", model_file(lambda tmp, m: tmp / "absent.pt"), (r"absent\.pt",)),
    Case("model-mixed-type-maps", lambda tmp, m: ["test", "-m", str(m["oh"] / "model.pt"), "-m", str(m["ho"] / "model.pt"),
                                                  "-d", str(WATER / "data_3"), "-o", str(tmp / "run")],
         (r"oh/model\.pt and .*ho/model\.pt differ in type_map",)),
    Case("init-model-truncated", lambda tmp, m: train_with()(tmp, m) + ["--init-model", str(truncated(tmp, m))],
         (r"cut\.pt", "model")),
    Case("resume-changed-rcut", resume_changed_rcut, (r"rcut",)),
    # --- resources files (conlearn run --resources)
    Case("resources-unknown-kind", resources("cluster: {kind: slurmm}\n"), (r"res\.yaml:1", "cluster.kind", "slurmm")),
    Case("resources-slurm-typo", resources("cluster: {kind: slurm, queue_name: x}\n"),
         (r"res\.yaml:1", "unknown key 'cluster.queue_name'")),
    Case("resources-quoted-workers", resources("cluster:\n  kind: processes\n  workers: '4'\n"),
         (r"res\.yaml:3", r"cluster\.workers", "without quotes")),
    Case("resources-missing", lambda tmp, m: ["run", str(write_text(tmp / "c.yaml", dpgen_text())), "--out", str(tmp / "run"),
                                              "--resources", str(tmp / "absent_res.yaml")], (r"resources file .*absent_res\.yaml",)),
    # --- command line
    Case("status-not-a-run", lambda tmp, m: ["status", str(tmp)], (r"not a conlearn run directory",)),
    Case("report-missing-dir", lambda tmp, m: ["report", str(tmp / "run")], (r"run",)),
]


def write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def call(argv: list[str]) -> int:
    try:
        return cli.main(argv)
    except SystemExit as exit_:  # argparse
        return exit_.code


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_malformed_input(case: Case, tmp_path, marker, models, capsys):
    case_dir = tmp_path / "case"
    case_dir.mkdir()
    argv = case.setup(case_dir, models)
    before = {p: p.stat().st_mtime_ns for p in (case_dir / "run").rglob("*")} if (case_dir / "run").exists() else None
    rc = call(argv)
    out = capsys.readouterr()
    err = out.err.replace(str(case_dir) + os.sep, "")
    print(f"{case.name}: {err.strip()}")
    assert rc == 2, (rc, out.err)
    assert "Traceback" not in out.err and "report it" not in out.err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"conlearn {argv[0]}: error: "), out.err
    for pattern in case.expect:
        assert re.search(pattern, lines[0]), (pattern, lines[0])
    if before is None:
        assert not (case_dir / "run").exists(), sorted((case_dir / "run").rglob("*"))
    else:  # an existing run directory is left as it was
        assert {p: p.stat().st_mtime_ns for p in (case_dir / "run").rglob("*")} == before
    assert not marker.exists()


def test_enough_cases_and_item_3_among_them():
    names = {c.name for c in CASES}
    assert len(CASES) >= 30
    assert {"model-mixed-type-maps", "resume-changed-rcut", "quoted-numb_steps", "train-quoted-numb_steps"} <= names


def test_marker_reference_leaves_its_file(marker):
    """The control: the reference the DP-GEN cases use would have left the marker."""
    from ase.build import bulk

    from conlearn.atoms.reference import build_reference

    atoms = bulk("Al", "fcc", a=4.05)
    atoms.calc = build_reference({"kind": "ase", "calculator": "conlearn_marker_ref:MarkerEMT"})
    atoms.get_potential_energy()
    assert marker.exists()


def test_no_model_given():
    with pytest.raises(ValueError, match="^no model given$"):
        conlearn.load_calculator([])


def test_missing_forces_are_said_once_per_system(tmp_path, capsys):
    """Not an error: training data without force.npy trains on energies, and says so once."""
    data = copy_system(WATER / "data_0", tmp_path / "noforce")
    (data / "set.000" / "force.npy").unlink()
    cfg = write_yaml(tmp_path / "train.yaml", train_config(data, steps=2))
    assert cli.main(["train", str(cfg), "-o", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    said = [line for line in err.splitlines() if "noforce" in line and "force" in line.replace("noforce", "")]
    assert len(said) == 1, err


def test_unexpected_error_shows_traceback_and_asks_for_a_report(monkeypatch, tmp_path, capsys):
    """A bug (here: a TypeError inside a command) is not dressed up as an input error."""
    def broken(args):
        raise TypeError("unsupported operand")

    monkeypatch.setattr(cli, "cmd_status", broken)
    assert cli.main(["status", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "TypeError: unsupported operand" in err and "please report it" in err


def test_library_value_error_is_a_bug_not_an_input_error(monkeypatch, tmp_path, capsys):
    """A ValueError raised inside numpy (not by a conlearn check) shows its traceback."""
    def broken(args):
        np.zeros(3).reshape(2, 2)

    monkeypatch.setattr(cli, "cmd_status", broken)
    assert cli.main(["status", str(tmp_path)]) == 1
    assert "Traceback" in capsys.readouterr().err


def _python_m(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "conlearn", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_entry_point_usage_errors(tmp_path):
    p = _python_m(cwd=tmp_path)
    assert p.returncode == 2 and "usage: conlearn" in p.stderr and "Traceback" not in p.stderr
    p = _python_m("run", "c.yaml", "--outt", "x", cwd=tmp_path)
    assert p.returncode == 2 and "unrecognized arguments: --outt" in p.stderr and not list(tmp_path.iterdir())
    p = _python_m("--threads", "x", "status", ".", cwd=tmp_path)
    assert p.returncode == 2 and "invalid int value: 'x'" in p.stderr


def test_entry_point_config_error(tmp_path):
    (tmp_path / "c.yaml").write_text(edit(AL_EMT, "numb_steps: 4000", 'numb_steps: "20"'))
    p = _python_m("run", "c.yaml", "--out", "run", cwd=tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert re.fullmatch(r"conlearn run: error: c\.yaml:\d+: training\.numb_steps: .*without quotes.*'20'\)\n", p.stderr)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["c.yaml"]
