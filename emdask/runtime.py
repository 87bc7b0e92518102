"""The Dask runtime that emdask's passes and entry points share.

- :func:`dask_cluster`: a client to a running scheduler, or a local cluster, current in this
  thread only (the CLI, both flows and the tests use it);
- :func:`active_client` and :func:`memory_budget`: the cluster ``dask.compute`` will use now and
  how much of its memory caching may fill; :func:`persist_spread` caches row-chunked arrays
  there, each worker holding a share of the rows in proportion to its threads, and
  :func:`groups_by_worker` groups cached chunks for a pass's tasks, one group a worker thread;
- :func:`one_blas_thread`: BLAS at one thread while chunk tasks run (Dask's threads are the
  parallelism; nested BLAS threads made the same job 2-10x slower at random on small machines).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dask
import dask.base
import numpy as np
import psutil
import threadpoolctl
from dask.core import flatten
from threadpoolctl import ThreadpoolController

from emdask.errors import InputError

#: Fraction of the cluster's (or this machine's available) memory that caching may fill.
CACHE_FRACTION = 0.5

_blas_lock = threading.Lock()
_blas_users = 0
_blas_limiter: Any = None
#: Found once a process, at its first task: finding the loaded BLAS libraries is slow, limiting them once found is not.
_blas_controller: ThreadpoolController | None = None


#: What local workers log: their own errors (a failed task prints its traceback there) unless a command asks less.
_worker_log_level = logging.WARNING


def quiet_entry_point(verbosity: int = 0) -> None:
    """What a command run by a person prints: emdask's progress and every warning, not Dask's INFO lines (each
    worker's start and stop), nor a local worker's traceback of a failed task (the command reports the failure
    in one line), nor Prefect's telemetry attempts (``PREFECT_SERVER_ANALYTICS_ENABLED`` if set wins).
    ``verbosity`` 1 adds emdask's details (each pass over a sub-problem, each K tried); 2 also Dask's own lines
    and the workers' tracebacks."""
    import os

    global _worker_log_level
    dask_level = logging.INFO if verbosity >= 2 else logging.ERROR
    dask.config.set({"logging.distributed": logging.getLevelName(dask_level).lower()})
    for name in ("distributed", "distributed.worker", "distributed.scheduler", "distributed.nanny"):
        logging.getLogger(name).setLevel(dask_level)
    # a failed task is reported once, as one line, by the entry point
    _worker_log_level = logging.INFO if verbosity >= 2 else logging.CRITICAL
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    logging.getLogger("emdask").setLevel(logging.DEBUG if verbosity >= 1 else logging.INFO)


def _claim_blas() -> None:
    """Let this thread set OpenBLAS's process-wide thread count.

    threadpoolctl 3.8 lets one thread at a time set it: the first to set it, until that thread
    clears it (its ``with threadpool_limits()`` block ends); others' settings do nothing. A
    limit set from a pool thread would then bind the caller, and the caller's would bind the
    tasks. Settings made here are always under the lock, so taking the right is safe; it is
    given back after the last task (older threadpoolctl has no such right: nothing to do).
    """
    clear = getattr(getattr(threadpoolctl, "OpenBLASController", None), "clear_controlling_thread", None)
    if clear is not None:
        clear(force=True)


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """BLAS at one thread while any chunk task runs in this process; the count before restored after the last."""
    global _blas_users, _blas_limiter, _blas_controller
    with _blas_lock:
        if _blas_users == 0:
            _blas_controller = _blas_controller or ThreadpoolController()
            _claim_blas()
            _blas_limiter = _blas_controller.limit(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _claim_blas()
                _blas_limiter.restore_original_limits()
                _claim_blas()  # free for the caller's own settings


def active_client() -> Any:
    """The ``distributed.Client`` that ``dask.compute`` will use now, or ``None`` for a local scheduler."""
    from distributed import Client

    client = getattr(dask.base.get_scheduler(), "__self__", None)
    return client if isinstance(client, Client) else None


def memory_budget() -> float:
    """Bytes that caching may use: a fraction of the workers' memory limits, or of this machine's free memory."""
    client = active_client()
    if client is None:
        return CACHE_FRACTION * psutil.virtual_memory().available
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    total = sum(w.get("memory_limit") or psutil.virtual_memory().total for w in workers)
    return CACHE_FRACTION * total


@contextmanager
def dask_cluster(scheduler: str | None, workers: int = 2, memory_limit: str = "auto") -> Iterator[Any]:
    """A client to ``scheduler``, or to a local cluster of ``workers`` processes (one thread each).

    The client is current in this thread only, so flows run at once in one process (threads)
    each compute on their own cluster.
    """
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler, set_as_default=False) as client, _current(client):
            yield client
        return
    if workers < 1:
        raise InputError(f"workers must be at least 1; got {workers}")
    with (
        LocalCluster(n_workers=workers, threads_per_worker=1, memory_limit=memory_limit, dashboard_address=":0",
                     silence_logs=_worker_log_level) as lc,
        Client(lc, set_as_default=False) as client,
        _current(client),
    ):
        logging.getLogger("emdask").info("local Dask cluster: %d workers, dashboard %s", workers, client.dashboard_link)
        yield client


_current_users = 0
_current_lock = threading.Lock()
_current_saved: Any = None


@contextmanager
def _current(client: Any) -> Iterator[None]:
    """``client.as_current()``, safe in threads: Dask's ``scheduler`` setting is process-wide, and
    nested ``dask.config.set`` calls that exit out of order would leave it pointing at a closed
    client, so the first user sets it and the last one restores it; the client itself is per thread."""
    global _current_users, _current_saved
    with _current_lock:
        if _current_users == 0:
            _current_saved = dask.config.set(scheduler="dask.distributed")
        _current_users += 1
    try:
        with client.as_current():
            yield
    finally:
        with _current_lock:
            _current_users -= 1
            if _current_users == 0:
                _current_saved.__exit__(None, None, None)


def persist_spread(*arrays: Any) -> tuple[Any, ...]:
    """``dask.persist(*arrays)`` (Dask arrays chunked along rows alike, or ``None``); on a cluster, the rows are cut
    into one run of consecutive chunks per worker, in proportion to its threads, and chunk ``i`` of every array
    goes to the worker of run ``i``.

    A pass's tasks run where their chunks are, so its time is that of the worker holding the
    most rows: left to itself, the scheduler puts chunks that share a dependency (an array
    sent from the client, one file) on the worker that holds it.  Each weights chunk lies
    beside its rows.  The placement is a preference: a lost worker's chunks are made again
    elsewhere.  Arrays already in cluster memory stay where they are.
    """
    from distributed import futures_of

    client = active_client()
    present = [a for a in arrays if a is not None]
    if client is None or not present or all(len(futures_of(a)) == a.npartitions for a in present):
        return tuple(dask.persist(*arrays))
    workers = sorted(client.scheduler_info(n_workers=-1)["workers"].items())
    threads = np.cumsum([info.get("nthreads", 1) for _, info in workers], dtype=float)
    rows = np.asarray(present[0].chunks[0], dtype=float)
    middles = (np.cumsum(rows) - rows / 2) / rows.sum()  # each chunk's middle row, as a fraction of all rows
    owners = [workers[j][0] for j in np.searchsorted(threads / threads[-1], middles, side="right")]

    def owner(key: Any) -> list[str]:
        return [owners[key[1]]]

    optimised = dask.optimize(*arrays)  # first: fusing the placing tasks into the arrays' would drop their placement
    with dask.annotate(workers=owner, allow_other_workers=True):
        placed = [None if a is None else a.map_blocks(_same, dtype=a.dtype, meta=a._meta) for a in optimised]
    return tuple(dask.persist(*placed, optimize_graph=False))


def _same(block: Any) -> Any:
    """A chunk as it is: the task that places it on its worker."""
    return block


def groups_by_worker(array: Any) -> list[list[int]] | None:
    """The chunks (row blocks) of ``array``, held in the memory of the active cluster, in groups for a pass's tasks:
    each worker's chunks in as many consecutive groups as it has threads; ``None`` without a cluster.

    One task a group rather than one a chunk: a worker runs its chunks without a round trip
    through its event loop and the scheduler between them, and the scheduler has a task a
    thread to handle rather than a task a chunk.  A chunk held nowhere (its computation
    failed) is a group of its own, so its error comes from its own task.
    """
    from distributed import futures_of, wait

    client = active_client()
    if client is None:
        return None
    futures = futures_of(array)
    wait(futures)
    holders = client.who_has(futures)
    workers = client.scheduler_info(n_workers=-1)["workers"]
    threads = {address: info.get("nthreads", 1) for address, info in workers.items()}
    held: dict[str, list[int]] = {}
    groups = []
    for i, key in enumerate(flatten(array.__dask_keys__())):
        where = [w for w in holders.get(key, ()) if w in threads]
        if where:
            held.setdefault(where[0], []).append(i)
        else:
            groups.append([i])
    for address, chunks in sorted(held.items()):
        groups += [part.tolist() for part in np.array_split(chunks, min(threads[address], len(chunks)))]
    return groups
