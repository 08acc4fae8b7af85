"""The command line: ``conlearn train | test | demo``. Thin: parse, build, run."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _threads(n: int | None) -> None:
    import torch

    torch.set_num_threads(n or int(os.environ.get("OMP_NUM_THREADS", "1")))


def cmd_train(args) -> int:
    from .atoms.deeppot.config import read_train_config
    from .atoms.deeppot.train import Trainer

    cfg = read_train_config(args.config)
    if args.device:
        cfg.training.device = args.device
    out = Path(args.output)
    model = Trainer(cfg, out, init_model=args.init_model).run()
    print(f"model written to {model}; learning curve {out / 'lcurve.png'}")
    return 0


def cmd_test(args) -> int:
    from .atoms.dataset import load_systems
    from .atoms.deeppot.evaluate import score_models
    from .atoms.deeppot.model import default_device, load_model

    device = args.device or default_device()
    models = [load_model(m, device) for m in args.model]
    systems = load_systems(args.data)
    plot_dir = Path(args.output) if args.output else Path(args.model[0]).resolve().parent / "test"
    res = score_models(models, systems, plot_dir=plot_dir)
    if args.json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print(f"{k:>24s}  {v}")
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(Path(args.out))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="conlearn", description=__doc__)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: $OMP_NUM_THREADS or 1)")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a DeepPot from a deepmd input.json or conlearn YAML")
    t.add_argument("config")
    t.add_argument("-o", "--output", default="train_out", help="output directory (resumes if it has a checkpoint)")
    t.add_argument("--init-model", default=None, help="start from this model's weights (fine-tuning)")
    t.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N")
    t.set_defaults(func=cmd_train)
    s = sub.add_parser("test", help="errors of a model (or committee) on labelled data")
    s.add_argument("--model", "-m", action="append", required=True, help="model.pt (repeat for a committee)")
    s.add_argument("--data", "-d", action="append", required=True, help="deepmd system dir or ASE file")
    s.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    s.add_argument("-o", "--output", default=None, help="directory for parity plots")
    s.add_argument("--device", default=None)
    s.set_defaults(func=cmd_test)
    d = sub.add_parser("demo", help="the embedded default job")
    d.add_argument("--out", default="runs/demo")
    d.set_defaults(func=cmd_demo)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    _threads(args.threads)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"conlearn {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
