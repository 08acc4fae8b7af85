"""The stacked committee equals its members evaluated one by one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conlearn.atoms.deeppot.committee import StackedCommittee, stackable
from conlearn.atoms.deeppot.model import DeepPot, DeepPotSpec
from conlearn.testing.structures import water_box


def member(seed: int, type_one_side: bool, resnet_dt: bool = False, neuron=(8, 16, 32)) -> DeepPot:
    spec = DeepPotSpec(type_map=["O", "H"], sel=[40, 80], rcut=4.0, rcut_smth=1.0, neuron=list(neuron),
                       axis_neuron=4, type_one_side=type_one_side, embed_resnet_dt=resnet_dt,
                       fitting_neuron=[32, 32], seed=seed)
    m = DeepPot(spec)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # members differ in statistics and bias too
        m.descriptor.avg[:, 0] = 0.05 + 0.05 * torch.rand(2, generator=g, dtype=torch.float64)
        m.descriptor.std[:, 0] = 0.15 + 0.1 * torch.rand(2, generator=g, dtype=torch.float64)
        m.descriptor.std[:, 1:] = 0.15
        m.bias_atom_e.copy_(torch.tensor([-3.0, -1.0]) + 0.1 * seed)
    return m.eval()


@pytest.mark.parametrize("type_one_side,resnet_dt", [(False, False), (True, True)])
def test_stacked_equals_one_by_one(type_one_side, resnet_dt):
    models = [member(s, type_one_side, resnet_dt) for s in (1, 2, 3)]
    atoms = [water_box(n_molecules=6, seed=k) for k in range(2)]  # a batch of two frames
    frames = [(a.positions, a.cell.array, a.pbc, np.array([0 if z == 8 else 1 for z in a.numbers]))
              for a in atoms]
    g = models[0].graph(frames)
    got = StackedCommittee(models).evaluate(g, virial=True)
    for k, m in enumerate(models):
        ref = m.evaluate(models[0].graph(frames), virial=True)
        for key in ("energy", "forces", "virial"):
            np.testing.assert_allclose(got[key][k].numpy(), ref[key].detach().numpy(), rtol=1e-10, atol=1e-11)
    assert got["forces"].shape == (3, sum(len(a) for a in atoms), 3)
    # the members really differ (the test would pass trivially otherwise)
    f = got["forces"]
    assert float((f[0] - f[1]).abs().max()) > 0.05 * float(f[0].abs().max())


def test_stackable_rules():
    a, b = member(1, False), member(2, False)
    assert stackable([a, b]) and not stackable([a])
    c = member(3, False, neuron=(8, 16, 24))
    assert not stackable([a, c])
    with pytest.raises(ValueError, match="differ in architecture"):
        StackedCommittee([a, c])
