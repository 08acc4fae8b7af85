"""In-process and local-process executors: one interface, futures, worker thread limits."""

import operator
import os
import time

import pytest

from conlearn.exec import InProcessExecutor, LocalProcessExecutor
from conlearn.exec.local import limit_threads, worker_info

# worker processes import callables by module: test-module functions are not importable
# under pytest's importlib mode, so the process tests use library functions only.


def square(x):
    return x * x


def fail(x):
    raise ValueError(f"bad {x}")


def test_inprocess_is_lazy_and_ordered():
    calls = []

    def note(x):
        calls.append(x)
        return x

    ex = InProcessExecutor()
    futs = [ex.submit(note, i, kind="label", key=f"k{i}") for i in range(3)]
    assert calls == [] and not futs[0].done()
    assert [f.result() for f in ex.as_completed(futs)] == [0, 1, 2] and calls == [0, 1, 2]
    assert futs[1].result() == 1 and calls == [0, 1, 2]  # run once
    assert ex.map(square, [1, 2, 3]) == [1, 4, 9]


def test_inprocess_exceptions_and_pickle_check():
    ex = InProcessExecutor(check_pickle=True)
    fut = ex.submit(fail, 3)
    assert isinstance(fut.exception(), ValueError)
    with pytest.raises(ValueError, match="bad 3"):
        fut.result()
    with pytest.raises(TypeError, match="not picklable"):
        ex.submit(lambda: 1, key="iter-000/label/000001")


def test_local_processes_run_in_parallel_with_one_thread_each(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "4")  # the workers must not inherit this
    with LocalProcessExecutor(max_workers=2) as ex:
        assert ex.slots == 2
        assert ex.map(operator.mul, range(6), range(6)) == [0, 1, 4, 9, 16, 25]
        seen = [f.result() for f in [ex.submit(worker_info, kind="train") for _ in range(2)]]
        assert all(i["OMP_NUM_THREADS"] == i["MKL_NUM_THREADS"] == "1" for i in seen), seen
        assert os.getpid() not in {i["pid"] for i in seen}
        t0 = time.perf_counter()
        futs = [ex.submit(time.sleep, 1.0) for _ in range(2)]
        done = list(ex.as_completed(futs))
        assert len(done) == 2 and time.perf_counter() - t0 < 1.9  # both ran at once (else >= 2 s)
        with pytest.raises(ZeroDivisionError):
            ex.submit(operator.truediv, 1, 0).result()


def test_limit_threads_sets_torch_threads_when_torch_is_loaded(monkeypatch):
    torch = pytest.importorskip("torch")  # already loaded by tests/conftest.py
    before = torch.get_num_threads()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS"):
        monkeypatch.setenv(var, "4")
    torch.set_num_threads(2)
    try:
        limit_threads(1)
        assert torch.get_num_threads() == 1 and os.environ["OMP_NUM_THREADS"] == "1"
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_torch_imported_in_a_spawned_worker_uses_one_thread(monkeypatch):
    """End to end (imports torch in a worker: ~3 s, hence slow)."""
    pytest.importorskip("torch")
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    with LocalProcessExecutor(max_workers=1) as ex:
        assert ex.submit(worker_info, True).result()["torch_threads"] == 1
