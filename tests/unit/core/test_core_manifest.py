"""Manifest: durable records, inline vs file outputs, torn lines, one driver per run dir."""

import json

import pytest

from conlearn.core.manifest import Manifest, ManifestError, atomic_write_bytes, read_records


def test_record_and_reload_inline_and_file_outputs(tmp_path):
    with Manifest(tmp_path, inline_bytes=100) as m:
        m.record("iter-000/label/000001", {"x": 1.0}, {"ok": True})
        m.record("iter-000/explore/0000", list(range(1000)), {"n": 1000})
        m.record("loop/settings", None, {"seed": 3})
        assert "iter-000/label/000001" in m and len(m) == 3
    big = tmp_path / "outputs" / "iter-000" / "explore" / "0000.pkl"
    assert big.is_file() and not (tmp_path / "outputs" / "iter-000" / "label").exists()
    with Manifest(tmp_path) as m:
        assert m.load("iter-000/label/000001") == {"x": 1.0}
        assert m.load("iter-000/explore/0000") == list(range(1000))
        assert m.load("loop/settings") is None and m.get("loop/settings").meta == {"seed": 3}
        assert [r.key for r in m.records("iter-000/")] == ["iter-000/label/000001", "iter-000/explore/0000"]
        with pytest.raises(KeyError):
            m.load("iter-000/label/000002")


def test_torn_last_line_is_ignored_and_cut_off(tmp_path):
    with Manifest(tmp_path) as m:
        for i in range(3):
            m.record(f"t/{i}", i)
    path = tmp_path / "manifest.jsonl"
    good = path.read_bytes()
    path.write_bytes(good + b'{"v": 1, "key": "t/3", "outp')  # kill in the middle of a write
    assert [k for k, _ in read_records(path)] == ["t/0", "t/1", "t/2"]
    with Manifest(tmp_path) as m:
        assert len(m) == 3 and path.read_bytes() == good
        m.record("t/3", 3)
    with Manifest(tmp_path) as m:
        assert [m.load(f"t/{i}") for i in range(4)] == [0, 1, 2, 3]


def test_complete_last_line_without_newline_is_kept(tmp_path):
    with Manifest(tmp_path) as m:
        m.record("t/0", 0)
    path = tmp_path / "manifest.jsonl"
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    with Manifest(tmp_path) as m:
        m.record("t/1", 1)
    with Manifest(tmp_path) as m:
        assert m.load("t/0") == 0 and m.load("t/1") == 1


def test_corrupt_line_in_the_middle_is_an_error(tmp_path):
    lines = [json.dumps({"key": "a"}), "garbage{", json.dumps({"key": "b"})]
    (tmp_path / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError, match="line 2"):
        Manifest(tmp_path).open()


def test_second_driver_of_the_same_run_dir_is_refused(tmp_path):
    with Manifest(tmp_path):
        with pytest.raises(ManifestError, match="in use"):
            Manifest(tmp_path).open()
    with Manifest(tmp_path):  # released on close (and by the kernel on kill -9)
        pass


def test_record_needs_open_manifest_and_sane_keys(tmp_path):
    with pytest.raises(ManifestError):
        Manifest(tmp_path).record("a", 1)
    with Manifest(tmp_path) as m:
        for bad in ("../x", "/abs", "a//b", "a b", ""):
            with pytest.raises(ValueError):
                m.record(bad, 1)


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    p = tmp_path / "sub" / "f.bin"
    atomic_write_bytes(p, b"one")
    atomic_write_bytes(p, b"two")
    assert p.read_bytes() == b"two" and [q.name for q in p.parent.iterdir()] == ["f.bin"]
