"""Shared fixtures."""

from pathlib import Path

import pytest

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass


@pytest.fixture
def water_dir() -> Path:
    """The deepmd-kit water example data (/work/shared/data/water), skipped when absent."""
    d = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "water"
    if not d.is_dir():
        pytest.skip(f"water data not found at {d}")
    return d
