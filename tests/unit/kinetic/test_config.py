"""Kinetic run configs: every bad input is one error naming file, line and key, before anything is written."""

import pytest

from conlearn.configfile import ConfigError
from conlearn.kinetic.config import read_config

GOOD = """\
workflow: kinetic
grid: {nx: 64, t_end: 0.1}
initial:
  n_random: 2
  conditions:
    - kind: riemann
      kn: 0.1
      left: [1.0, 0.0, 1.0]
      right: [0.125, 0.0, 0.1]
    - kind: wave
      kn: 0.01
      rho: {mean: 1.0, modes: [[1, 0.5, 0.0]]}
      u: {mean: 0.0, modes: [[2, 0.3, 0.5]]}
      T: {mean: 1.0, modes: [[1, 0.3, 1.57]]}
"""


def load(tmp_path, text):
    p = tmp_path / "k.yaml"
    p.write_text(text)
    return read_config(p), p


def test_good_config_and_specs(tmp_path):
    cfg, _ = load(tmp_path, GOOD)
    specs = [c.spec() for c in cfg.initial.conditions]
    assert specs[0] == {"kind": "riemann", "bc": "neumann", "x0": 0.5, "left": [1.0, 0.0, 1.0],
                        "right": [0.125, 0.0, 0.1]}
    assert specs[1]["rho"] == {"mean": 1.0, "modes": [[1, 0.5, 0.0]]} and specs[1]["bc"] == "periodic"
    assert cfg.closure.n_models == 4 and cfg.explore.kn_range == (1e-3, 10.0)


@pytest.mark.parametrize("old,new,line,key", [
    ("      kn: 0.1\n", "      kn: 0.0\n", 7, "initial.conditions.0.kn"),
    ("      kn: 0.01\n", "      kn: -1\n", 11, "initial.conditions.1.kn"),
    ("right: [0.125, 0.0, 0.1]", "right: [-0.125, 0.0, 0.1]", 9, "initial.conditions.0.right"),
    ("rho: {mean: 1.0, modes: [[1, 0.5, 0.0]]}", "rho: {mean: 1.0, modes: [[1, 1.2, 0.0]]}", 12,
     "initial.conditions.1.rho"),
    ("grid: {nx: 64, t_end: 0.1}", "grid: {nx: 64, t_end: 0.1}\nexplore: {kn_range: [0, 10]}", 3, "explore.kn_range"),
    ("grid: {nx: 64, t_end: 0.1}", "grid: {nx: 64, t_end: 0.1}\nvelocity: {nv: 40, vmax: 16}", 3, "velocity"),
    ("grid: {nx: 64, t_end: 0.1}", "grid: {nx: 64, t_end: 0.1}\nvelocity: {nv: 200, vmax: 8}", 3, "velocity"),
    ("grid: {nx: 64, t_end: 0.1}", "grid: {nx: 64, t_end: 0.1, dx: 3}", 2, "grid.dx"),
    ("grid: {nx: 64, t_end: 0.1}", "grid: {nx: 64, t_end: 0.1}\nclosure: {hyperbolic: -1}", 3, "closure.hyperbolic"),
    ("grid: {nx: 64, t_end: 0.1}", "grid: {nx: 64, t_end: 0.1}\nsolver: {flux: roe}", 3, "solver.flux"),
    ("grid: {nx: 64, t_end: 0.1}", "grid: {nx: 64, t_end: 0.1}\nsolver: {scheme: rk4}", 3, "solver.scheme"),
    ("grid: {nx: 64, t_end: 0.1}", "grid: {nx: 64, t_end: 0.1}\nsolver: {w_implicit: maybe}", 3, "solver.w_implicit"),
    ("grid: {nx: 64, t_end: 0.1}", "grid: {nx: 64, t_end: 0.1}\nsolver: {implicit_cfl: 1.5}", 3,
     "solver.implicit_cfl"),
    ("grid: {nx: 64, t_end: 0.1}", "grid: {nx: 64, t_end: 0.1}\nsolver: {rarefied_cfl: 0}", 3,
     "solver.rarefied_cfl"),
])
def test_errors_name_file_line_and_key(tmp_path, old, new, line, key):
    assert old in GOOD
    with pytest.raises(ConfigError) as err:
        load(tmp_path, GOOD.replace(old, new, 1))
    msg = str(err.value)
    assert f"k.yaml:{line}: {key}" in msg.replace(": unknown key '", ": ").replace("'", ""), msg
    assert list(tmp_path.iterdir()) == [tmp_path / "k.yaml"]     # nothing written


def test_implicit_w_damping_needs_the_hancock_scheme(tmp_path):
    cfg, _ = load(tmp_path, GOOD)
    assert cfg.solver.w_implicit is True and cfg.solver.implicit_cfl == 0.75 and cfg.solver.rarefied_cfl == 0.9
    with pytest.raises(ConfigError, match="w_implicit: true needs scheme: hancock"):
        load(tmp_path, GOOD + "solver: {scheme: rk2}\n")
    cfg, _ = load(tmp_path, GOOD + "solver: {scheme: rk2, w_implicit: false}\n")
    assert cfg.solver.scheme == "rk2"


def test_velocity_messages_say_what_is_wrong(tmp_path):
    with pytest.raises(ConfigError, match="too coarse for the velocity range.*need nv >= 8"):
        load(tmp_path, GOOD.replace("grid: {nx: 64, t_end: 0.1}", "grid: {nx: 64}\nvelocity: {nv: 40, vmax: 16}"))
    with pytest.raises(ConfigError, match="vmax = 8 is too narrow"):
        load(tmp_path, GOOD.replace("grid: {nx: 64, t_end: 0.1}", "grid: {nx: 64}\nvelocity: {nv: 200, vmax: 8}"))
    cfg, _ = load(tmp_path, GOOD.replace("grid: {nx: 64, t_end: 0.1}", "grid: {nx: 64}\nvelocity: {nv: 160, vmax: 16}"))
    assert cfg.velocity.nv == 160
