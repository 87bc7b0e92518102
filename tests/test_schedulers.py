"""One result whatever the scheduler (synchronous, threaded, two worker processes) and the chunking."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import dask
import dask.array as da
import numpy as np
import pytest
from conftest import photo_pixels
from distributed.diagnostics.plugin import SchedulerPlugin
from processes import ROOT

import emdask

# one chunk, even chunks, uneven chunks with an empty one in the middle
CHUNKINGS = [None, 4000, (1000, 0, 7000, 2345)]


def _dask(X: np.ndarray, chunking) -> da.Array:
    if chunking is None:
        return da.from_array(X, chunks=X.shape)
    if isinstance(chunking, tuple):
        rows = list(chunking) + [len(X) - sum(chunking)]
        return da.from_array(X, chunks=(tuple(rows), X.shape[1]))
    return da.from_array(X, chunks=(chunking, X.shape[1]))


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    return photo_pixels("astronaut", step=4)


@pytest.fixture(scope="module")
def reference(pixels):
    """The fit on one in-memory chunk with the synchronous scheduler."""
    import dask

    init = pixels[:: len(pixels) // 8][:8] + 0.25
    with dask.config.set(scheduler="sync"):
        fixed = emdask.KMeans(8, init=init, tol=0).fit(pixels)
        seeded = emdask.KMeans(8, random_state=7).fit(pixels)
    return init, fixed, seeded


# every chunking on the in-process schedulers; on the two-process cluster the uneven one (an empty chunk among them)
CASES = [(s, c) for s in ("sync", "threads") for c in CHUNKINGS] + [("distributed", CHUNKINGS[-1])]


@pytest.mark.parametrize(("scheduler", "chunking"), CASES, indirect=["scheduler"],
                         ids=[f"{s}-{n}" for s in ("sync", "threads") for n in ("one", "even", "uneven")]
                         + ["distributed-uneven"])
def test_same_model_on_every_scheduler_and_chunking(scheduler, chunking, pixels, reference):
    init, fixed, seeded = reference
    X = _dask(pixels, chunking)
    em = emdask.KMeans(8, init=init, tol=0).fit(X)
    assert em.n_iter_ == fixed.n_iter_
    np.testing.assert_allclose(em.cluster_centers_, fixed.cluster_centers_, rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(em.inertia_, fixed.inertia_, rtol=1e-12)
    labels = em.predict(X)
    assert isinstance(labels, da.Array)
    np.testing.assert_array_equal(labels.compute(), fixed.predict(pixels))
    # k-means|| from a seed draws per-row random numbers, so the seed alone fixes the result
    em = emdask.KMeans(8, random_state=7).fit(X)
    np.testing.assert_allclose(em.cluster_centers_, seeded.cluster_centers_, rtol=1e-9, atol=1e-7)


@pytest.mark.slow
def test_sample_weight_as_dask_array_on_cluster(distributed_client, digits):
    w = np.random.default_rng(0).uniform(0, 2, len(digits))
    init = digits[:5] + 0.1
    ref = emdask.KMeans(5, init=init).fit(digits, sample_weight=w)
    em = emdask.KMeans(5, init=init).fit(
        da.from_array(digits, chunks=(300, 16)), sample_weight=da.from_array(w, chunks=250)
    )
    np.testing.assert_allclose(em.cluster_centers_, ref.cluster_centers_, rtol=1e-12, atol=1e-10)


BLAS_CHECK = """
import dask, dask.array as da, numpy as np
from threadpoolctl import threadpool_info, threadpool_limits
import emdask
from emdask.engine import _run_chunk

def blas_threads(*_):
    return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}

def in_tasks():
    tasks = [dask.delayed(_run_chunk)(blas_threads, np.zeros((1, 1)), None, 0, ()) for _ in range(8)]
    return set().union(*dask.compute(*tasks, scheduler="threads"))

before = blas_threads()
assert before == {2}, before
X = da.from_array(np.random.default_rng(0).normal(size=(40_000, 32)), chunks=(5_000, 32))
with dask.config.set(scheduler="threads"):  # the first tasks ever run in Dask's pool threads
    emdask.KMeans(4, max_iter=3, random_state=0).fit(X)
assert blas_threads() == before, blas_threads()
for _ in range(3):
    assert in_tasks() == {1}, in_tasks()
    assert blas_threads() == before, blas_threads()
    emdask.KMeans(4, max_iter=2, random_state=0).fit(X[:5_000].compute())  # a fit from this thread in between
with threadpool_limits(1, user_api="blas"):  # the caller still sets its own count
    assert blas_threads() == {1}, blas_threads()
assert blas_threads() == before, blas_threads()
with threadpool_limits(2, user_api="blas"):  # and tasks run inside the caller's own limit still take one thread
    assert in_tasks() == {1}, in_tasks()
    assert blas_threads() == {2}, blas_threads()
assert blas_threads() == before, blas_threads()
"""


def test_chunk_tasks_run_blas_on_one_thread_and_give_the_rest_back():
    """Dask's threads run chunk tasks side by side: each task's BLAS runs on one thread (no oversubscription),
    and the caller's own setting is back once no task runs, also after a threaded fit whose tasks were the first
    to limit BLAS (in a fresh process, where nothing has set OpenBLAS's thread count yet), and after fits from
    the caller's thread; the caller can still set the count itself (threadpoolctl 3.8 lets one thread at a time
    change OpenBLAS's process-wide count)."""
    # two BLAS threads to begin with, whatever this process's workers put in the environment (Dask's nannies set
    # OMP_NUM_THREADS and the like to 1 for the processes they start)
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")} | {"OPENBLAS_NUM_THREADS": "2"}
    subprocess.run([sys.executable, "-c", BLAS_CHECK], check=True, cwd=ROOT, timeout=120, env=env)


@pytest.mark.parametrize("k, shared_task", [(4, False), (5000, True)])
def test_a_pass_carries_small_parameters_in_each_chunk_task(scheduler, k, shared_task):
    """Parameters up to EMBED_BYTES travel inside the chunk tasks: no task of their own that every chunk would
    wait for (on a cluster, one worker runs it and sends it on to the others); larger ones are that one task.
    Either way the pass sums the same statistics as one E-step over the whole array."""
    import dask.core
    from dask.core import get_dependencies

    from emdask.engine import EMBED_BYTES, ChunkedData
    from emdask.kmeans import KMeansModel

    rng = np.random.default_rng(0)
    x = rng.normal(size=(4_000, 2))
    centres = rng.normal(size=(k, 2))
    assert (centres.nbytes > EMBED_BYTES) == shared_task
    X = da.from_array(x, chunks=(1_000, 2))
    data = ChunkedData(X, cache=False)
    model = KMeansModel(k)
    graph = dict(data.pass_graph(model.e_step, centres).__dask_graph__())
    source = set(dask.core.flatten(X.__dask_keys__())) & set(graph)
    chunk_tasks = [key for key in graph if get_dependencies(graph, key) & source]
    shared = set.intersection(*[get_dependencies(graph, key) for key in chunk_tasks]) - source
    assert len(source) == len(chunk_tasks) == 4 and len(shared) == shared_task, shared
    total, whole = data.map_reduce(model.e_step, centres), model.e_step(x, None, 0, centres)
    np.testing.assert_allclose(total.counts, whole.counts)
    np.testing.assert_allclose(total.sums, whole.sums, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(total.inertia, whole.inertia, rtol=1e-12)


def test_a_pass_over_a_thousand_chunks_sums_them_all():
    """A pass's tree of sums over 1 001 chunks (four levels, a ragged last group) and weights in chunks of their
    own: the statistics of one weighted E-step over the whole array."""
    from emdask.engine import ChunkedData
    from emdask.kmeans import KMeansModel

    rng = np.random.default_rng(1)
    x, w = rng.normal(size=(10_010, 3)), rng.uniform(0, 2, 10_010)
    centres = rng.normal(size=(5, 3))
    data = ChunkedData(da.from_array(x, chunks=(10, 3)), da.from_array(w, chunks=10), cache=False)
    assert data.n_chunks == 1_001
    model = KMeansModel(5)
    with dask.config.set(scheduler="sync"):
        total = data.map_reduce(model.e_step, centres)
    whole = model.e_step(x, w, 0, centres)
    np.testing.assert_allclose(total.counts, whole.counts, rtol=1e-12)
    np.testing.assert_allclose(total.sums, whole.sums, rtol=1e-12, atol=1e-9)
    assert total.inertia == pytest.approx(whole.inertia, rel=1e-12)
    np.testing.assert_array_equal(np.sort(total.far.index), np.sort(whole.far.index))


def test_cached_chunks_lie_in_one_run_per_worker_beside_their_weights(distributed_client):
    """Rows sent from the client are one dependency of every chunk, so left to itself the scheduler may keep most
    chunks on one worker, and each weights chunk anywhere: a pass would last as long as that worker's share and
    move weights between workers.  Cached, the rows lie half on each worker in consecutive runs, each weights
    chunk beside its rows; a pass takes each worker's chunks in one task (one thread each), its two partial sums
    are added here, not in a task that would wait for both, and it equals the E-step over the whole array;
    chunks the caller already cached stay as they are."""
    from dask.core import flatten
    from distributed import futures_of, get_task_stream, wait

    from emdask.engine import ChunkedData
    from emdask.kmeans import KMeansModel

    rng = np.random.default_rng(2)
    x, w = rng.normal(size=(4_000, 3)), rng.uniform(0, 2, 4_000)
    data = ChunkedData(da.from_array(x, chunks=(500, 3)), da.from_array(w, chunks=500), cache=True)

    def holders(array: da.Array) -> list[str]:
        wait(futures_of(array))
        who = distributed_client.who_has(futures_of(array))
        return [who[key][0] for key in flatten(array.__dask_keys__())]

    workers = sorted(distributed_client.scheduler_info(n_workers=-1)["workers"])
    assert holders(data.X) == [workers[0]] * 4 + [workers[1]] * 4
    assert holders(data.weights) == holders(data.X)
    centres = rng.normal(size=(4, 3))
    graph = dict(data.pass_graph(KMeansModel(4).e_step, centres).__dask_graph__())
    source = set(flatten(data.X.__dask_keys__()))
    assert sum(bool(source & set(getattr(task, "dependencies", ()))) for task in graph.values()) == 2  # a task a thread
    with get_task_stream(distributed_client) as stream:
        total, whole = data.map_reduce(KMeansModel(4).e_step, centres), KMeansModel(4).e_step(x, w, 0, centres)
    assert sorted(task["key"][1:] for task in stream.data) == [(0, 0), (0, 1)]  # the two partial sums come here
    np.testing.assert_allclose(total.counts, whole.counts, rtol=1e-12)
    np.testing.assert_allclose(total.sums, whole.sums, rtol=1e-12, atol=1e-9)
    assert total.inertia == pytest.approx(whole.inertia, rel=1e-12)
    one_a_chunk = ChunkedData(da.from_array(x, chunks=(500, 3)), da.from_array(w, chunks=500), cache=False)
    with dask.config.set(scheduler="sync"):  # the same additions in the same order: the same bits
        alone = one_a_chunk.map_reduce(KMeansModel(4).e_step, centres)
    assert (total.inertia, total.sums.tolist()) == (alone.inertia, alone.sums.tolist())

    cached = da.from_array(x, chunks=(500, 3)).persist()
    again = ChunkedData(cached, cache=True)
    assert again.X.__dask_keys__() == cached.__dask_keys__()


def test_a_pass_adds_in_one_order_however_its_chunks_are_grouped():
    """Which chunks a task takes together depends on where the cluster keeps them, which changes from fit to fit:
    the groups' partial sums must still add up with every addition in the order of the tree over single chunks,
    so a fit gives the same bits however its chunks lie (70 chunks: a tree of three levels)."""
    from emdask.engine import _subtrees, _tree_total, tree_sum
    from emdask.kmeans import KMeansModel

    rng = np.random.default_rng(3)
    x, centres = rng.normal(size=(7_000, 3)) * 1e3, rng.normal(size=(6, 3)) * 1e3
    model = KMeansModel(6)
    leaves = [model.e_step(x[i * 100:(i + 1) * 100], None, i * 100, centres) for i in range(70)]
    (reference,) = dask.compute(tree_sum([dask.delayed(leaf) for leaf in leaves]), scheduler="sync")
    order = rng.permutation(70)
    groupings = [[list(range(70))], [list(range(0, 37)), list(range(37, 70))], [[i] for i in range(70)],
                 [sorted(part) for part in np.array_split(order, 5)], [list(range(0, 70, 2)), list(range(1, 70, 2))]]
    for groups in groupings:
        parts = [_subtrees({i: leaves[i] for i in group}, 70) for group in groups]
        total = _tree_total(parts, 70)
        assert (total.inertia, total.sums.tolist()) == (reference.inertia, reference.sums.tolist()), groups


class _GraphsAndReleases(SchedulerPlugin):
    """A scheduler plugin that records, in the scheduler's order, each graph's arrival and each result's release."""

    name = "emdask-test-graphs-and-releases"

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def update_graph(self, scheduler, *, keys, **kwargs) -> None:
        self.events += [("graph", _key_name(key)) for key in keys]

    def transition(self, key, start, finish, *args, **kwargs) -> None:
        if start == "memory":
            self.events.append(("released", _key_name(key)))


def _key_name(key) -> str:
    return key[0] if isinstance(key, tuple) else key


def test_a_pass_on_a_cluster_sends_its_graph_before_releasing_the_last_pass(distributed_client):
    """A client sends its messages to the scheduler at most every 10 ms: releasing the last pass's results just
    before sending the next pass's graph held that graph back by up to 10 ms, each pass.  Each pass's graph
    reaches the scheduler before the last pass's results are released, and they are released before the one
    after (no more than one pass's results held), or when the data is dropped."""
    from emdask.engine import ChunkedData
    from emdask.kmeans import KMeansModel

    plugin = _GraphsAndReleases()
    distributed_client.register_plugin(plugin, name=plugin.name)
    try:
        rng = np.random.default_rng(4)
        data = ChunkedData(da.from_array(rng.normal(size=(2_000, 3)), chunks=(250, 3)), cache=True)
        centres = rng.normal(size=(4, 3))
        for _ in range(4):
            data.map_reduce(KMeansModel(4).e_step, centres)
        del data  # the last pass's results too

        def events(dask_scheduler) -> list[tuple[str, str]]:
            return list(dask_scheduler.plugins[plugin.name].events)

        passes = list(dict.fromkeys(name for kind, name in distributed_client.run_on_scheduler(events)
                                    if kind == "graph" and name.startswith("e_step")))
        assert len(passes) == 4
        for _ in range(100):  # a release reaches the scheduler up to 10 ms after it is made
            seen = distributed_client.run_on_scheduler(events)
            if all(("released", name) in seen for name in passes):
                break
            time.sleep(0.05)
        assert all(("released", name) in seen for name in passes)
        for last, this, following in zip(passes, passes[1:], passes[2:] + [None]):
            released = seen.index(("released", last))
            assert seen.index(("graph", this)) < released, (last, this)
            assert following is None or released < seen.index(("graph", following)), (last, following)
    finally:
        distributed_client.unregister_scheduler_plugin(plugin.name)
