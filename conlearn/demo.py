"""``conlearn demo``: the embedded default job.

Aluminium with ASE's EMT as the reference: DP-GEN-style concurrent learning over fcc/hcp/bcc
bulk and (100)/(111) slabs, 50-1500 K, 0-5 GPa (``conlearn/examples/al_emt.yaml``); then the
final committee is tested against EMT on held-out MD at every exploration condition.
Writes ``OUT/summary.json`` and the committee as ``OUT/models/model_K.pt``.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

CONFIG = Path(__file__).resolve().parent / "examples" / "al_emt.yaml"


def run_demo(out: Path, resources: str | None = None, config: Path = CONFIG) -> int:
    from .atoms.dpgen.config import read_run_config
    from .atoms.dpgen.heldout import heldout_errors, save_heldout_forces
    from .atoms.dpgen.run import conditions_for, run
    from .core.progress import ConsoleProgress
    from .exec.resources import default_executor

    t0 = time.perf_counter()
    cfg = read_run_config(config)
    out = Path(out).resolve()
    with default_executor(resources) as ex:
        report = run(cfg, out, ex, observers=[ConsoleProgress()])
        models_dir = out / "models"
        models_dir.mkdir(exist_ok=True)
        paths = []
        for k, m in enumerate(report.models):
            paths.append(str(models_dir / f"model_{k}.pt"))
            shutil.copyfile(m.model_paths[0], paths[-1])
        ho = cfg.heldout
        conds = conditions_for(cfg)(10**6)  # the final exploration stage's grid
        print(f"held-out check: reference MD at {len(conds)} conditions", file=sys.stderr, flush=True)
        errors = heldout_errors(paths, conds, cfg.reference, executor=ex,
                                n_frames=ho.n_frames if ho else 10, n_steps=ho.n_steps if ho else 400,
                                keep_forces=True)
    errors = save_heldout_forces(errors, out)  # OUT/heldout_forces.npz: the report's parity plot
    summary = json.loads((out / "summary.json").read_text())
    summary["heldout_force_rmse"] = {k: v["force_rmse"] for k, v in errors.items()}
    summary["heldout"] = errors
    summary["wall_s"] = time.perf_counter() - t0
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"\n{'condition':28s} {'force RMSE eV/Å':>16s} {'mean ε_f eV/Å':>14s}")
    for name, e in errors.items():
        print(f"{name:28s} {e['force_rmse']:16.4f} {e['max_devi_f']:14.4f}")
    worst = max(errors.items(), key=lambda kv: kv[1]["force_rmse"])
    util = summary["timing"].get("utilisation")
    busy = f"; loop workers busy {100 * util:.0f}%" if util is not None else ""
    print(f"\nworst held-out condition: {worst[0]} ({worst[1]['force_rmse']:.4f} eV/Å)")
    print(f"explored {summary['explored_frames']} frames, labelled {summary['labelled_frames']} "
          f"({100 * (summary['labelled_fraction'] or 0):.3f}%) + {summary['initial_frames']} initial; "
          f"engine overhead {100 * summary['overhead_fraction']:.2f}%{busy}; wall {summary['wall_s']:.0f} s")
    print(f"summary: {out / 'summary.json'}; models: {models_dir}", file=sys.stderr)
    return 0
