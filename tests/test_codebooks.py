"""Codebooks from the colour histogram: exactly Lloyd over every pixel, exact PSNR, two reads, and appends."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
import zarr
from PIL import Image
from skimage import data

import emdask
from emdask import codebooks, images, readers
from emdask._kernels import encode_pixels
from emdask.codebooks import Histogram, Settings
from emdask.readers import read_images
from emdask.store import StoreError

PHOTOS = Path(__file__).parents[1] / "data" / "photos"


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    """Every pixel of three real photos, (n, 3) uint8."""
    return np.concatenate([getattr(data, n)()[..., :3].reshape(-1, 3) for n in ("astronaut", "coffee", "chelsea")])


def test_histogram_counts_every_colour_and_adds_over_any_split(pixels):
    expected, counts = np.unique(pixels, axis=0, return_counts=True)
    whole = Histogram.of(pixels)
    np.testing.assert_array_equal(whole.rgb, expected)
    np.testing.assert_array_equal(whole.counts, counts)
    rng = np.random.default_rng(0)
    for _ in range(3):
        cuts = np.sort(rng.choice(len(pixels), 5, replace=False))
        parts = [Histogram.of(p) for p in np.split(pixels, cuts)]
        rng.shuffle(parts)
        total = sum(parts[1:], parts[0])
        np.testing.assert_array_equal(total.colours, whole.colours)
        np.testing.assert_array_equal(total.counts, whole.counts)
    lazy = codebooks.histogram_of([da.from_array(pixels[:637000].reshape(-1, 1000, 3), chunks=(97, 333, 3))])
    np.testing.assert_array_equal(dask.compute(lazy)[0].counts, Histogram.of(pixels[:637000]).counts)


def test_histogram_kmeans_is_lloyd_over_every_pixel(pixels):
    """Same start: the same centres, iterations and inertia as emdask's every-pixel K-means, at the default tol."""
    init = np.unique(pixels, axis=0)[::9973][:12].astype(np.float64) + 0.3
    every = emdask.KMeans(12, init=init).fit(da.from_array(pixels, chunks=(200_000, 3)))
    fit = codebooks.fit(Histogram.of(pixels), 12, Settings(init=init))
    assert every.converged_ and fit.converged and fit.n_iter == every.n_iter_ > 3
    np.testing.assert_array_equal(fit.centres, every.cluster_centers_)
    assert fit.inertia == pytest.approx(every.inertia_, rel=1e-12)
    np.testing.assert_array_equal(fit.codebook, np.clip(np.rint(every.cluster_centers_), 0, 255).astype(np.uint8))


def test_histogram_kmeans_equals_scikit_learn_with_counts_as_weights(pixels):
    from sklearn.cluster import KMeans

    hist = Histogram.of(pixels)
    init = hist.rgb[:: len(hist.colours) // 8][:8].astype(np.float64) + 0.25
    ours = codebooks.fit(hist, 8, Settings(init=init, tol=0.0, max_iter=500))
    theirs = KMeans(8, init=init, n_init=1, algorithm="lloyd", tol=0.0, max_iter=500).fit(
        hist.rgb.astype(np.float64), sample_weight=hist.counts.astype(np.float64)
    )
    np.testing.assert_allclose(ours.centres, theirs.cluster_centers_, rtol=1e-9)
    assert ours.inertia == pytest.approx(theirs.inertia_, rel=1e-9)


def test_colour_table_codes_as_the_direct_nearest(pixels):
    pixels = pixels[::7]
    book = np.random.default_rng(1).integers(0, 256, (40, 3)).astype(np.uint8)
    table = codebooks.table_for(book, n_pixels=2**25)
    assert len(table) == 2**24
    via_table, direct = np.empty(len(pixels), np.uint8), np.empty(len(pixels), np.uint8)
    sse_table = encode_pixels(pixels, book.astype(float), table, via_table)
    sse_direct = encode_pixels(pixels, book.astype(float), codebooks.table_for(book, 10), direct)
    np.testing.assert_array_equal(via_table, direct)
    dist = ((pixels[:, None, :].astype(float) - book[None].astype(float)) ** 2).sum(-1)
    np.testing.assert_array_equal(dist[np.arange(len(dist)), direct], dist.min(axis=1))
    assert sse_table == sse_direct == dist.min(axis=1).sum()


def _decoded_psnr(store, originals: dict[str, np.ndarray]) -> float:
    sse = sum(((images.decompress(store, n).compute().astype(float) - o) ** 2).sum() for n, o in originals.items())
    return float(10 * np.log10(255.0**2 * 3 * sum(o.shape[0] * o.shape[1] for o in originals.values()) / sse))


@pytest.mark.parametrize("per_image", [False, True])
def test_psnr_from_the_histogram_is_the_decoded_psnr(tmp_path, per_image):
    photos = {"coffee": data.coffee(), "rocket": data.rocket()}
    summary = images.compress(photos, tmp_path / "q.zarr", psnr=27.0, candidates=(4, 8, 16, 32, 64),
                              per_image=per_image, random_state=0)
    tried = {int(k): v for k, v in summary["fit"]["psnr_tried"].items()}
    k = summary["k"]
    decoded = _decoded_psnr(tmp_path / "q.zarr", photos)
    assert tried[k] == pytest.approx(decoded, rel=1e-12) == summary["accounting"]["psnr_db_overall"]
    assert decoded >= 27.0 and all(v < 27.0 for kk, v in tried.items() if kk < k)  # the smallest K reaching it


def _counting_reads(monkeypatch) -> list[tuple[str, str]]:
    """Every decode of a file region (a whole PNG or JPEG, a tiled TIFF's tiles), as (file name, region)."""
    reads: list[tuple[str, str]] = []
    real = readers._LazyFile._read

    def counted(self, ys, xs):
        reads.append((Path(self.path).name, f"{ys}{xs}"))
        return real(self, ys, xs)

    monkeypatch.setattr(readers._LazyFile, "_read", counted)
    return reads


def test_compress_reads_each_file_twice_whatever_k_and_iterations(tmp_path, monkeypatch):
    from collections import Counter

    reads = _counting_reads(monkeypatch)
    sources, _ = read_images([PHOTOS])
    with dask.config.set(scheduler="threads"):
        summary = images.compress(sources, tmp_path / "a.zarr", psnr=40.0, candidates=(2, 8, 32, 64), random_state=0)
    fitted = set(summary["fit"]["psnr_tried"]) | set(summary["fit"]["psnr_estimated"])
    assert summary["k"] == 64 and len(fitted) >= 2  # several K fitted (exactly or to a sample), many iterations
    assert {name for name, _ in reads} == {p.name for p in PHOTOS.iterdir()}
    assert set(Counter(reads).values()) == {2}


def _photo_files(tmp_path: Path, names: list[str]) -> Path:
    d = tmp_path / "in"
    d.mkdir(exist_ok=True)
    for name in names:
        (d / name).write_bytes((PHOTOS / name).read_bytes())
    return d


def test_append_adds_only_new_files_and_refits_from_the_histogram(tmp_path, monkeypatch):
    d = _photo_files(tmp_path, ["chelsea.png", "coffee.png"])
    out = tmp_path / "set.zarr"
    images.compress(read_images([d])[0], out, n_colours=8, random_state=0)
    before = {n: images.decompress(out, n).compute() for n in ("chelsea", "coffee")}
    _photo_files(tmp_path, ["rocket.jpg"])
    reads = _counting_reads(monkeypatch)
    with dask.config.set(scheduler="threads"):
        summary = images.append(read_images([d])[0], out, refit_below=99.0, random_state=0)
    assert summary["appended"] == ["rocket"] and [r[0] for r in reads] == ["rocket.jpg"] * 2  # coded, then re-coded
    info = images.info(out)
    assert info["codebooks"] == ["codebooks/0", "codebooks/1"] and len(info["images"]) == 3
    assert len(info["fit"]["n_iter"]) == 2 and "psnr_tried" in info["fit"]  # both fits recorded, nothing dropped
    versions = {im["name"]: im["codebook_version"] for im in info["images"]}
    assert versions == {"chelsea": 0, "coffee": 0, "rocket": 1}
    for name, image in before.items():  # old images keep their codes and codebook
        np.testing.assert_array_equal(images.decompress(out, name).compute(), image)
    everything = np.concatenate([np.asarray(Image.open(d / f)).reshape(-1, 3) for f in sorted(os.listdir(d))])
    merged = images.histogram(out)
    np.testing.assert_array_equal(merged.counts, Histogram.of(everything).counts)
    refit = codebooks.fit(Histogram.of(everything), 8, Settings(random_state=0))
    np.testing.assert_array_equal(zarr.open_group(str(out))["codebooks/1"][...], refit.codebook)
    assert info["accounting"]["psnr_db_overall"] == pytest.approx(
        _decoded_psnr(out, {n: np.asarray(Image.open(d / f)) for n, f in
                            [("chelsea", "chelsea.png"), ("coffee", "coffee.png"), ("rocket", "rocket.jpg")]}),
        rel=1e-12,
    )
    reads.clear()
    again = images.append(read_images([d])[0], out, refit_below=99.0)  # the same files twice add nothing
    assert again["appended"] == [] and reads == []
    assert images.info(out)["write_id"] == info["write_id"]


def test_append_without_refit_codes_new_images_with_the_current_codebook(tmp_path):
    d = _photo_files(tmp_path, ["coffee.png"])
    out = tmp_path / "set.zip"
    images.compress(read_images([d])[0], out, n_colours=6, random_state=0)
    _photo_files(tmp_path, ["chelsea.png"])
    summary = images.append(read_images([d])[0], out, refit_below=1.0)
    assert summary["appended"] == ["chelsea"] and summary["codebooks"] == ["codebooks/0"]
    root = zarr.open_group(zarr.storage.ZipStore(str(out), mode="r"), mode="r")
    chelsea = np.asarray(Image.open(d / "chelsea.png")).reshape(-1, 3).astype(float)
    book = root["codebooks/0"][...].astype(float)
    codes = root["images/chelsea/labels/codes/0"][...].ravel()
    dist = ((chelsea[:, None] - book[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(dist[np.arange(len(dist)), codes], dist.min(axis=1))


def test_append_refuses_what_it_cannot_add_to(tmp_path):
    model = tmp_path / "model.zarr"
    emdask.KMeans(2, random_state=0).fit(np.random.default_rng(0).normal(size=(50, 2))).save(model)
    d = _photo_files(tmp_path, ["coffee.png"])
    sources = read_images([d])[0]
    with pytest.raises(
        StoreError, match="model.zarr' holds an emdask 'KMeans', not 'image-set'|not a complete emdask image set"
    ):
        images.append(sources, model)
    out = tmp_path / "set.zarr"
    images.compress(sources, out, n_colours=4, random_state=0)
    with pytest.raises(ValueError, match="has K=4 colours; cannot append with K=8"):
        images.append(sources, out, n_colours=8)
    os.utime(d / "coffee.png", ns=(1, 1))
    with pytest.raises(ValueError, match="coffee.png is already in the image set .* but has changed since"):
        images.append(read_images([d])[0], out)
    key = images.info(out)["histogram"]
    zarr.open_group(str(out))[f"{key}/counts"][0] = 0
    _photo_files(tmp_path, ["rocket.jpg"])
    with pytest.raises(StoreError, match=f"colour histogram '{key}' of the image set .* is damaged"):
        images.append(read_images([d / "rocket.jpg"])[0], out)


_APPENDER = """
import sys, numpy as np
from skimage import data
from emdask import images
from emdask.images import ImageSource
import dask.array as da
big = np.tile(data.astronaut(), (6, 6, 1))
new = [ImageSource(f"big{i}", da.from_array(np.roll(big, i, axis=0)), f"/nowhere/big{i}.png", 1, 1)
       for i in range(int(sys.argv[2]))]
print(images.append(new, sys.argv[1], refit_below=99.0, random_state=0)["appended"])
"""


@pytest.mark.slow
def test_killed_append_leaves_the_set_as_it_was_and_a_rerun_completes_it(tmp_path):
    out = tmp_path / "set.zarr"
    images.compress({"coffee": data.coffee()}, out, n_colours=6, random_state=0)
    before, coffee = images.info(out), images.decompress(out).compute()
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen([sys.executable, "-c", _APPENDER, str(out), "6"], env=env)
    deadline, seen = time.monotonic() + 240, False
    while not seen and proc.poll() is None and time.monotonic() < deadline:
        seen = any((out / "images" / "big5").rglob("c/*"))  # killed once the last new codes are being written
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL and seen, "the appender was not seen writing"
    assert images.info(out) == before
    np.testing.assert_array_equal(images.decompress(out).compute(), coffee)
    assert (out / "images" / "big5").exists()  # left behind, unlisted; the next append removes it
    done = subprocess.run([sys.executable, "-c", _APPENDER, str(out), "5"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    info = images.info(out)
    assert [im["name"] for im in info["images"]] == ["coffee"] + [f"big{i}" for i in range(5)]
    assert sorted(p.name for p in (out / "images").iterdir() if p.is_dir()) == sorted(
        info["images"][i]["name"] for i in range(6)
    )
    assert info["codebooks"] == ["codebooks/0", "codebooks/1"]
    assert sorted(p.name for p in (out / "histogram").iterdir() if p.is_dir()) == [info["histogram"].split("/")[1]]
    np.testing.assert_array_equal(images.decompress(out, "coffee").compute(), coffee)


@pytest.mark.parametrize(
    ("estimates", "exact", "chosen", "fitted"),
    [
        # the estimate of K=8 is low: K=16 is fitted exactly, then K=8 (within the margin), then K=4 is not
        ({2: 20.0, 4: 24.2, 8: 26.6, 16: 30.0}, {2: 20.0, 4: 24.0, 8: 27.0, 16: 30.1}, 8, {16, 8}),
        # the estimate of K=8 is high: its exact fit misses the target, so K=16
        ({2: 20.0, 4: 24.2, 8: 27.0, 16: 30.0}, {2: 20.0, 4: 24.0, 8: 26.5, 16: 30.1}, 16, {8, 16}),
        # nothing reaches the target: the largest, fitted exactly
        ({2: 20.0, 4: 21.0, 8: 22.0, 16: 23.0}, {2: 20.0, 4: 21.0, 8: 22.0, 16: 23.0}, 16, {16}),
    ],
)
def test_search_estimates_k_from_a_sample_and_settles_it_exactly(estimates, exact, chosen, fitted, caplog):
    def fake(k: int, restarts: int, sample: int | None) -> list[codebooks.Fit]:
        psnr = estimates[k] if sample else exact[k]
        n = 1000
        sse = 255.0**2 * 3 * n / 10 ** (psnr / 10)
        return [codebooks.Fit(np.zeros((k, 3), np.uint8), np.zeros((k, 3)), 1, True, sse, [sse], sse, n)]

    k, fits, tried, estimated = codebooks.search(fake, 26.8, [2, 4, 8, 16], n_init=4)
    assert k == chosen and set(tried) == fitted
    assert tried[k] == pytest.approx(exact[k]) and fits[0].psnr == pytest.approx(exact[k])
    assert set(estimated) <= set(estimates)
    assert ("no K among" in caplog.text) == (max(exact.values()) < 26.8)
