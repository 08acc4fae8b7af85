"""The one autograd utility: forces and virial from an energy of pair vectors, and the plain
gradient of a scalar model (RiD mean forces, bead forces, biases) in :func:`gradient`.

Every conlearn atomistic potential is a scalar energy ``E(r_ij)`` of its pair vectors
``r_ij = x_j - x_i + shift``. With ``g_p = dE/dr_p`` (``[P, 3]``, eV/Å):

* forces ``F_a = Σ_{p: i_p = a} g_p - Σ_{p: j_p = a} g_p`` (``-dE/dx_a``), eV/Å;
* virial ``W = -Σ_p r_p ⊗ g_p`` per frame (``-dE/dε`` under a strain ε), eV.
"""

from __future__ import annotations

import torch


def forces_and_virial(energy: torch.Tensor, pair_vec: torch.Tensor, pair_i: torch.Tensor,
                      pair_j: torch.Tensor, pair_frame: torch.Tensor, n_atoms: int,
                      n_frames: int, *, virial: bool = True, create_graph: bool = False):
    """Forces ``[n_atoms, 3]`` and virial ``[n_frames, 3, 3]`` (or None) by autograd.

    Args:
        energy: ``[n_frames]`` eV, computed from ``pair_vec`` (``[..., 3]``, requires grad).
        pair_i, pair_j, pair_frame: ``[P]`` indices of the flattened ``pair_vec``; an index
            equal to ``n_atoms`` marks a padding slot (its gradient is dropped).
        create_graph: keep the graph (training on forces needs second derivatives).
    """
    (g,) = torch.autograd.grad(energy.sum(), pair_vec, create_graph=create_graph)
    g = g.reshape(-1, 3)
    forces = torch.zeros(n_atoms + 1, 3, dtype=g.dtype, device=g.device)
    forces = forces.index_add(0, pair_i, g).index_add(0, pair_j, -g)[:n_atoms]
    w = None
    if virial:
        outer = pair_vec.reshape(-1, 3).unsqueeze(-1) * g.unsqueeze(-2)
        w = -torch.zeros(n_frames, 3, 3, dtype=g.dtype, device=g.device).index_add(0, pair_frame, outer)
    return forces, w


def graph_derivatives(energy_fn, graph, *, virial: bool = True, create_graph: bool = False):
    """Evaluate ``energy_fn(graph) -> [n_frames]`` and its forces/virial on ``graph``.

    Returns ``(energy, forces, virial)`` with forces in the caller's atom order
    (``graph.order``). A leaf ``graph.pair_vec`` is replaced by a fresh leaf that requires
    grad (a non-leaf one, computed from positions upstream, is kept).
    """
    if graph.pair_vec.is_leaf:
        graph.pair_vec = graph.pair_vec.detach().requires_grad_(True)
    energy = energy_fn(graph)
    pi, pj, pf = graph.pair_index()
    forces, w = forces_and_virial(
        energy, graph.pair_vec, pi, pj, pf, graph.n_atoms, graph.n_frames,
        virial=virial, create_graph=create_graph,
    )
    forces = torch.zeros_like(forces).index_copy(0, graph.order, forces)
    return energy, forces, w


def gradient(output: torch.Tensor, inputs: torch.Tensor, *, create_graph: bool = False) -> torch.Tensor:
    """``d(Σ output)/d inputs`` by autograd, shaped like ``inputs``.

    ``inputs`` may be a non-leaf view (e.g. shared points expanded per ensemble member
    ``[M, n, d]``: every member's gradient from one backward pass). ``create_graph``: keep the
    graph (training on gradients, or a gradient of the gradient such as ∇ε).
    """
    (g,) = torch.autograd.grad(output.sum(), inputs, create_graph=create_graph)
    return g
