"""``conlearn demo``: the embedded default job.

Trains a DeepPot-SE on the water data shipped beside the project (../shared/data/water)
for a few minutes, then tests it on the held-out system and prints the table.
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_demo(out: Path) -> int:
    from .atoms.dataset import load_systems
    from .atoms.deeppot.config import read_train_config
    from .atoms.deeppot.evaluate import score_models
    from .atoms.deeppot.model import load_model
    from .atoms.deeppot.train import Trainer

    cfg_path = ROOT / "examples" / "water" / "demo.yaml"
    cfg = read_train_config(cfg_path)
    out = Path(out)
    model_path = Trainer(cfg, out).run()
    valid = load_systems(cfg.training.validation_data.systems, base_dir=cfg.base_dir)
    res = score_models([load_model(model_path)], valid, plot_dir=out)
    print(f"\nDeepPot-SE on water: held-out frames {res['n_frames']}")
    print(f"  energy RMSE {1000 * res['energy_rmse_per_atom']:.2f} meV/atom")
    print(f"  force RMSE  {res['force_rmse']:.4f} eV/Å")
    print(f"model {model_path}; learning curve {out / 'lcurve.png'}; parity {res.get('plot')}")
    (out / "summary.json").write_text(json.dumps(res, indent=1))
    return 0
