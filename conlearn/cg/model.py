"""ML bead models: a DeepPot-SE (se_e2_a) network on beads, Δ = pair baseline + ML, committees.

Units (OpenMM's): positions nm, box ``[3]`` nm (orthorhombic, periodic), energies kJ/mol,
forces kJ/mol/nm. Every model is a :class:`~conlearn.cg.potential.BeadPotential`:
``energy_forces(R [N, 3], box [3]) -> (E, F [N, 3])`` with forces by autograd.

* :class:`BeadNet`: ML only. The network is :class:`conlearn.atoms.deeppot.model.DeepPot`
  with one bead type (``type_map ["CG"]``), lengths in nm, energies in kJ/mol; its
  neighbour lists come from vesin through :mod:`conlearn.atoms.graph`.
* :func:`delta_model`: ``sum_potentials(pair, BeadNet)``, the pair baseline (force
  matching) plus an ML many-body correction (Khot & Savoie 2023).
* :class:`BeadCommittee`: M members sharing one baseline; mean forces and the deviation
  ``max_i sqrt(<|F_i - F̄_i|²>)`` over beads (kJ/mol/nm), members evaluated as one batch.

Files are read without executing code: ``model.json`` (format, kind, file names) next to
``ml.pt`` (``torch.load(weights_only=True)``) and ``pair.npz`` (the PairTable's own npz).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..atoms.deeppot.committee import StackedCommittee, stackable
from ..atoms.deeppot.model import DeepPot, DeepPotSpec
from ..atoms.graph import FrameGraph, Graph, collate, frame_graph
from ..atoms.neighbors import Pairs as FullPairs
from ..atoms.neighbors import MIN_DISTANCE, NeighborError, check_sel
from ..core.manifest import atomic_write_bytes

FORMAT = "conlearn.cg"
VERSION = 1
TYPE_MAP = ["CG"]


@dataclass
class BeadNetSpec:
    """Hyper-parameters of a bead DeepPot-SE; lengths in nm.

    sel: most neighbours within ``rcut`` any bead may have (an MD frame with more is an error).
    energy_scale: kJ/mol per unit of the network's output (set from the data's forces when a
        model is first trained, so that the network works with numbers of order one).
    """

    rcut: float = 0.6
    rcut_smth: float = 0.3
    sel: int = 48
    neuron: list[int] = field(default_factory=lambda: [8, 16, 32])
    axis_neuron: int = 4
    fitting_neuron: list[int] = field(default_factory=lambda: [32, 32])
    seed: int = 1
    energy_scale: float = 1.0

    def deeppot(self) -> DeepPotSpec:
        return DeepPotSpec(type_map=list(TYPE_MAP), sel=[self.sel], rcut=self.rcut, rcut_smth=self.rcut_smth,
                           neuron=list(self.neuron), axis_neuron=self.axis_neuron, type_one_side=True,
                           fitting_neuron=list(self.fitting_neuron), precision="float64", seed=self.seed)


def bead_graph(frames, rcut: float, sel: int, dtype=torch.float64) -> Graph:
    """One :class:`~conlearn.atoms.graph.Graph` of ``[(R [N, 3] nm, box [3] nm), ...]``."""
    fg = []
    for k, (r, box) in enumerate(frames):
        r = np.asarray(r, dtype=np.float64)
        fg.append(frame_graph(r, np.diag(np.asarray(box, dtype=np.float64)), np.ones(3, bool),
                              np.zeros(len(r), np.int64), rcut=rcut, sel=[sel], type_map=TYPE_MAP, frame=k))
    return collate(fg, 1, dtype=dtype)


def pairs_graph(R, pairs, rcut: float, sel: int, frame: int | str = 0) -> FrameGraph:
    """A frame's graph from a half pair list (:class:`conlearn.cg.neighbors.Pairs`, e.g. the MD
    engine's Verlet list with its skin): pairs beyond ``rcut`` are dropped, both directions kept."""
    if pairs.cutoff < rcut:
        raise ValueError(f"the pair list reaches {pairs.cutoff} nm, the bead model needs {rcut} nm")
    vec = _numpy(pairs.vectors(torch.as_tensor(_numpy(R), dtype=torch.float64)))
    d = np.linalg.norm(vec, axis=1)
    if len(d) and d.min() < MIN_DISTANCE:
        k = int(np.argmin(d))
        raise NeighborError(f"frame {frame}: beads {int(pairs.i[k])} and {int(pairs.j[k])} overlap "
                            f"(distance {d[k]:.3g} nm < {MIN_DISTANCE} nm)")
    keep = d < rcut
    i, j, vec = _numpy(pairs.i)[keep], _numpy(pairs.j)[keep], vec[keep]
    full = FullPairs(i=np.concatenate([i, j]), j=np.concatenate([j, i]), vec=np.concatenate([vec, -vec]))
    types = np.zeros(len(R), np.int64)
    counts = check_sel(full, types, [sel], TYPE_MAP, frame=frame)
    return FrameGraph(types=types, pairs=full, counts=counts, rcut=float(rcut))


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


class BeadNet:
    """ML-only bead potential: ``E = Σ_i fit(D_i)`` kJ/mol over a se_e2_a descriptor (nm)."""

    kind = "ml"

    def __init__(self, spec: BeadNetSpec | None = None, net: DeepPot | None = None):
        self.spec = spec or BeadNetSpec()
        self.net = net if net is not None else DeepPot(self.spec.deeppot())

    @property
    def cutoff(self) -> float:
        return self.spec.rcut

    def graph(self, frames, pairs=None) -> Graph:
        """Graph of ``[(R, box), ...]``; with ``pairs`` (one frame) from that half pair list."""
        if pairs is not None:
            return collate([pairs_graph(frames[0][0], pairs.within(self.spec.rcut), self.spec.rcut, self.spec.sel)], 1)
        return bead_graph(frames, self.spec.rcut, self.spec.sel)

    def forces_graph(self, g: Graph, create_graph: bool = False):
        """``(E [n_frames] kJ/mol, F [N, 3] kJ/mol/nm)`` on a graph (``create_graph`` to train)."""
        out = self.net.evaluate(g, virial=False, create_graph=create_graph)
        return out["energy"] * self.spec.energy_scale, out["forces"] * self.spec.energy_scale

    def energy_forces(self, R, box, pairs=None):
        """BeadPotential: ``R [N, 3]`` nm, ``box [3]`` nm -> (E kJ/mol, F [N, 3] kJ/mol/nm);
        ``pairs``: a half pair list reaching at least ``cutoff`` (else one is built)."""
        e, f = self.forces_graph(self.graph([(_numpy(R), _numpy(box))], pairs))
        like = R if isinstance(R, torch.Tensor) else torch.as_tensor(f)
        return e[0].detach().to(like.dtype), f.detach().to(like.dtype)

    @torch.no_grad()
    def set_stats(self, frames) -> None:
        """Descriptor normalisation from data ``[(R, box), ...]`` (deepmd-kit's statistics)."""
        self.net.descriptor.set_stats(self.net.descriptor.stat_sums(self.graph(frames)))

    def set_scale(self, frames, target_forces) -> float:
        """``energy_scale`` so that the initial network's rms force equals that of
        ``target_forces`` (``[T, N, 3]`` kJ/mol/nm, e.g. mapped minus baseline forces)."""
        self.spec.energy_scale = 1.0
        _, f = self.forces_graph(self.graph(frames))
        rms_net = float(f.pow(2).mean().sqrt())
        rms_target = float(np.sqrt(np.mean(np.asarray(target_forces) ** 2)))
        self.spec.energy_scale = rms_target / rms_net if rms_net > 0 and rms_target > 0 else 1.0
        return self.spec.energy_scale

    def parameters(self):
        return self.net.parameters()

    def save(self, path: str | Path) -> None:
        """Write the network (``torch.save`` of tensors and plain values) atomically."""
        import io

        buf = io.BytesIO()
        data = self.net.serialize()
        data["bead_spec"] = self.spec.__dict__.copy()
        torch.save(data, buf)
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> "BeadNet":
        data = torch.load(Path(path), map_location="cpu", weights_only=True)
        spec = BeadNetSpec(**data.pop("bead_spec"))
        return cls(spec, DeepPot.deserialize(data).eval())


def _potential():
    from . import potential  # C1's module: PairTable, sum_potentials

    return potential


def delta_model(pair, ml: BeadNet):
    """Δ = pair baseline + ML correction (``sum_potentials``), with ``.pair``, ``.ml`` kept."""
    total = _potential().sum_potentials(pair, ml)
    return DeltaModel(pair, ml, total)


class DeltaModel:
    """``pair + ml`` as one BeadPotential (evaluation by ``sum_potentials``)."""

    kind = "delta"

    def __init__(self, pair, ml: BeadNet, total):
        self.pair, self.ml, self.total = pair, ml, total
        self.cutoff = total.cutoff

    def energy_forces(self, R, box, pairs=None):
        return self.total.energy_forces(R, box, pairs)


def save_model(model, directory: str | Path) -> Path:
    """Write ``model`` (BeadNet, DeltaModel, PairTable or PairThreeBody) to ``directory/model.json``
    + parts (``pair.npz`` holds the baseline, pair or pair + three-body)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, "version": VERSION}
    if isinstance(model, BeadNet):
        model.save(d / "ml.pt")
        meta.update(kind="ml", ml="ml.pt")
    elif isinstance(model, DeltaModel):
        model.ml.save(d / "ml.pt")
        model.pair.save(d / "pair.npz")
        meta.update(kind="delta", ml="ml.pt", pair="pair.npz")
    else:
        model.save(d / "pair.npz")
        meta.update(kind="pair", pair="pair.npz")
    atomic_write_bytes(d / "model.json", json.dumps(meta, indent=1).encode())
    return d / "model.json"


def load_model(path: str | Path):
    """A saved bead model: ``path`` is its ``model.json`` or the directory holding it.

    Returns a BeadNet (``kind: ml``), a DeltaModel (``delta``) or a PairTable (``pair``).
    """
    p = Path(path)
    p = p / "model.json" if p.is_dir() else p
    if not p.is_file():
        raise FileNotFoundError(f"bead model {p} does not exist")
    meta = json.loads(p.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{p}: not a conlearn CG model (format={meta.get('format')!r})")
    if meta.get("version", 0) > VERSION:
        raise ValueError(f"{p}: model version {meta['version']} is newer than this conlearn ({VERSION})")
    kind = meta.get("kind")
    from .baseline import load_baseline

    pair = load_baseline(p.parent / meta["pair"]) if kind in ("pair", "delta") else None
    ml = BeadNet.load(p.parent / meta["ml"]) if kind in ("ml", "delta") else None
    if kind == "ml":
        return ml
    if kind == "pair":
        return pair
    if kind == "delta":
        return delta_model(pair, ml)
    raise ValueError(f"{p}: unknown model kind {kind!r} (ml, delta, pair)")


class BeadCommittee:
    """M bead models of one kind (all ML, or all Δ over one shared pair baseline).

    ``evaluate(R, box) -> (E_mean, F_mean [N, 3], deviation, F [M, N, 3])``; the deviation is
    ``max_i sqrt(<|F_i - F̄_i|²>_members)`` kJ/mol/nm (DP-GEN's max_devi_f). As a
    BeadPotential it drives MD with the mean.
    """

    def __init__(self, members: list):
        if not members:
            raise ValueError("a committee needs at least one member")
        kinds = {m.kind for m in members}
        if len(kinds) != 1:
            raise ValueError(f"committee members mix kinds {sorted(kinds)}")
        self.members = list(members)
        self.pair = members[0].pair if kinds == {"delta"} else None
        self.nets = [m.ml if m.kind == "delta" else m for m in members]
        dps = [n.net for n in self.nets]
        self.stacked = StackedCommittee(dps) if stackable(dps) else None
        self.cutoff = max(m.cutoff for m in self.members)

    def evaluate(self, R, box, pairs=None):
        frames = [(_numpy(R), _numpy(box))]
        g = self.nets[0].graph(frames, pairs)
        if self.stacked is not None:
            out = self.stacked.evaluate(g, virial=False)
            scale = out["forces"].new_tensor([n.spec.energy_scale for n in self.nets])
            e, f = out["energy"][:, 0] * scale, out["forces"] * scale.view(-1, 1, 1)
        else:
            res = [n.forces_graph(g) for n in self.nets]
            e = torch.stack([r[0][0].detach() for r in res])
            f = torch.stack([r[1].detach() for r in res])
        if self.pair is not None:
            ep, fp = self.pair.energy_forces(torch.as_tensor(frames[0][0]), torch.as_tensor(frames[0][1]), pairs)
            e, f = e + ep, f + fp.to(f.dtype)
        devi = torch.sqrt(((f - f.mean(0)) ** 2).sum(-1).mean(0)).max() if len(self.nets) > 1 else f.new_zeros(())
        return e.mean(), f.mean(0), float(devi), f

    def energy_forces(self, R, box, pairs=None):
        e, f, _, _ = self.evaluate(R, box, pairs)
        dtype = R.dtype if isinstance(R, torch.Tensor) else torch.float64
        return e.to(dtype), f.to(dtype)


def load_committee(paths) -> BeadCommittee:
    return BeadCommittee([load_model(p) for p in paths])
