"""conlearn <-> deepmd-kit interchange on water: the same model, the same numbers?

Every frame of water data_3 (80 frames, 192 atoms, float64) is evaluated by conlearn and by
deepmd-kit (PyTorch backend, ``deepmd.infer.DeepPot`` on a ``.pth``), for:

1. conlearn -> deepmd-kit: a conlearn model on deepmd-kit's water example architecture
   (trained ``--conlearn-steps`` steps on data_0..2, or ``--model``), exported with
   ``export_model`` to ``.dp``, turned into ``.pth`` by ``dp convert-backend``; plus an
   untrained ``type_one_side`` model with data statistics (the other embedding layout);
2. deepmd-kit -> conlearn: a model trained by ``dp --pt train`` for ``--dp-steps`` steps on
   the same input, imported from its checkpoint ``.pt``, its frozen ``.pth`` and its ``.dp``.

Prints max |ΔE| per atom (eV/atom), max |ΔF| (eV/Å) and max |ΔW| per atom (eV/atom) over
all frames and whether they meet the issue's 1e-8 bar. deepmd-kit runs in its own venv
(``$CONLEARN_DEEPMD_VENV``, see ``deepmd_ref.py``), never in this process.

    python benchmarks/deepmd_interchange.py [--conlearn-steps 200] [--dp-steps 200] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
import deepmd_ref  # noqa: E402

DATA = deepmd_ref.WATER
BAR = 1e-8

_EVAL = r"""
import json, sys, time, numpy as np
from deepmd.infer import DeepPot
model, system, out = sys.argv[1:4]
coord = np.load(f"{system}/set.000/coord.npy"); box = np.load(f"{system}/set.000/box.npy")
atype = np.loadtxt(f"{system}/type.raw", dtype=int).reshape(-1)
dp = DeepPot(model)
t = time.perf_counter()
e, f, v = dp.eval(coord, box, atype)[:3]
np.savez(out, energy=e.reshape(-1), force=f.reshape(len(coord), -1, 3), virial=v.reshape(-1, 3, 3))
print("@@JSON " + json.dumps({"frames": len(coord), "s": time.perf_counter() - t}))
"""


def conlearn_predict(model, system: Path, chunk: int = 10) -> dict:
    """conlearn's energy [F], forces [F, n, 3], virial [F, 3, 3] on every frame of ``system``."""
    coord = np.load(system / "set.000" / "coord.npy")
    box = np.load(system / "set.000" / "box.npy").reshape(-1, 3, 3)
    atype = np.loadtxt(system / "type.raw", dtype=int).reshape(-1)
    coord = coord.reshape(len(coord), -1, 3)
    parts = []
    for a in range(0, len(coord), chunk):
        g = model.graph([(c, b, [True] * 3, atype) for c, b in zip(coord[a:a + chunk], box[a:a + chunk])])
        out = model.evaluate(g)
        parts.append({"energy": out["energy"].detach().numpy(),
                      "force": out["forces"].detach().numpy().reshape(-1, len(atype), 3),
                      "virial": out["virial"].detach().numpy()})
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def deepmd_predict(model_file: Path, system: Path, work: Path, threads: int) -> dict:
    out = work / (model_file.stem + "_dp_eval.npz")
    deepmd_ref._run_py(deepmd_ref.DEFAULT_VENV, _EVAL, [model_file, system, out], threads)
    return dict(np.load(out))


def dp(args: list, cwd: Path, threads: int) -> None:
    r = subprocess.run([str(deepmd_ref._bin(deepmd_ref.DEFAULT_VENV, "dp")), *map(str, args)],
                       cwd=cwd, env=deepmd_ref._env(threads), capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"dp {' '.join(map(str, args))} failed:\n{r.stderr[-2000:]}")


def compare(name: str, ours: dict, theirs: dict, n_atoms: int) -> dict:
    row = {"case": name,
           "dE": float(np.abs(ours["energy"] - theirs["energy"]).max() / n_atoms),
           "dF": float(np.abs(ours["force"] - theirs["force"]).max()),
           "dW": float(np.abs(ours["virial"] - theirs["virial"]).max() / n_atoms)}
    row["ok"] = row["dE"] <= BAR and row["dF"] <= BAR
    return row


def example_input(steps: int) -> dict:
    cfg = deepmd_ref.water_example_input(DATA, disp_freq=max(1, steps // 4), save_freq=steps)
    cfg["training"]["numb_steps"] = steps
    cfg["learning_rate"].update(start_lr=1e-3, stop_lr=1e-5, decay_steps=max(1, steps // 20))
    return cfg


def conlearn_model(args, work: Path) -> Path:
    if args.model:
        return Path(args.model)
    from conlearn.atoms.deeppot.config import TrainConfig
    from conlearn.atoms.deeppot.train import Trainer

    t = time.perf_counter()
    path = Trainer(TrainConfig.model_validate(example_input(args.conlearn_steps)), work / "conlearn",
                   log=lambda m: None).run()
    print(f"conlearn: trained {args.conlearn_steps} steps in {time.perf_counter() - t:.0f} s", flush=True)
    return Path(path)


def untrained_one_side(trained: Path, work: Path) -> Path:
    """The trained model's statistics and bias in a fresh ``type_one_side`` model (random nets)."""
    import dataclasses

    import torch

    from conlearn.atoms.deeppot.model import DeepPot, load_model

    m = load_model(trained)
    one = DeepPot(dataclasses.replace(m.spec, type_one_side=True, seed=5))
    with torch.no_grad():
        one.descriptor.avg.copy_(m.descriptor.avg)
        one.descriptor.std.copy_(m.descriptor.std)
        one.bias_atom_e.copy_(m.bias_atom_e)
    one.save(work / "one_side.pt")
    return work / "one_side.pt"


def export_rows(args, work: Path, sys3: Path, n: int) -> list[dict]:
    from conlearn.atoms.deeppot.interchange import export_model
    from conlearn.atoms.deeppot.model import load_model

    rows = []
    trained = conlearn_model(args, work)
    for name, src in (("conlearn trained -> deepmd-kit", trained),
                      ("conlearn type_one_side -> deepmd-kit", untrained_one_side(trained, work))):
        dp_file = export_model(src, work / (src.stem + "_export.dp"))
        dp(["convert-backend", dp_file.name, dp_file.with_suffix(".pth").name], work, args.threads)
        theirs = deepmd_predict(dp_file.with_suffix(".pth"), sys3, work, args.threads)
        rows.append(compare(name, conlearn_predict(load_model(src), sys3), theirs, n))
    return rows


def import_rows(args, work: Path, sys3: Path, n: int) -> list[dict]:
    from conlearn.atoms.deeppot.interchange import import_model

    d = work / "deepmd"
    d.mkdir(exist_ok=True)
    (d / "input.json").write_text(json.dumps(example_input(args.dp_steps), indent=1))
    t = time.perf_counter()
    dp(["--pt", "train", "input.json", "--skip-neighbor-stat"], d, args.threads)
    print(f"deepmd-kit: trained {args.dp_steps} steps in {time.perf_counter() - t:.0f} s", flush=True)
    ckpt = d / f"model.ckpt-{args.dp_steps}.pt"
    dp(["--pt", "freeze", "-c", ckpt.name, "-o", "frozen.pth"], d, args.threads)
    dp(["convert-backend", "frozen.pth", "frozen.dp"], d, args.threads)
    theirs = deepmd_predict(d / "frozen.pth", sys3, work, args.threads)
    rows = []
    for src in (ckpt, d / "frozen.pth", d / "frozen.dp"):
        model = import_model(src, work / f"imported_{src.suffix[1:]}.pt")
        rows.append(compare(f"dp --pt train {args.dp_steps} -> import {src.suffix}",
                            conlearn_predict(model, sys3), theirs, n))
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| case | max dE (eV/atom) | max dF (eV/A) | max dW (eV/atom) | <= 1e-8 |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['case']} | {r['dE']:.2e} | {r['dF']:.2e} | {r['dW']:.2e} | "
              f"{'yes' if r['ok'] else 'NO'} |" for r in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="a conlearn model.pt to export (default: train one)")
    ap.add_argument("--conlearn-steps", type=int, default=200)
    ap.add_argument("--dp-steps", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", help="work directory (default: a temporary one)")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    if deepmd_ref.ensure_installed() is None:
        print("deepmd-kit is not available: nothing to compare against (see deepmd_ref.py)")
        return 0
    work = Path(args.work or tempfile.mkdtemp(prefix="deepmd_interchange_"))
    work.mkdir(parents=True, exist_ok=True)
    sys3 = DATA / "data_3"
    n = len(np.loadtxt(sys3 / "type.raw", dtype=int).reshape(-1))
    rows = export_rows(args, work, sys3, n) + import_rows(args, work, sys3, n)
    print(f"\nwater data_3: {len(np.load(sys3 / 'set.000' / 'coord.npy'))} frames x {n} atoms, float64\n")
    print(table(rows))
    (work / "rows.json").write_text(json.dumps(rows, indent=1))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
