"""Physics baselines: a pair table plus, optionally, a three-body angular term, as one potential.

``PairThreeBody(pair, threebody)`` is a BeadPotential (one pair list for both terms) with
``.pair`` and ``.threebody`` kept; it is saved as one ``.npz`` (arrays + JSON header, no
pickle). :func:`load_baseline` reads either that file or a plain :class:`PairTable` file, so
every place that holds a baseline path takes both. Units: nm, kJ/mol, kJ/mol/nm.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from conlearn.cg.neighbors import Pairs, build_pairs
from conlearn.cg.potential import PairTable, as_tensor
from conlearn.cg.threebody import ThreeBody


class PairThreeBody:
    """``U = U_pair + U_3``: a force-matched pair table and a three-body term."""

    format = "conlearn.cg.PairThreeBody/1"

    def __init__(self, pair: PairTable, threebody: ThreeBody):
        self.pair, self.threebody = pair, threebody
        self.cutoff = max(pair.cutoff, threebody.cutoff)

    def energy_forces(self, R, box, pairs: Pairs | None = None):
        """``(E kJ/mol, F [N, 3] kJ/mol/nm)`` of ``R`` ``[N, 3]`` nm in ``box`` ``[3]`` nm."""
        R, box = as_tensor(R), as_tensor(box)
        if pairs is None:
            pairs = build_pairs(R, box, self.cutoff)
        e2, f2 = self.pair.energy_forces(R, box, pairs)
        e3, f3 = self.threebody.energy_forces(R, box, pairs)
        return e2 + e3, f2 + f3

    def virial(self, R, box, pairs: Pairs | None = None) -> float:
        """The pair term's virial kJ/mol (the three-body term's is not included)."""
        return self.pair.virial(R, box, pairs)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        tb = self.threebody
        header = json.dumps({"format": self.format, "cutoff": self.pair.cutoff, "gamma": tb.gamma, "a": tb.a})
        with open(path, "wb") as fh:
            np.savez(fh, r=self.pair.r, U=self.pair.U, F=self.pair.F, lam=tb.lam, header=np.array(header))
        return path


def load_baseline(path: str | Path):
    """A saved baseline: a :class:`PairTable` or a :class:`PairThreeBody` ``.npz``."""
    with np.load(path, allow_pickle=False) as z:
        header = json.loads(str(z["header"]))
        fmt = header.get("format")
        if fmt == PairTable.format:
            return PairTable(z["r"], z["U"], z["F"], header["cutoff"])
        if fmt == PairThreeBody.format:
            return PairThreeBody(PairTable(z["r"], z["U"], z["F"], header["cutoff"]),
                                 ThreeBody(z["lam"], header["gamma"], header["a"]))
    raise ValueError(f"{path}: not a CG baseline file (format {fmt!r}; expected {PairTable.format} "
                     f"or {PairThreeBody.format})")
