"""A committee of DeepPots evaluated as one batched model.

Committee members of a concurrent-learning run share their architecture and differ only in
weights and data statistics. Stacking each layer's weights along a leading member axis
``M`` turns M evaluations into one: every matrix product becomes a batched one
(``baddbmm``), the neighbour graph is built once, and the per-operation overhead that
dominates small systems on a CPU is paid once instead of M times. The maths is exactly
that of :class:`~conlearn.atoms.deeppot.model.DeepPot` (tested to round-off against it).

Forces and virials come from autograd, as everywhere: each member differentiates its own
copy of the pair vectors (``[M, N, K, 3]``), so one backward pass gives all M force sets.
"""

from __future__ import annotations

from dataclasses import asdict

import torch

from ...nn.mlp import embedding_layers, fitting_layers
from ..graph import Graph
from .descriptor import add_padding, empty_slots, switch
from .model import DeepPot


def _stack(tensors) -> torch.Tensor:
    return torch.stack([t.detach() for t in tensors])


def _per_layer(members) -> list[torch.Tensor]:
    """``[member][layer] -> [layer]`` stacked ``[M, ...]``: the layers of every member at once."""
    return [_stack(ts) for ts in zip(*members)]


def _linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``x [M, R, in] @ w[M, out, in]^T + b [M, out]`` -> ``[M, R, out]``."""
    return torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))


def _apply(x: torch.Tensor, fn) -> torch.Tensor:
    """Apply ``fn`` (on ``[M, R, in]``) to ``x [M, ..., in]``, keeping the middle shape."""
    shape = x.shape
    y = fn(x.reshape(shape[0], -1, shape[-1]))
    return y.reshape(*shape[:-1], *y.shape[2:])


class _Embedding:
    def __init__(self, nets):
        n0 = nets[0]
        self.kinds, self.resnet_dt = list(n0.kinds), n0.resnet_dt
        self.w = _per_layer([lin.weight for lin in n.layers] for n in nets)
        self.b = _per_layer([lin.bias for lin in n.layers] for n in nets)
        self.dt = _per_layer(list(n.dts) for n in nets)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # [M, R, n_in] -> [M, R, M1]
        return embedding_layers(x, lambda k, v: _linear(v, self.w[k], self.b[k]), self.kinds,
                                (lambda k: self.dt[k].unsqueeze(1)) if self.resnet_dt else None)


class _Fitting:
    def __init__(self, nets):
        n0 = nets[0]
        self.residual, self.resnet_dt = list(n0.residual), n0.resnet_dt
        self.w = _per_layer([lin.weight for lin in n.hidden] for n in nets)
        self.b = _per_layer([lin.bias for lin in n.hidden] for n in nets)
        self.dt = _per_layer(list(n.dts) for n in nets)
        self.w_out, self.b_out = _stack(n.out.weight for n in nets), _stack(n.out.bias for n in nets)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # [M, R, D] -> [M, R]
        x = fitting_layers(x, lambda k, v: _linear(v, self.w[k], self.b[k]), self.residual,
                           (lambda k: self.dt[k].unsqueeze(1)) if self.resnet_dt else None)
        return _linear(x, self.w_out, self.b_out).squeeze(-1)


def stackable(models: list[DeepPot]) -> bool:
    """Whether ``models`` share everything but their weights (and seeds). Compressed members
    are not stacked: one by one through their tables they are faster (2.2x, 4 members)."""
    if len(models) < 2 or any(getattr(m, "compression", None) for m in models):
        return False
    specs = [{k: v for k, v in asdict(m.spec).items() if k != "seed"} for m in models]
    return (all(s == specs[0] for s in specs) and len({m.dtype for m in models}) == 1
            and len({str(m.device) for m in models}) == 1)


class StackedCommittee:
    """M DeepPots with one architecture as one batched evaluation (inference only).

    The weights are copied at construction: rebuild after the members change.
    """

    def __init__(self, models: list[DeepPot]):
        if not stackable(models):
            raise ValueError("committee members differ in architecture, precision or device; "
                             "evaluate them one by one")
        self.models = list(models)
        m0 = models[0]
        self.spec, self.n_members = m0.spec, len(models)
        d0 = m0.descriptor
        self.n_types, self.type_one_side = d0.n_types, d0.type_one_side
        self.rcut, self.rcut_smth, self.nnei, self.axis = d0.rcut, d0.rcut_smth, d0.nnei, d0.axis_neuron
        self.sel_t = d0.sel_t
        self.avg = _stack(m.descriptor.avg for m in models)  # [M, nt, 4]
        self.std = _stack(m.descriptor.std for m in models)
        self.nets = [_Embedding([m.descriptor.nets[k] for m in models]) for k in range(len(d0.nets))]
        self.fitting = [_Fitting([m.fitting[t] for m in models]) for t in range(len(m0.fitting))]
        self.bias = _stack(m.bias_atom_e for m in models)  # [M, nt]

    def _net(self, ti: int, tj: int) -> _Embedding:
        return self.nets[tj if self.type_one_side else ti * self.n_types + tj]

    def _descriptor(self, vec: torch.Tensor, g: Graph) -> torch.Tensor:
        """``vec [M, N, K, 3]`` -> descriptors ``[M, N, M1 * M2]``."""
        r = vec.norm(dim=-1, keepdim=True)
        s = switch(r, self.rcut_smth, self.rcut) / r
        rows = torch.cat([s, s * vec / r], dim=-1)  # [M, N, K, 4]
        ti = g.atom_types
        rows = (rows - self.avg[:, ti].unsqueeze(2)) / self.std[:, ti].unsqueeze(2)
        s_in = rows[..., :1]
        blocks = []
        for tj, (s0, e0) in enumerate(g.slot_slices):
            if e0 == s0:
                continue
            if self.type_one_side:
                blocks.append(_apply(s_in[:, :, s0:e0], self._net(0, tj)))
            else:
                blocks.append(torch.cat([_apply(s_in[:, a:b, s0:e0], self._net(t, tj))
                                         for t, (a, b) in enumerate(g.type_slices)], dim=1))
        emb = torch.cat(blocks, dim=2)  # [M, N, K, M1]
        t = torch.matmul(rows.transpose(-1, -2), emb)  # [M, N, 4, M1]
        pad = self._padding(g)  # [M, N, M1]
        t = add_padding(t, pad) / self.nnei
        d = torch.matmul(t.transpose(-1, -2), t[..., : self.axis])  # [M, N, M1, M2]
        return d.flatten(-2)

    def _padding(self, g: Graph) -> torch.Tensor:
        """Empty-slot constant per member and atom ``[M, N, M1]`` (see ``DescrptSeA``)."""
        s_pad = -self.avg[..., 0] / self.std[..., 0]  # [M, nt]
        n_empty = empty_slots(self.spec.sel, g.slot_slices)
        per_type = []
        for ti in range(self.n_types):
            x = s_pad[:, ti].view(-1, 1, 1)
            per_type.append(sum(n_empty[tj] * x[:, 0] * self._net(ti, tj)(x)[:, 0]
                                for tj in range(self.n_types)))  # [M, M1]
        return torch.stack(per_type, 1)[:, g.atom_types]

    def energies(self, vec: torch.Tensor, g: Graph) -> torch.Tensor:
        """Frame energies ``[M, n_frames]`` eV from per-member pair vectors ``[M, N, K, 3]``."""
        d = self._descriptor(vec, g)
        parts = [self.fitting[t](d[:, a:b]) + self.bias[:, t].unsqueeze(1)
                 for t, (a, b) in enumerate(g.type_slices) if b > a]
        e_atom = torch.cat(parts, dim=1)  # [M, N]
        return e_atom.new_zeros(self.n_members, g.n_frames).index_add(1, g.atom_frame, e_atom)

    def evaluate(self, g: Graph, *, virial: bool = True) -> dict:
        """``{"energy": [M, F], "forces": [M, N, 3], "virial": [M, F, 3, 3]}`` (eV, eV/Å, eV),
        forces in the caller's atom order (``g.order``)."""
        m, n = self.n_members, g.n_atoms
        vec = g.nbr_vec.detach().unsqueeze(0).expand(m, *g.nbr_vec.shape).clone().requires_grad_(True)
        with torch.enable_grad():
            energy = self.energies(vec, g)
            (grad,) = torch.autograd.grad(energy.sum(), vec)
        pi, pj, pf = g.pair_index()
        grad = grad.reshape(m, -1, 3)
        forces = grad.new_zeros(m, n + 1, 3).index_add(1, pi, grad).index_add(1, pj, -grad)[:, :n]
        forces = torch.zeros_like(forces).index_copy(1, g.order, forces)
        out = {"energy": energy.detach(), "forces": forces}
        if virial:
            outer = vec.detach().reshape(m, -1, 3).unsqueeze(-1) * grad.unsqueeze(-2)
            out["virial"] = -grad.new_zeros(m, g.n_frames, 3, 3).index_add(1, pf, outer)
        return out
