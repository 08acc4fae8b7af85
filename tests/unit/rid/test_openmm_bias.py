"""The numpy twin of the RiD ensemble bias equals the torch one (values and gradients)."""

from __future__ import annotations

import numpy as np
import pytest

from conlearn.rid.bias import EnsembleBias
from conlearn.rid.model import Ensemble, FitSettings
from conlearn.rid.openmm_bias import NumpyEnsembleBias, fast_bias


@pytest.mark.parametrize("periodic", [(True, True), (True, True, False, False), (False, True, False)])
def test_numpy_bias_equals_torch_bias(periodic):
    """Every trust regime: sigma = 1 (e0 above every eps), the cosine switch (eps between e0
    and e1 for most points: the grad-eps term matters), sigma = 0; after a fit (normalisation set)."""
    rng = np.random.default_rng(3)
    d = len(periodic)
    s = rng.uniform(-3.1, 3.1, size=(40, d))
    ens = Ensemble(periodic, n_members=4, neurons=(16, 16, 16), seed=2)
    ens.fit(s, rng.normal(size=(40, d)) * 5.0, FitSettings(n_steps=20))
    eps = ens.deviation(s)
    regimes = [(10 * eps.max(), 20 * eps.max()), (0.5 * eps.min(), eps.max() * 1.1), (0.0, 0.5 * eps.min())]
    for e0, e1 in regimes:
        ref = EnsembleBias(ens, e0, e1)
        v, g = ref.energy_and_grad(s)
        v2, g2 = NumpyEnsembleBias(ref).energy_and_grad(s)
        np.testing.assert_allclose(v2, v, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(g2, g, rtol=1e-9, atol=1e-9)
    assert np.abs(EnsembleBias(ens, *regimes[1]).energy_and_grad(s)[1]).max() > 0.1  # not all zero


def test_fast_bias_passes_other_biases_through():
    class Plain:
        d, periodic = 1, (True,)

        def energy_and_grad(self, s):
            return np.zeros(len(s)), np.zeros_like(s)

    plain = Plain()
    assert fast_bias(plain) is plain
    assert isinstance(fast_bias(EnsembleBias(Ensemble((True,), neurons=(8,)), 1.0, 2.0)), NumpyEnsembleBias)


def test_offset_shifts_the_trusted_bias():
    """V = -sigma (<A> - offset): with sigma = 1 the offset adds a constant and leaves dV/ds."""
    rng = np.random.default_rng(4)
    s = rng.uniform(-3.1, 3.1, size=(10, 2))
    ref = EnsembleBias(Ensemble((True, True), neurons=(8, 8)), 1e6, 2e6)
    v, g = NumpyEnsembleBias(ref).energy_and_grad(s)
    ref.offset = 7.5
    v2, g2 = NumpyEnsembleBias(ref).energy_and_grad(s)
    np.testing.assert_allclose(v2, v + 7.5, atol=1e-12)
    np.testing.assert_allclose(g2, g, atol=1e-12)
