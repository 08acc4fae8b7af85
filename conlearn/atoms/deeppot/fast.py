"""Fixed-shape evaluation of DeepPots for MD: one structure, many steps (issue 14 items 2-3).

The normal path (:meth:`DeepPot.graph` + :meth:`DeepPot.evaluate`) builds a neighbour list
on the host for every call and pads it to that frame's largest count. For MD of one
structure, :class:`FastEvaluator` instead

* builds a Verlet list once (pairs within ``rcut + skin``) **on the model's device** (torch,
  :func:`device_pairs`; or vesin on the CPU) and packs it into fixed per-type slots
  (``capacity_t`` ≥ the largest count, with head-room), kept on the device;
* computes the pair vectors of every step from the positions on the device
  (``x_j - x_i + m @ cell`` with integer image shifts ``m``): slots between ``rcut`` and
  ``rcut + skin`` give exactly zero environment rows, as empty slots do, so the energy is the
  normal path's one (same maths, other summation order: equal to round-off);
* evaluates energy, forces and virial (``dE/dr_ij`` by autograd, then index sums on the device,
  as :mod:`conlearn.nn.derivatives` does) with fixed shapes, so on CUDA the whole step is
  captured once as a CUDA graph and replayed;
* checks on the device, in the same step, whether any atom moved more than ``skin / 2`` since
  the build (then rebuilds and repeats the step, re-capturing only if the slots must grow),
  whether a real neighbour count exceeds ``sel`` (the normal path's error), and for a
  compressed model whether a pair left the tables (then the step is repeated on the checked
  path, which evaluates those pairs with the exact net). One small read per step.
* evaluates a committee in one pass (:class:`StackedCommittee` for plain members, the
  members one after the other inside the same graph otherwise);
* for large systems evaluates the centre atoms in chunks (``chunk`` atoms at a time, forces
  accumulated), so peak memory is bounded by the chunk, not the system.

Units: positions and cell Å, energy eV, forces eV/Å, virial eV.
"""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import torch

from ..graph import Graph
from ..neighbors import SelOverflowError
from .committee import StackedCommittee, stackable


def _image_shifts(cell: torch.Tensor, pbc: torch.Tensor, cutoff: float) -> torch.Tensor:
    """Integer lattice shifts ``[S, 3]`` that can hold a neighbour within ``cutoff`` once the
    fractional difference is wrapped into ``[-1/2, 1/2)`` (perpendicular widths of the cell)."""
    inv = torch.linalg.inv(cell)
    widths = 1.0 / inv.norm(dim=0)  # distance between opposite faces, per lattice vector
    n = [int(math.floor(cutoff / float(w) + 0.5)) if bool(p) else 0 for w, p in zip(widths, pbc)]
    rng = [range(-k, k + 1) for k in n]
    return torch.tensor(list(itertools.product(*rng)), dtype=cell.dtype, device=cell.device)


def device_pairs(pos: torch.Tensor, cell: torch.Tensor | None, pbc, cutoff: float,
                 chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All pairs within ``cutoff`` Å by a brute-force search on ``pos``'s device.

    Args:
        pos: ``[n, 3]`` Å.  cell: ``[3, 3]`` Å rows or None.  pbc: ``[3]`` bool.
        chunk: centre atoms per pass (memory ``chunk × n × S`` distances, ``S`` image shifts).
    Returns:
        ``i, j [P]`` long and integer image shifts ``m [P, 3]`` (``r_ij = x_j - x_i + m @ cell``),
        both directions of every pair.
    """
    n, dev = pos.shape[0], pos.device
    pbc = torch.as_tensor(np.broadcast_to(np.asarray(pbc, bool), (3,)).copy())
    if cell is None or not bool(pbc.any()):
        cell, pbc = torch.eye(3, dtype=pos.dtype, device=dev), torch.zeros(3, dtype=torch.bool)
    cell = cell.to(pos)
    shifts = _image_shifts(cell, pbc, cutoff)  # [S, 3]
    frac = pos @ torch.linalg.inv(cell)
    per = pbc.to(dev, pos.dtype)
    out_i, out_j, out_m = [], [], []
    for c0 in range(0, n, chunk):
        df = frac.unsqueeze(0) - frac[c0:c0 + chunk].unsqueeze(1)  # [C, n, 3]
        wrap = -torch.round(df) * per
        m = wrap.unsqueeze(2) + shifts.view(1, 1, -1, 3)  # [C, n, S, 3]
        vec = (df.unsqueeze(2) + m) @ cell
        near = (vec * vec).sum(-1) < cutoff * cutoff
        c, j, s = torch.nonzero(near, as_tuple=True)
        self_pair = (c + c0 == j) & (m[c, j, s].abs().sum(-1) == 0)
        keep = ~self_pair
        out_i.append(c[keep] + c0)
        out_j.append(j[keep])
        out_m.append(m[c[keep], j[keep], s[keep]])
    return torch.cat(out_i), torch.cat(out_j), torch.cat(out_m)


def vesin_pairs(pos: torch.Tensor, cell: torch.Tensor | None, pbc, cutoff: float):
    """:func:`device_pairs` by vesin's cell list on the host (for the CPU); same outputs."""
    import vesin

    from ..neighbors import _box

    p = pos.detach().cpu().double().numpy()
    c = None if cell is None else cell.detach().cpu().double().numpy()
    box, periodic = _box(p, c, pbc, cutoff)
    nl = vesin.NeighborList(cutoff=float(cutoff), full_list=True)
    i, j, s = nl.compute(points=p, box=box, periodic=periodic, quantities="ijS")
    t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.int64), device=pos.device)  # noqa: E731
    return t(i), t(j), t(s).to(pos.dtype).reshape(-1, 3)


class Slots:
    """A Verlet list packed into fixed slots, on the device (centres in type-sorted order).

    ``nbr [N, K]`` long neighbour atom index (caller's order; the centre itself in empty
    slots), ``shift [N, K, 3]`` integer image shifts, ``real [N, K]`` bool, ``capacity`` per
    neighbour type (``K = Σ capacity``), ``pos0 [n, 3]`` positions at the build.
    """

    def __init__(self, pos, cell, pbc, types_sorted, order, n_types, cutoff, capacity, headroom,
                 search):
        i_in, j, m = search(pos, cell, pbc, cutoff)
        n = pos.shape[0]
        inv = torch.empty_like(order)
        inv[order] = torch.arange(n, device=order.device)
        c = inv[i_in]  # centre in sorted order
        tj = types_sorted[inv[j]]
        key = c * n_types + tj
        counts = torch.bincount(key, minlength=n * n_types).view(n, n_types)
        need = counts.max(0).values.tolist() if n else [0] * n_types
        self.capacity = [int(b) if a <= b else int(a) + headroom for a, b in zip(need, capacity)]
        starts = np.concatenate([[0], np.cumsum(self.capacity)]).tolist()
        srt = torch.argsort(key, stable=True)
        key_s = key[srt]
        rank = torch.arange(len(key_s), device=pos.device) - torch.searchsorted(key_s, key_s)
        slot = torch.as_tensor(starts[:-1], device=pos.device)[tj[srt]] + rank
        k = starts[-1]
        self.nbr = order.view(-1, 1).repeat(1, k)
        self.nbr[c[srt], slot] = j[srt]
        self.shift = pos.new_zeros(n, k, 3)
        self.shift[c[srt], slot] = m[srt]
        self.real = torch.zeros(n, k, dtype=torch.bool, device=pos.device)
        self.real[c[srt], slot] = True
        self.slot_slices = [(starts[t], starts[t + 1]) for t in range(n_types)]
        self.pos0 = pos.detach().clone()


class FastEvaluator:
    """Energy and forces of one structure, step after step, with fixed shapes (see module doc).

    Args:
        models: a DeepPot (possibly compressed) or a list (a committee: members share
            ``type_map``, ``rcut`` and ``sel``).
        types: ``[n]`` model type index per atom (fixed for the evaluator's life).
        cell: ``[3, 3]`` Å rows or None; pbc: ``[3]`` bool.
        skin: Verlet skin, Å.  headroom: extra slots per type beyond the largest count at a
            build (fewer re-captures when the counts grow).
        chunk: centre atoms per pass (None: all at once); bounds peak memory.
        cuda_graph: capture the step as a CUDA graph (default: on CUDA without chunking).
        search: "torch" (:func:`device_pairs`) or "vesin" (host cell list; CPU default).
    """

    def __init__(self, models, types, cell=None, pbc=(True, True, True), *, skin: float = 0.5,
                 headroom: int = 2, chunk: int | None = None, cuda_graph: bool | None = None,
                 search: str | None = None):
        self.models = list(models) if isinstance(models, (list, tuple)) else [models]
        m0 = self.models[0]
        for m in self.models[1:]:
            for what in ("type_map", "rcut", "sel"):
                if getattr(m.spec, what) != getattr(m0.spec, what):
                    raise ValueError(f"committee members differ in {what}")
        self.dtype, self.device = m0.dtype, m0.device
        self.spec, self.n_types = m0.spec, len(m0.spec.type_map)
        self.stacked = StackedCommittee(self.models) if stackable(self.models) else None
        types = torch.as_tensor(np.asarray(types, dtype=np.int64), device=self.device)
        self.order = torch.argsort(types, stable=True)
        self.types_sorted = types[self.order]
        bounds = torch.searchsorted(self.types_sorted, torch.arange(self.n_types + 1, device=self.device))
        self.type_slices = [(int(bounds[t]), int(bounds[t + 1])) for t in range(self.n_types)]
        self.n = len(types)
        self.pbc = np.broadcast_to(np.asarray(pbc, bool), (3,)).copy()
        self.cell = None if cell is None else torch.as_tensor(np.asarray(cell, np.float64), dtype=self.dtype, device=self.device)
        self.skin, self.headroom, self.chunk = float(skin), int(headroom), chunk
        if search is None:
            search = "vesin" if self.device.type == "cpu" else "torch"
        if search not in ("torch", "vesin"):
            raise ValueError(f"search must be 'torch' or 'vesin', got {search!r}")
        self._search = device_pairs if search == "torch" else vesin_pairs
        if cuda_graph is None:
            cuda_graph = self.device.type == "cuda" and chunk is None
        if cuda_graph and self.device.type != "cuda":
            raise ValueError("cuda_graph needs a CUDA model")
        self.use_graph = bool(cuda_graph)
        self.slots: Slots | None = None
        self._graph = None
        self.n_builds = self.n_captures = self.n_checked = 0

    # -- neighbour slots -----------------------------------------------------------------
    def _build(self, pos: torch.Tensor) -> None:
        old = self.slots.capacity if self.slots else [0] * self.n_types
        cutoff = self.spec.rcut + self.skin
        new = Slots(pos, self.cell, self.pbc, self.types_sorted, self.order, self.n_types, cutoff,
                    old, self.headroom, self._search)
        grow = new.capacity != old  # new shapes (grown with head-room): (re)capture
        self.n_builds += 1
        if self.slots is None or grow or not self.use_graph:
            self.slots, self._graph = new, None
        else:  # same shapes: refresh the captured graph's inputs in place
            for name in ("nbr", "shift", "real", "pos0"):
                getattr(self.slots, name).copy_(getattr(new, name))

    def _graph_of(self, vec: torch.Tensor, a: int, b: int) -> Graph:
        """The normal path's ``Graph`` over centres ``a:b`` (sorted order) with ``vec``."""
        ts = self.types_sorted[a:b]
        sl = [(min(max(s - a, 0), b - a), min(max(e - a, 0), b - a)) for s, e in self.type_slices]
        k = vec.shape[-2]
        return Graph(atom_types=ts, atom_frame=torch.zeros_like(ts), order=torch.arange(b - a, device=ts.device),
                     n_frames=1, type_slices=sl, nbr_vec=vec, nbr_j=torch.zeros(b - a, k, dtype=torch.long, device=ts.device),
                     slot_slices=self.slots.slot_slices, counts=torch.zeros(b - a, self.n_types, dtype=torch.long, device=ts.device))

    # -- one step ------------------------------------------------------------------------
    def _pair_vectors(self, x: torch.Tensor, a: int, b: int) -> torch.Tensor:
        """``[b - a, K, 3]`` pair vectors of centres ``a:b`` from positions ``x [n, 3]``;
        empty slots hold a vector past the cutoff."""
        s = self.slots
        nbr, real = s.nbr[a:b], s.real[a:b]
        centre = self.order[a:b]
        vec = x[..., nbr, :] - x[..., centre, :].unsqueeze(-2)
        if self.cell is not None:
            vec = vec + s.shift[a:b] @ self.cell
        far = torch.zeros_like(vec)
        far[..., 0] = self.spec.rcut + 1.0
        return torch.where(real.unsqueeze(-1), vec, far)

    def _energies(self, vec: torch.Tensor, g: Graph) -> torch.Tensor:
        """``[M]`` energies (eV) of centres in ``g`` from ``vec [M, N, K, 3]``."""
        if self.stacked is not None:
            return self.stacked.energies(vec, g)[:, 0]
        out = []
        for k, m in enumerate(self.models):
            g.nbr_vec = vec[k]
            out.append(m.atomic_energy(g).sum())
        return torch.stack(out)

    def _step(self, pos: torch.Tensor, virial: bool, checked: bool = False):
        """Energies ``[M]``, forces ``[M, n, 3]``, virial ``[M, 3, 3]`` (or None) and flags
        ``[3]`` (moved past skin/2, count above sel, pairs outside a table).

        As the normal path: ``g = dE/dr_ij`` by autograd, ``F_i += Σ g``, ``F_j -= g``,
        ``W = -Σ r ⊗ g`` (index sums on the device, no gather-backward)."""
        n_m = len(self.models)
        for m in self.models:
            if hasattr(m, "range_check"):
                m.range_check, m.outside = checked, []
        energy = 0
        forces = pos.new_zeros(n_m, self.n, 3)
        w = pos.new_zeros(n_m, 3, 3)
        over = torch.zeros((), dtype=torch.long, device=pos.device)
        chunk = self.chunk or self.n
        for a in range(0, self.n, chunk):
            b = min(self.n, a + chunk)
            with torch.no_grad():
                vec = self._pair_vectors(pos.detach(), a, b)  # [C, K, 3]
                near = (vec * vec).sum(-1) < self.spec.rcut ** 2
                for t, (s0, e0) in enumerate(self.slots.slot_slices):
                    over = over + (near[:, s0:e0].sum(-1) > self.spec.sel[t]).sum()
            vec = vec.unsqueeze(0).expand(n_m, -1, -1, -1).clone().requires_grad_(True)
            with torch.enable_grad():
                e = self._energies(vec, self._graph_of(vec, a, b))
                (g,) = torch.autograd.grad(e.sum(), vec)
            forces.index_add_(1, self.order[a:b], g.sum(2))
            forces.index_add_(1, self.slots.nbr[a:b].reshape(-1), -g.reshape(n_m, -1, 3))
            if virial:
                w = w - torch.einsum("mcka,mckb->mab", vec.detach(), g)
            energy = energy + e.detach()
        moved = ((pos - self.slots.pos0) ** 2).sum(-1).max() > (self.skin / 2) ** 2
        outside = sum((o for m in self.models for o in getattr(m, "outside", [])),
                      torch.zeros((), dtype=torch.long, device=pos.device))
        for m in self.models:
            if hasattr(m, "range_check"):
                m.range_check, m.outside = True, []
        flags = torch.stack([moved.long(), over, outside])
        return energy, forces, (w if virial else None), flags

    def _capture(self, virial: bool) -> None:
        self._static = {"pos": self.slots.pos0.clone()}
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):
                self._step(self._static["pos"], virial)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._static["out"] = self._step(self._static["pos"], virial)
        self._graph, self._graph_virial = graph, virial
        self.n_captures += 1

    def _run(self, pos: torch.Tensor, virial: bool):
        if not self.use_graph:
            return self._step(pos, virial)
        if self._graph is None or self._graph_virial != virial:
            try:
                self._capture(virial)
            except RuntimeError as err:  # an op that cannot be captured: run eagerly, say so
                warnings.warn(f"FastEvaluator: CUDA graph capture failed ({str(err)[:200]}); "
                              "evaluating without a graph", RuntimeWarning, stacklevel=3)
                self.use_graph, self._graph = False, None
                torch.cuda.synchronize()
                return self._step(pos, virial)
        self._static["pos"].copy_(pos)
        self._graph.replay()
        return self._static["out"]

    def compute(self, positions, cell=None, *, virial: bool = False) -> dict:
        """``{"energy": [M], "forces": [M, n, 3], "virial": [M, 3, 3]}`` (eV, eV/Å, eV; the
        virial only if asked), ``M`` committee members, atoms in the caller's order.

        ``positions [n, 3]`` Å (numpy or tensor); ``cell`` given for a changed cell (a
        rebuild). Outputs are fresh tensors on the model's device.
        """
        pos = torch.as_tensor(positions, dtype=self.dtype, device=self.device)
        if cell is not None:
            c = torch.as_tensor(np.asarray(cell, np.float64), dtype=self.dtype, device=self.device)
            if self.cell is None or not torch.equal(c, self.cell):
                self.cell, self.slots, self._graph = c, None, None
        if self.slots is None:
            self._build(pos)
        for _ in range(3):
            energy, forces, w, flags = self._run(pos, virial)
            moved, over, outside = flags.tolist()
            if not moved:
                break
            self._build(pos)
        if over:
            raise SelOverflowError(f"an atom has more neighbours within rcut={self.spec.rcut} Å than "
                                   f"sel = {self.spec.sel} allows; raise sel")
        if outside:  # a pair left a compressed model's table: the checked path for this step
            self.n_checked += 1
            energy, forces, w, _ = self._step_checked(pos, virial)
        out = {"energy": energy.clone(), "forces": forces.clone()}
        if virial:
            out["virial"] = w.clone()
        return out

    def _step_checked(self, pos: torch.Tensor, virial: bool):
        """The step, eager, with the compressed models' range checks on (exact nets for the
        pairs outside the tables, with their one warning)."""
        return self._step(pos, virial, checked=True)
