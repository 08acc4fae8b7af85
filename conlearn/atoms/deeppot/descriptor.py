"""The DeepPot-SE descriptor ``se_e2_a`` (Zhang et al., NeurIPS 2018), as in deepmd-kit.

For a centre atom i with neighbours j within ``rcut``:

* ``s(r) = sw(r) / r`` with deepmd's quintic switch ``sw`` from 1 at ``rcut_smth`` to 0 at ``rcut``;
* environment rows ``R_ij = (s, s x/r, s y/r, s z/r)``, normalised by data statistics
  ``(R - avg[t_i]) / std[t_i]`` (``avg`` is zero for the xyz columns);
* embedding ``G_ij = G_{t_j}(R̂_ij[0])`` (``type_one_side``) or ``G_{t_i t_j}``, width M1;
* ``T_i = R̂_iᵀ G_i / nnei`` (``[4, M1]``); descriptor ``D_i = T_iᵀ T_i[:, :M2]`` (``M1·M2``).

deepmd-kit pads each atom's list to ``sel`` neighbours per type with empty slots (``R = 0``).
Those slots are not evaluated here: they all contribute the same constant
``R̂_pad ⊗ G(R̂_pad[0])``, added once per atom times its number of empty slots. The
result is identical to deepmd-kit's padded sum at a fraction of the cost.
"""

from __future__ import annotations

import torch
from torch import nn

from ...nn.mlp import EmbeddingNet


def switch(r: torch.Tensor, rmin: float, rmax: float) -> torch.Tensor:
    """deepmd's smooth switch: 1 below rmin, ``u³(-6u² + 15u - 10) + 1`` between, 0 above."""
    u = ((r - rmin) / (rmax - rmin)).clamp(0.0, 1.0)
    return u * u * u * (-6.0 * u * u + 15.0 * u - 10.0) + 1.0


def empty_slots(sel: list[int], slot_slices: list[tuple[int, int]]) -> list[float]:
    """Per neighbour type, ``sel_t - K_t``: the slots deepmd-kit pads that the graph does not
    hold (negative when a fixed-shape graph holds more slots than ``sel``, whose extra slots are
    empty rows: the total of empty slots is ``sel_t - count`` either way)."""
    return [float(n - (e - s)) for n, (s, e) in zip(sel, slot_slices)]


def add_padding(t: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
    """``t [..., 4, M1]`` with ``pad [..., M1]`` added to its first (radial) row."""
    return torch.cat([t[..., :1, :] + pad.unsqueeze(-2), t[..., 1:, :]], dim=-2)


class DescrptSeA(nn.Module):
    """se_e2_a descriptor: ``Graph -> [n_atoms, M1 * M2]``."""

    def __init__(self, n_types: int, sel: list[int], rcut: float, rcut_smth: float,
                 neuron: list[int], axis_neuron: int, *, type_one_side: bool = False,
                 resnet_dt: bool = False, dtype: torch.dtype = torch.float64, seed: int = 0):
        super().__init__()
        if len(sel) != n_types:
            raise ValueError(f"sel has {len(sel)} entries but there are {n_types} types")
        if not 0 <= rcut_smth < rcut:
            raise ValueError(f"need 0 <= rcut_smth < rcut, got rcut_smth={rcut_smth}, rcut={rcut}")
        if axis_neuron > neuron[-1]:
            raise ValueError(f"axis_neuron={axis_neuron} exceeds the embedding width {neuron[-1]}")
        self.n_types, self.sel, self.rcut, self.rcut_smth = n_types, list(sel), rcut, rcut_smth
        self.neuron, self.axis_neuron = list(neuron), axis_neuron
        self.type_one_side, self.resnet_dt = type_one_side, resnet_dt
        self.nnei = int(sum(sel))
        n_nets = n_types if type_one_side else n_types * n_types
        self.nets = nn.ModuleList(
            EmbeddingNet(1, neuron, resnet_dt=resnet_dt, dtype=dtype, seed=seed + k)
            for k in range(n_nets)
        )
        self.register_buffer("avg", torch.zeros(n_types, 4, dtype=dtype))
        self.register_buffer("std", torch.ones(n_types, 4, dtype=dtype))
        self.register_buffer("sel_t", torch.tensor(sel, dtype=torch.long))

    @property
    def dim_out(self) -> int:
        return self.neuron[-1] * self.axis_neuron

    def net(self, ti: int, tj: int) -> EmbeddingNet:
        return self.nets[tj if self.type_one_side else ti * self.n_types + tj]

    def env_rows(self, pair_vec: torch.Tensor) -> torch.Tensor:
        """Raw environment rows ``[P, 4]``: ``(s, s x/r, s y/r, s z/r)`` with ``s = sw(r)/r``."""
        r = pair_vec.norm(dim=-1, keepdim=True)
        s = switch(r, self.rcut_smth, self.rcut) / r
        return torch.cat([s, s * pair_vec / r], dim=-1)

    def normalised_rows(self, g) -> torch.Tensor:
        """``R̂ [N, K, 4]``: environment rows normalised by the centre type's statistics
        (padding slots give the empty-slot row)."""
        ti = g.atom_types
        return (self.env_rows(g.nbr_vec) - self.avg[ti].unsqueeze(1)) / self.std[ti].unsqueeze(1)

    def forward(self, g) -> torch.Tensor:
        return self.contract(g, self.normalised_rows(g),
                             lambda r, ti, tj: torch.bmm(r.transpose(1, 2), self.net(ti, tj)(r[:, :, :1])))

    def contract(self, g, rows: torch.Tensor, block) -> torch.Tensor:
        """Descriptors ``[N, M1 * M2]`` from ``R̂`` and ``block(R̂_block [n, k, 4], t_i, t_j) ->
        R̂_blockᵀ G_block [n, 4, M1]`` (the exact nets here, the tables of a compressed model).

        ``T = Σ_blocks R̂_blockᵀ G_block``, one product per net: the [N, K, M1] embedding of all
        slots is never concatenated (a fresh array of that size costs as much as the product)."""
        parts = []
        for tj, (s, e) in enumerate(g.slot_slices):
            if e == s:
                continue
            if self.type_one_side:
                parts.append(block(rows[:, s:e], 0, tj))
            else:
                parts.append(torch.cat([block(rows[a:b, s:e], t, tj) for t, (a, b) in enumerate(g.type_slices)]))
        if parts:
            t = parts[0] if len(parts) == 1 else torch.stack(parts).sum(0)  # [N, 4, M1]
        else:  # no pairs: zeros that still depend on the pair vectors, as autograd needs
            t = torch.bmm(rows.transpose(1, 2), rows.new_zeros(*rows.shape[:2], self.neuron[-1]))
        # slots beyond K_t up to sel_t are empty too: each adds R̂_pad ⊗ G(R̂_pad[0]).
        t = add_padding(t, self._padding(g)) / self.nnei
        d = torch.matmul(t.transpose(1, 2), t[:, :, : self.axis_neuron])
        return d.reshape(g.n_atoms, -1)

    def _padding(self, g) -> torch.Tensor:
        """``[n_atoms, M1]``: Σ_t (sel_t - K_t) · s_pad · G_{t_i t}(s_pad)."""
        s_pad = -self.avg[:, 0] / self.std[:, 0]  # [n_types] per centre type
        n_empty = empty_slots(self.sel, g.slot_slices)  # plain floats: no host-to-device copy
        per_type = torch.stack([
            sum(n_empty[tj] * s_pad[ti] * self.net(ti, tj)(s_pad[ti].view(1, 1))[0]
                for tj in range(self.n_types))
            for ti in range(self.n_types)
        ])  # [ti, M1]
        return per_type[g.atom_types]

    @torch.no_grad()
    def set_stats(self, sums: torch.Tensor) -> None:
        """Set avg/std from per-centre-type sums ``[n_types, 5]``: (n_slots, Σs, Σs², Σ|a|², n_real).

        As deepmd-kit: statistics over all ``nnei`` slots of each atom (empty ones are 0),
        ``avg = (Σs/n, 0, 0, 0)``, ``std = (sqrt(Σs²/n - avg²), sqrt(Σ|a|²/3n) ×3)``, at least 1e-2.
        """
        n = sums[:, 0].clamp(min=1)
        mean = sums[:, 1] / n
        std_s = (sums[:, 2] / n - mean * mean).clamp(min=0).sqrt()
        std_a = (sums[:, 3] / (3 * n)).sqrt()
        present = sums[:, 4] > 0
        self.avg.zero_()
        self.avg[:, 0] = torch.where(present, mean, torch.zeros_like(mean)).to(self.avg.dtype)
        self.std[:, 0] = torch.where(present, std_s, torch.ones_like(std_s)).clamp(min=1e-2)
        self.std[:, 1:] = torch.where(present, std_a, torch.ones_like(std_a)).clamp(min=1e-2).unsqueeze(-1)

    @torch.no_grad()
    def stat_sums(self, g) -> torch.Tensor:
        """Per-centre-type sums ``[n_types, 5]`` of raw environment rows for ``set_stats``."""
        rows = self.env_rows(g.nbr_vec).double()  # padding slots are exact zeros
        out = torch.zeros(self.n_types, 5, dtype=torch.float64)
        for t, (a, b) in enumerate(g.type_slices):
            out[t, 0] = float(b - a) * self.nnei
            out[t, 1] = rows[a:b, :, 0].sum()
            out[t, 2] = (rows[a:b, :, 0] ** 2).sum()
            out[t, 3] = (rows[a:b, :, 1:] ** 2).sum()
            out[t, 4] = float(g.counts[a:b].sum())
        return out
