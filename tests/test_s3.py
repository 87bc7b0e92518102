"""Object storage against a real S3 server (moto in server mode, over HTTP): models and image sets written,
replaced, appended and read at s3:// URLs, with the endpoint given as storage options or by the environment."""
from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import dask
import numpy as np
import pytest
from PIL import Image

import emdask
from emdask import images
from emdask.kinds import BY_NAME
from emdask.readers import read_images
from emdask.store import StoreError

PHOTOS = Path(__file__).parents[1] / "data" / "photos"
BUCKET = "emdask-test"


@pytest.fixture(scope="module")
def s3() -> Iterator[SimpleNamespace]:
    """A moto S3 server on a free port with one bucket; credentials in the environment, the endpoint not."""
    import s3fs
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    endpoint = f"http://127.0.0.1:{port}"
    options = {"endpoint_url": endpoint}
    fs = s3fs.S3FileSystem(**options)
    fs.mkdir(BUCKET)
    try:
        yield SimpleNamespace(endpoint=endpoint, options=options, fs=fs)
    finally:
        server.stop()
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)


def _keys(s3: SimpleNamespace, prefix: str = "") -> list[str]:
    s3.fs.invalidate_cache()
    return sorted(k[len(BUCKET) + 1:] for k in s3.fs.find(f"{BUCKET}/{prefix}"))


def _data(kind: str) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(200, 3)), rng.normal(size=(200, 3)) + 4])
    return (x > 2).astype(np.float64) if kind == "bernoulli" else x


@pytest.mark.parametrize("kind", sorted(BY_NAME))
def test_every_model_kind_saves_and_loads_at_an_s3_url(s3, kind, monkeypatch):
    X = _data(kind)
    model = BY_NAME[kind].make(2, random_state=0).fit(X)
    url = f"s3://{BUCKET}/models/{kind}.zarr"
    if kind == "kmeans":  # the endpoint from the environment, as s3fs and botocore read it
        monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
        model.save(url)
        loaded = emdask.load(url)
    else:
        model.save(url, storage_options=s3.options)
        loaded = emdask.load(url, storage_options=s3.options)
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert not [k for k in _keys(s3, "models/") if ".partial-" in k]


def test_overwrite_at_an_s3_url_replaces_the_model_and_leaves_nothing_else(s3):
    import xarray as xr

    X = _data("gmm")
    url = f"s3://{BUCKET}/replaced.zarr"
    small = BY_NAME["gmm"].make(2, random_state=0).fit(X)
    small.save(url, storage_options=s3.options)
    with pytest.raises(FileExistsError, match="replaced.zarr"):
        small.save(url, storage_options=s3.options)
    large = BY_NAME["gmm"].make(3, random_state=0, covariance_type="diag").fit(X)
    large.save(url, overwrite=True, storage_options=s3.options)
    loaded = emdask.load(url, storage_options=s3.options)
    np.testing.assert_array_equal(loaded.means_, large.means_)
    keys = _keys(s3, "replaced.zarr")
    assert not [k for k in _keys(s3) if k.startswith("replaced.zarr.")]  # nothing staged beside it is left
    assert {k.split("/")[1] for k in keys} == {"zarr.json", *large._fitted_arrays}
    assert "replaced.zarr/covariances_/c/0/0/0" not in keys  # the full model's 3-D chunk is gone with it
    opened = xr.open_zarr(url, storage_options=s3.options, consolidated=False)
    np.testing.assert_array_equal(opened["means_"].values, large.means_)
    assert opened["covariances_"].dims == ("component", "feature")


def test_a_write_killed_midway_leaves_the_previous_model_readable_and_the_next_write_cleans_up(s3, tmp_path):
    X = _data("kmeans")
    url = f"s3://{BUCKET}/killed.zarr"
    before = BY_NAME["kmeans"].make(2, random_state=0).fit(X)
    before.save(url, storage_options=s3.options)
    # a real write through emdask's code, stopped by SIGKILL after its arrays are staged
    script = textwrap.dedent(f"""
        import time, numpy as np
        from emdask.store import Remote, write_group
        with write_group(Remote({url!r}, {{"endpoint_url": {s3.endpoint!r}}}), overwrite=True,
                         meta={{"kind": "KMeans", "schema_version": 2}}) as group:
            group.create_array("cluster_centers_", data=np.zeros((5, 3)))
            print("staged", flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "staged"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    assert [k for k in _keys(s3) if k.startswith("killed.zarr.partial-")], "the staged copy was not where expected"
    np.testing.assert_array_equal(emdask.load(url, storage_options=s3.options).cluster_centers_,
                                  before.cluster_centers_)
    after = BY_NAME["kmeans"].make(3, random_state=0).fit(X)
    after.save(url, overwrite=True, storage_options=s3.options)
    assert emdask.load(url, storage_options=s3.options).n_clusters == 3
    assert not [k for k in _keys(s3) if ".partial-" in k]


def test_image_set_compressed_appended_described_and_decompressed_at_an_s3_url(s3, tmp_path):
    url = f"s3://{BUCKET}/photos.zarr"
    files = [PHOTOS / "chelsea.png", PHOTOS / "coffee.png"]
    with dask.config.set(scheduler="threads"):
        sources, _ = read_images(files)
        images.compress(sources, url, n_colours=8, random_state=0, storage_options=s3.options)
        more, _ = read_images([*files, PHOTOS / "rocket.jpg"])
        added = images.append(more, url, storage_options=s3.options)
    assert added["appended"] == ["rocket"]
    # the command reads it back with the endpoint given as options, none in its environment
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_ENDPOINT_URL", "FSSPEC_S3_ENDPOINT_URL")}
    option = ["--storage-option", f"endpoint_url={s3.endpoint}"]
    info = subprocess.run([sys.executable, "-m", "emdask.cli", "info", url, *option], capture_output=True, text=True,
                          env=env)
    assert info.returncode == 0, info.stderr
    assert "rocket" in info.stdout and "chelsea" in info.stdout
    out = tmp_path / "png"
    done = subprocess.run([sys.executable, "-m", "emdask.cli", "decompress", url, "-o", str(out), *option],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    stored = {im["name"]: im for im in images.info(url, storage_options=s3.options)["images"]}
    for name, path in (("chelsea", files[0]), ("coffee", files[1]), ("rocket", PHOTOS / "rocket.jpg")):
        original = np.asarray(Image.open(path).convert("RGB"), np.float64)
        decoded = np.asarray(Image.open(out / f"{name}.png"), np.float64)
        psnr = 10 * np.log10(255**2 / np.mean((original - decoded) ** 2))
        assert psnr == pytest.approx(stored[name]["psnr_db"], rel=1e-9)
    assert not [k for k in _keys(s3) if ".partial-" in k]


@pytest.mark.parametrize(
    ("url", "options", "says"),
    [
        ("s3://no-such-bucket/m.zarr", None, "the bucket 'no-such-bucket' does not exist"),
        (f"s3://{BUCKET}/m.zarr", {"endpoint_url": "http://127.0.0.1:9",
                                   "config_kwargs": {"connect_timeout": 1, "retries": {"max_attempts": 1}}},
         "cannot reach 's3://emdask-test/m.zarr'"),
    ],
)
def test_an_unusable_object_store_is_one_line_naming_the_url_and_nothing_is_written(s3, url, options, says):
    model = BY_NAME["kmeans"].make(2, random_state=0).fit(_data("kmeans"))
    before = _keys(s3)
    with pytest.raises(StoreError) as caught:
        model.save(url, storage_options=options or s3.options)
    assert says in str(caught.value) and "\n" not in str(caught.value)
    assert _keys(s3) == before
