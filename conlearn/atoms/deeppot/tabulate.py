"""Tabulated embedding nets: piecewise quintic Hermite polynomials of a scalar input.

An embedding net ``G: x -> [M]`` of the normalised radial input ``x`` (see
:mod:`.descriptor`) is replaced by a table, as deepmd-kit's ``dp compress`` does:

* nodes ``lower = x_0 < x_1 < ...``: a fine grid of step ``h`` from ``lower`` up to
  ``upper`` (rounded up to a node), then a coarse grid of step ``10 h`` up to ``bound``
  (the extrapolation bound);
* on each interval ``[x_k, x_k+1]`` a quintic ``Σ_q c_kq (x - x_k)^q`` matching the net's
  exact value, first and second derivative at both ends (computed in float64 by forward-mode
  autograd). Value, first and second derivative are continuous across nodes; the error
  inside an interval is ``O(h^6 |G^(6)|)``.

Evaluation: each pair's ``G`` (and ``dG/dx``) row is the six coefficient rows of its
interval weighted by ``t^q`` (``q t^(q-1)``), ``t = x - x_k`` (see :meth:`Table.evaluate`).
"""

from __future__ import annotations

import math
import torch
import torch.nn.functional as F
from torch import nn

COARSE = 10  # the coarse grid's step is COARSE times the fine step


def net_derivatives(net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Value, first and second derivative of an :class:`~conlearn.nn.mlp.EmbeddingNet`
    (``[n, 1] -> [n, M]``) at ``x [n]``, each ``[n, M]``, in float64.

    Propagated layer by layer (forward mode): ``z = W v + b`` carries ``z' = W v'``,
    ``z'' = W v''``; ``t = tanh z`` gives ``t' = (1 - t²) z'``, ``t'' = (1 - t²)(z'' - 2 t z'²)``.
    """
    with torch.no_grad():
        v = x.to("cpu", torch.float64).reshape(-1, 1)
        v1, v2 = torch.ones_like(v), torch.zeros_like(v)
        for k, (lin, kind) in enumerate(zip(net.layers, net.kinds)):
            w, b = lin.weight.to("cpu", torch.float64), lin.bias.to("cpu", torch.float64)  # tables built on the CPU
            z, z1, z2 = v @ w.T + b, v1 @ w.T, v2 @ w.T
            t = torch.tanh(z)
            g = 1 - t * t
            out = [t, g * z1, g * (z2 - 2 * t * z1 * z1)]
            if net.resnet_dt:
                out = [o * net.dts[k].to("cpu", torch.float64) for o in out]
            if kind == 1:
                out = [o + p for o, p in zip(out, (v, v1, v2))]
            elif kind == 2:
                out = [o + torch.cat([p, p], -1) for o, p in zip(out, (v, v1, v2))]
            v, v1, v2 = out
    return v, v1, v2


def hermite5(h: torch.Tensor, y0, d0, s0, y1, d1, s1) -> torch.Tensor:
    """Coefficients ``[n, 6, M]`` of ``p(t) = Σ_q c_q t^q`` on ``t ∈ [0, h]`` with
    ``p, p', p''`` equal to ``(y0, d0, s0)`` at 0 and ``(y1, d1, s1)`` at ``h`` (``h [n]``;
    the others ``[n, M]``)."""
    h = h.unsqueeze(-1)
    dy = y1 - y0
    c3 = (20 * dy - (8 * d1 + 12 * d0) * h - (3 * s0 - s1) * h ** 2) / (2 * h ** 3)
    c4 = (-30 * dy + (14 * d1 + 16 * d0) * h + (3 * s0 - 2 * s1) * h ** 2) / (2 * h ** 4)
    c5 = (12 * dy - 6 * (d1 + d0) * h - (s0 - s1) * h ** 2) / (2 * h ** 5)
    return torch.stack([y0, d0, s0 / 2, c3, c4, c5], dim=1)


def grid(lower: float, upper: float, bound: float, step: float) -> tuple[torch.Tensor, int]:
    """Nodes ``[n + 1]`` (float64) and the number of fine intervals: step ``step`` from
    ``lower`` past ``upper``, then ``COARSE * step`` past ``bound``."""
    n_fine = max(1, math.ceil((upper - lower) / step - 1e-9))
    top = lower + n_fine * step
    n_coarse = max(0, math.ceil((bound - top) / (COARSE * step) - 1e-9))
    fine = lower + step * torch.arange(n_fine + 1, dtype=torch.float64)
    coarse = top + COARSE * step * torch.arange(1, n_coarse + 1, dtype=torch.float64)
    return torch.cat([fine, coarse]), n_fine


class Table(nn.Module):
    """One tabulated embedding net ``x [P] -> G [P, M]`` (and ``dG/dx``) on ``[lower, bound]``.

    Buffers (not in the state dict; :meth:`to_dict` writes them): ``coef [n * 6, M]``,
    ``nodes [n + 1]``. Scalars: ``lower``, ``step``, ``n_fine`` (fine intervals), ``bound``.
    """

    def __init__(self, nodes: torch.Tensor, n_fine: int, step: float, coef: torch.Tensor):
        super().__init__()
        self.register_buffer("nodes", nodes, persistent=False)
        self.register_buffer("coef", coef, persistent=False)
        self.n_fine, self.step = int(n_fine), float(step)
        self.lower, self.bound = float(nodes[0]), float(nodes[-1])
        self.top = float(nodes[n_fine])  # end of the fine grid
        self.n_intervals = len(nodes) - 1
        self.width = coef.shape[-1]

    @classmethod
    def build(cls, net: nn.Module, lower: float, upper: float, bound: float, step: float,
              dtype: torch.dtype = torch.float64) -> "Table":
        """Tabulate ``net`` (float64 maths, coefficients stored in ``dtype``)."""
        if not lower < upper <= bound:
            raise ValueError(f"need lower < upper <= bound, got {lower}, {upper}, {bound}")
        if step <= 0:
            raise ValueError(f"step must be positive, got {step}")
        nodes, n_fine = grid(lower, upper, bound, step)
        y, d, s = net_derivatives(net, nodes)
        c = hermite5(nodes[1:] - nodes[:-1], y[:-1], d[:-1], s[:-1], y[1:], d[1:], s[1:])
        return cls(nodes, n_fine, step, c.reshape(-1, y.shape[-1]).to(dtype))

    def in_range(self, x: torch.Tensor) -> torch.Tensor:
        """``[P]`` bool: inside ``[lower - step, bound]``. Below ``lower`` (``s < 0``) only
        round-off reaches: the first interval's quintic extends smoothly there."""
        return (x >= self.lower - self.step) & (x <= self.bound)

    def locate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Interval index ``[P]`` long and offset ``t = x - x_k`` ``[P]``. ``x`` is clamped
        into ``[lower - step, bound]`` first (callers replace out-of-range results)."""
        x = x.clamp(self.lower - self.step, self.bound)
        fine = ((x - self.lower) / self.step).floor()
        coarse = self.n_fine + ((x - self.top) / (COARSE * self.step)).floor()
        k = torch.where(x < self.top, fine, coarse).long().clamp(0, self.n_intervals - 1)
        return k, x - self.nodes.to(x.dtype)[k]

    def evaluate(self, x: torch.Tensor, derivative: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``G [P, M]`` and (if ``derivative``) ``dG/dx [P, M]`` at ``x [P]``.

        Each output row is a weighted sum of the six coefficient rows of its interval
        (weights ``t^q``, or ``q t^(q-1)`` for the derivative): one ``embedding_bag``, a
        fused gather-multiply-add that never materialises the gathered coefficients
        (measured faster than gather + Horner, gather + batched product, or a sparse product).
        """
        k, t = self.locate(x)
        q = torch.arange(6, device=x.device)
        qf = q.to(self.coef.dtype)
        t = t.to(self.coef.dtype).unsqueeze(-1)
        pw = t ** qf  # [P, 6]: 1, t, ..., t^5
        w = [pw, torch.cat([torch.zeros_like(t), pw[:, :5] * qf[1:]], -1)] if derivative else [pw]
        p = x.shape[0]
        idx = (k.unsqueeze(-1) * 6 + q).repeat(len(w), 1)
        out = F.embedding_bag(idx, self.coef, per_sample_weights=torch.cat(w), mode="sum")
        return out[:p], (out[p:] if derivative else None)

    def to_dict(self) -> dict:
        return {"nodes": self.nodes.detach().cpu(), "n_fine": self.n_fine, "step": self.step,
                "coef": self.coef.detach().cpu()}

    @classmethod
    def from_dict(cls, d: dict) -> "Table":
        return cls(d["nodes"], d["n_fine"], d["step"], d["coef"])
