"""Run state read without running code (issue 15, item 4): the manifest's recorded outputs
go through ``core.safepickle``. A crafted record whose unpickling would create a marker file
(inline in ``manifest.jsonl`` or in ``outputs/<key>.pkl``) is refused naming the file and the
global, and the marker never appears, also through the reports' reader; plain data, numpy
arrays and conlearn's record dataclasses still round-trip; damaged records are named."""

from __future__ import annotations

import base64
import collections
import dataclasses
import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from conlearn.core import safepickle
from conlearn.core.manifest import Manifest, read_records, record_value
from conlearn.core.records import Candidate, Condition, ExploredBatch, TrainResult
from conlearn.core.safepickle import UntrustedFileError


class Payload:
    """Unpickling this runs ``touch MARKER``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


@dataclass
class NotConlearn:  # a dataclass, but not defined in a conlearn module
    x: int = 1


class Plain:
    def __init__(self, x):
        self.x = x


def _append(run: Path, key: str, blob: bytes | None, output: str | None = None) -> None:
    entry = {"v": 1, "key": key, "output": output, "meta": {}, "time": 0.0}
    if blob is not None:
        entry["data"] = base64.b64encode(blob).decode()
    with open(run / "manifest.jsonl", "a") as fh:
        fh.write(json.dumps(entry) + "\n")


def test_crafted_records_are_refused_without_running(tmp_path):
    marker = tmp_path / "MARKER"
    run = tmp_path / "run"
    with Manifest(run) as m:
        m.record("good", {"x": np.arange(3)})
    evil = pickle.dumps({"ok": 1, "x": Payload(marker)})
    _append(run, "iter-000/train/000", evil)  # inline
    (run / "outputs").mkdir()
    (run / "outputs" / "big.pkl").write_bytes(evil)
    _append(run, "iter-000/label/000", None, "outputs/big.pkl")  # in an output file
    with Manifest(run) as m:
        assert np.array_equal(m.load("good")["x"], np.arange(3))
        with pytest.raises(UntrustedFileError, match=r"manifest.jsonl \(record 'iter-000/train/000'\): "
                                                     r"refused to unpickle the global posix.system"):
            m.load("iter-000/train/000")
        with pytest.raises(UntrustedFileError, match=r"outputs/big.pkl: refused to unpickle the global "
                                                     r"posix.system"):
            m.load("iter-000/label/000")
    # the reports read through the same function (here the DP-GEN one, a whole run)
    from conlearn.atoms.dpgen.report import load_run

    with pytest.raises(UntrustedFileError, match="posix.system"):
        load_run(run)
    assert not marker.exists()
    pickle.loads(evil)  # the control: plain pickle does run it
    assert marker.exists()


def _equal(a, b) -> None:
    """Recursive equality with types (and dtypes, shapes) kept."""
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    elif dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            _equal(getattr(a, f.name), getattr(b, f.name))
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _equal(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _equal(x, y)
    else:
        assert a == b


def test_plain_data_and_conlearn_records_round_trip(tmp_path):
    cand = Candidate(key="c", payload={"pos": np.eye(3, dtype=np.float32)}, deviation=0.25)
    value = {
        "train": TrainResult(member=0, model_paths=("m.pt",), metrics={"rmse": np.float64(0.5)}),
        "batch": ExploredBatch(condition=Condition("T300", {"T": 300}), candidates=(cand,)),
        "misc": [np.int64(3), 1 + 2j, {1, 2}, frozenset({"a"}), Path("a/b"), b"\x00\x01",
                 collections.OrderedDict(a=1), collections.defaultdict(list, {"k": [1]}),
                 np.random.default_rng(4).bit_generator.state, np.array(["x", "yz"]),
                 np.zeros((2, 0)), np.arange(4).reshape(2, 2).T, np.dtype("int32")],
    }
    run = tmp_path / "run"
    with Manifest(run, inline_bytes=200) as m:
        m.record("small", {"a": 1})
        m.record("large", value)
        assert m.get("large").output == "outputs/large.pkl" and m.get("small").data is not None
    with Manifest(run) as m:
        back = m.load("large")
    _equal(back, value)
    assert back["batch"].candidates[0].payload["pos"].dtype == np.float32
    assert [record_value(run, r) for _, r in read_records(run / "manifest.jsonl")][0] == {"a": 1}


def test_only_registered_and_conlearn_dataclasses_pass():
    for obj, name in ((NotConlearn(), "NotConlearn"), (Plain(1), "Plain"), (print, "builtins.print"),
                      (getattr, "builtins.getattr")):
        with pytest.raises(UntrustedFileError, match=rf"run.pkl: refused to unpickle the global .*{name}"):
            safepickle.loads(pickle.dumps(obj), "run.pkl")
    safepickle.register(Plain)
    try:
        assert safepickle.loads(pickle.dumps(Plain(7)), "run.pkl").x == 7
    finally:
        safepickle._REGISTERED.discard((Plain.__module__, Plain.__qualname__))
    assert safepickle.allowed("conlearn.core.records", "TrainResult") is TrainResult
    assert safepickle.allowed("conlearn.core.records", "derive_seed") is None  # a function
    assert safepickle.allowed("conlearn.core.manifest", "_jsonable") is None
    assert safepickle.allowed("conlearn.__main__", "Anything") is None  # importing it would run the CLI


def test_damaged_records_are_named(tmp_path):
    run = tmp_path / "run"
    with Manifest(run, inline_bytes=10) as m:
        m.record("big", list(range(100)))
    raw = (run / "outputs" / "big.pkl").read_bytes()
    (run / "outputs" / "big.pkl").write_bytes(raw[: len(raw) // 2])
    _append(run, "torn", pickle.dumps({"a": 1})[:-3])
    with Manifest(run) as m:
        with pytest.raises(ValueError, match=r"outputs/big.pkl: damaged or truncated pickle"):
            m.load("big")
        with pytest.raises(ValueError, match=r"manifest.jsonl \(record 'torn'\): damaged or truncated"):
            m.load("torn")
    (run / "outputs" / "big.pkl").unlink()
    with Manifest(run) as m, pytest.raises(FileNotFoundError, match=r"outputs/big.pkl: output of the "
                                                                    r"recorded task 'big' is missing"):
        m.load("big")
