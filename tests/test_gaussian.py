"""emdask.GaussianMixture equals scikit-learn's from the same initial parameters, on real data."""
from __future__ import annotations

import warnings
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
from conftest import photo_pixels
from sklearn.datasets import load_iris, load_wine
from sklearn.mixture import GaussianMixture as SkGaussianMixture

import emdask
from emdask.gaussian import GaussianModel, GaussianParams

COV_TYPES = ["full", "tied", "diag", "spherical"]


def faithful() -> np.ndarray:
    """Old Faithful eruptions and waiting times (272 x 2), bundled in data/."""
    path = Path(__file__).parents[1] / "data" / "old_faithful.csv"
    return np.loadtxt(path, delimiter=",", skiprows=1, usecols=(1, 2))


DATASETS = {"faithful": faithful, "iris": lambda: load_iris().data, "wine": lambda: load_wine().data}


def start(X: np.ndarray, k: int, cov: str) -> dict[str, np.ndarray]:
    """Initial parameters: a few sklearn iterations from a seed, so both fits start from the same point."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = SkGaussianMixture(k, covariance_type=cov, random_state=0, max_iter=3, tol=0).fit(X)
    return {"weights_init": ref.weights_, "means_init": ref.means_, "precisions_init": ref.precisions_}


def assert_same_as_sklearn(X, k, cov, chunks=None, **fit):
    init = start(X, k, cov)
    sk = SkGaussianMixture(
        k, covariance_type=cov, init_params="random_from_data", max_iter=500, tol=1e-8, **init
    ).fit(X)
    Xin = X if chunks is None else da.from_array(X, chunks=(chunks, X.shape[1]))
    em = emdask.GaussianMixture(k, covariance_type=cov, max_iter=500, tol=1e-8, **init).fit(Xin, **fit)
    assert em.n_iter_ == sk.n_iter_ and em.converged_
    np.testing.assert_allclose(em.weights_, sk.weights_, rtol=0, atol=1e-6)
    np.testing.assert_allclose(em.means_, sk.means_, rtol=0, atol=1e-6)
    np.testing.assert_allclose(em.covariances_, sk.covariances_, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(em.lower_bound_, sk.lower_bound_, rtol=1e-7)
    return em, sk


@pytest.mark.parametrize("name", DATASETS)
@pytest.mark.parametrize("cov", COV_TYPES)
def test_matches_sklearn_numpy(name, cov):
    X = DATASETS[name]()
    em, sk = assert_same_as_sklearn(X, 3, cov)
    np.testing.assert_array_equal(em.predict(X), sk.predict(X))
    np.testing.assert_allclose(em.predict_proba(X), sk.predict_proba(X), atol=1e-8)
    np.testing.assert_allclose(em.score_samples(X), sk.score_samples(X), rtol=1e-9)
    np.testing.assert_allclose(em.bic(X), sk.bic(X), rtol=1e-9)
    np.testing.assert_allclose(em.aic(X), sk.aic(X), rtol=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["iris", "wine"])  # Old Faithful's slow convergence is tested in one process above
@pytest.mark.parametrize("cov", COV_TYPES)
def test_matches_sklearn_chunked_on_cluster(distributed_client, name, cov):
    X = DATASETS[name]()
    em, _ = assert_same_as_sklearn(X, 3, cov, chunks=40)
    assert isinstance(em.predict(da.from_array(X, chunks=40)), da.Array)


@pytest.mark.parametrize("cov", COV_TYPES)
def test_log_likelihood_never_decreases(cov):
    X = photo_pixels("coffee", step=6)
    w = np.random.default_rng(0).uniform(0.5, 2, len(X))
    gm = emdask.GaussianMixture(5, covariance_type=cov, tol=0, max_iter=40, random_state=0, init_params="random")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emdask.ConvergenceWarning)
        gm.fit(X, sample_weight=w)
    ll = np.array([h["objective"] for h in gm.history_])
    assert np.all(np.diff(ll) >= -1e-10 * np.abs(ll[:-1])), ll


@pytest.mark.parametrize("cov", COV_TYPES)
def test_statistics_are_safe_far_from_the_origin(cov):
    """Pixels offset by 1e4 give the same covariances: moments are taken about the current means."""
    X = photo_pixels("astronaut", step=8) / 255.0
    init = start(X, 4, cov)
    near = emdask.GaussianMixture(4, covariance_type=cov, tol=1e-9, max_iter=200, **init).fit(X)
    init["means_init"] = init["means_init"] + 1e4
    far = emdask.GaussianMixture(4, covariance_type=cov, tol=1e-9, max_iter=200, **init).fit(
        da.from_array(X + 1e4, chunks=(3000, 3))
    )
    np.testing.assert_allclose(far.means_ - 1e4, near.means_, atol=1e-8)
    np.testing.assert_allclose(far.covariances_, near.covariances_, rtol=1e-5, atol=1e-10)


def test_chunkings_give_the_same_model():
    X = faithful()
    init = start(X, 2, "full")
    models = [
        emdask.GaussianMixture(2, tol=1e-9, **init).fit(Xin)
        for Xin in (X, da.from_array(X, chunks=(272, 2)), da.from_array(X, chunks=((100, 0, 150, 22), (2,))))
    ]
    for m in models[1:]:
        np.testing.assert_allclose(m.means_, models[0].means_, rtol=1e-12)
        np.testing.assert_allclose(m.covariances_, models[0].covariances_, rtol=1e-10)


def test_integer_weights_equal_repeated_rows():
    X = load_iris().data
    w = np.random.default_rng(2).integers(0, 4, len(X))
    init = start(X, 3, "diag")
    a = emdask.GaussianMixture(3, covariance_type="diag", tol=1e-9, **init).fit(X, sample_weight=w)
    b = emdask.GaussianMixture(3, covariance_type="diag", tol=1e-9, **init).fit(np.repeat(X, w, axis=0))
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-9)
    np.testing.assert_allclose(a.covariances_, b.covariances_, rtol=1e-8)
    np.testing.assert_allclose(a.lower_bound_, b.lower_bound_, rtol=1e-9)


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random_from_data"])
def test_centre_initialisations_find_both_modes(init_params):
    X = faithful()
    gm = emdask.GaussianMixture(2, init_params=init_params, random_state=1, max_iter=300).fit(X)
    # Old Faithful has two well separated modes: short and long eruptions
    assert sorted(np.round(gm.means_[:, 0]).tolist()) == [2.0, 4.0]
    assert gm.converged_


def test_random_responsibilities_behave_like_sklearn():
    """Random responsibilities start near the symmetric saddle; like scikit-learn's, the fit stops there."""
    X = faithful()
    ours = [emdask.GaussianMixture(2, init_params="random", random_state=s).fit(X).lower_bound_ for s in range(4)]
    theirs = [SkGaussianMixture(2, init_params="random", random_state=s).fit(X).lower_bound_ for s in range(4)]
    np.testing.assert_allclose(np.mean(ours), np.mean(theirs), rtol=1e-3)


def test_kmeans_is_the_hard_limit_of_a_spherical_gmm():
    """Equal weights and covariance eps*I: as eps -> 0 the responsibilities become K-means' 0/1 assignments."""
    X = photo_pixels("chelsea", step=6)
    km = emdask.KMeans(6, random_state=0).fit(X)
    labels = km.predict(X)
    model = GaussianModel(6, "spherical")
    for eps in (1e-1, 1e-3):
        cov = np.full(6, eps)
        params = GaussianParams(np.full(6, 1 / 6), km.cluster_centers_, cov, 1 / np.sqrt(cov), "spherical")
        logp = model.log_prob(X, params)
        resp = np.exp(logp - logp.max(axis=1, keepdims=True))
        resp /= resp.sum(axis=1, keepdims=True)
        np.testing.assert_array_equal(resp.argmax(axis=1), labels)
    assert np.mean(resp.max(axis=1) > 1 - 1e-9) > 0.999


def test_select_by_bic_and_sample():
    X = faithful()
    best, table = emdask.select_by_bic(X, [1, 2, 3], random_state=0)
    assert [row["n_components"] for row in table] == [1, 2, 3]
    assert best.n_components == min(table, key=lambda r: r["bic"])["n_components"] == 2
    assert table[1]["bic"] == pytest.approx(best.bic(X))
    Xs, ys = best.sample(4000)
    assert Xs.shape == (4000, 2) and set(np.unique(ys)) <= {0, 1}
    for k in range(2):
        np.testing.assert_allclose(
            Xs[ys == k].mean(axis=0), best.means_[k], atol=0.1 * np.sqrt(best.covariances_[k].max()) * 4
        )


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"n_components": 0}, ValueError, r"n_components must be an int in \[1, n_samples=272\]; got 0"),
        ({"covariance_type": "ful"}, ValueError, r"covariance_type must be one of 'full', 'tied', 'diag', 'spherical'"),
        ({"weights_init": [0.5, 0.6]}, ValueError, r"weights_init must be non-negative and sum to 1"),
        ({"means_init": np.zeros((3, 2))}, ValueError, r"means_init must have shape \(2, 2\)"),
        ({"precisions_init": -np.ones((2, 2, 2))}, ValueError, r"precisions_init must be symmetric positive definite"),
        ({"init_params": "kmeans++"}, ValueError, r"init_params must be one of"),
        ({"reg_covar": -1.0}, ValueError, r"reg_covar must be a finite number >= 0"),
    ],
)
def test_bad_parameters(kwargs, error, match):
    params = {"n_components": 2, **kwargs}
    with pytest.raises(error, match=match):
        emdask.GaussianMixture(**params).fit(faithful())


def test_collapsed_component_gives_clear_error_without_reg_covar():
    X = np.r_[np.zeros((20, 2)), np.random.default_rng(0).normal(size=(20, 2)) + 5]
    with pytest.raises(ValueError, match="not positive definite .* increase reg_covar"):
        emdask.GaussianMixture(2, reg_covar=0.0, random_state=0).fit(X)
    gm = emdask.GaussianMixture(2, random_state=0).fit(X)  # the default floor keeps it finite
    assert np.isfinite(gm.covariances_).all()
