"""conlearn: concurrent learning of cheap ML models from expensive reference models."""

__version__ = "0.1.0"


def load_calculator(paths, device=None):
    """An ASE calculator over one saved model, or a committee of several (see atoms.calculator)."""
    from .atoms.calculator import load_calculator as _load

    return _load(paths, device=device)
