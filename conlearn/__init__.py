"""conlearn: concurrent learning of cheap ML models from expensive reference models."""

__version__ = "0.1.0"


def load_calculator(paths, device=None, trust=False):
    """An ASE calculator over one saved model of any kind (DeepPot, compressed DeepPot, full,
    sparse or mapped GP; recognised by the file's header), or a committee of several.

    ``trust=True`` also reads files of earlier versions that need pickle (code execution:
    only for files you trust), with a warning to convert them. See atoms.calculator.
    """
    from .atoms.calculator import load_calculator as _load

    return _load(paths, device=device, trust=trust)
