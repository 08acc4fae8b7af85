"""DaskExecutor on real in-process LocalClusters (127.0.0.1): submit, as_completed, routing."""

import operator
import threading

import pytest

from conlearn.exec import DaskExecutor, build_executor, callback_as_completed, resources_from_dict


def where(x):
    return x, threading.current_thread().name


def test_local_cluster_submit_map_and_errors():
    with DaskExecutor.local(n_workers=1, threads_per_worker=2, processes=False) as ex:
        futs = [ex.submit(operator.mul, i, i, kind="label", key=f"iter-000/label/{i:06d}") for i in range(8)]
        assert sorted(f.result() for f in ex.as_completed(futs)) == [i * i for i in range(8)]
        assert ex.map(operator.add, [1, 2], [10, 20]) == [11, 22]
        assert ex.slots == 2  # one worker with two threads
        with pytest.raises(ZeroDivisionError):
            ex.submit(operator.truediv, 1, 0).result()
        # same key twice still runs twice (pure=False, unique dask keys)
        a, b = ex.submit(where, 1, key="k"), ex.submit(where, 1, key="k")
        assert a.dask_future.key != b.dask_future.key and a.result()[0] == b.result()[0] == 1
        # the futures also work with plain done-callbacks (results fetched in Dask's callback thread)
        futs = [ex.submit(operator.neg, i) for i in range(3)]
        assert sorted(f.result() for f in callback_as_completed(futs)) == [-2, -1, 0]


def test_kinds_are_routed_to_their_own_cluster():
    import distributed

    gpu = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, host="127.0.0.1", protocol="tcp://",
                                   dashboard_address="127.0.0.1:0")
    cpu = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, host="127.0.0.1", protocol="tcp://",
                                   dashboard_address="127.0.0.1:0")
    with DaskExecutor.from_clusters({"train": gpu, "explore": cpu, "label": cpu}, default="explore") as ex:
        assert ex.client_for("train") is not ex.client_for("label")
        assert ex.slots == 2  # one thread on each cluster
        assert ex.client_for("select") is ex.client_for("explore") is ex.client_for("label")
        futs = [ex.submit(operator.neg, i, kind=k) for i, k in enumerate(["train", "label", "explore", "train"])]
        assert sorted(f.result() for f in ex.as_completed(futs)) == [-3, -2, -1, 0]
        gpu_addr = ex.client_for("train").scheduler.address
        assert futs[0].dask_future.client.scheduler.address == gpu_addr != futs[1].dask_future.client.scheduler.address
    assert gpu.status.name == "closed" and cpu.status.name == "closed"
    assert ex.slots is None  # closed: unknown


def test_build_local_dask_executor_from_resources():
    spec = resources_from_dict({"cluster": {"kind": "local", "workers": 1, "processes": False}})
    with build_executor(spec) as ex:
        assert isinstance(ex, DaskExecutor) and ex.submit(operator.add, 2, 3).result() == 5
