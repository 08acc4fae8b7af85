"""Numbers in config files are never read from strings (docs/config.md): the rule of
``configfile.strict_validate`` on a small model, each refusal naming the key and its line."""

from __future__ import annotations

from typing import Literal, Optional, Union

import pytest
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from conlearn.configfile import ConfigError, load_config, strict_validate


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rcut: float = 6.0
    sel: Union[list[int], Literal["auto"]] = "auto"


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    numb_steps: int = 10
    temperature: float = 300.0
    size: tuple[int, int, int] = (1, 1, 1)
    verbose: bool = False
    name: Optional[str] = None
    inner: Inner = Field(default_factory=Inner)
    temps: list[float] = []


@pytest.mark.parametrize("text, key, line", [
    ('numb_steps: "20"\n', "numb_steps", 1),
    ("numb_steps: 20.0\n", "numb_steps", 1),
    ('x: 1\n', "x", 1),
    ('name: a\ntemperature: "300"\n', "temperature", 2),
    ("verbose: 'yes'\n", "verbose", 1),
    ("verbose: 1\n", "verbose", 1),
    ('inner:\n  rcut: "6.0"\n', "inner.rcut", 2),
    ('inner:\n  sel: [46, "92"]\n', "inner.sel", 2),
    ('temps: [300, "400"]\n', "temps.1", 1),
    ("size: [2, 2, '2']\n", "size.2", 1),
])
def test_refused_with_key_and_line(tmp_path, text, key, line):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(path, Settings)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{path}:{line}: ") and key in msg, msg


def test_accepted_forms(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("numb_steps: 20\ntemperature: 300\nsize: [2, 2, 1]\nverbose: true\nname: '20'\n"
                    "inner: {rcut: 5, sel: [46, 92]}\ntemps: [300, 400.5]\n")
    s = load_config(path, Settings)
    assert (s.numb_steps, s.temperature, s.size, s.verbose, s.name) == (20, 300.0, (2, 2, 1), True, "20")
    assert s.inner.rcut == 5.0 and s.inner.sel == [46, 92] and s.temps == [300.0, 400.5]
    path.write_text("inner: {sel: auto}\n")
    assert load_config(path, Settings).inner.sel == "auto"


def test_type_adapter_and_nested_locations():
    adapter = TypeAdapter(Inner)
    assert strict_validate(adapter, {"rcut": 4}).rcut == 4.0
    with pytest.raises(ValidationError) as e:
        strict_validate(adapter, {"rcut": "4"})
    assert e.value.errors()[0]["loc"] == ("rcut",) and e.value.errors()[0]["type"] == "float_type"


@pytest.mark.parametrize("name, text", [
    ("c.yaml", "temperature: 1e-5\ntemps: [1E3, -2e2, .5]\n"),
    ("c.json", '{"temperature": 1e-05, "temps": [1E3, -2e2, 0.5]}'),
])
def test_exponent_numbers_are_floats_in_yaml_and_json(tmp_path, name, text):
    """``1e-5`` is a number in JSON and YAML 1.2 (PyYAML's YAML 1.1 reads it as a string, which
    the strict rule would refuse: start_lr: 1e-3 is how deepmd-kit users write it)."""
    (tmp_path / name).write_text(text)
    s = load_config(tmp_path / name, Settings)
    assert s.temperature == 1e-5 and s.temps == [1000.0, -200.0, 0.5]
    (tmp_path / name).write_text(text.replace("1e-5", '"1e-5"').replace("1e-05", '"1e-05"'))
    with pytest.raises(ConfigError, match="temperature"):
        load_config(tmp_path / name, Settings)
