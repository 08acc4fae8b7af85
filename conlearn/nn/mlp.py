"""Multilayer perceptrons with deepmd-kit's residual conventions.

``EmbeddingNet``: tanh layers; a layer whose width equals its input's (``x + φ``) or
doubles it (``[x, x] + φ``) is residual, as in deepmd-kit's embedding nets.
``FittingNet``: tanh hidden layers, residual where widths match, optionally scaled by a
trainable per-neuron time step (``resnet_dt``: ``x + dt ⊙ φ``), then a linear output.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch
from torch import nn

Linear = Callable[[int, torch.Tensor], torch.Tensor]  # (layer index, input) -> affine output
Scale = Optional[Callable[[int], torch.Tensor]]       # layer index -> resnet time step, or None


class _SigmoidTanh(torch.autograd.Function):
    """``tanh(z) = 2 σ(2z) − 1`` on the CPU: torch's vectorised sigmoid is 2× (float64) to
    4× (float32) faster there than its tanh, and the one fresh array is reused in place.
    Equal to ``torch.tanh`` to a few ulp (absolute); the backward is ``tanh_backward`` of
    the output, itself differentiable (training on forces takes second derivatives)."""

    @staticmethod
    def forward(ctx, z: torch.Tensor) -> torch.Tensor:
        y = z.mul(2.0)
        torch.sigmoid(y, out=y)
        y.mul_(2.0).sub_(1.0)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)


def tanh(z: torch.Tensor) -> torch.Tensor:
    """The networks' activation: :class:`_SigmoidTanh` on the CPU, ``torch.tanh`` elsewhere
    (on a GPU tanh is one fast kernel)."""
    return _SigmoidTanh.apply(z) if z.device.type == "cpu" else torch.tanh(z)


def embedding_layers(x: torch.Tensor, linear: Linear, kinds: list[int], dt: Scale = None) -> torch.Tensor:
    """The embedding net's layers: ``tanh(linear(k, x))``, scaled by ``dt(k)`` when given,
    then residual by ``kinds[k]`` (0 plain, 1 same width ``x + y``, 2 doubled ``[x, x] + y``).

    Shared by :class:`EmbeddingNet` and the stacked committee (batched weights)."""
    for k, kind in enumerate(kinds):
        y = tanh(linear(k, x))
        if dt is not None:
            y = y * dt(k)
        if kind == 1:
            x = x + y
        elif kind == 2:  # [x, x] + y (the concatenation's backward, a sum of two halves, is
            x = y + torch.cat([x, x], dim=-1)  # cheaper than a broadcast's over a dimension of 2)
        else:
            x = y
    return x


def fitting_layers(x: torch.Tensor, linear: Linear, residual: list[bool], dt: Scale = None) -> torch.Tensor:
    """The fitting net's hidden layers: ``y = tanh(linear(k, x))``; ``x + dt(k) ⊙ y`` (or
    ``x + y`` without ``dt``) where ``residual[k]``, else ``y``. Shared like :func:`embedding_layers`."""
    for k, res in enumerate(residual):
        y = tanh(linear(k, x))
        x = x + (y * dt(k) if dt is not None else y) if res else y
    return x


def _init_linear(layer: nn.Linear, generator: torch.Generator, bias_std: float = 1.0) -> None:
    """deepmd-kit's initialisation: W ~ N(0, 1/sqrt(n_in + n_out)), b ~ N(0, bias_std)."""
    n_out, n_in = layer.weight.shape
    with torch.no_grad():
        w = torch.randn(layer.weight.shape, generator=generator, dtype=torch.float64)
        layer.weight.copy_(w / math.sqrt(n_in + n_out))
        b = torch.randn(layer.bias.shape, generator=generator, dtype=torch.float64)
        layer.bias.copy_(b * bias_std)


class EmbeddingNet(nn.Module):
    """``[..., n_in] -> [..., neuron[-1]]`` with tanh activations and deepmd residuals."""

    def __init__(self, n_in: int, neuron: list[int], *, resnet_dt: bool = False,
                 dtype: torch.dtype = torch.float64, seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        widths = [n_in, *neuron]
        self.layers = nn.ModuleList()
        self.kinds: list[int] = []  # 0 plain, 1 same width, 2 doubled width
        self.dts = nn.ParameterList()
        for a, b in zip(widths[:-1], widths[1:]):
            lin = nn.Linear(a, b, dtype=dtype)
            _init_linear(lin, gen)
            self.layers.append(lin)
            self.kinds.append(1 if b == a else 2 if b == 2 * a else 0)
            if resnet_dt:
                dt = 0.1 + 0.001 * torch.randn(b, generator=gen, dtype=torch.float64)
                self.dts.append(nn.Parameter(dt.to(dtype)))
        self.resnet_dt = resnet_dt

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return embedding_layers(x, lambda k, v: self.layers[k](v), self.kinds,
                                (lambda k: self.dts[k]) if self.resnet_dt else None)


class FittingNet(nn.Module):
    """``[..., n_in] -> [...]``: tanh hidden layers (residual where widths match) and a linear output."""

    def __init__(self, n_in: int, neuron: list[int], *, resnet_dt: bool = True,
                 dtype: torch.dtype = torch.float64, seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        widths = [n_in, *neuron]
        self.hidden = nn.ModuleList()
        self.residual: list[bool] = []
        self.dts = nn.ParameterList()
        for a, b in zip(widths[:-1], widths[1:]):
            lin = nn.Linear(a, b, dtype=dtype)
            _init_linear(lin, gen)
            self.hidden.append(lin)
            self.residual.append(a == b)
            dt = 0.1 + 0.001 * torch.randn(b, generator=gen, dtype=torch.float64)
            self.dts.append(nn.Parameter(dt.to(dtype), requires_grad=resnet_dt))
        self.resnet_dt = resnet_dt
        self.out = nn.Linear(widths[-1], 1, dtype=dtype)
        _init_linear(self.out, gen)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = fitting_layers(x, lambda k, v: self.hidden[k](v), self.residual,
                           (lambda k: self.dts[k]) if self.resnet_dt else None)
        return self.out(x).squeeze(-1)
