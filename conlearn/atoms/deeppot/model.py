"""The Deep Potential: energy = Σ_i fitting_{t_i}(descriptor_i) + bias_{t_i}.

Saved models are versioned dicts (``serialize``/``deserialize``) holding the
hyper-parameters, the type map and the weights: they load without the training config.
``save`` writes them with ``torch.save`` as tensors and plain values only, with a ``format``
header (``conlearn.deeppot``, or ``conlearn.deeppot.compressed`` for a compressed model), so
``torch.load(weights_only=True)`` reads them and no code runs (:mod:`..modelfile`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...nn.derivatives import graph_derivatives
from ...nn.mlp import FittingNet
from ..graph import Graph, collate, frame_graph
from .descriptor import DescrptSeA

FORMAT = "conlearn.deeppot"
COMPRESSED_FORMAT = "conlearn.deeppot.compressed"  # a saved CompressedDeepPot (its tables too)
VERSION = 1
DTYPES = {"float64": torch.float64, "float32": torch.float32}


@dataclass
class DeepPotSpec:
    """Hyper-parameters of a DeepPot-SE (se_e2_a) model; lengths in Å."""

    type_map: list[str]
    sel: list[int]
    rcut: float = 6.0
    rcut_smth: float = 0.5
    neuron: list[int] = field(default_factory=lambda: [25, 50, 100])
    axis_neuron: int = 16
    type_one_side: bool = False
    embed_resnet_dt: bool = False
    fitting_neuron: list[int] = field(default_factory=lambda: [240, 240, 240])
    fitting_resnet_dt: bool = True
    precision: str = "float64"
    seed: int = 1


class DeepPot(nn.Module):
    """DeepPot-SE: ``Graph -> energies [n_frames]`` (eV); forces/virial by autograd."""

    FORMATS = (FORMAT, COMPRESSED_FORMAT)  # ``format`` values deserialize accepts (the weights)

    def __init__(self, spec: DeepPotSpec):
        super().__init__()
        if spec.precision not in DTYPES:
            raise ValueError(f"precision '{spec.precision}' is not one of {sorted(DTYPES)}")
        self.spec = spec
        dtype = DTYPES[spec.precision]
        nt = len(spec.type_map)
        self.descriptor = DescrptSeA(
            nt, spec.sel, spec.rcut, spec.rcut_smth, spec.neuron, spec.axis_neuron,
            type_one_side=spec.type_one_side, resnet_dt=spec.embed_resnet_dt,
            dtype=dtype, seed=spec.seed,
        )
        self.fitting = nn.ModuleList(
            FittingNet(self.descriptor.dim_out, spec.fitting_neuron,
                       resnet_dt=spec.fitting_resnet_dt, dtype=dtype, seed=spec.seed + 100 + t)
            for t in range(nt)
        )
        self.register_buffer("bias_atom_e", torch.zeros(nt, dtype=dtype))

    @property
    def dtype(self) -> torch.dtype:
        return self.bias_atom_e.dtype

    @property
    def device(self) -> torch.device:
        return self.bias_atom_e.device

    @property
    def type_map(self) -> list[str]:
        return self.spec.type_map

    def atomic_energy(self, g: Graph) -> torch.Tensor:
        """Per-atom energies ``[n_atoms]`` eV, in the graph's (type-sorted) atom order."""
        d = self.descriptor(g)
        parts = [self.fitting[t](d[a:b]) + self.bias_atom_e[t]
                 for t, (a, b) in enumerate(g.type_slices) if b > a]
        return torch.cat(parts) if parts else d.new_zeros(0)

    def forward(self, g: Graph) -> torch.Tensor:
        """Frame energies ``[n_frames]`` eV."""
        return g.pair_vec.new_zeros(g.n_frames).index_add(0, g.atom_frame, self.atomic_energy(g))

    def evaluate(self, g: Graph, *, virial: bool = True, create_graph: bool = False) -> dict:
        """``{"energy": [F], "forces": [N, 3], "virial": [F, 3, 3]}`` (eV, eV/Å, eV)."""
        e, f, w = graph_derivatives(self, g, virial=virial, create_graph=create_graph)
        return {"energy": e, "forces": f, "virial": w}

    def graph(self, frames: list[tuple], *, labels=None) -> Graph:
        """Graph of ``[(positions [n,3], cell [3,3] | None, pbc [3], types [n])]`` on the model's device.

        ``types`` are model type indices. ``labels`` name frames in error messages.
        """
        fg = [
            frame_graph(pos, cell, pbc, types, rcut=self.spec.rcut, sel=self.spec.sel,
                        type_map=self.spec.type_map, frame=(labels[k] if labels else k))
            for k, (pos, cell, pbc, types) in enumerate(frames)
        ]
        return collate(fg, len(self.spec.type_map), dtype=self.dtype, device=self.device)

    # -- persistence -------------------------------------------------------------------
    def serialize(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "spec": asdict(self.spec),
            "state": {k: v.detach().cpu() for k, v in self.state_dict().items()},
        }

    @classmethod
    def deserialize(cls, data: dict) -> "DeepPot":
        if data.get("format") not in cls.FORMATS:
            raise ValueError(f"not a conlearn DeepPot model (format={data.get('format')!r})")
        if data.get("version", 0) > VERSION:
            raise ValueError(f"model file version {data['version']} is newer than this conlearn ({VERSION})")
        model = cls(DeepPotSpec(**data["spec"]))
        model.load_state_dict(data["state"])
        return model

    def save(self, path: str | Path, **metadata) -> None:
        """Write atomically (temp file + rename) so a crash never leaves half a model.

        The file holds tensors and plain values only (``torch.load(weights_only=True)``
        reads it); ``metadata`` must be JSON-like (other values are stored as strings).
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        data = {**self.serialize(), "metadata": json.loads(json.dumps(metadata, default=str))}
        if "compression" in data:
            data["format"] = COMPRESSED_FORMAT
        torch.save(data, tmp)
        tmp.replace(path)


def load_model(path: str | Path, device: str | torch.device = "cpu", trust: bool = False) -> DeepPot:
    """Load a saved DeepPot or compressed DeepPot (``model.pt``) onto ``device``.

    Read without running code (:mod:`conlearn.atoms.modelfile`); a file of an earlier
    version that needs pickle loads only with ``trust=True`` (with a warning to convert it).
    A missing, truncated or non-model file is an error naming the file and what is wrong.
    """
    from ..modelfile import COMPRESSED, DEEPPOT, build, describe, read

    fmt, data = read(path, trust)
    if fmt not in (DEEPPOT, COMPRESSED):
        raise ValueError(f"{path}: not a conlearn DeepPot model file ({describe(fmt)}; "
                         "conlearn.load_calculator reads every kind)")
    return build(fmt, data, path).to(device).eval()


def check_committee(models: list["DeepPot"], paths: list) -> None:
    """Models evaluated together (a committee mean) must share type_map, rcut and sel: one
    neighbour list and one type index serve them all. The error names the files."""
    if not models:
        raise ValueError("no model given")
    ref = models[0]
    for m, p in zip(models[1:], paths[1:]):
        for what in ("type_map", "rcut", "sel"):
            a, b = getattr(ref.spec, what), getattr(m.spec, what)
            if a != b:
                raise ValueError(f"models {paths[0]} and {p} differ in {what} ({a} vs {b}); "
                                 "a committee needs one; test them one at a time")


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def types_for(model_type_map: list[str], symbols: list[str], where: str = "") -> np.ndarray:
    """Model type index per atom; an unknown element is an error naming it."""
    index = {s: k for k, s in enumerate(model_type_map)}
    missing = sorted(set(symbols) - set(index))
    if missing:
        raise ValueError(
            f"element(s) {missing}{' in ' + where if where else ''} not in the model's "
            f"type_map {model_type_map}"
        )
    return np.array([index[s] for s in symbols], dtype=np.int64)
