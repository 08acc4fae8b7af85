"""Registries: a component is found by name, a wrong name lists the known ones."""

import pytest

from conlearn.core import EXPLORERS, LABELERS, SELECTORS, TRAINERS, Registry, RegistryError, TrustWindowSelector


def test_register_get_build_and_names():
    reg = Registry("widget")

    @reg.register("double")
    def double(factor=2):
        return ("double", factor)

    assert reg.get("double") is double and "double" in reg and reg.names() == ["double"]
    assert reg.build("double", factor=3) == ("double", 3)
    with pytest.raises(TypeError, match="widget 'double'"):
        reg.build("double", nope=1)


def test_duplicate_name_is_an_error_unless_replace():
    reg = Registry("widget")
    reg.register("a", int)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a", float)
    reg.register("a", float, replace=True)
    assert reg.get("a") is float


def test_unknown_name_lists_known_names():
    reg = Registry("widget")
    reg.register("alpha", int)
    with pytest.raises(RegistryError, match=r"unknown widget 'alhpa'; known: \['alpha'\]"):
        reg.get("alhpa")


def test_module_attr_spec_imports_on_demand():
    reg = Registry("widget")
    assert reg.get("conlearn.core.selection:TrustWindowSelector") is TrustWindowSelector
    with pytest.raises(RegistryError, match="cannot be imported"):
        reg.get("conlearn.core.nope:Thing")


def test_builtin_components_are_registered():
    assert SELECTORS.get("trust-window") is TrustWindowSelector
    sel = SELECTORS.build("trust-window", lo=0.05, hi=0.2, threshold=0.99)
    assert (sel.lo, sel.hi, sel.threshold) == (0.05, 0.2, 0.99)
    import conlearn.testing.toy as toy

    assert TRAINERS.get("toy1d") is toy.InterpTrainer
    assert EXPLORERS.get("toy1d") is toy.UniformExplorer
    assert LABELERS.get("toy1d") is toy.FunctionLabeler
