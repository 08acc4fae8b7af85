"""The atomistic loop end to end on a tiny aluminium case with the EMT reference."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conlearn.atoms.dpgen.config import read_run_config
from conlearn.atoms.dpgen.run import run
from conlearn.testing.configs import unknown_key_error
from conlearn.core.manifest import read_records
from conlearn.exec.base import InProcessExecutor

ROOT = Path(__file__).resolve().parents[2]

TINY = {
    "type_map": ["Al"],
    "reference": {"kind": "emt"},
    "structures": [{"kind": "bulk", "element": "Al", "lattice": "fcc", "a": 4.05, "cubic": True,
                    "repeat": [2, 2, 2]}],
    "initial": {"n_frames_per_structure": 4, "cell_strain": 0.02, "atom_displacement": 0.05},
    "model": {"descriptor": {"type": "se_e2_a", "sel": [60], "rcut": 5.0, "rcut_smth": 2.0,
                             "neuron": [8, 16], "axis_neuron": 4},
              "fitting_net": {"neuron": [16, 16]}},
    "training": {"n_models": 2, "numb_steps": 60, "reuse_numb_steps": 30, "disp_freq": 20,
                 "learning_rate": {"start_lr": 3e-3, "stop_lr": 1e-4, "decay_steps": 10}},
    "exploration": [{"temperatures": [300], "pressures": [None, 1.0], "n_steps": 40, "trj_freq": 4}],
    "selection": {"trust_lo": 0.02, "trust_hi": 2.0, "max_select": 3, "converge_fraction": 0.999},
    "md": {"continue_trajectories": True},
    "loop": {"max_iterations": 2, "seed": 3},
}


def write(tmp_path: Path, cfg: dict, name="run.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return p


def label_keys(run_dir: Path) -> list[str]:
    return [k for k, _ in read_records(run_dir / "manifest.jsonl") if "/label/" in k]


def test_tiny_loop_in_process(tmp_path):
    cfg = read_run_config(write(tmp_path, TINY))
    report = run(cfg, tmp_path / "run", InProcessExecutor(), log=lambda m: None)
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["initial_frames"] == 4
    assert len(report.iterations) == 2
    # 2 conditions x (40 steps / 4 + 1) recorded frames per iteration
    assert s["explored_frames"] == 2 * 2 * 11
    assert 1 <= s["labelled_frames"] <= 2 * 3
    assert len(report.models) == 2 and all(Path(m.model_paths[0]).exists() for m in report.models)
    traj = sorted((tmp_path / "run" / "work").glob("iter-000/explore/*/model_devi.out"))
    devi = np.loadtxt(traj[0])
    assert devi.shape == (11, 5) and np.all(devi[:, 1] >= devi[:, 2]) and np.all(devi[:, 2] >= devi[:, 3])
    from conlearn.atoms.dpgen.report import status_text, write_report

    assert "iter 1" in status_text(tmp_path / "run")
    # iteration 1 continues each condition's trajectory from where iteration 0 left it
    from conlearn.atoms.dpgen.report import load_run

    its = load_run(tmp_path / "run")["iterations"]
    for b0, b1 in zip(its[0]["explore"], its[1]["explore"]):
        assert b0.condition.name == b1.condition.name
        np.testing.assert_allclose(b1.condition.params["structure"]["positions"], b0.meta["last_frame"]["positions"])
        assert not np.allclose(b1.condition.params["structure"]["positions"], b0.condition.params["structure"]["positions"])
    assert write_report(tmp_path / "run").stat().st_size > 20_000


def test_final_training_gives_the_result_and_heldout_tasks_match(tmp_path):
    """``training.final_numb_steps``: one more warm-started training after the last iteration."""
    from conlearn.atoms.deeppot.lcurve import read_lcurve
    from conlearn.atoms.deeppot.model import load_model
    from conlearn.atoms.dpgen.heldout import heldout_errors
    from conlearn.atoms.dpgen.report import status_text, write_report
    from conlearn.atoms.dpgen.run import conditions_for
    from conlearn.atoms.reference import build_reference

    cfg = json.loads(json.dumps(TINY))
    cfg["training"]["final_numb_steps"] = 20
    cfg["loop"].update(max_iterations=1, label_last=True)  # the only iteration is the last
    cfg = read_run_config(write(tmp_path, cfg))
    report = run(cfg, tmp_path / "run", InProcessExecutor(), log=lambda m: None)
    work = tmp_path / "run" / "work"
    assert [m.model_paths[0] for m in report.models] == [str(work / f"iter-000/final/{k:03d}/model.pt")
                                                         for k in range(2)]
    lc = read_lcurve(work / "iter-000/final/000/lcurve.out")
    assert lc["step"][-1] == 20 and all(m.metrics["steps"] == 20 for m in report.models)
    # loop.label_last: the last iteration's selection is labelled, and the final training uses it
    n_labelled = report.iterations[-1].n_labelled
    assert 1 <= n_labelled <= 3 and len(report.data) == 4 + n_labelled
    assert all(m.metrics["n_frames"] == 4 + n_labelled for m in report.models)
    # warm-started: the final member starts from its iteration-0 model, and moved away from it
    before, after = load_model(work / "iter-000/train/000/model.pt"), load_model(report.models[0].model_paths[0])
    diffs = [float((p - q).detach().abs().max()) for p, q in zip(before.parameters(), after.parameters())]
    assert 0 < max(diffs) < 1.0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["models"] == [m.model_paths[0] for m in report.models]
    assert "final training 2" in status_text(tmp_path / "run")
    assert "the final training last" in write_report(tmp_path / "run").read_text()
    # the held-out check as executor tasks (pickled) equals the in-process one
    conds = conditions_for(cfg)(0)
    paths = summary["models"]
    serial = heldout_errors(paths, conds, build_reference(cfg.reference), n_frames=2, n_steps=8)
    tasks = heldout_errors(paths, conds, cfg.reference, n_frames=2, n_steps=8,
                           executor=InProcessExecutor(check_pickle=True))
    assert list(serial) == [c.name for c in conds] and serial == tasks
    assert all(0 < v["force_rmse"] < 1 and v["n_frames"] == 2 for v in serial.values())
    # the force arrays behind the RMSE: kept on request, saved beside the run, drawn in the report
    from conlearn.atoms.dpgen.heldout import save_heldout_forces

    kept = heldout_errors(paths, conds, cfg.reference, n_frames=2, n_steps=8, keep_forces=True,
                          executor=InProcessExecutor(check_pickle=True))
    for name, v in kept.items():
        n_atoms = 2 * len(next(c for c in conds if c.name == name).params["structure"]["numbers"])
        assert v["ref_forces"].shape == v["pred_forces"].shape == (n_atoms, 3)
        rmse = np.sqrt(np.mean((v["pred_forces"] - v["ref_forces"]) ** 2))
        assert rmse == pytest.approx(serial[name]["force_rmse"], rel=1e-6)
    plain = save_heldout_forces(kept, tmp_path / "run")
    assert plain == serial and json.dumps(plain)
    saved = np.load(tmp_path / "run" / "heldout_forces.npz")
    assert sorted(saved.files) == sorted(f"{c.name}/{k}" for c in conds for k in ("ref", "pred"))
    summary["heldout"] = plain
    (tmp_path / "run" / "summary.json").write_text(json.dumps(summary))
    html = write_report(tmp_path / "run").read_text()
    assert "Held-out forces: committee vs reference" in html and "Held-out force errors per condition" in html


def test_final_trainer_warm_or_from_scratch(tmp_path):
    from ase.build import bulk
    from ase.calculators.emt import EMT

    from conlearn.atoms.dpgen.run import deeppot_components
    from conlearn.atoms.frames import atoms_to_frame
    from conlearn.core.records import TaskContext, TrainResult

    frames = []
    for k in range(3):
        a = bulk("Al", "fcc", a=4.05, cubic=True).repeat(2)
        a.rattle(0.05, seed=k)
        a.calc = EMT()
        frames.append({**atoms_to_frame(a), "energy": a.get_potential_energy(), "forces": a.get_forces()})
    cfg = json.loads(json.dumps(TINY))
    cfg["training"].update(final_numb_steps=7)
    trainer = deeppot_components(read_run_config(write(tmp_path, cfg)))[0]
    final = trainer.final_trainer
    assert (final.reuse_numb_steps, final.from_scratch, final.final_trainer) == (7, False, None)
    missing = TrainResult(member=0, model_paths=(str(tmp_path / "no-such-model.pt"),))
    ctx = TaskContext(key="k", iteration=0, index=0, seed=1, workdir=str(tmp_path / "warm"))
    with pytest.raises(FileNotFoundError, match="no-such-model"):  # warm: starts from previous
        final.train(frames, missing, ctx)
    cfg["training"].update(final_from_scratch=True)
    scratch = deeppot_components(read_run_config(write(tmp_path, cfg)))[0].final_trainer
    assert (scratch.numb_steps, scratch.from_scratch) == (7, True)
    res = scratch.train(frames, missing, TaskContext(key="k", iteration=0, index=0, seed=1,
                                                     workdir=str(tmp_path / "scratch")))
    assert res.metrics["steps"] == 7  # new weights, previous ignored


def test_bad_config_names_key_and_line(tmp_path):
    cfg = json.loads(json.dumps(TINY))
    cfg["selection"]["trust_low"] = 0.1
    msg, line = unknown_key_error(read_run_config, write(tmp_path, cfg), "trust_low")
    assert f"run.yaml:{line}: unknown key 'selection.trust_low'" in msg
    assert "trust_lo" in msg


def cli(*args, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "conlearn.cli", *args], env=env, **kw)


def test_kill9_and_resume_loses_and_repeats_nothing(tmp_path):
    cfg_path = write(tmp_path, TINY)
    res = write(tmp_path, {"cluster": {"kind": "inprocess"}}, "res.yaml")
    ref = cli("run", str(cfg_path), "--out", str(tmp_path / "ref"), "--resources", str(res),
              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    p = cli("run", str(cfg_path), "--out", str(tmp_path / "run"), "--resources", str(res),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    man = tmp_path / "run" / "manifest.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline:  # kill once the first iteration's exploration is recorded
        if man.exists() and any("iter-000/explore" in k for k, _ in read_records(man)):
            break
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    assert p.wait() == -signal.SIGKILL
    before = label_keys(tmp_path / "run")
    assert before and not (tmp_path / "run" / "summary.json").exists()
    assert cli("run", str(cfg_path), "--out", str(tmp_path / "run"), "--resources", str(res),
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).wait() == 0
    assert ref.wait() == 0
    after = label_keys(tmp_path / "run")
    assert len(after) == len(set(after)), "a label was computed twice"
    assert set(before) <= set(after)
    assert sorted(after) == sorted(label_keys(tmp_path / "ref"))
    a = json.loads((tmp_path / "ref" / "summary.json").read_text())
    b = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert (a["explored_frames"], a["labelled_frames"]) == (b["explored_frames"], b["labelled_frames"])


def test_tiny_loop_on_dask_local_cluster_matches_in_process(tmp_path):
    from conlearn.exec.dask import DaskExecutor

    cfg = read_run_config(write(tmp_path, TINY))
    with DaskExecutor.local(n_workers=2, processes=True) as ex:
        run(cfg, tmp_path / "dask", ex, log=lambda m: None)
    run(cfg, tmp_path / "inproc", InProcessExecutor(), log=lambda m: None)
    a = json.loads((tmp_path / "dask" / "summary.json").read_text())
    b = json.loads((tmp_path / "inproc" / "summary.json").read_text())
    # same seeds, same tasks: the distributed run computes exactly what the local one does
    assert (a["explored_frames"], a["labelled_frames"]) == (b["explored_frames"], b["labelled_frames"])
    assert sorted(label_keys(tmp_path / "dask")) == sorted(label_keys(tmp_path / "inproc"))
