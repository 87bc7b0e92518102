"""A worker SIGKILLed in the middle of a pass costs time, not results.

A real ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1; while a fit's pass is
running on both, one worker process is killed with SIGKILL (its nanny starts a new one).  Dask
recomputes the lost chunks and partial sums; the fit must end with exactly the model of an
undisturbed run from the same initial parameters on the same cluster.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

import dask.array as da
import numpy as np
import pytest
from distributed import Client
from processes import QUIET, scheduler_process, stop, wait_for, worker_process

import emdask

pytestmark = pytest.mark.slow


def _data() -> da.Array:
    """2 M x 4 float32 from a seeded generator: a lost chunk is rebuilt identically from the graph."""
    rng = da.random.RandomState(7)
    centres = np.array([[0, 0, 0, 0], [3, 3, 0, 0], [0, 3, 3, 0], [0, 0, 3, 3], [3, 0, 0, 3]], dtype=np.float32)
    X = rng.normal(size=(2_000_000, 4), chunks=(100_000, 4)).astype(np.float32)
    pick = rng.randint(0, len(centres), size=2_000_000, chunks=100_000)
    return X + da.from_array(centres)[pick]


def _fit(client: Client, init: np.ndarray) -> emdask.KMeans:
    with client.as_current():
        return emdask.KMeans(5, init=init, max_iter=12, tol=0.0).fit(_data())


def _kill_one_worker_mid_pass(client: Client, started: threading.Event, record: dict[str, Any]) -> None:
    """After the first passes, SIGKILL one worker process at a moment it is running this fit's tasks."""
    started.wait(120)
    pids = client.run(os.getpid)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        busy = {w: tasks for w, tasks in client.processing().items() if tasks}
        if len(busy) == 2:  # both workers are inside a pass
            victim = sorted(busy)[0]
            os.kill(pids[victim], signal.SIGKILL)
            record.update(victim=victim, pid=pids[victim], tasks=len(busy[victim]))
            return
        time.sleep(0.005)


def test_sigkilled_worker_mid_pass_gives_the_undisturbed_model(tmp_path):
    env = {**os.environ, **QUIET}
    scheduler, address = scheduler_process(tmp_path, env)
    workers = [worker_process(address, env, tmp_path) for _ in range(2)]
    try:
        with Client(address, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=60)
            init = np.array([[1, 1, 1, 1], [2, 2, 1, 0], [1, 2, 2, 1], [0, 1, 2, 2], [2, 1, 0, 2]], dtype=np.float64)
            undisturbed = _fit(client, init)
            assert undisturbed.n_iter_ >= 4

            started, record = threading.Event(), {}
            handler = _OnIteration(2, started)
            emdask_logger = logging.getLogger("emdask")
            level = emdask_logger.level
            emdask_logger.setLevel(logging.DEBUG)  # the pass records reach the handler
            emdask_logger.addHandler(handler)
            killer = threading.Thread(target=_kill_one_worker_mid_pass, args=(client, started, record))
            killer.start()
            try:
                disturbed = _fit(client, init)
            finally:
                emdask_logger.removeHandler(handler)
                emdask_logger.setLevel(level)
                killer.join()
            assert record.get("tasks", 0) > 0, "no worker was killed during a pass"
            wait_for(lambda: len(client.scheduler_info()["workers"]) == 2, 60, "the nanny's new worker")
            assert record["pid"] not in client.run(os.getpid).values()

            np.testing.assert_array_equal(disturbed.cluster_centers_, undisturbed.cluster_centers_)
            assert disturbed.inertia_ == undisturbed.inertia_
            assert disturbed.n_iter_ == undisturbed.n_iter_
    finally:
        for proc in [*workers, scheduler]:
            stop(proc)


class _OnIteration(logging.Handler):
    """Sets ``event`` once the engine logs iteration ``n`` (the kill then lands in a later pass)."""

    def __init__(self, n: int, event: threading.Event):
        super().__init__()
        self.n, self.event = n, event

    def emit(self, record: Any) -> None:
        if getattr(record, "emdask_pass", 0) >= self.n:
            self.event.set()
