"""Each bad input gets one clear error that names the argument and what was expected, before any result."""
from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

import emdask

GOOD = np.random.default_rng(0).normal(size=(50, 3))


def _with(value, row, col=0):
    X = GOOD.copy()
    X[row, col] = value
    return X


@pytest.mark.parametrize(
    "X,kwargs,error,match",
    [
        (_with(np.nan, 7), {}, ValueError, r"X contains NaN or infinity \(first at row 7, column 0"),
        (_with(np.inf, 3, 2), {}, ValueError, r"X contains NaN or infinity \(first at row 3, column 2"),
        (GOOD[:, 0], {}, ValueError, r"X must be a 2-D array .* got a 1-D .*shape \(50,\).*reshape"),
        (GOOD.reshape(5, 10, 3), {}, ValueError, r"X must be a 2-D array .* got a 3-D"),
        (GOOD[:0], {}, ValueError, r"X has 0 sample\(s\) \(shape=\(0, 3\)\) while a minimum of 1 is required"),
        (np.array([["a", "b"], ["c", "d"]]), {}, TypeError, r"X must have a numeric dtype .* got .*<U1"),
        (np.array([[1, "a"]], dtype=object), {}, TypeError, r"X must hold numbers; could not convert string"),
        (GOOD, {"n_clusters": 0}, ValueError, r"n_clusters must be an int in \[1, n_samples=50\]; got 0"),
        (GOOD, {"n_clusters": 51}, ValueError, r"n_clusters must be an int in \[1, n_samples=50\]; got 51"),
        (GOOD, {"n_clusters": 2.5}, TypeError, r"n_clusters must be an int .* got 2.5 of type float"),
        (
            GOOD,
            {"n_clusters": 3, "init": np.zeros((2, 3))},
            ValueError,
            r"init must be an array of shape .*\(3, 3\).*\(2, 3\)",
        ),
        (GOOD, {"n_clusters": 2, "init": np.full((2, 3), np.nan)}, ValueError, r"init contains NaN"),
        (
            GOOD,
            {"init": "kmeans"},
            ValueError,
            r"init must be one of 'k-means\|\|', 'k-means\+\+', 'random'; got 'kmeans'",
        ),
        (GOOD, {"max_iter": 0}, ValueError, r"max_iter must be an int >= 1; got 0"),
        (GOOD, {"tol": -1.0}, ValueError, r"tol must be a finite number >= 0.0; got -1.0"),
        (GOOD, {"cache": "yes"}, ValueError, r"cache must be one of 'auto', True, False; got 'yes'"),
        (GOOD, {"random_state": -3}, ValueError, r"random_state must be None, a non-negative int"),
    ],
)
def test_bad_input_raises_clear_error(X, kwargs, error, match):
    params = {"n_clusters": 3, **kwargs}
    with pytest.raises(error, match=match):
        emdask.KMeans(**params).fit(X)


def test_nan_in_a_late_dask_chunk_names_its_row():
    X = da.from_array(_with(np.nan, 43, 1), chunks=(10, 3))
    with pytest.raises(ValueError, match=r"first at row 43, column 1"):
        emdask.KMeans(3, init=GOOD[:3]).fit(X)


@pytest.mark.parametrize(
    "w,match",
    [
        (np.ones(49), r"sample_weight must be a 1-D array with one weight per row of X \(50\)"),
        (-np.ones(50), r"sample_weight must be finite and non-negative"),
        (np.zeros(50), r"sample_weight must have at least one positive weight"),
    ],
)
def test_bad_sample_weight(w, match):
    with pytest.raises(ValueError, match=match):
        emdask.KMeans(3).fit(GOOD, sample_weight=w)


def test_negative_weight_in_dask_chunk():
    w = np.ones(50)
    w[31] = -2
    with pytest.raises(ValueError, match=r"sample_weight must be non-negative; got -2.0 at row 31"):
        emdask.KMeans(3).fit(da.from_array(GOOD, chunks=(20, 3)), sample_weight=da.from_array(w, chunks=20))


def test_unknown_chunk_sizes():
    X = da.from_array(GOOD, chunks=(10, 3))
    X = X[X[:, 0] > -10]  # boolean indexing loses the row counts
    with pytest.raises(ValueError, match=r"unknown chunk sizes .*compute_chunk_sizes"):
        emdask.KMeans(3).fit(X)


def test_predict_before_fit_and_with_wrong_features():
    with pytest.raises(emdask.NotFittedError, match="not fitted yet"):
        emdask.KMeans(3).predict(GOOD)
    km = emdask.KMeans(3, random_state=0).fit(GOOD)
    with pytest.raises(ValueError, match="X has 2 features, but KMeans is expecting 3 features"):
        km.predict(GOOD[:, :2])


def test_set_params_rejects_unknown_names():
    with pytest.raises(ValueError, match="Invalid parameter .k. for estimator KMeans"):
        emdask.KMeans().set_params(k=3)


def test_user_arrays_are_not_modified():
    X, init, w = GOOD.copy(), GOOD[:3].copy(), np.ones(50)
    km = emdask.KMeans(3, init=init).fit(X, sample_weight=w)
    np.testing.assert_array_equal(X, GOOD)
    np.testing.assert_array_equal(init, GOOD[:3])
    assert km.cluster_centers_ is not init
