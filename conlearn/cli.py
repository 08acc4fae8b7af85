"""The command line: ``conlearn run | status | report | train | test | demo | otf``. Thin: parse, build, run.

``run``/``status``/``report`` dispatch to the workflow the config names (:mod:`conlearn.workflows`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path


def _threads(n: int | None) -> None:
    import torch

    torch.set_num_threads(n or int(os.environ.get("OMP_NUM_THREADS", "1")))


@contextmanager
def _no_empty_dir_left(path: Path):
    """A directory this block creates is removed again if the block fails while it is empty:
    an input error leaves nothing behind."""
    existed = path.exists()
    try:
        yield
    except BaseException:
        if not existed and path.is_dir() and not any(path.iterdir()):
            path.rmdir()
        raise


def cmd_train(args) -> int:
    from .atoms.deeppot.config import read_train_config
    from .atoms.deeppot.train import Trainer

    cfg = read_train_config(args.config)
    if args.device:
        cfg.training.device = args.device
    out = Path(args.output)
    with _no_empty_dir_left(out):  # bad data or model files are found after the mkdir
        trainer = Trainer(cfg, out, init_model=args.init_model, trust_init=args.trust_file)
    model = trainer.run()
    print(f"model written to {model}; learning curve {out / 'lcurve.png'}")
    return 0


def cmd_test(args) -> int:
    from .atoms.dataset import load_systems
    from .atoms.deeppot.evaluate import score_models
    from .atoms.deeppot.model import check_committee, default_device, load_model
    from .errors import UserError

    device = args.device or default_device()
    for m in args.model:
        if Path(m).is_dir():
            raise UserError(f"{m}: is a directory, not a model file (its model.pt?)")
    models = [load_model(m, device, trust=args.trust_file) for m in args.model]
    check_committee(models, args.model)  # one type map, rcut and sel, or the RMSEs are wrong
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

    return run_demo(Path(args.out), resources=args.resources)


def cmd_run(args) -> int:
    from .core.progress import ConsoleProgress
    from .exec.resources import default_executor
    from .workflows import workflow_of_config

    workflow = workflow_of_config(args.config)
    cfg = workflow.load(args.config)  # every config error before anything is written
    out = Path(args.out or Path(args.config).with_suffix("").name + "_run")
    with default_executor(args.resources) as ex:
        summary = workflow.run(cfg, out, ex, [ConsoleProgress(sys.stderr)])
    print(json.dumps(summary, indent=1, default=str)[:2000])
    return 0 if summary.get("iterations") else 1


def cmd_status(args) -> int:
    from .workflows import workflow_of_run

    print(workflow_of_run(args.run).status(Path(args.run)))
    return 0


def cmd_report(args) -> int:
    from .workflows import workflow_of_run

    print(f"report written to {workflow_of_run(args.run).report(Path(args.run))}")
    return 0


def cmd_otf(args) -> int:
    from .atoms.otf.config import load_otf_config
    from .atoms.otf.loop import run_otf

    cfg = load_otf_config(args.config)
    out = Path(args.out or Path(args.config).with_suffix("").name + "_otf")
    summary = run_otf(cfg, out)
    print(json.dumps({k: summary[k] for k in ("steps", "n_calls", "call_steps", "cpu_s_per_step",
                                              "wall_s_per_step", "hyperparameters")}, indent=1))
    print(f"outputs in {out}")
    return 0


def cmd_compress(args) -> int:
    from .atoms.deeppot.compress import compress_file

    print(compress_file(args.model, args.output, step=args.step, extrapolate=args.extrapolate,
                        min_dist=args.min_dist, data=args.data, trust=args.trust_file))
    return 0


def cmd_convert(args) -> int:
    from .atoms.modelfile import convert
    from .errors import UserError

    if args.output and len(args.model) > 1:
        raise UserError("-o/--output takes one model; convert several without it")
    for path in args.model:
        print(f"{path} -> {convert(path, args.output)}")
    return 0


def cmd_export(args) -> int:
    from .atoms.deeppot.interchange import export_model

    out = export_model(args.model, args.output)
    print(f"deepmd-kit model written to {out} (`dp convert-backend {out} {out.with_suffix('.pth')}` "
          "gives the PyTorch model for dp test, DeepPot and LAMMPS)")
    return 0


def cmd_import(args) -> int:
    from .atoms.deeppot.interchange import import_model

    s = import_model(args.model, args.output).spec
    print(f"conlearn model written to {args.output} (se_e2_a, type_map {s.type_map}, sel {s.sel}, "
          f"rcut {s.rcut} Å, {s.precision})")
    return 0


TRUST_HELP = ("also read a model file written by an earlier conlearn version that needs pickle: this "
              "runs code named in the file, so only for files you trust; `conlearn convert` it once "
              "(docs/models.md)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="conlearn", description=__doc__)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: $OMP_NUM_THREADS or 1)")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a DeepPot from a deepmd input.json or conlearn YAML")
    t.add_argument("config")
    t.add_argument("-o", "--output", default="train_out", help="output directory (resumes if it has a checkpoint)")
    t.add_argument("--init-model", default=None, help="start from this model's weights (fine-tuning)")
    t.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N")
    t.add_argument("--trust-file", action="store_true", help=TRUST_HELP + " (for --init-model)")
    t.set_defaults(func=cmd_train)
    s = sub.add_parser("test", help="errors of a model (or committee) on labelled data")
    s.add_argument("--model", "-m", action="append", required=True, help="model.pt (repeat for a committee)")
    s.add_argument("--data", "-d", action="append", required=True, help="deepmd system dir or ASE file")
    s.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    s.add_argument("-o", "--output", default=None, help="directory for parity plots")
    s.add_argument("--device", default=None)
    s.add_argument("--trust-file", action="store_true", help=TRUST_HELP)
    s.set_defaults(func=cmd_test)
    d = sub.add_parser("demo", help="the embedded default job (Al, EMT reference)")
    d.add_argument("--out", default="runs/demo")
    d.add_argument("--resources", default=None, help="resources YAML (default: local processes)")
    d.set_defaults(func=cmd_demo)
    r = sub.add_parser("run", help="run (or resume) a concurrent-learning loop; the config's `workflow` key "
                       "picks it: dpgen (default), rid, kinetic, cg")
    r.add_argument("config")
    r.add_argument("--out", "-o", default=None, help="run directory (default: CONFIG_run)")
    r.add_argument("--resources", default=None, help="resources YAML: where tasks run")
    r.set_defaults(func=cmd_run)
    st = sub.add_parser("status", help="what a run has done so far")
    st.add_argument("run")
    st.set_defaults(func=cmd_status)
    rp = sub.add_parser("report", help="write RUN/report.html with the plots")
    rp.add_argument("run")
    rp.set_defaults(func=cmd_report)
    o = sub.add_parser("otf", help="on-the-fly GP force field: MD that calls the reference when unsure")
    o.add_argument("config")
    o.add_argument("--out", "-o", default=None, help="run directory, resumed if it has a checkpoint "
                   "(default: CONFIG_otf)")
    o.set_defaults(func=cmd_otf)
    c = sub.add_parser("compress", help="tabulate a DeepPot's embedding nets (faster inference, same results)")
    c.add_argument("model")
    c.add_argument("-o", "--output", required=True, help="compressed model file")
    c.add_argument("--step", type=float, default=0.01, help="table step of the normalised s(r)")
    c.add_argument("--extrapolate", type=float, default=5.0, help="table up to s = EXTRAPOLATE x s(min_dist)")
    c.add_argument("--min-dist", type=float, default=None, help="smallest neighbour distance, Å "
                   "(default: measured on --data, else 0.5)")
    c.add_argument("--data", "-d", action="append", default=None, help="training data (for --min-dist)")
    c.add_argument("--trust-file", action="store_true", help=TRUST_HELP)
    c.set_defaults(func=cmd_compress)
    v = sub.add_parser("convert", help="re-save model files of earlier conlearn versions in the safe "
                       "format (reads them with pickle: only files you trust)")
    v.add_argument("model", nargs="+")
    v.add_argument("-o", "--output", default=None, help="output file (one model; default: in place "
                   "for .pt, NAME.npz for GP pickles)")
    v.set_defaults(func=cmd_convert)
    ex = sub.add_parser("export", help="write a DeepPot as deepmd-kit's .dp (dp convert-backend, LAMMPS)")
    ex.add_argument("model", help="conlearn model file (model.pt)")
    ex.add_argument("-o", "--output", required=True, help="deepmd-kit model file to write, ending in .dp")
    ex.set_defaults(func=cmd_export)
    im = sub.add_parser("import", help="read a deepmd-kit se_e2_a model (.dp, .yaml, .pth, .pt) as a "
                        "conlearn model")
    im.add_argument("model", help="deepmd-kit model: .dp or .yaml, frozen .pth, or training checkpoint .pt")
    im.add_argument("-o", "--output", required=True, help="conlearn model file to write (model.pt)")
    im.set_defaults(func=cmd_import)
    return p


def main(argv=None) -> int:
    """Run one command. An anticipated error (:mod:`conlearn.errors`: bad config, data, model or
    resources file) is one line on stderr and exit status 2; anything else is a bug: its
    traceback, a request to report it, exit status 1."""
    from .errors import REPORT, user_message

    args = build_parser().parse_args(argv)  # usage errors: argparse's message, exit status 2
    try:
        _threads(args.threads)
        return args.func(args)
    except KeyboardInterrupt:
        print(f"conlearn {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - sorted into the user's and ours just below
        msg = user_message(err)
        if msg is None:
            traceback.print_exc()
            print(f"conlearn {args.command}: {REPORT}", file=sys.stderr)
            return 1
        print(f"conlearn {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
