"""The networks' activation and residual layers (conlearn.nn.mlp)."""

from __future__ import annotations

import pytest
import torch

from conlearn.nn.mlp import EmbeddingNet, FittingNet, tanh


@pytest.mark.parametrize("dtype,ulps", [(torch.float64, 4), (torch.float32, 4)])
def test_sigmoid_tanh_equals_tanh(dtype, ulps):
    """2 sigmoid(2z) - 1 against torch.tanh, absolute error a few ulp of 1, over the range
    the nets see (and saturated inputs), also its gradient."""
    z = torch.cat([torch.linspace(-30.0, 30.0, 20001, dtype=dtype), torch.tensor([0.0, 1e-30, -1e-8], dtype=dtype)])
    z.requires_grad_(True)
    y = tanh(z)
    eps = torch.finfo(dtype).eps
    assert (y - torch.tanh(z)).abs().max().item() <= ulps * eps
    assert y.abs().max().item() <= 1.0
    (g,) = torch.autograd.grad(y.sum(), z)
    assert (g - (1 - torch.tanh(z.detach()) ** 2)).abs().max().item() <= 2 * ulps * eps


def test_sigmoid_tanh_first_and_second_derivatives():
    """Finite differences of the value and of the gradient (training on forces differentiates twice)."""
    z = torch.randn(40, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    assert torch.autograd.gradcheck(tanh, (z,))
    assert torch.autograd.gradgradcheck(tanh, (z,))


@pytest.mark.parametrize("resnet_dt", [False, True])
def test_nets_match_plain_tanh_reference(resnet_dt):
    """Embedding (plain, doubled and same-width residual layers) and fitting nets equal a plain
    torch.tanh reference written out layer by layer, values and input gradients."""
    net = EmbeddingNet(1, [6, 12, 12, 24], resnet_dt=resnet_dt, seed=2)
    x = torch.linspace(-1.0, 3.0, 17, dtype=torch.float64).unsqueeze(-1).requires_grad_(True)
    h = x
    for k, lin in enumerate(net.layers):
        y = torch.tanh(lin(h)) * (net.dts[k] if resnet_dt else 1.0)
        h = y + torch.cat([h, h], -1) if net.kinds[k] == 2 else h + y if net.kinds[k] == 1 else y
    got = net(x)
    assert torch.allclose(got, h, rtol=0, atol=1e-14)
    ga, gb = (torch.autograd.grad(v.sum(), x)[0] for v in (got, h))
    assert torch.allclose(ga, gb, rtol=0, atol=1e-13)

    fit = FittingNet(24, [16, 16], resnet_dt=True, seed=4)
    d = torch.randn(9, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    h = torch.tanh(fit.hidden[0](d))
    h = h + fit.dts[1] * torch.tanh(fit.hidden[1](h))
    assert torch.allclose(fit(d), fit.out(h).squeeze(-1), rtol=0, atol=1e-14)
