"""Compressed DeepPot: tabulated embedding nets fused with the ``R̃ᵀG`` contraction.

``compress_model(model)`` tabulates every embedding net of a trained :class:`DeepPot` on its
normalised radial input ``x = (s(r) - avg) / std`` (:mod:`.tabulate`): a fine grid from
``lower = -avg/std`` (``s = 0``: a neighbour at the cutoff, or an empty slot) to ``upper``
(``s`` at ``min_dist``, the smallest neighbour distance expected), then a grid ten times
coarser up to ``bound = lower + extrapolate * (upper - lower)`` (``s = extrapolate * s(min_dist)``).

For each block of pairs (centre type, neighbour type) the descriptor's ``T_i = R̃_iᵀ G_i``
(``[4, M1]``) is one autograd node (:class:`TabulatedContraction`): the table gives
``G`` and ``dG/dx`` for every pair in one sparse product, ``T`` is one batched product, and
the backward pass needs only ``G``, ``dG/dx`` and ``R̃`` — the net's layers are never
evaluated nor differentiated. Pairs outside ``[lower, bound]`` (atoms closer than the
extrapolation bound allows) are evaluated by the exact net, after one warning per model.

The compressed model is a :class:`DeepPot` (same ``spec`` and weights, same energies up to
the tabulation error) whose saved dict carries one more key, ``"compression"``: settings
and tables (tensors and plain values; ``torch.load(weights_only=True)`` reads it). It is
for inference: training mode is refused (train the weights it keeps, :meth:`uncompressed`).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn
from torch.autograd.function import once_differentiable

from .descriptor import switch
from .model import DeepPot, DeepPotSpec
from . import tabkernel
from .tabulate import Table

DEFAULT_MIN_DIST = 0.5  # Å; with extrapolate 5 the table reaches s(0.1 Å), the overlap limit


FUSED = tabkernel.available()  # module switch: False forces the torch path (tests compare the two)


def use_kernel(x: torch.Tensor, table: Table) -> bool:
    """Whether the fused numba kernels (:mod:`.tabkernel`) evaluate this block: CPU tensors of
    the table's dtype, numba present and :data:`FUSED` on."""
    return FUSED and x.device.type == "cpu" and x.dtype == table.coef.dtype and table.coef.device.type == "cpu"


class TabulatedContraction(torch.autograd.Function):
    """``T [n, 4, M] = Σ_k R̃[n, k]ᵀ ⊗ G(x[n, k])`` with ``G`` from a :class:`Table`.

    Backward: ``dL/dR̃ = G · gTᵀ`` and ``dL/dx = Σ_a R̃_a (dG/dx · gT_a)``, two batched products.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, rows: torch.Tensor, table: Table) -> torch.Tensor:
        n, k = x.shape
        need = any(ctx.needs_input_grad[:2])
        ctx.fused = use_kernel(x, table)
        if ctx.fused:  # one numba pass; the backward recomputes G, dG/dx (nothing [pairs, M] stored)
            x, rows = x.detach().contiguous(), rows.detach().contiguous()
            if need:
                ctx.save_for_backward(x, rows)
                ctx.table = table
            return torch.from_numpy(tabkernel.forward(x.numpy(), rows.numpy(), table))
        g, dg = table.evaluate(x.reshape(-1), derivative=need)
        g = g.view(n, k, -1)
        if need:
            ctx.save_for_backward(rows, g, dg.view(n, k, -1))
        return torch.bmm(rows.transpose(1, 2), g)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_t: torch.Tensor):
        if ctx.fused:
            x, rows = ctx.saved_tensors
            gx, gr = tabkernel.backward(x.numpy(), rows.numpy(), ctx.table, grad_t.contiguous().numpy())
            return torch.from_numpy(gx), torch.from_numpy(gr), None
        rows, g, dg = ctx.saved_tensors
        gt = grad_t.transpose(1, 2)  # [n, M, 4]
        grad_rows = torch.bmm(g, gt)  # [n, k, 4]
        grad_x = (torch.bmm(dg, gt) * rows).sum(-1)
        return grad_x, grad_rows, None


class CompressedDeepPot(DeepPot):
    """A :class:`DeepPot` whose descriptor evaluates tabulated embedding nets (inference only).

    ``compression``: ``{"step", "extrapolate", "min_dist"}`` and per net ``lower``/``upper``/
    ``bound``; ``tables``: one :class:`Table` per embedding net, in ``descriptor.nets`` order.
    """

    def __init__(self, spec: DeepPotSpec):
        super().__init__(spec)
        self.compression: dict = {}
        self.tables = nn.ModuleList()
        self._warned = False
        # the fixed-shape fast path (:mod:`.fast`) turns the range check off: no host sync per
        # block; it reads the counts of pairs outside the tables that ``outside`` collects
        self.range_check = True
        self.outside: list[torch.Tensor] = []

    def set_tables(self, compression: dict, tables: list[Table]) -> "CompressedDeepPot":
        if len(tables) != len(self.descriptor.nets):
            raise ValueError(f"{len(tables)} tables for {len(self.descriptor.nets)} embedding nets")
        self.compression = {k: v for k, v in compression.items() if k != "tables"}
        self.tables = nn.ModuleList(tables).to(self.device)
        return self

    def table(self, ti: int, tj: int) -> Table:
        d = self.descriptor
        return self.tables[tj if d.type_one_side else ti * d.n_types + tj]

    def atomic_energy(self, g) -> torch.Tensor:
        if self.training:
            raise RuntimeError("a compressed DeepPot is for inference; train its uncompressed "
                               "weights (CompressedDeepPot.uncompressed()) and compress again")
        d = self.tabulated_descriptor(g)
        parts = [self.fitting[t](d[a:b]) + self.bias_atom_e[t]
                 for t, (a, b) in enumerate(g.type_slices) if b > a]
        return torch.cat(parts) if parts else d.new_zeros(0)

    def tabulated_descriptor(self, g) -> torch.Tensor:
        """Descriptors ``[n_atoms, M1 * M2]`` as :class:`DescrptSeA` computes them."""
        return self.descriptor.contract(g, self.descriptor.normalised_rows(g),
                                        lambda r, ti, tj: self._block(r[:, :, 0], r, ti, tj))

    def _block(self, x: torch.Tensor, rows: torch.Tensor, ti: int, tj: int) -> torch.Tensor:
        """``[n, 4, M1]`` from the pairs ``x [n, k]``, ``rows [n, k, 4]`` of one net."""
        table = self.table(ti, tj)
        if x.numel() == 0:
            return rows.new_zeros(x.shape[0], 4, table.width)
        inside = table.in_range(x)
        if not self.range_check:
            self.outside.append((~inside).sum())
            return TabulatedContraction.apply(x, rows, table)
        if bool(inside.all()):
            return TabulatedContraction.apply(x, rows, table)
        out_i, out_k = torch.nonzero(~inside, as_tuple=True)
        self._warn(x[out_i, out_k], table)
        t = TabulatedContraction.apply(x, rows * inside.unsqueeze(-1), table)
        exact = self.descriptor.net(ti, tj)(x[out_i, out_k].unsqueeze(-1))  # [q, M1]
        r = rows[out_i, out_k]  # [q, 4]
        return t.index_add(0, out_i, r.unsqueeze(-1) * exact.unsqueeze(1))

    def _warn(self, x: torch.Tensor, table: Table) -> None:
        if self._warned:
            return
        self._warned = True
        x = x.detach()
        warnings.warn(f"compressed DeepPot: {x.numel()} pair(s) outside the tabulated range "
                      f"[{table.lower:.4g}, {table.bound:.4g}] of the embedding input (x from "
                      f"{float(x.min()):.4g} to {float(x.max()):.4g}: atoms closer than the table's "
                      "extrapolation bound); they are evaluated by the exact embedding net "
                      "(said once per model)", RuntimeWarning, stacklevel=3)

    # -- persistence -------------------------------------------------------------------
    def serialize(self) -> dict:
        data = super().serialize()  # spec and the original weights: enough to re-tabulate
        data["compression"] = {**self.compression, "tables": [t.to_dict() for t in self.tables]}
        return data

    @classmethod
    def deserialize(cls, data: dict) -> "CompressedDeepPot":
        model = super().deserialize(data)
        comp = data["compression"]
        return model.set_tables(comp, [Table.from_dict(t) for t in comp["tables"]])

    def uncompressed(self) -> DeepPot:
        """The exact model: the same spec and weights as a plain :class:`DeepPot`."""
        model = DeepPot(self.spec)
        model.load_state_dict(self.state_dict())
        return model.to(self.device)


def table_ranges(model: DeepPot, min_dist: float, extrapolate: float) -> list[tuple[float, float, float]]:
    """``(lower, upper, bound)`` of each embedding net's input ``x = (s - avg[t_i]) / std[t_i]``
    over the centre types ``t_i`` that use it; ``s`` runs from 0 to ``s(min_dist)``."""
    d = model.descriptor
    if not 0 < min_dist < d.rcut:
        raise ValueError(f"min_dist must lie in (0, rcut={d.rcut}) Å, got {min_dist}")
    if extrapolate < 1:
        raise ValueError(f"extrapolate must be >= 1, got {extrapolate}")
    r = torch.tensor(min_dist, dtype=torch.float64)
    s_max = float(switch(r, d.rcut_smth, d.rcut) / r)
    avg, std = d.avg[:, 0].double().cpu(), d.std[:, 0].double().cpu()
    out = []
    for k in range(len(d.nets)):
        centres = range(d.n_types) if d.type_one_side else [k // d.n_types]
        lower = min(float(-avg[t] / std[t]) for t in centres)
        upper = max(float((s_max - avg[t]) / std[t]) for t in centres)
        # max(): with extrapolate 1, lower + (upper - lower) may round one ulp below upper
        out.append((lower, upper, max(upper, lower + extrapolate * (upper - lower))))
    return out


def compress_model(model: DeepPot, *, step: float = 0.01, extrapolate: float = 5.0,
                   min_dist: float = DEFAULT_MIN_DIST) -> CompressedDeepPot:
    """Tabulate ``model``'s embedding nets (see the module docstring).

    Args:
        step: fine grid step of the normalised input ``x`` (the coarse grid's is ``10 step``).
        extrapolate: the table reaches ``s = extrapolate * s(min_dist)``.
        min_dist: smallest neighbour distance expected, Å (e.g. :func:`min_neighbor_distance`
            of the training data).
    """
    if isinstance(model, CompressedDeepPot):
        model = model.uncompressed()
    ranges = table_ranges(model, min_dist, extrapolate)
    tables = [Table.build(net, lo, up, bd, step, dtype=model.dtype)
              for net, (lo, up, bd) in zip(model.descriptor.nets, ranges)]
    out = CompressedDeepPot(model.spec)
    out.load_state_dict(model.state_dict())
    settings = {"step": float(step), "extrapolate": float(extrapolate), "min_dist": float(min_dist),
                "ranges": [list(r) for r in ranges]}
    return out.set_tables(settings, tables).to(model.device).eval()


def min_neighbor_distance(systems, rcut: float) -> float:
    """Smallest distance (Å) between an atom and any neighbour within ``rcut`` over all
    frames of ``systems`` (:class:`~conlearn.atoms.system.System` list)."""
    from ..neighbors import neighbor_pairs

    best = np.inf
    for s in systems:
        for f in range(s.n_frames):
            cell = None if s.cells is None else s.cells[f]
            pairs = neighbor_pairs(s.coords[f], cell, s.pbc, rcut, frame=f"{f} of {s.name}")
            if len(pairs.vec):
                best = min(best, float(np.linalg.norm(pairs.vec, axis=1).min()))
    if not np.isfinite(best):
        raise ValueError("no neighbour pairs in the data: cannot measure the smallest distance")
    return best


def compress_file(model_path, out_path, *, step: float = 0.01, extrapolate: float = 5.0,
                  min_dist: float | None = None, data=None, trust: bool = False) -> str:
    """``conlearn compress``: read ``model_path``, tabulate, write ``out_path`` (atomically).

    ``min_dist`` (Å) defaults to the smallest neighbour distance in ``data`` (paths of
    training systems) when given, else :data:`DEFAULT_MIN_DIST`. Returns a one-line summary.
    Bad settings are errors before anything is written. ``trust``: also read a model file
    of an earlier version that needs pickle (:mod:`conlearn.atoms.modelfile`).
    """
    from ..dataset import load_systems
    from .model import load_model

    if step <= 0:
        raise ValueError(f"--step must be positive, got {step}")
    if extrapolate < 1:
        raise ValueError(f"--extrapolate must be >= 1, got {extrapolate}")
    model = load_model(model_path, trust=trust)
    if min_dist is None:
        min_dist = (min_neighbor_distance(load_systems(data), model.spec.rcut) if data
                    else DEFAULT_MIN_DIST)
    compressed = compress_model(model, step=step, extrapolate=extrapolate, min_dist=min_dist)
    compressed.save(out_path, compressed_from=str(model_path))
    n = sum(t.n_intervals for t in compressed.tables)
    mb = sum(t.coef.numel() * t.coef.element_size() for t in compressed.tables) / 2**20
    return (f"compressed {model_path} -> {out_path}: {len(compressed.tables)} embedding nets, "
            f"{n} intervals ({mb:.1f} MiB of tables), step {step}, min_dist {min_dist:.3f} Å, "
            f"exact nets beyond s = {extrapolate:g} x s(min_dist)")
