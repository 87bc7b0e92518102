"""Shared fixtures: real data no one here wrote, and a real two-process Dask cluster."""
from __future__ import annotations

import os
from collections.abc import Iterator

os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# `make test` adds emdask to Prefect's loggers (as the flows want); outside a flow run its records are not for the API
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")

import dask
import numpy as np
import pytest


def photo_pixels(name: str, step: int = 2) -> np.ndarray:
    """RGB pixels (n, 3) float64 of a photo bundled with scikit-image, every ``step``-th row and column."""
    from skimage import data

    image = getattr(data, name)()[::step, ::step, :3]
    return image.reshape(-1, 3).astype(np.float64)


PHOTOS = ("astronaut", "coffee", "chelsea")


@pytest.fixture(scope="session")
def digits() -> np.ndarray:
    """scikit-learn's bundled 8x8 handwritten digits, (1797, 64) float64."""
    from sklearn.datasets import load_digits

    return load_digits().data


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A LocalCluster of two worker processes (one thread each) and a client that is not the global default."""
    from distributed import Client, LocalCluster

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        local_directory=str(tmp_path_factory.mktemp("dask")),
    ) as lc, Client(lc, set_as_default=False) as client:
        yield client


@pytest.fixture
def distributed_client(cluster: object) -> Iterator[object]:
    """Make the session's cluster the scheduler of ``dask.compute`` for one test."""
    with dask.config.set(scheduler="dask.distributed"), cluster.as_current():  # type: ignore[attr-defined]
        yield cluster


@pytest.fixture(params=["sync", "threads", "distributed"])
def scheduler(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each of Dask's schedulers in turn: synchronous, threaded, and the two-process cluster."""
    if request.param == "distributed":
        client = request.getfixturevalue("cluster")
        with dask.config.set(scheduler="dask.distributed"), client.as_current():
            yield request.param
    else:
        with dask.config.set(scheduler=request.param):
            yield request.param


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Prefect's test harness: a temporary database and an embedded server for the whole session."""
    os.environ.setdefault("PREFECT_HOME", str(tmp_path_factory.mktemp("prefect-home")))
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture(autouse=True)
def no_leftover_default_client() -> Iterator[None]:
    """Each test starts on Dask's local scheduler: a test that leaves a default Client behind fails here."""
    yield
    from emdask.runtime import active_client

    assert active_client() is None, "a test left a distributed Client as Dask's default scheduler"
