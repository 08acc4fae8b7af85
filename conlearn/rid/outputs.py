"""What a RiD run leaves in its directory, read back from the manifest (also for reports).

    summary.json        iterations, labels, labels_dropped, md_steps_explore, md_steps_label, wall_s, ...
    free_energy.pt/json the final ensemble (``conlearn.rid.load_free_energy(DIR)``)
    fes_grid.npz        2-CV runs: phi, psi = linspace(−π, π, 72)[:-1]; A [71, 71] kJ/mol,
                        A[i, j] at (phi[i], psi[j]), minimum 0
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from ..core.manifest import atomic_write_bytes, read_records, record_value
from .label import MD_FILE
from .model import FINAL, Ensemble, FreeEnergy

GRID = np.linspace(-np.pi, np.pi, 72)[:-1]


def grid_points() -> np.ndarray:
    """[71*71, 2] points (phi[i], psi[j]) in row-major order of A[i, j]."""
    return np.stack(np.meshgrid(GRID, GRID, indexing="ij"), -1).reshape(-1, 2)


def fes_on_grid(fe: FreeEnergy) -> np.ndarray:
    """⟨A⟩ [71, 71] kJ/mol on the grid, minimum 0."""
    A = fe.A(grid_points()).reshape(len(GRID), len(GRID))
    return A - A.min()


def write_final(model_path: str, run_dir: Path) -> FreeEnergy:
    """Copy the final ensemble to DIR/free_energy.*, with its offset (grid minimum for 2 CVs,
    else the minimum over the labelled points); write fes_grid.npz for 2 CVs."""
    ens = Ensemble.load(model_path)
    fe = FreeEnergy(ens)
    if ens.d == 2:
        offset = float(fe.A(grid_points()).min())
    else:
        pts = [np.asarray(p["s"]) for p in labels_of(run_dir)]
        offset = float(fe.A(np.array(pts)).min()) if pts else 0.0
    ens.save(run_dir / f"{FINAL}.pt")
    meta = json.loads((run_dir / f"{FINAL}.json").read_text())
    atomic_write_bytes(run_dir / f"{FINAL}.json", json.dumps({**meta, "offset": offset}, indent=1).encode())
    fe = FreeEnergy(ens, offset)
    if ens.d == 2:
        buf = io.BytesIO()
        np.savez(buf, phi=GRID, psi=GRID, A=fes_on_grid(fe))
        atomic_write_bytes(run_dir / "fes_grid.npz", buf.getvalue())
    return fe


class RunRecords:
    """The recorded tasks of a run directory, read-only (safe while the run goes on).

    records: key -> manifest Record (in the order written); ``load(key)`` unpickles an output.
    """

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        if not (self.run_dir / "manifest.jsonl").exists():
            raise FileNotFoundError(f"{self.run_dir} has no manifest.jsonl: not a conlearn run directory")
        self.records = dict(read_records(self.run_dir / "manifest.jsonl"))

    def load(self, key: str):
        return record_value(self.run_dir, self.records[key])

    def keys(self, stage: str) -> list[str]:
        """Keys of one stage ("train", "explore", "select", "label", "final") in key order."""
        return sorted(k for k in self.records if k.startswith("iter-") and k.split("/")[1] == stage)

    def workdir(self, key: str) -> Path:
        return self.run_dir / "work" / key


def labels_of(run_dir: str | Path) -> list[dict]:
    """Every good label payload of the run, in key order."""
    rr = RunRecords(run_dir)
    return [v.payload for v in map(rr.load, rr.keys("label")) if v.ok]


def step_counts(rr: RunRecords) -> dict:
    """labels, labels_dropped (with reasons), md_steps_explore, md_steps_label from the manifest."""
    explore = label = n_ok = 0
    dropped = []
    for key in rr.keys("explore"):
        explore += int(rr.load(key).meta.get("n_steps", 0))
    for key in rr.keys("label"):
        v = rr.load(key)
        if v.ok:
            n_ok += 1
            label += int(v.payload["n_steps"])
        else:
            md = rr.workdir(key) / MD_FILE
            label += json.loads(md.read_text())["n_steps"] if md.is_file() else 0
            dropped.append({"key": key, "reason": v.reason})
    return {"labels": n_ok, "labels_dropped": len(dropped), "md_steps_explore": explore,
            "md_steps_label": label, "dropped": dropped}


def per_iteration(rr: RunRecords) -> list[dict]:
    """Per iteration: trust levels, training metrics, explored frames, candidates, selected, labels."""
    out = {}
    for key, r in rr.records.items():
        parts = key.split("/")
        if not parts[0].startswith("iter-"):
            continue
        it = out.setdefault(int(parts[0][5:]), {"iteration": int(parts[0][5:]), "labels": 0, "dropped": 0})
        if parts[1] == "train":
            m = dict(r.meta.get("metrics", {}))
            it.update(e0=m.get("e0"), e1=m.get("e1"), rmse_f=m.get("rmse_f_mean"))
        elif parts[1] == "select":
            it.update({k: r.meta.get(k) for k in ("n_explored", "n_candidate", "n_selected", "accurate_fraction")})
        elif parts[1] == "label":
            it["labels" if r.meta.get("ok") else "dropped"] += 1
    return [out[k] for k in sorted(out)]
