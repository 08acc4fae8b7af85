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

from ..core.manifest import Manifest, atomic_write_bytes
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


def labels_of(run_dir: Path) -> list[dict]:
    """Every good label payload of the run, in key order."""
    with Manifest(run_dir) as man:
        out = []
        for r in man.records():
            if "/label/" in r.key:
                v = man.load(r.key)
                if v.ok:
                    out.append(v.payload)
        return out


def step_counts(man: Manifest) -> dict:
    """labels, labels_dropped (with reasons), md_steps_explore, md_steps_label from the manifest."""
    explore = label = n_ok = 0
    dropped = []
    for r in man.records():
        if "/explore/" in r.key:
            explore += int(man.load(r.key).meta.get("n_steps", 0))
        elif "/label/" in r.key:
            v = man.load(r.key)
            if v.ok:
                n_ok += 1
                label += int(v.payload["n_steps"])
            else:
                md = man.workdir(r.key) / MD_FILE
                label += json.loads(md.read_text())["n_steps"] if md.is_file() else 0
                dropped.append({"key": r.key, "reason": v.reason})
    return {"labels": n_ok, "labels_dropped": len(dropped), "md_steps_explore": explore,
            "md_steps_label": label, "dropped": dropped}


def per_iteration(man: Manifest) -> list[dict]:
    """Per iteration: trust levels, training metrics, explored frames, candidates, selected, labels."""
    out = {}
    for r in man.records():
        parts = r.key.split("/")
        if not parts[0].startswith("iter-"):
            continue
        it = out.setdefault(int(parts[0][5:]), {"iteration": int(parts[0][5:]), "labels": 0, "dropped": 0})
        if parts[1] == "train":
            m = dict(r.meta.get("metrics", {}))
            it.update(e0=m.get("e0"), e1=m.get("e1"), rmse_f=m.get("rmse_f_mean"), model=r.meta.get("model_paths"))
        elif parts[1] == "select":
            it.update({k: r.meta.get(k) for k in ("n_explored", "n_candidate", "n_selected", "accurate_fraction")})
        elif parts[1] == "label":
            it["labels" if r.meta.get("ok") else "dropped"] += 1
    return [out[k] for k in sorted(out)]
