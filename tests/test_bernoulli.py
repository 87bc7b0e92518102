"""emdask.BernoulliMixture against a plain NumPy EM written from the course notes, and on known mixtures."""
from __future__ import annotations

import warnings

import dask.array as da
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.special import logsumexp
from sklearn.datasets import load_digits

import emdask


@pytest.fixture(scope="module")
def binary_digits() -> np.ndarray:
    """scikit-learn's digits binarised at 8: (1797, 64) uint8."""
    return (load_digits().data > 8).astype(np.uint8)


def reference_em(X: np.ndarray, weights: np.ndarray, probs: np.ndarray, n_iter: int, alpha: float):
    """EM for a Bernoulli mixture straight from the notes, on one in-memory array.

    r_ij = a_j prod_d p_jd^x (1-p_jd)^(1-x) / sum_j' (...);  p_j = (sum_i r_ij x_i + alpha) / (N_j + 2 alpha);
    a_j = N_j / N.  (The alpha terms are the documented Beta(1+alpha, 1+alpha) prior.)
    """
    X = X.astype(np.float64)
    for _ in range(n_iter):
        log_joint = np.log(weights) + X @ np.log(probs).T + (1 - X) @ np.log(1 - probs).T
        r = np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
        n_j = r.sum(axis=0)
        probs = (r.T @ X + alpha) / (n_j[:, None] + 2 * alpha)
        weights = n_j / len(X)
    return weights, probs


def _start(X: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return np.full(k, 1 / k), rng.uniform(0.25, 0.75, (k, X.shape[1]))


@pytest.mark.parametrize("chunks", [None, 300, (500, 0, 997, 300)])
def test_matches_plain_numpy_em_on_digits(binary_digits, chunks):
    X = binary_digits
    w0, p0 = _start(X, 10, 0)
    if chunks is not None:
        X = da.from_array(X, chunks=(chunks if isinstance(chunks, int) else chunks, 64))
    bm = emdask.BernoulliMixture(10, weights_init=w0, means_init=p0, tol=0, max_iter=25, alpha=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emdask.ConvergenceWarning)
        bm.fit(X)
    w_ref, p_ref = reference_em(binary_digits, w0, p0, 25, alpha=0.5)
    np.testing.assert_allclose(bm.weights_, w_ref, rtol=0, atol=1e-10)
    np.testing.assert_allclose(bm.means_, p_ref, rtol=0, atol=1e-10)
    objective = np.array([h["objective"] for h in bm.history_])
    assert np.all(np.diff(objective) >= -1e-12 * np.abs(objective[:-1]))


def test_recovers_a_known_mixture():
    rng = np.random.default_rng(1)
    k, d, n = 3, 30, 30_000
    true_w = np.array([0.5, 0.3, 0.2])
    true_p = rng.beta(0.5, 0.5, (k, d))
    z = rng.choice(k, n, p=true_w)
    X = (rng.random((n, d)) < true_p[z]).astype(np.uint8)
    bm = emdask.BernoulliMixture(k, n_init=3, random_state=0, tol=1e-8, max_iter=500, alpha=1e-3).fit(
        da.from_array(X, chunks=(7000, d))
    )
    cost = ((bm.means_[:, None, :] - true_p[None]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    p_hat, w_hat = bm.means_[rows], bm.weights_[rows]
    p_true, w_true = true_p[cols], true_w[cols]
    se = np.sqrt(p_true * (1 - p_true) / (n * w_true[:, None])) + 1e-3
    assert np.all(np.abs(p_hat - p_true) < 5 * se)
    np.testing.assert_allclose(w_hat, w_true, atol=5 * np.sqrt(0.25 / n) + 2e-3)


def test_bool_and_float_binary_input_give_the_same_model(binary_digits):
    w0, p0 = _start(binary_digits, 4, 2)
    fits = [
        emdask.BernoulliMixture(4, weights_init=w0, means_init=p0, tol=1e-8, max_iter=300).fit(X)
        for X in (binary_digits, binary_digits.astype(bool), binary_digits.astype(np.float32))
    ]
    for f in fits[1:]:
        np.testing.assert_allclose(f.means_, fits[0].means_, rtol=1e-10)


def test_non_binary_input_is_rejected_naming_the_value(binary_digits):
    X = binary_digits.astype(np.int64)
    X[1500, 7] = 3
    with pytest.raises(ValueError, match=r"X must be binary \(0/1 or bool\) .* got 3 at row 1500, column 7"):
        emdask.BernoulliMixture(3).fit(da.from_array(X, chunks=(400, 64)))


def test_estimator_surface(binary_digits):
    bm = emdask.BernoulliMixture(5, random_state=0).fit(binary_digits)
    X = binary_digits.astype(np.float64)
    log_joint = np.log(bm.weights_) + X @ np.log(bm.means_).T + (1 - X) @ np.log(1 - bm.means_).T
    np.testing.assert_allclose(bm.score_samples(binary_digits), logsumexp(log_joint, axis=1), rtol=1e-10)
    proba = bm.predict_proba(binary_digits)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(bm.predict(binary_digits), log_joint.argmax(axis=1))
    n_params = 5 * 64 + 4
    ll = logsumexp(log_joint, axis=1).sum()
    assert bm.bic(binary_digits) == pytest.approx(-2 * ll + n_params * np.log(len(X)), rel=1e-10)
    assert bm.aic(binary_digits) == pytest.approx(-2 * ll + 2 * n_params, rel=1e-10)
    Xs, ys = bm.sample(5000)
    assert Xs.shape == (5000, 64) and set(np.unique(Xs)) <= {0, 1}
    lazy = bm.predict_proba(da.from_array(binary_digits, chunks=(500, 64)))
    assert isinstance(lazy, da.Array)
    np.testing.assert_allclose(lazy.compute(), proba)


def test_integer_weights_equal_repeated_rows(binary_digits):
    w = np.random.default_rng(3).integers(0, 3, len(binary_digits))
    w0, p0 = _start(binary_digits, 4, 4)
    a = emdask.BernoulliMixture(4, weights_init=w0, means_init=p0, tol=1e-9, max_iter=300).fit(
        binary_digits, sample_weight=w
    )
    b = emdask.BernoulliMixture(4, weights_init=w0, means_init=p0, tol=1e-9, max_iter=300).fit(
        np.repeat(binary_digits, w, axis=0)
    )
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-9)


def test_bic_picks_the_true_number_of_components():
    rng = np.random.default_rng(5)
    true_p = rng.beta(0.3, 0.3, (3, 25))
    X = (rng.random((6000, 25)) < true_p[rng.choice(3, 6000)]).astype(np.uint8)
    best, table = emdask.select_by_bic(X, [1, 2, 3, 4, 5], estimator=emdask.BernoulliMixture, n_init=2, random_state=0)
    assert best.n_components == 3, table


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"alpha": -0.5}, r"alpha must be a finite number >= 0.0"),
        ({"init_params": "kmeans"}, r"init_params must be one of 'k-means\+\+', 'random'"),
        ({"means_init": np.ones((3, 64))}, r"means_init must hold probabilities strictly between 0 and 1"),
        ({"weights_init": np.ones(2)}, r"weights_init must have shape \(3,\)"),
    ],
)
def test_bad_parameters(binary_digits, kwargs, match):
    with pytest.raises(ValueError, match=match):
        emdask.BernoulliMixture(3, **kwargs).fit(binary_digits)


@pytest.mark.slow
def test_same_model_on_a_two_process_cluster(distributed_client, binary_digits):
    w0, p0 = _start(binary_digits, 6, 6)
    local = emdask.BernoulliMixture(6, weights_init=w0, means_init=p0, tol=1e-8, max_iter=300).fit(binary_digits)
    remote = emdask.BernoulliMixture(6, weights_init=w0, means_init=p0, tol=1e-8, max_iter=300).fit(
        da.from_array(binary_digits, chunks=(250, 64))
    )
    assert remote.n_iter_ == local.n_iter_
    np.testing.assert_allclose(remote.means_, local.means_, rtol=1e-10)
