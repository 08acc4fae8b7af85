"""Committee evaluation: members one by one vs the stacked (batched) committee.

The demo's committee (4 DeepPot-SE members, ``conlearn/examples/al_emt.yaml``) on one frame,
as exploration MD evaluates it at every step: energy, forces and virial of every member.
Prints CPU ms per evaluation (1 thread) for float64 and float32 members, and the ratio.

    OMP_NUM_THREADS=1 python benchmarks/committee_eval.py [--repeats 200]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def cpu_ms(fn, repeats: int) -> float:
    for _ in range(5):
        fn()
    t0 = time.process_time()
    for _ in range(repeats):
        fn()
    return (time.process_time() - t0) / repeats * 1e3


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=200)
    a = ap.parse_args(argv)
    import torch
    from ase.build import bulk

    from conlearn.atoms.deeppot.committee import StackedCommittee
    from conlearn.atoms.deeppot.model import DeepPot
    from conlearn.atoms.dpgen.config import read_run_config
    from conlearn.atoms.dpgen.trainer import DeepPotTrainer
    from conlearn.demo import CONFIG

    torch.set_num_threads(1)
    cfg = read_run_config(CONFIG)
    section = cfg.model_section()
    rows = []
    for precision in ("float64", "float32"):
        model = copy.deepcopy(section)
        model["descriptor"]["precision"] = model["fitting_net"]["precision"] = precision
        tr = DeepPotTrainer(model=model)
        members = [DeepPot(tr.config(False, s).spec(model["descriptor"]["sel"])).eval() for s in range(4)]
        stacked = StackedCommittee(members)
        for name, atoms in (("fcc 32", bulk("Al", "fcc", a=4.05, cubic=True).repeat(2)),
                            ("bcc 54", bulk("Al", "bcc", a=3.24, cubic=True).repeat(3))):
            atoms.rattle(0.1, seed=1)
            frame = [(atoms.positions, atoms.cell.array, atoms.pbc, np.zeros(len(atoms), dtype=np.int64))]
            one = cpu_ms(lambda: [m.evaluate(members[0].graph(frame)) for m in members], a.repeats)
            both = cpu_ms(lambda: stacked.evaluate(members[0].graph(frame)), a.repeats)
            rows.append((precision, name, one, both))
    print(f"committee of 4 (demo architecture), one frame, CPU ms per evaluation, 1 thread")
    print(f"{'precision':10s} {'frame':8s} {'one by one':>11s} {'stacked':>9s} {'speed-up':>9s}")
    for p, n, one, both in rows:
        print(f"{p:10s} {n:8s} {one:11.2f} {both:9.2f} {one / both:8.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
