"""K-means-compressed images in Zarr: exact decoding, honest accounting, plain-zarr readability, atomic writes."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from skimage import data, io

import emdask
from emdask import images
from emdask.store import StoreError


@pytest.fixture(scope="module")
def photo_set(tmp_path_factory):
    """Two bundled photos compressed to 12 shared colours."""
    path = tmp_path_factory.mktemp("img") / "set.zarr"
    photos = {"astronaut": data.astronaut(), "coffee": data.coffee()}
    summary = images.compress(photos, path, n_colours=12, random_state=0)
    return path, photos, summary


def _stored_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def test_decompresses_exactly_to_codebook_of_codes(photo_set):
    path, photos, _ = photo_set
    root = zarr.open_group(str(path), mode="r")
    codebook = root["codebooks/0"][...]
    for name, original in photos.items():
        codes = root[f"images/{name}/labels/codes/0"][...]
        assert codes.dtype == np.uint8 and codes.shape == original.shape[:2]
        restored = images.decompress(path, name)
        np.testing.assert_array_equal(restored.compute(), codebook[codes])
        # every pixel took its nearest codebook colour
        dist = ((original.reshape(-1, 1, 3).astype(float) - codebook[None].astype(float)) ** 2).sum(-1)
        np.testing.assert_array_equal(
            dist[np.arange(len(dist)), codes.ravel()], dist.min(axis=1)
        )


def test_accounting_matches_a_recomputation(photo_set):
    path, photos, summary = photo_set
    info = images.info(path)
    k = 12
    root = zarr.open_group(str(path), mode="r")
    codebook = root["codebooks/0"][...]
    total_sse, total_n = 0.0, 0
    for entry in info["images"]:
        original = photos[entry["name"]]
        n = original.shape[0] * original.shape[1]
        acc = entry["accounting"]
        assert acc["raw_bits"] == 24 * n
        assert acc["notes_bits"] == 24 * k + n * math.ceil(math.log2(k))
        assert acc["notes_ratio"] == pytest.approx(acc["notes_bits"] / acc["raw_bits"])
        assert acc["bytes_codes"] == _stored_bytes(path / "images" / entry["name"] / "labels" / "codes" / "0")
        codes = root[f"images/{entry['name']}/labels/codes/0"][...]
        sse = ((codebook[codes].astype(float) - original) ** 2).sum()
        assert entry["psnr_db"] == pytest.approx(10 * np.log10(255**2 / (sse / (3 * n))), rel=1e-10)
        total_sse, total_n = total_sse + sse, total_n + 3 * n
    acc = info["accounting"]
    assert acc["n_pixels"] == sum(p.shape[0] * p.shape[1] for p in photos.values())
    assert acc["bytes_on_disk"] == sum(e["accounting"]["bytes_codes"] for e in info["images"]) + _stored_bytes(
        path / "codebooks" / "0"
    )
    assert acc["psnr_db_overall"] == pytest.approx(10 * np.log10(255**2 / (total_sse / total_n)), rel=1e-9)
    assert acc["bytes_on_disk"] * 8 < acc["raw_bits"] / 10  # it does compress


def test_ome_zarr_label_colours_are_the_codebook(photo_set):
    path, _, _ = photo_set
    root = zarr.open_group(str(path), mode="r")
    codebook = root["codebooks/0"][...]
    labels = root["images/coffee/labels"]
    assert labels.attrs["ome"]["labels"] == ["codes"]
    ome = labels["codes"].attrs["ome"]
    assert ome["version"] == "0.5"
    assert ome["multiscales"][0]["datasets"][0]["path"] == "0"
    colours = {c["label-value"]: c["rgba"] for c in ome["image-label"]["colors"]}
    assert colours == {i: [*map(int, c), 255] for i, c in enumerate(codebook)}


def test_plain_zarr_reads_the_stores_without_emdask(photo_set, tmp_path):
    path, photos, _ = photo_set
    model = emdask.KMeans(4, random_state=0).fit(np.random.default_rng(0).normal(size=(100, 2)))
    model.save(tmp_path / "model.zarr")
    script = textwrap.dedent(
        f"""
        import json, sys
        import numpy as np, zarr
        root = zarr.open_group({str(path)!r}, mode="r")
        codebook = root["codebooks/0"][...]
        codes = root["images/astronaut/labels/codes/0"][...]
        image = codebook[codes]
        model = zarr.open_group({str(tmp_path / "model.zarr")!r}, mode="r")
        print(json.dumps({{
            "emdask_imported": "emdask" in sys.modules,
            "shape": list(image.shape),
            "dims": list(root["images/astronaut/labels/codes/0"].metadata.dimension_names),
            "centres": model["cluster_centers_"][...].tolist(),
            "kind": model.attrs["emdask"]["kind"],
        }}))
        """
    )
    out = json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout)
    assert out["emdask_imported"] is False
    assert out["shape"] == list(photos["astronaut"].shape) and out["dims"] == ["y", "x"]
    assert out["kind"] == "KMeans"
    np.testing.assert_array_equal(np.array(out["centres"]), model.cluster_centers_)


def test_write_pngs_equal_the_decoded_images(photo_set, tmp_path):
    path, _, _ = photo_set
    written = images.write_pngs(path, tmp_path / "png")
    assert [p.name for p in written] == ["astronaut.png", "coffee.png"]
    for p in written:
        np.testing.assert_array_equal(io.imread(p), images.decompress(path, p.stem).compute())


def test_per_image_codebooks_in_a_zip(tmp_path):
    target = tmp_path / "set.zip"
    images.compress({"a": data.chelsea(), "b": data.rocket()}, target, n_colours=5, per_image=True, random_state=1)
    info = images.info(target)
    assert info["codebook"] == "per-image"
    for name in ("a", "b"):
        root = zarr.open_group(zarr.storage.ZipStore(str(target), mode="r"), mode="r")
        codebook = root[f"images/{name}/codebook"][...]
        assert codebook.shape == (5, 3)
        np.testing.assert_array_equal(
            images.decompress(target, name).compute(), codebook[root[f"images/{name}/labels/codes/0"][...]]
        )


def test_bad_images_and_existing_store(tmp_path, photo_set):
    with pytest.raises(ValueError, match=r"image 'grey' must be RGB of shape \(height, width, 3\) and dtype uint8"):
        images.compress({"grey": data.camera()}, tmp_path / "x.zarr")
    with pytest.raises(ValueError, match=r"n_colours must be an int in \[1, min\(65536, number of pixels=4\)\]"):
        images.compress({"tiny": np.zeros((2, 2, 3), np.uint8)}, tmp_path / "x.zarr", n_colours=5)
    path, _, _ = photo_set
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        images.compress({"c": data.coffee()}, path)
    with pytest.raises(StoreError, match="holds an emdask 'image-set', not 'KMeans'"):
        emdask.load(path)
    assert not (tmp_path / "x.zarr").exists()


_WRITER = """
import sys, numpy as np
from skimage import data
from emdask import images
big = np.tile(data.astronaut(), (6, 6, 1))  # 3072 x 3072
many = {f"big{i}": np.roll(big, i, axis=0) for i in range(6)}  # written one after the other: a wide window
images.compress(many, sys.argv[1], n_colours=4, random_state=0, max_iter=2, overwrite=True)
"""


@pytest.mark.slow
def test_killed_write_leaves_previous_store_intact(tmp_path, photo_set):
    """SIGKILL a process while it replaces a store: the old store still loads, unchanged; the partial is refused."""
    path = tmp_path / "set.zarr"
    images.compress({"coffee": data.coffee()}, path, n_colours=6, random_state=0)
    before = images.decompress(path).compute()
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], env={**os.environ, "PYTHONWARNINGS": "ignore"})
    deadline = time.monotonic() + 240
    partial: list[Path] = []
    while not partial and proc.poll() is None and time.monotonic() < deadline:
        # killed once the first image's codes are being written
        partial = [p for p in tmp_path.glob("*.partial-*") if any((p / "images" / "big0").rglob("c/*"))]
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the writer finished before it was seen writing"
    assert partial, "the writer failed before it was seen writing"
    np.testing.assert_array_equal(images.decompress(path).compute(), before)
    assert images.info(path)["images"][0]["name"] == "coffee"
    with pytest.raises(StoreError, match="is incomplete"):
        images.info(partial[0])
