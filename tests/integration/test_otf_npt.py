"""NPT on the fly: the GP's stress drives a hydrostatic barostat (ASE LangevinBAOAB).

The volume it settles at matches EMT's own NPT run at the same conditions; a run stopped
right after a reference call and resumed follows the uninterrupted one bit for bit (cell
and barostat momentum included); NPT on a slab is refused by name."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from ase.calculators.emt import EMT

from conlearn.atoms.otf.config import OTFConfig
from conlearn.atoms.otf.loop import dynamics, initial_state, run_otf
from conlearn.atoms.otf.state import load_checkpoint

P_GPA, T_K, STEPS = 5.0, 300.0, 200

CONFIG = {
    "seed": 5,
    "structure": {"kind": "bulk", "element": "Al", "lattice": "fcc", "a": 4.05, "cubic": True,
                  "repeat": [2, 2, 2]},
    "rattle": 0.05,
    "md": {"temperature_K": T_K, "timestep_fs": 2.0, "friction": 0.02, "n_steps": STEPS,
           "trajectory_every": 50, "pressure_GPa": P_GPA, "barostat_tau_fs": 200.0},
    "gp": {"r_cut2": 5.0, "r_cut3": 3.6, "stress_labels": True,
           "optimize": {"at_calls": [1, 2], "maxiter": 15}},
    "uncertainty": {"threshold": {"kind": "absolute", "value": 0.05}, "check_every": 5,
                    "add": {"kind": "top_n", "n": 4}},
    "output": {"checkpoint_every": 20, "plots": False},
}


def volumes(run_dir: Path) -> np.ndarray:
    lines = [json.loads(x) for x in (run_dir / "log.jsonl").read_text().splitlines()]
    return np.array([x["volume_A3"] for x in lines])


@pytest.fixture(scope="module")
def npt_run(tmp_path_factory):
    cfg = OTFConfig.model_validate(CONFIG)
    run_dir = tmp_path_factory.mktemp("npt") / "run"
    return cfg, run_dir, run_otf(cfg, run_dir)


def test_npt_volume_matches_the_reference_npt(npt_run):
    cfg, run_dir, summary = npt_run
    v = volumes(run_dir)
    assert len(v) == STEPS and 1 <= summary["n_calls"] <= 12
    # EMT itself, same integrator and conditions, another seed
    atoms = cfg.structure_spec().build()[0]
    v0 = atoms.get_volume()
    st = initial_state(cfg.model_copy(update={"seed": 99}))
    atoms.positions, atoms.calc = st.positions, EMT()
    atoms.set_momenta(st.momenta)
    dyn = dynamics(atoms, cfg.md, np.random.default_rng(99))
    ref = []
    for _ in range(STEPS):
        dyn.run(1)
        ref.append(atoms.get_volume())
    ref = np.array(ref)
    half = STEPS // 2
    assert ref[half:].mean() / v0 < 0.97  # 5 GPa compresses EMT aluminium by about 5 %
    assert v[half:].mean() / v0 < 0.97
    assert v[half:].mean() == pytest.approx(ref[half:].mean(), rel=0.01)
    # the logged pressure averages to the target
    p = np.array([json.loads(x)["pressure_GPa"] for x in (run_dir / "log.jsonl").read_text().splitlines()])
    assert abs(p[half:].mean() - P_GPA) < 1.5, p[half:].mean()


def test_npt_resume_after_a_call_is_bit_for_bit(npt_run, tmp_path):
    cfg, done, _ = npt_run
    run_dir = tmp_path / "stopped"
    run_otf(cfg, run_dir, max_steps=1)  # stops right after the first reference call
    run_otf(cfg, run_dir, max_steps=37)
    run_otf(cfg, run_dir)
    a, _ = load_checkpoint(done / "checkpoint.pkl")
    b, _ = load_checkpoint(run_dir / "checkpoint.pkl")
    assert [c["step"] for c in a.calls] == [c["step"] for c in b.calls]
    assert np.array_equal(a.positions, b.positions) and np.array_equal(a.cell, b.cell)
    assert np.array_equal(a.p_eps, b.p_eps) and a.p_eps is not None
    assert not np.allclose(a.cell, cfg.structure_spec().build()[0].cell.array)


def test_npt_on_a_slab_is_refused_by_name():
    bad = copy.deepcopy(CONFIG)
    bad["structure"] = {"kind": "surface", "element": "Al", "facet": "fcc100", "size": [2, 2, 3],
                        "vacuum": 6.0, "a": 4.05}
    with pytest.raises(ValueError, match=r"md.pressure_GPa: NPT needs a structure periodic in 3D"):
        OTFConfig.model_validate(bad)
