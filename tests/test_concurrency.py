"""Concurrency: readers never see a torn model, and two flows at once write their own stores whole.

A writer process replaces a store again and again with one of two different models while this
process loads it in a loop: every load must be exactly one of the two.  Two Prefect flows run
at the same time on one Dask cluster, each writing its own store; each store must equal what
the same flow writes alone.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from processes import QUIET, ROOT

import emdask
from emdask import images

DATA = ROOT / "data"
pytestmark = pytest.mark.slow

# Replaces the store every 30 ms: a reader needs a quiet window as long as its own read (about 8 ms for the
# mixture here); back-to-back replacements would starve it (it then fails after 5 s, saying so).
WRITER = """
import sys, pathlib, time, emdask
target, stop, *sources = sys.argv[1:]
models = [emdask.load(s) for s in sources]
n = 0
while not pathlib.Path(stop).exists():
    models[n % 2].save(target, overwrite=True)
    n += 1
    if n == 2:
        print("writing", flush=True)  # the reader's clock starts now, not while this process imports
    time.sleep(0.03)
print(n)
"""


def _two_models() -> tuple[emdask.KMeans, emdask.GaussianMixture]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 4)) + np.repeat(np.eye(4) * 5, 750, axis=0)
    return emdask.KMeans(3, random_state=0).fit(x), emdask.GaussianMixture(5, random_state=0).fit(x)


def _same(a: object, b: object) -> bool:
    if type(a) is not type(b):
        return False
    untimed = [[{k: v for k, v in h.items() if k != "seconds"} for h in m.history_] for m in (a, b)]
    return (
        all(np.array_equal(getattr(a, k), getattr(b, k)) for k in type(a)._fitted_arrays) and untimed[0] == untimed[1]
    )


@pytest.mark.parametrize("suffix", [".zarr", ".zip"])
def test_reader_never_sees_a_torn_model_while_a_writer_replaces_it(tmp_path, suffix):
    models = _two_models()
    sources = [str(tmp_path / f"m{i}{suffix}") for i in range(2)]
    for model, source in zip(models, sources):
        model.save(source)
    target, stop = str(tmp_path / f"live{suffix}"), tmp_path / "stop"
    models[0].save(target)
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, target, str(stop), *sources],
        env={**os.environ, **QUIET}, stdout=subprocess.PIPE, text=True,
    )
    seen = [0, 0]
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            loaded = emdask.load(target)
            matches = [_same(loaded, m) for m in models]
            assert any(matches), f"a torn model: {type(loaded).__name__} matching neither writer's model"
            seen[matches.index(True)] += 1
    finally:
        stop.touch()
        writes = int(writer.communicate(timeout=60)[0])
    assert writer.returncode == 0
    assert writes >= 10 and min(seen) >= 1, (writes, seen)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".live")) == []  # no partial left behind


@pytest.mark.usefixtures("prefect_harness")
def test_two_flows_at_once_write_their_own_stores_whole(tmp_path, cluster):
    from flows.compress_images import compress_images
    from flows.fit_mixture import fit_mixture

    scheduler = cluster.scheduler.address
    photo = str(DATA / "photos" / "chelsea.png")

    def run_both(prefix: str, concurrently: bool) -> tuple[str, str]:
        mixture, image_set = str(tmp_path / f"{prefix}-faithful.zarr"), str(tmp_path / f"{prefix}-photo.zarr")
        jobs = [
            lambda: fit_mixture(source=str(DATA / "old_faithful.csv"), output=mixture, model="gmm", k=[2],
                                columns=["eruptions", "waiting"], standardize=True, scheduler=scheduler, seed=0),
            lambda: compress_images(sources=[photo], output=image_set, k=8, scheduler=scheduler, seed=1),
        ]
        if concurrently:
            errors: list[BaseException] = []

            def guarded(job):
                try:
                    job()
                except BaseException as exc:  # re-raised below, in the test's thread
                    errors.append(exc)

            threads = [threading.Thread(target=guarded, args=(job,)) for job in jobs]
            for t in threads:
                t.start()
            for t in threads:
                t.join(300)
            if errors:
                raise errors[0]
        else:
            for job in jobs:
                job()
        return mixture, image_set

    together = run_both("together", concurrently=True)
    alone = run_both("alone", concurrently=False)
    assert _same(emdask.load(together[0]), emdask.load(alone[0]))
    np.testing.assert_array_equal(images.decompress(together[1]).compute(), images.decompress(alone[1]).compute())
    assert images.info(together[1])["accounting"] == images.info(alone[1])["accounting"]
    assert not [p for p in Path(tmp_path).iterdir() if ".partial-" in p.name or ".old-" in p.name]
