"""The config reader: unknown keys are named with file, line and the keys allowed there,
also inside optional sections and lists of sections."""

from typing import Optional

import pytest
from pydantic import BaseModel, ConfigDict

from conlearn.configfile import ConfigError, load_config


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Leaf(_Strict):
    alpha: int = 1
    beta: float = 2.0


class Root(_Strict):
    plain: Leaf = Leaf()
    optional: Optional[Leaf] = None
    union: Leaf | None = None
    stages: list[Leaf] = []


@pytest.mark.parametrize("section, text", [
    ("plain", "plain:\n  alpha: 3\n  gamma: 1\n"),
    ("optional", "optional:\n  alpha: 3\n  gamma: 1\n"),
    ("union", "union:\n  alpha: 3\n  gamma: 1\n"),
    ("stages.1", "stages:\n  - {alpha: 3}\n  - alpha: 3\n    gamma: 1\n"),
])
def test_unknown_key_names_file_line_and_allowed_keys(tmp_path, section, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path, Root)
    line = next(i for i, l in enumerate(text.splitlines(), 1) if "gamma" in l)
    assert f"c.yaml:{line}: unknown key '{section}.gamma'; allowed here: ['alpha', 'beta']" in str(err.value)


def test_unknown_top_level_key_lists_the_sections(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("plain: {}\nstagez: []\n")
    with pytest.raises(ConfigError, match=r"c.yaml:2: unknown key 'stagez'; allowed here: "
                                          r"\['optional', 'plain', 'stages', 'union'\]"):
        load_config(path, Root)
