"""Degenerate data: every estimator gives finite parameters and the documented behaviour, never NaN.

One table: each row is a kind of degenerate data (identical points, duplicates, a constant
feature, points on a line, an emptied cluster, values near 1e30 and 1e-30, in float32 and
float64) fitted by K-means, the four Gaussian mixtures and, for binary data, the Bernoulli
mixture, on chunked Dask arrays.  What each must give is in the README's "Degenerate data".
"""
from __future__ import annotations

import warnings

import dask.array as da
import numpy as np
import pytest

import emdask

COVS = ("full", "tied", "diag", "spherical")
RNG = np.random.default_rng(0)
BLOBS = (RNG.normal(size=(1200, 3)) + np.repeat(np.eye(3) * 6, 400, axis=0)).astype(np.float32)
WIDE = (RNG.normal(size=(1200, 20)) + np.repeat(np.eye(3, 20) * 6, 400, axis=0)).astype(np.float32)


def _chunked(x: np.ndarray) -> da.Array:
    return da.from_array(x, chunks=(len(x) // 3 + 1, x.shape[1]))


def _fitted_arrays(est: object) -> dict[str, np.ndarray]:
    return {k: v for k, v in vars(est).items() if k.endswith("_") and isinstance(v, np.ndarray)}


def _fit(est, x: np.ndarray):
    """Fit on a chunked copy; every fitted array and the objective must be finite."""
    est.fit(_chunked(x))
    for name, value in _fitted_arrays(est).items():
        assert np.isfinite(value).all(), f"{type(est).__name__}.{name} is not finite"
    objective = est.inertia_ if isinstance(est, emdask.KMeans) else est.lower_bound_
    assert np.isfinite(objective)
    labels = est.predict(x)
    assert labels.min() >= 0 and labels.max() < len(getattr(est, "cluster_centers_", getattr(est, "means_", [])))
    return est


def _no_nan_warnings(record: list[warnings.WarningMessage]) -> None:
    numeric = [str(w.message) for w in record if issubclass(w.category, RuntimeWarning)]
    assert not numeric, numeric


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_identical_points(dtype):
    """All points equal: K-means warns and puts every centre on the point; mixtures collapse onto it with the floor."""
    x = np.full((900, 3), 2.5, dtype=dtype)
    with pytest.warns(emdask.ConvergenceWarning, match=r"distinct clusters \(1\) found smaller than n_clusters \(4\)"):
        km = _fit(emdask.KMeans(4, random_state=0), x)
    np.testing.assert_array_equal(km.cluster_centers_, np.full((4, 3), 2.5))
    assert km.inertia_ == 0.0
    for cov in COVS:
        gm = _fit(emdask.GaussianMixture(3, covariance_type=cov, random_state=0), x)
        np.testing.assert_allclose(gm.means_, 2.5, rtol=1e-12)
        variances = np.diagonal(gm.covariances_, axis1=-2, axis2=-1) if cov in ("full", "tied") else gm.covariances_
        np.testing.assert_allclose(variances, gm.reg_covar, rtol=1e-6)


def test_more_clusters_than_distinct_points():
    """Three distinct points, 300 copies each: K=5 finds the three points and warns; mixtures stay finite."""
    x = np.repeat(BLOBS[:3], 300, axis=0)
    with pytest.warns(emdask.ConvergenceWarning, match=r"distinct clusters \(3\) found smaller than n_clusters \(5\)"):
        km = _fit(emdask.KMeans(5, random_state=0), x)
    np.testing.assert_allclose(np.unique(km.cluster_centers_, axis=0), np.unique(BLOBS[:3].astype(np.float64), axis=0),
                               rtol=1e-6)
    assert km.inertia_ == pytest.approx(0.0, abs=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emdask.ConvergenceWarning)  # 30 passes show whether anything turns NaN
        for cov in COVS:
            _fit(emdask.GaussianMixture(5, covariance_type=cov, random_state=0, max_iter=30), x)


@pytest.mark.parametrize("data", [BLOBS, WIDE], ids=["D3-fused", "D20-matmul"])
def test_constant_feature(data):
    """A constant column: centres keep it exactly; the mixtures' variance of it is the floor reg_covar."""
    x = data.copy()
    x[:, 1] = 7.0
    km = _fit(emdask.KMeans(3, random_state=0), x)
    np.testing.assert_array_equal(km.cluster_centers_[:, 1], 7.0)
    gm = _fit(emdask.GaussianMixture(3, covariance_type="diag", random_state=0), x)
    np.testing.assert_allclose(gm.covariances_[:, 1], gm.reg_covar, rtol=1e-3)
    for cov in ("full", "tied", "spherical"):
        _fit(emdask.GaussianMixture(3, covariance_type=cov, random_state=0), x)


@pytest.mark.parametrize("cov", COVS)
def test_collapsing_components_keep_the_floor_and_the_likelihood_rises(cov):
    """Points on a line plus a pile of identical points: singular covariances, kept positive by reg_covar."""
    t = np.random.default_rng(2).normal(size=600)  # its own draws: the same data in any test order
    line = np.c_[t, 2 * t, -t]
    pile = np.full((300, 3), 10.0)
    x = np.r_[line, pile].astype(np.float64)
    with pytest.warns(emdask.ConvergenceWarning, match="did not converge"):  # tol=0: all 30 passes run
        gm = _fit(emdask.GaussianMixture(3, covariance_type=cov, random_state=0, tol=0.0, max_iter=30), x)
    bounds = [h["objective"] for h in gm.history_]
    assert all(b >= a - 1e-9 * abs(a) for a, b in zip(bounds, bounds[1:])), bounds
    spectrum = np.linalg.eigvalsh(gm.covariances_) if cov in ("full", "tied") else gm.covariances_
    assert np.all(spectrum >= 0.5 * gm.reg_covar)


def test_emptied_clusters():
    """A centre or component started far from all data: K-means re-seeds it, the mixture keeps a near-zero weight."""
    init = np.array([[0, 0, 0], [6, 0, 0], [1e6, 1e6, 1e6]], dtype=np.float64)
    km = _fit(emdask.KMeans(3, init=init, n_init=1), BLOBS)
    assert np.abs(km.cluster_centers_).max() < 100  # the far centre was re-seeded into the data
    assert len(np.unique(km.predict(BLOBS))) == 3
    gm = _fit(emdask.GaussianMixture(3, covariance_type="diag", means_init=init, max_iter=20), BLOBS)
    assert gm.weights_.min() < 1e-6 and gm.weights_.sum() == pytest.approx(1.0)
    probabilities = np.repeat([[0.9] * 4 + [0.1] * 4, [0.1] * 4 + [0.9] * 4], 300, axis=0)
    binary = (np.random.default_rng(3).random((600, 8)) < probabilities).astype(np.float32)
    bm = _fit(emdask.BernoulliMixture(3, means_init=np.array([[0.9] * 8, [0.1] * 8, [1e-9] * 8]), max_iter=20),
              binary)
    assert np.all((bm.means_ > 0) & (bm.means_ < 1))


def test_constant_binary_columns():
    """Bernoulli columns that are all 0 or all 1: probabilities stay inside (0, 1), log-likelihood finite."""
    x = (np.random.default_rng(1).random((900, 6)) < 0.5).astype(np.float32)  # its own draws: any test order
    x[:, 2], x[:, 3] = 1, 0
    bm = _fit(emdask.BernoulliMixture(3, random_state=0), x)
    assert np.all((bm.means_ > 0) & (bm.means_ < 1))
    assert np.all(bm.means_[:, 2] > 0.99) and np.all(bm.means_[:, 3] < 0.01)


@pytest.mark.parametrize("scale", [1e30, 1e-30])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("data", [BLOBS, WIDE], ids=["D3-fused", "D20-matmul"])
def test_extreme_scales_give_the_scaled_model(data, dtype, scale):
    """Data times 1e30 or 1e-30: the K-means centres are the unit-scale ones times the scale (no inf or NaN).

    float32 squares of such values overflow or underflow, so those chunks are computed in float64.
    """
    init = data[[0, 400, 800]].astype(np.float64)
    unit = emdask.KMeans(3, init=init, n_init=1).fit(data)
    scaled = (data.astype(np.float64) * scale).astype(dtype)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        km = _fit(emdask.KMeans(3, init=scaled[[0, 400, 800]].astype(np.float64), n_init=1), scaled)
        pp = _fit(emdask.KMeans(3, random_state=0), scaled)  # k-means++ on the scaled data
    _no_nan_warnings(record)
    np.testing.assert_allclose(km.cluster_centers_ / scale, unit.cluster_centers_, rtol=1e-4, atol=1e-4)
    assert km.inertia_ / scale**2 == pytest.approx(unit.inertia_, rel=1e-4)
    assert len(np.unique(pp.predict(scaled))) == 3


@pytest.mark.parametrize("cov", COVS)
@pytest.mark.parametrize("scale", [1e30, 1e-30])
def test_mixtures_at_extreme_scales_stay_finite(cov, scale):
    """Gaussian mixtures at 1e30 fit the scaled model; at 1e-30 the absolute floor reg_covar dominates (documented)."""
    scaled = BLOBS.astype(np.float64) * scale
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        gm = _fit(emdask.GaussianMixture(3, covariance_type=cov, random_state=0), scaled)
    _no_nan_warnings(record)
    if scale > 1:
        unit = emdask.GaussianMixture(3, covariance_type=cov, random_state=0).fit(BLOBS.astype(np.float64))
        order = lambda m: np.argsort(m[:, 0] + 10 * m[:, 1])  # noqa: E731
        np.testing.assert_allclose(gm.means_[order(gm.means_)] / scale, unit.means_[order(unit.means_)], rtol=1e-3,
                                   atol=1e-3)
