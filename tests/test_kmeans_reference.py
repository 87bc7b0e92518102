"""emdask.KMeans equals scikit-learn's Lloyd K-means from the same initial centres, on real data."""
from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from conftest import PHOTOS, photo_pixels
from sklearn.cluster import KMeans as SkKMeans

import emdask


def _pick(X: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k distinct rows, moved by up to half a unit: integer pixels and integer centres have exact distance ties,
    which scikit-learn breaks by rounding after centring the data and we break by the lowest index."""
    rng = np.random.default_rng(seed)
    return X[rng.choice(len(X), k, replace=False)] + rng.uniform(-0.5, 0.5, (k, X.shape[1]))


def assert_same_as_sklearn(X, init, sample_weight=None, chunks=None, tol=1e-4):
    sk = SkKMeans(len(init), init=init, n_init=1, algorithm="lloyd", tol=tol, max_iter=300)
    sk.fit(X, sample_weight=sample_weight)
    Xin = X if chunks is None else da.from_array(X, chunks=(chunks, X.shape[1]))
    w = sample_weight if chunks is None or sample_weight is None else da.from_array(sample_weight, chunks=chunks)
    em = emdask.KMeans(len(init), init=init, tol=tol, max_iter=300).fit(Xin, sample_weight=w)
    np.testing.assert_allclose(em.cluster_centers_, sk.cluster_centers_, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(em.predict(Xin)), sk.labels_)
    np.testing.assert_allclose(em.inertia_, sk.inertia_, rtol=1e-7)
    assert em.n_iter_ == sk.n_iter_
    return em, sk


@pytest.mark.parametrize("photo", PHOTOS)
def test_photo_pixels_match_sklearn(photo):
    X = photo_pixels(photo)
    assert_same_as_sklearn(X, _pick(X, 16, 0))


@pytest.mark.parametrize("chunks", [5000, 12345])
def test_chunked_photo_matches_sklearn(chunks):
    X = photo_pixels("astronaut")
    assert_same_as_sklearn(X, _pick(X, 8, 1), chunks=chunks)


def test_digits_match_sklearn(digits):
    assert_same_as_sklearn(digits, _pick(digits, 10, 2), tol=0)


def test_sample_weight_matches_sklearn(digits):
    w = np.random.default_rng(3).uniform(0.1, 3.0, len(digits))
    assert_same_as_sklearn(digits, _pick(digits, 10, 3), sample_weight=w, chunks=500)


def test_empty_cluster_reseeded_like_sklearn():
    """A centre that no pixel is nearest to is moved to the farthest pixel, as scikit-learn does, never NaN."""
    X = photo_pixels("coffee")
    init = _pick(X, 6, 4)
    init[0] = [1000.0, 1000.0, 1000.0]
    em, sk = assert_same_as_sklearn(X, init, chunks=7000)
    assert np.isfinite(em.cluster_centers_).all()
    assert len(np.unique(em.cluster_centers_, axis=0)) == 6


def test_transform_and_score_match_sklearn(digits):
    init = _pick(digits, 7, 5)
    sk = SkKMeans(7, init=init, n_init=1, algorithm="lloyd").fit(digits)
    em = emdask.KMeans(7, init=init).fit(digits)
    np.testing.assert_allclose(em.transform(digits), sk.transform(digits), rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(em.score(digits), sk.score(digits), rtol=1e-7)


def test_transform_and_predict_of_uint8_pixels_keep_float64_precision():
    """Integer input is computed in float64 outside the fit's E-step, as scikit-learn computes it: distances of
    pixels a fraction of a unit from a centre lose nothing to float32's rounding about the centres' mean."""
    from skimage import data

    X = data.coffee().reshape(-1, 3)
    init = _pick(X.astype(np.float64), 8, 6)
    sk = SkKMeans(8, init=init, n_init=1, algorithm="lloyd", max_iter=1).fit(X)
    em = emdask.KMeans(8, init=init, max_iter=1).fit(X)
    np.testing.assert_allclose(em.cluster_centers_, sk.cluster_centers_, rtol=1e-10)
    np.testing.assert_allclose(em.transform(X), sk.transform(X), rtol=1e-9)
    np.testing.assert_array_equal(em.predict(X), sk.predict(X))
