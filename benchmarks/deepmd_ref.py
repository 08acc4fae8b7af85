"""deepmd-kit (PyTorch backend) reference runs for conlearn benchmarks.

Everything deepmd-related runs in subprocesses of a separate venv (default
``$CONLEARN_DEEPMD_VENV``, default ``anchor-dp`` in the temp directory, created by ``install_deepmd_kit.sh``), so importing this
module needs only the standard library and numpy, and deepmd/torch are never
imported into the caller's process.

Functions
---------
ensure_installed(venv=DEFAULT_VENV) -> str | None
    Path of the venv's ``dp`` executable, installing deepmd-kit when missing;
    None (with a printed reason) when it cannot be installed.
train(input_json, workdir, budget_s, threads=1, venv=...) -> dict
    ``dp --pt train input.json`` in *workdir*, killed after *budget_s* seconds
    of wall time (counted from process start, i.e. including start-up).
    Returns {"steps", "wall_s", "steps_per_s", "checkpoint", ...}.
    Checkpoints are only written every ``training.save_freq`` steps (deepmd
    default 1000!), and a killed run writes no final one, so the CALLER must
    choose ``save_freq`` small enough that a checkpoint close to the end of
    the budget exists (e.g. ~ expected steps / 20). ``checkpoint`` is the last
    *published* checkpoint (deepmd's ``checkpoint`` pointer file, written
    after the file is complete), so it is never a half-written file.
test(checkpoint, system_dir, threads=1, venv=...) -> dict
    ``dp --pt test -m CKPT -s SYSTEM -n 0`` (all frames). Returns
    {"energy_rmse_per_atom" (eV, deepmd's "Energy RMSE/Natoms" = RMSE(E)/N),
     "force_rmse" (eV/Å, deepmd's "Force  RMSE", over all force components),
     "energy_rmse" (eV), ...}.
time_inference(checkpoint, system_dir, n_frames=10, threads=1, venv=...) -> float
    Mean seconds per call of ``deepmd.infer.DeepPot(ckpt).eval(coord, cell,
    atype)`` on ONE frame (energy + forces + virial, float64 inputs; the model
    runs in the precision it was trained in), after 2 warm-up calls.

Threads: OMP_NUM_THREADS, DP_INTRA_OP_PARALLELISM_THREADS and
DP_INTER_OP_PARALLELISM_THREADS are all set to *threads* in the subprocess.

Run as a script for a quick end-to-end check (water example, short budget):
    python benchmarks/deepmd_ref.py --budget 90 --workdir WORKDIR
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np  # noqa: F401  (allowed at import; used by callers' convenience)

# where deepmd-kit lives: $CONLEARN_DEEPMD_VENV, else a folder in the system temp directory
DEFAULT_VENV = os.environ.get("CONLEARN_DEEPMD_VENV") or str(Path(tempfile.gettempdir()) / "anchor-dp")
_HERE = Path(__file__).resolve().parent
_INSTALL_SCRIPTS = [
    Path(os.environ["DEEPMD_INSTALL_SCRIPT"]) if os.environ.get("DEEPMD_INSTALL_SCRIPT") else None,
    _HERE / "install_deepmd_kit.sh",
    _HERE.parent.parent / "shared" / "bench" / "install_deepmd_kit.sh",
]


# --------------------------------------------------------------------------- helpers
def _env(threads: int, extra: dict | None = None) -> dict:
    env = dict(os.environ)
    t = str(int(threads))
    env["OMP_NUM_THREADS"] = t
    env["MKL_NUM_THREADS"] = t
    env["DP_INTRA_OP_PARALLELISM_THREADS"] = t
    env["DP_INTER_OP_PARALLELISM_THREADS"] = t
    env.setdefault("CUDA_VISIBLE_DEVICES", "")  # CPU benchmark
    env.pop("PYTHONPATH", None)  # keep the caller's packages out of the deepmd venv
    env.update({k: str(v) for k, v in (extra or {}).items()})
    return env


def _bin(venv: str, name: str) -> Path:
    return Path(venv) / "bin" / name


def _works(venv: str) -> bool:
    dp, py = _bin(venv, "dp"), _bin(venv, "python")
    if not (dp.exists() and py.exists()):
        return False
    r = subprocess.run([str(py), "-c", "import deepmd.pt, deepmd.infer"],
                       env=_env(1), capture_output=True, text=True)
    return r.returncode == 0


def _run_py(venv: str, code: str, args: list, threads: int, timeout: float | None = None) -> dict:
    """Run *code* with the venv's python; it must print one JSON line starting with '@@JSON '."""
    r = subprocess.run([str(_bin(venv, "python")), "-c", code, *map(str, args)],
                       env=_env(threads), capture_output=True, text=True, timeout=timeout)
    for line in r.stdout.splitlines()[::-1]:
        if line.startswith("@@JSON "):
            return json.loads(line[len("@@JSON "):])
    raise RuntimeError(f"deepmd subprocess failed (rc={r.returncode}):\n"
                       f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}")


# --------------------------------------------------------------------------- install
def ensure_installed(venv: str = DEFAULT_VENV) -> str | None:
    """Return the path of ``<venv>/bin/dp``, installing deepmd-kit if needed.

    Uses the first existing of: $DEEPMD_INSTALL_SCRIPT, benchmarks/install_deepmd_kit.sh,
    ../shared/bench/install_deepmd_kit.sh. Returns None (and prints why) on failure.
    """
    if _works(venv):
        return str(_bin(venv, "dp"))
    script = next((p for p in _INSTALL_SCRIPTS if p is not None and p.is_file()), None)
    if script is None:
        print("deepmd_ref: deepmd-kit not installed in %s and no install script found" % venv)
        return None
    print(f"deepmd_ref: installing deepmd-kit into {venv} with {script} (several minutes) ...",
          flush=True)
    env = dict(os.environ, VENV=str(venv))
    r = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    if r.returncode != 0 or not _works(venv):
        tail = (r.stdout + r.stderr)[-2000:]
        print(f"deepmd_ref: installation failed (rc={r.returncode}):\n{tail}")
        return None
    return str(_bin(venv, "dp"))


# --------------------------------------------------------------------------- train
_BATCH_RE = re.compile(r"Batch\s+(\d+): total wall time = ([0-9.]+) s")


def _read_lcurve(path: Path) -> list[int]:
    steps = []
    if not path.exists():
        return steps
    with open(path) as f:
        for line in f:
            s = line.split()
            if s and not s[0].startswith("#"):
                try:
                    steps.append(int(float(s[0])))
                except ValueError:
                    pass
    return steps


def _latest_checkpoint(workdir: Path) -> str | None:
    ptr = workdir / "checkpoint"  # deepmd writes it after a checkpoint is complete
    if ptr.exists():
        p = Path(ptr.read_text().strip())
        p = p if p.is_absolute() else workdir / p
        if p.exists():
            return str(p)
    best = None
    for p in workdir.glob("*.ckpt-*.pt"):
        m = re.search(r"-(\d+)\.pt$", p.name)
        if m and "ema" not in p.name and (best is None or int(m.group(1)) > best[0]):
            best = (int(m.group(1)), p)
    return str(best[1]) if best else None


def _kill(proc: subprocess.Popen, grace: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def train(input_json: dict, workdir, budget_s: float, threads: int = 1,
          venv: str = DEFAULT_VENV, skip_neighbor_stat: bool = True,
          extra_env: dict | None = None, poll_s: float = 0.2,
          budget_from_first_step: bool = False) -> dict:
    """Train with ``dp --pt train`` for at most *budget_s* seconds of wall time.

    *input_json* is a deepmd input dict with absolute system paths. Set
    ``training.save_freq`` so that checkpoints are frequent enough (see module doc);
    ``training.disp_freq`` sets the lcurve resolution. ``disp_file`` is forced to
    ``lcurve.out``. *workdir* is created; a previous run there is not cleaned up
    (use a fresh directory).

    skip_neighbor_stat (default True) passes ``--skip-neighbor-stat``: with an explicit
    ``sel`` the neighbor statistics only check sel / enable compression, and on this
    2-core machine they cost ~60 s of the budget for the water data (1 thread).
    budget_from_first_step: count *budget_s* from the first lcurve line (the start of the
    training loop) instead of from process start, so start-up is not charged to the budget.
    extra_env: additional environment variables (e.g. {"NUM_WORKERS": 0}; deepmd's
    DataLoader otherwise uses min(4, ncpus) worker processes).

    Returns dict:
      steps        last step in lcurve.out
      wall_s       wall time from process start to exit (≈ budget_s when killed)
      steps_per_s  steady-state rate: from deepmd's "Batch N: total wall time" interval
                   log lines, excluding the first interval (start-up, first step);
                   falls back to lcurve timestamps, then steps / wall_s
      rate_source  "dp_log" | "lcurve_timestamps" | "steps/wall"
      checkpoint   latest complete model.ckpt-*.pt (None if none written yet)
      killed       True when stopped by the budget, returncode, workdir, log
      first_step_wall_s  wall time until the first lcurve line appeared (start-up cost)
    """
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = copy.deepcopy(input_json)
    cfg.setdefault("training", {})["disp_file"] = "lcurve.out"
    with open(workdir / "input.json", "w") as f:
        json.dump(cfg, f, indent=2)
    dp = _bin(venv, "dp")
    if not dp.exists():
        raise FileNotFoundError(f"{dp} missing; call ensure_installed() first")
    log_path = workdir / "train.log"
    lcurve = workdir / "lcurve.out"
    stamps: dict[int, float] = {}  # step -> wall time (since start) when first seen
    with open(log_path, "w") as logf:
        t0 = time.perf_counter()
        cmd = [str(dp), "--pt", "train", "input.json"]
        if skip_neighbor_stat:
            cmd.append("--skip-neighbor-stat")
        proc = subprocess.Popen(cmd, cwd=workdir, env=_env(threads, extra_env),
                                stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True)
        killed = False
        try:
            while True:
                now = time.perf_counter() - t0
                for s in _read_lcurve(lcurve):
                    stamps.setdefault(s, now)
                if proc.poll() is not None:
                    break
                if budget_from_first_step:
                    deadline = (min(stamps.values()) + budget_s) if stamps else float("inf")
                else:
                    deadline = budget_s
                if now >= deadline:
                    killed = True
                    _kill(proc)
                    break
                time.sleep(min(poll_s, max(0.0, deadline - now)))
        finally:
            _kill(proc)
        wall = time.perf_counter() - t0
    steps_list = _read_lcurve(lcurve)
    steps = steps_list[-1] if steps_list else 0
    text = log_path.read_text(errors="replace")
    if not killed and proc.returncode != 0:
        raise RuntimeError(f"dp train failed (rc={proc.returncode}), log tail:\n{text[-3000:]}")

    rate, source = None, None
    batches = [(int(a), float(b)) for a, b in _BATCH_RE.findall(text)]
    if len(batches) >= 2:
        dsteps = sum(b[0] - a[0] for a, b in zip(batches[:-1], batches[1:]))
        dt = sum(b[1] for b in batches[1:])
        if dsteps > 0 and dt > 0:
            rate, source = dsteps / dt, "dp_log"
    if rate is None and len(stamps) >= 2:
        ks = sorted(stamps)
        if stamps[ks[-1]] > stamps[ks[0]]:
            rate = (ks[-1] - ks[0]) / (stamps[ks[-1]] - stamps[ks[0]])
            source = "lcurve_timestamps"
    if rate is None:
        rate, source = (steps / wall if wall > 0 else 0.0), "steps/wall"
    return {
        "steps": steps,
        "wall_s": wall,
        "steps_per_s": rate,
        "rate_source": source,
        "checkpoint": _latest_checkpoint(workdir),
        "killed": killed,
        "returncode": proc.returncode,
        "first_step_wall_s": stamps[min(stamps)] if stamps else None,
        "workdir": str(workdir),
        "log": str(log_path),
    }


# --------------------------------------------------------------------------- test
def _last_float(pattern: str, text: str) -> float | None:
    m = re.findall(pattern, text)
    return float(m[-1]) if m else None


def test(checkpoint, system_dir, threads: int = 1, venv: str = DEFAULT_VENV,
         numb_test: int = 0) -> dict:
    """``dp --pt test`` on one system (all frames by default); returns RMSEs.

    energy_rmse_per_atom = deepmd's "Energy RMSE/Natoms" (RMSE of E/N, eV/atom);
    force_rmse = "Force  RMSE" (RMSE over all force components, eV/Å).
    The last printed value is used (for several systems that is the weighted average).
    """
    ckpt = Path(checkpoint).resolve()
    r = subprocess.run([str(_bin(venv, "dp")), "--pt", "test", "-m", str(ckpt), "-s",
                        str(Path(system_dir).resolve()), "-n", str(int(numb_test))],
                       cwd=ckpt.parent, env=_env(threads), capture_output=True, text=True)
    out = r.stdout + "\n" + r.stderr
    num = r"([-+0-9.eE]+|nan|inf)"
    res = {
        "energy_rmse_per_atom": _last_float(r"Energy RMSE/Natoms\s*:\s*" + num, out),
        "force_rmse": _last_float(r"Force\s+RMSE\s*:\s*" + num, out),
        "energy_rmse": _last_float(r"Energy RMSE\s*:\s*" + num, out),
        "energy_mae_per_atom": _last_float(r"Energy MAE/Natoms\s*:\s*" + num, out),
        "force_mae": _last_float(r"Force\s+MAE\s*:\s*" + num, out),
        "n_frames": _last_float(r"number of test data\s*:\s*(\d+)", out),
    }
    if r.returncode != 0 or res["force_rmse"] is None or res["energy_rmse_per_atom"] is None:
        raise RuntimeError(f"dp test failed (rc={r.returncode}):\n{out[-3000:]}")
    return res


# --------------------------------------------------------------------------- inference timing
_TIME_CODE = r"""
import json, sys, time
from pathlib import Path
import numpy as np
from deepmd.infer import DeepPot
ckpt, sysdir, n, stat = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
setdir = sorted(sysdir.glob("set.*"))[0]
coord = np.load(setdir / "coord.npy").astype(np.float64)
box = np.load(setdir / "box.npy").astype(np.float64)
atype = np.loadtxt(sysdir / "type.raw", dtype=int).reshape(-1).tolist()
dp = DeepPot(ckpt)
def call(i):
    i = i % coord.shape[0]
    e, f, v = dp.eval(coord[i:i+1], box[i:i+1], atype)
    return e, f
for i in range(2):
    call(i)
ts = []
for i in range(n):
    t = time.perf_counter(); e, f = call(i); ts.append(time.perf_counter() - t)
assert f.shape[-1] == 3 and np.isfinite(f).all()
out = {"mean": float(np.mean(ts)), "median": float(np.median(ts)), "min": float(np.min(ts)),
       "times": ts, "natoms": len(atype), "energy_dtype": str(e.dtype)}
print("@@JSON " + json.dumps(out))
"""


def time_inference(checkpoint, system_dir, n_frames: int = 10, threads: int = 1,
                   venv: str = DEFAULT_VENV, stat: str = "mean") -> float:
    """Seconds per frame of DeepPot.eval (energy+forces) on single frames of *system_dir*.

    Frames 0..n_frames-1 of the first set.* are evaluated one at a time after 2 warm-up
    calls (model load excluded). *stat*: "mean" (default), "median" or "min".
    """
    res = _run_py(venv, _TIME_CODE, [Path(checkpoint).resolve(), Path(system_dir).resolve(),
                                     int(n_frames), stat], threads)
    return float(res[stat])


# --------------------------------------------------------------------------- demo
WATER = _HERE.parent.parent / "shared" / "data" / "water"  # ../shared beside the checkout


def water_example_input(data_root=WATER, disp_freq=10, save_freq=50,
                        example=_HERE.parent / "examples" / "water" / "input.json") -> dict:
    """deepmd's se_e2_a water example, with absolute paths (train data_0..2, valid data_3)."""
    with open(example) as f:
        cfg = json.load(f)
    cfg.pop("_comment", None)
    root = Path(data_root).resolve()
    cfg["training"]["training_data"]["systems"] = [str(root / f"data_{i}") for i in range(3)]
    cfg["training"]["validation_data"]["systems"] = [str(root / "data_3")]
    cfg["training"]["disp_freq"] = disp_freq
    cfg["training"]["save_freq"] = save_freq
    return cfg


def _main(argv=None) -> int:
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=float, default=90.0)
    ap.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "dp_ref_check"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--venv", default=DEFAULT_VENV)
    ap.add_argument("--save-freq", type=int, default=50)
    ap.add_argument("--disp-freq", type=int, default=10)
    ap.add_argument("--neighbor-stat", action="store_true", help="do not skip neighbor stat")
    a = ap.parse_args(argv)
    if ensure_installed(a.venv) is None:
        return 1
    cfg = water_example_input(disp_freq=a.disp_freq, save_freq=a.save_freq)
    tr = train(cfg, a.workdir, a.budget, threads=a.threads, venv=a.venv,
               skip_neighbor_stat=not a.neighbor_stat)
    print("train:", json.dumps(tr, indent=1), flush=True)
    if tr["checkpoint"] is None:
        print("no checkpoint written; lower --save-freq or raise --budget")
        return 1
    te = test(tr["checkpoint"], WATER / "data_3", threads=a.threads, venv=a.venv)
    print("test:", json.dumps(te, indent=1), flush=True)
    ti = time_inference(tr["checkpoint"], WATER / "data_3", threads=a.threads,
                        venv=a.venv)
    print(f"inference: {ti:.4f} s/frame ({a.threads} thread(s))")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
