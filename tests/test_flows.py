"""The Prefect flows, run for real under Prefect's test harness on bundled data, read back with emdask."""
from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
import zarr
from PIL import Image

import emdask
from emdask import images

DATA = Path(__file__).parents[1] / "data"
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


def _artifacts(key: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def read():
        async with get_client() as client:
            return await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))

    return sorted(asyncio.run(read()), key=lambda artifact: artifact.created)  # the last: this test's flow run's


def test_compress_images_flow(tmp_path):
    from flows.compress_images import compress_images

    out = str(tmp_path / "photos.zarr")
    sources = [str(DATA / "photos" / "chelsea.png"), str(DATA / "photos" / "rocket.jpg")]
    summary = compress_images(sources=sources, output=out, k=6, workers=1, seed=3)
    assert summary["k"] == 6 and summary["images"][0]["name"] == "chelsea"
    root = zarr.open_group(out, mode="r")
    for name in ("chelsea", "rocket"):
        np.testing.assert_array_equal(
            images.decompress(out, name).compute(), root["codebooks/0"][...][root[f"images/{name}/labels/codes/0"][...]]
        )
    report = Path(f"{out}.plots")
    assert {p.name for p in report.iterdir()} == {"contact_sheet.png", "convergence.png", "report.md"}
    assert _artifacts("image-set-report")
    # the picture itself, which the UI shows wherever it runs (not a file:// link), small enough for Prefect's events
    sheets = [a.data for a in _artifacts("contact-sheet") if a.data.startswith("data:image/jpeg;base64,")]
    assert sheets and len(sheets[-1]) < 1_000_000
    with Image.open(io.BytesIO(base64.b64decode(sheets[-1].split(",", 1)[1]))) as shown, \
            Image.open(report / "contact_sheet.png") as drawn:
        assert abs(shown.width / shown.height - drawn.width / drawn.height) < 0.01
    assert not Path(f"{out}.checkpoint.k6").exists()
    # a finished output is not recomputed: the second run returns the stored summary
    again = compress_images(sources=sources, output=out, k=6, workers=1, seed=3)
    assert again["accounting"] == images.info(out)["accounting"]


def test_compress_images_flow_appends_new_files(tmp_path):
    """A scheduled run with append=True adds only the new files; the old images keep their codes."""
    from flows.compress_images import compress_images

    folder, out = tmp_path / "scans", str(tmp_path / "set.zarr")
    folder.mkdir()
    (folder / "coffee.png").write_bytes((DATA / "photos" / "coffee.png").read_bytes())
    first = compress_images(sources=[str(folder)], output=out, k=5, workers=1, seed=0, append=True)
    assert [im["name"] for im in first["images"]] == ["coffee"]
    coffee = images.decompress(out, "coffee").compute()
    (folder / "rocket.jpg").write_bytes((DATA / "photos" / "rocket.jpg").read_bytes())
    second = compress_images(sources=[str(folder)], output=out, k=5, workers=1, seed=0, append=True, refit_below=99.0)
    assert second["appended"] == ["rocket"] and second["codebooks"] == ["codebooks/0", "codebooks/1"]
    np.testing.assert_array_equal(images.decompress(out, "coffee").compute(), coffee)
    written = images.info(out)["write_id"]
    third = compress_images(sources=[str(folder)], output=out, k=5, workers=1, seed=0, append=True)
    assert third["appended"] == [] and images.info(out)["write_id"] == written


def _png(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path))


def test_fit_mixture_flow_chooses_k_by_bic_and_writes_labels(tmp_path):
    from flows.fit_mixture import fit_mixture

    out, labels = str(tmp_path / "faithful.zarr"), str(tmp_path / "labels.parquet")
    result = fit_mixture(
        source=str(DATA / "old_faithful.csv"), output=out, model="gmm", k=[1, 2, 3],
        columns=["eruptions", "waiting"], standardize=True, labels_output=labels, workers=1, seed=0,
    )
    assert result["k"] == 2 and [r["k"] for r in result["table"]] == [1, 2, 3]
    model = emdask.load(out)
    X = np.loadtxt(DATA / "old_faithful.csv", delimiter=",", skiprows=1, usecols=(1, 2))
    Xs = (X - X.mean(axis=0)) / X.std(axis=0)
    direct = emdask.GaussianMixture(2, random_state=0).fit(Xs)
    np.testing.assert_allclose(model.means_, direct.means_, rtol=1e-6, atol=1e-8)
    frame = dd.read_parquet(labels).compute()
    assert list(frame.columns) == ["label", "p0", "p1"] and len(frame) == 272
    np.testing.assert_array_equal(frame["label"].to_numpy(), direct.predict(Xs))
    # the saved model standardises raw rows itself and knows its columns (no pickle: Zarr arrays and attributes)
    raw = pd.read_csv(DATA / "old_faithful.csv")[["eruptions", "waiting"]]
    np.testing.assert_array_equal(model.predict(raw), direct.predict(Xs))
    with pytest.raises(ValueError, match="feature names"):
        model.predict(raw[["waiting", "eruptions"]])
    assert _artifacts("mixture-report")


def test_fit_mixture_flow_bernoulli_from_npy_to_zarr_labels(tmp_path):
    from sklearn.datasets import load_digits

    from flows.fit_mixture import fit_mixture

    X = (load_digits().data > 8).astype(np.uint8)
    np.save(tmp_path / "digits.npy", X)
    out, labels = str(tmp_path / "b.zarr"), str(tmp_path / "labels.zarr")
    fit_mixture(
        source=str(tmp_path / "digits.npy"), output=out, model="bernoulli", k=[4], labels_output=labels, workers=1
    )
    model = emdask.load(out)
    np.testing.assert_array_equal(zarr.open_group(labels)["labels"][...], model.predict(X.astype(np.float64)))


def test_kmeans_with_several_k_is_refused(tmp_path):
    from flows.fit_mixture import fit_mixture

    with pytest.raises(ValueError, match="K-means has no likelihood to compare them by BIC"):
        fit_mixture(source=str(DATA / "old_faithful.csv"), output=str(tmp_path / "k.zarr"), model="kmeans", k=[2, 3])
