"""Models in Zarr: round trips on three kinds of store, clear errors on bad stores, and atomic replacement."""
from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
import zarr
from sklearn.datasets import load_digits, load_iris

import emdask
from emdask.store import StoreError


def _fitted(kind: str):
    """A fitted model and held-out data for it."""
    rng = np.random.default_rng(0)
    if kind == "kmeans":
        X = load_digits().data
        return emdask.KMeans(6, random_state=0).fit(X[:1200]), X[1200:]
    if kind == "bernoulli":
        X = (load_digits().data > 8).astype(np.uint8)
        return emdask.BernoulliMixture(5, random_state=0).fit(X[:1200]), X[1200:]
    X = load_iris().data[rng.permutation(150)]
    cov = kind.split("-")[1]
    return emdask.GaussianMixture(3, covariance_type=cov, random_state=0, means_init=X[:3]).fit(X[:100]), X[100:]


KINDS = ["kmeans", "gmm-full", "gmm-tied", "gmm-diag", "gmm-spherical", "bernoulli"]


@pytest.fixture(params=["directory", "zip", "memory"])
def target(request, tmp_path):
    return {
        "directory": str(tmp_path / "model.zarr"),
        "zip": str(tmp_path / "model.zarr.zip"),
        "memory": f"memory://emdask-test-{uuid.uuid4().hex}/model.zarr",
    }[request.param]


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_keeps_parameters_and_predictions(kind, target):
    model, held_out = _fitted(kind)
    model.save(target)
    loaded = emdask.load(target)
    assert type(loaded) is type(model)
    for key in model._fitted_arrays:
        np.testing.assert_array_equal(getattr(loaded, key), getattr(model, key))
    for key in model._fitted_scalars:
        assert getattr(loaded, key) == getattr(model, key)
    assert loaded.history_ == model.history_
    params, loaded_params = model.get_params(), loaded.get_params()
    for key, value in params.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(loaded_params[key], value)
        else:
            assert loaded_params[key] == value
    np.testing.assert_array_equal(loaded.predict(held_out), model.predict(held_out))
    if hasattr(model, "predict_proba"):
        np.testing.assert_array_equal(loaded.predict_proba(held_out), model.predict_proba(held_out))


def test_existing_store_needs_overwrite(tmp_path):
    a, X = _fitted("kmeans")
    b = emdask.KMeans(3, random_state=1).fit(X)
    path = tmp_path / "m.zarr"
    a.save(path)
    with pytest.raises(FileExistsError, match=r"m.zarr' already exists; pass overwrite=True"):
        b.save(path)
    np.testing.assert_array_equal(emdask.load(path).cluster_centers_, a.cluster_centers_)
    b.save(path, overwrite=True)
    np.testing.assert_array_equal(emdask.load(path).cluster_centers_, b.cluster_centers_)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.zarr"]  # nothing left beside it


def test_unrelated_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(StoreError, match=r"is not a Zarr group that emdask can open"):
        emdask.load(tmp_path)


def test_missing_path(tmp_path):
    with pytest.raises(StoreError, match=r"nothing.zarr' is not a Zarr group"):
        emdask.load(tmp_path / "nothing.zarr")


def test_zarr_store_of_another_program(tmp_path):
    group = zarr.open_group(str(tmp_path / "other.zarr"), mode="w")
    group.create_array("data", data=np.arange(10))
    group.attrs["creator"] = "someone else"
    with pytest.raises(StoreError, match=r"other.zarr' is a Zarr group but not an emdask store"):
        emdask.load(tmp_path / "other.zarr")


def _edit_meta(path, **changes):
    meta_file = path / "zarr.json"
    doc = json.loads(meta_file.read_text())
    doc["attributes"]["emdask"].update(changes)
    meta_file.write_text(json.dumps(doc))


def test_schema_from_the_future(tmp_path):
    model, _ = _fitted("kmeans")
    model.save(tmp_path / "m.zarr")
    _edit_meta(tmp_path / "m.zarr", schema_version=99)
    with pytest.raises(StoreError, match=r"schema version 99, newer than this emdask reads \(2\); upgrade"):
        emdask.load(tmp_path / "m.zarr")


def test_incomplete_store_is_refused(tmp_path):
    model, _ = _fitted("bernoulli")
    model.save(tmp_path / "m.zarr")
    _edit_meta(tmp_path / "m.zarr", complete=False)
    with pytest.raises(StoreError, match=r"is incomplete: the write that made it did not finish"):
        emdask.load(tmp_path / "m.zarr")


def test_missing_array(tmp_path):
    import shutil

    model, _ = _fitted("gmm-full")
    model.save(tmp_path / "m.zarr")
    shutil.rmtree(tmp_path / "m.zarr" / "covariances_")
    with pytest.raises(StoreError, match=r"is missing the array 'covariances_'"):
        emdask.load(tmp_path / "m.zarr")


def test_truncated_chunk(tmp_path):
    model, _ = _fitted("gmm-diag")
    model.save(tmp_path / "m.zarr")
    chunk = next(p for p in (tmp_path / "m.zarr" / "means_").rglob("*") if p.is_file() and p.name != "zarr.json")
    chunk.write_bytes(chunk.read_bytes()[:5])
    with pytest.raises(StoreError, match=r"the array 'means_' could not be read \(corrupt or truncated chunk"):
        emdask.load(tmp_path / "m.zarr")


def test_unfitted_model_cannot_be_saved(tmp_path):
    with pytest.raises(emdask.NotFittedError):
        emdask.KMeans(3).save(tmp_path / "m.zarr")
    assert not any(tmp_path.iterdir())
