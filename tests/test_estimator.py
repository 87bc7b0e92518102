"""The scikit-learn estimator surface, dtypes, weights and the caching choice."""
from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from conftest import photo_pixels
from sklearn.base import clone

import emdask


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    return photo_pixels("chelsea", step=3)


def test_params_round_trip_and_clone():
    km = emdask.KMeans(5, init="k-means++", tol=0.0, random_state=3)
    assert km.get_params()["n_clusters"] == 5 and km.get_params()["init"] == "k-means++"
    copy = clone(km)
    assert copy is not km and copy.get_params() == km.get_params()
    assert km.set_params(n_clusters=7) is km and km.n_clusters == 7
    assert repr(km) == "KMeans(init='k-means++', n_clusters=7, random_state=3, tol=0.0)"


def test_integer_weights_equal_repeated_rows(digits):
    """Weight 3 on a row is the same as the row three times (an independent reference for sample_weight)."""
    w = np.random.default_rng(0).integers(0, 4, len(digits))
    init = digits[w > 0][:6] + 0.5
    weighted = emdask.KMeans(6, init=init, tol=0).fit(digits, sample_weight=w)
    repeated = emdask.KMeans(6, init=init, tol=0).fit(np.repeat(digits, w, axis=0))
    np.testing.assert_allclose(weighted.cluster_centers_, repeated.cluster_centers_, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(weighted.inertia_, repeated.inertia_, rtol=1e-10)


def test_zero_weight_rows_are_ignored(digits):
    w = np.ones(len(digits))
    w[::2] = 0
    init = digits[1:12:2] + 0.5
    weighted = emdask.KMeans(6, init=init, tol=0).fit(digits, sample_weight=w)
    subset = emdask.KMeans(6, init=init, tol=0).fit(digits[1::2])
    np.testing.assert_allclose(weighted.cluster_centers_, subset.cluster_centers_, rtol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.int64])
def test_other_dtypes_give_the_float64_model(pixels, dtype):
    """float32 is computed in float32 with float64 sums; integers and uint8 pixels in float64."""
    init = pixels[:8] + 0.3
    ref = emdask.KMeans(8, init=init, tol=0).fit(pixels)
    km = emdask.KMeans(8, init=init, tol=0).fit(da.from_array(pixels.astype(dtype), chunks=(5000, 3)))
    assert km.cluster_centers_.dtype == np.float64
    atol = 1e-3 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(km.cluster_centers_, ref.cluster_centers_, atol=atol)
    np.testing.assert_allclose(km.inertia_, ref.inertia_, rtol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("cache", ["auto", True, False])
def test_cache_choice_does_not_change_the_model(pixels, cache):
    init = pixels[:4] + 0.3
    ref = emdask.KMeans(4, init=init).fit(pixels)
    km = emdask.KMeans(4, init=init, cache=cache).fit(da.from_array(pixels, chunks=(3000, 3)))
    np.testing.assert_allclose(km.cluster_centers_, ref.cluster_centers_, rtol=1e-12)


def test_predict_transform_are_lazy_on_dask_and_eager_on_numpy(pixels):
    km = emdask.KMeans(5, random_state=0).fit(pixels)
    X = da.from_array(pixels, chunks=(4000, 3))
    labels, dist = km.predict(X), km.transform(X)
    assert isinstance(labels, da.Array) and labels.dtype == np.int32 and labels.chunks[0] == X.chunks[0]
    assert isinstance(dist, da.Array) and dist.shape == (len(pixels), 5)
    eager = km.predict(pixels)
    assert isinstance(eager, np.ndarray)
    np.testing.assert_array_equal(labels.compute(), eager)
    brute = np.sqrt(((pixels[:, None, :] - km.cluster_centers_[None]) ** 2).sum(-1))
    np.testing.assert_allclose(dist.compute(), brute, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(eager, brute.argmin(axis=1))
    np.testing.assert_allclose(-km.score(X), (brute.min(axis=1) ** 2).sum(), rtol=1e-9)
    np.testing.assert_array_equal(km.fit_predict(pixels), emdask.KMeans(5, random_state=0).fit(pixels).predict(pixels))


def test_fewer_distinct_points_than_clusters_warns_and_stays_finite():
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]]), 10, axis=0)
    with pytest.warns(emdask.ConvergenceWarning, match=r"distinct clusters \(3\) found smaller than n_clusters \(5\)"):
        km = emdask.KMeans(5, random_state=0, max_iter=20).fit(X)
    assert np.isfinite(km.cluster_centers_).all()
    assert km.inertia_ == pytest.approx(0.0, abs=1e-12)


def test_history_records_every_iteration(pixels):
    km = emdask.KMeans(6, random_state=1).fit(pixels)
    assert [h["iteration"] for h in km.history_] == list(range(1, km.n_iter_ + 1))
    assert all(h["seconds"] > 0 and h["shift"] >= 0 for h in km.history_)


def test_sample_warm_up_cuts_the_exact_passes():
    """k-means++ on the first pass's sample, then Lloyd on the sample: the exact passes start near a fixed point.

    Against the same k-means++ centres without the warm-up, on three real photos and three seeds:
    far fewer passes to the tolerance, the same quality; with ``tol=0`` the fit still ends at an
    exact fixed point of Lloyd over every pixel.
    """
    import dask.array as da
    from skimage import data

    from emdask.engine import ChunkedData, summarize
    from emdask.init import initial_centres

    pixels = np.concatenate([getattr(data, n)()[..., :3].reshape(-1, 3) for n in ("astronaut", "coffee", "chelsea")])
    X = da.from_array(pixels, chunks=(200_000, 3))
    cold_passes, warm_passes, ratios = [], [], []
    for seed in (1, 2, 3):
        summary = summarize(ChunkedData(X, cache=False), seed, 20_000)
        cold_start = initial_centres(None, summary, 16, "k-means++", seed, 0)  # type: ignore[arg-type]
        cold = emdask.KMeans(16, init=cold_start, max_iter=500).fit(X)
        warm = emdask.KMeans(16, init="k-means++", random_state=seed, max_iter=500).fit(X)
        cold_passes.append(cold.n_iter_)
        warm_passes.append(warm.n_iter_)
        ratios.append(warm.inertia_ / cold.inertia_)
    assert sum(warm_passes) * 2 < sum(cold_passes), (warm_passes, cold_passes)
    assert np.mean(ratios) < 1.01, ratios
    exact = emdask.KMeans(16, init="k-means++", random_state=1, tol=0, max_iter=1000).fit(X)
    assert exact.converged_ and exact.history_[-1]["shift"] == 0.0


def test_weighted_sample_stands_for_the_weighted_data():
    """A row of large weight is drawn once but weighs what it stands for; light rows weigh alike (Horvitz-Thompson)."""
    import dask.array as da

    from emdask.engine import ChunkedData, summarize
    from emdask.init import _sample

    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(size=(200_000, 2)), [[50.0, 50.0]]]
    w = np.r_[np.ones(200_000), 200_000.0]  # the last row is half of the total weight
    data = ChunkedData(da.from_array(x, chunks=(50_000, 2)), da.from_array(w, chunks=50_000))
    rows, weights = _sample(summarize(data, 3, 20_000))
    heavy = np.flatnonzero(rows[:, 0] == 50.0)
    assert len(heavy) == 1 and weights[heavy[0]] == pytest.approx(200_000.0, rel=1e-6)
    light = np.delete(weights, heavy)
    assert np.ptp(light) < 1e-9 * light.max()
    assert weights.sum() == pytest.approx(w.sum(), rel=0.02)  # the sample stands for the total weight
    mean = (weights[:, None] * rows).sum(axis=0) / weights.sum()
    np.testing.assert_allclose(mean, (w[:, None] * x).sum(axis=0) / w.sum(), atol=0.5)


def test_warnings_point_at_the_callers_line():
    """Every warning a fit gives names the line that called ``fit``, not a frame inside emdask."""
    X = np.random.default_rng(0).normal(size=(300, 2))
    cases = [
        (emdask.ConvergenceWarning, lambda: emdask.GaussianMixture(3, max_iter=1, random_state=0).fit(X)),
        (emdask.ConvergenceWarning, lambda: emdask.BernoulliMixture(2, max_iter=1, random_state=0).fit(X > 0)),
        (emdask.ConvergenceWarning, lambda: emdask.KMeans(3, random_state=0).fit(np.zeros((10, 2)))),
        (RuntimeWarning, lambda: emdask.KMeans(2, init=X[:2], n_init=3).fit(X)),
        (RuntimeWarning, lambda: emdask.fit_together([emdask.KMeans(2, init=X[:2], n_init=3)], X)),
    ]
    for category, fit in cases:
        with pytest.warns(category) as record:
            fit()
        assert [r.filename for r in record if issubclass(r.category, category)] == [__file__], category
