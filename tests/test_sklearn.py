"""emdask's estimators as scikit-learn's own tools see them: its estimator checks, model selection, pipelines,
output containers, exceptions and warnings, and input as scikit-learn takes it."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.cluster import KMeans as SkKMeans
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator
from sklearn.utils.validation import check_is_fitted

import emdask

#: The checks that scikit-learn 1.9's own KMeans fails too: fitting with integer sample weights is not the same as
#: fitting repeated rows, because the random start draws rows (each weighted row once, not once per repeat).
#: emdask's KMeans and GaussianMixture (which, unlike scikit-learn's, takes sample_weight) fail them for that reason.
AS_SCIKIT_LEARN_FAILS = {
    "check_sample_weight_equivalence_on_dense_data", "check_sample_weight_equivalence_on_sparse_data",
}

#: The checks a BernoulliMixture fails because scikit-learn's checks draw continuous data, and a Bernoulli mixture
#: is defined on 0/1 values only: each gets emdask's one-line error naming the first non-binary value (so does
#: check_fit2d_1feature, which waits for an error about its single feature, and check_positive_only_tag_during_fit).
BERNOULLI_CONTINUOUS_DATA = {
    "check_dict_unchanged", "check_dont_overwrite_parameters", "check_dtype_object", "check_estimators_dtypes",
    "check_estimators_fit_returns_self", "check_estimators_nan_inf", "check_estimators_overwrite_params",
    "check_estimators_pickle", "check_f_contiguous_array_estimator", "check_fit2d_1feature", "check_fit2d_predict1d",
    "check_fit_check_is_fitted", "check_fit_idempotent", "check_fit_score_takes_y",
    "check_methods_sample_order_invariance", "check_methods_subset_invariance", "check_n_features_in",
    "check_n_features_in_after_fitting", "check_pipeline_consistency", "check_positive_only_tag_during_fit",
    "check_readonly_memmap_input", "check_sample_weight_equivalence_on_dense_data", "check_sample_weights_list",
    "check_sample_weights_not_an_array", "check_sample_weights_not_overwritten", "check_sample_weights_pandas_series",
    "check_sample_weights_shape",
}


def _failing(estimator) -> set[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(estimator, on_fail=None)
    return {r["check_name"] for r in results if r["status"] == "failed"}


@pytest.mark.parametrize(
    "estimator",
    [emdask.KMeans(n_clusters=3, init="k-means++", random_state=0), emdask.GaussianMixture(2, random_state=0)],
    ids=["KMeans", "GaussianMixture"],
)
def test_check_estimator_passes_all_but_what_scikit_learn_fails_itself(estimator):
    assert _failing(estimator) <= AS_SCIKIT_LEARN_FAILS
    assert _failing(SkKMeans(3, random_state=0)) == AS_SCIKIT_LEARN_FAILS  # still so in this scikit-learn


def test_bernoulli_mixture_fails_only_the_checks_that_feed_it_continuous_data():
    assert _failing(emdask.BernoulliMixture(n_components=2, random_state=0)) <= BERNOULLI_CONTINUOUS_DATA


def test_model_selection_pipelines_and_output_containers():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(60, 2)), rng.normal(size=(60, 2)) + 5])
    search = GridSearchCV(emdask.GaussianMixture(random_state=0), {"n_components": [1, 2, 3]}, cv=3).fit(X)
    assert search.best_params_["n_components"] >= 2
    assert cross_val_score(emdask.KMeans(2, init="k-means++", random_state=0), X, cv=3).shape == (3,)
    pipe = make_pipeline(StandardScaler(), emdask.KMeans(2, init="k-means++", random_state=0)).fit(X)
    assert set(pipe.predict(X)) == {0, 1}
    km = clone(pipe[-1]).set_output(transform="pandas")
    distances = km.fit_transform(X)
    assert list(distances.columns) == ["kmeans0", "kmeans1"] and distances.shape == (120, 2)
    np.testing.assert_array_equal(km.fit_predict(X), km.labels_)
    assert km.labels_.dtype.kind == "i"
    assert emdask.GaussianMixture(2, random_state=0).fit(X).predict(X).dtype == np.int64
    check_is_fitted(km)


def test_scikit_learn_exceptions_and_warnings_catch_emdask_ones():
    with pytest.raises(NotFittedError):
        emdask.KMeans().predict(np.zeros((3, 2)))
    X = np.random.default_rng(0).normal(size=(50, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=ConvergenceWarning)  # scikit-learn's filter covers emdask's
        emdask.GaussianMixture(3, max_iter=1, random_state=0).fit(X)


def test_input_as_scikit_learn_takes_it():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(50, 3)), rng.normal(size=(50, 3)) + 4])
    reference = emdask.KMeans(2, init="k-means++", random_state=0).fit(X)
    for variant in (X.astype(">f8"), X.astype(np.float16), X.astype(">f4")):
        model = emdask.KMeans(2, init="k-means++", random_state=0).fit(variant)
        np.testing.assert_array_equal(model.predict(variant), reference.predict(X))
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    model = emdask.KMeans(2, init="k-means++", random_state=0).fit(frame)
    assert list(model.feature_names_in_) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="feature names"):
        model.predict(frame[["c", "b", "a"]])  # reordered columns are refused, not silently mislabelled
    nullable = pd.DataFrame({"a": pd.array([1, 2, 3, 4], dtype="Int64"), "b": pd.array([0, 1, 0, 1], dtype="Int64")})
    assert emdask.KMeans(2, init="k-means++", random_state=0).fit(nullable).n_features_in_ == 2
    with pytest.raises(ValueError, match="NaN"):
        emdask.KMeans(2, init="k-means++").fit(nullable.astype("Float64").mask(nullable == 2))
    with pytest.raises(ValueError, match="complex"):
        emdask.KMeans(2).fit(X.astype(complex))
    import scipy.sparse

    with pytest.raises(ValueError, match="sparse"):
        emdask.KMeans(2).fit(scipy.sparse.csr_matrix(X))


def test_bernoulli_mixture_checks_every_input_and_takes_alpha_zero():
    rng = np.random.default_rng(0)
    X = (rng.random((200, 6)) < np.where(np.arange(200)[:, None] < 100, 0.9, 0.1)).astype(float)
    X[:100, 0] = 1  # a feature constant within a component: maximum likelihood gives it probability exactly 1
    model = emdask.BernoulliMixture(2, alpha=0.0, random_state=0).fit(X)
    assert np.isfinite(model.lower_bound_) and np.all(np.isfinite(model.predict_proba(X)))
    assert {0.0, 1.0} & set(np.round(model.means_[:, 0], 12))
    bad = np.array([[5.0, -3, 0.5, 7, 0, 1]])
    for method in ("predict", "predict_proba", "score_samples", "score", "bic"):
        with pytest.raises(ValueError, match="must be binary"):
            getattr(model, method)(bad)


def test_saved_model_keeps_its_column_names(tmp_path):
    frame = pd.DataFrame(np.random.default_rng(0).normal(size=(40, 2)), columns=["x", "y"])
    emdask.KMeans(2, init="k-means++", random_state=0).fit(frame).save(tmp_path / "m.zarr")
    loaded = emdask.load(tmp_path / "m.zarr")
    assert list(loaded.feature_names_in_) == ["x", "y"]
    with pytest.raises(ValueError, match="feature names"):
        loaded.predict(frame[["y", "x"]])


def test_what_a_scikit_learn_user_passes_means_the_same(tmp_path):
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(200, 2)), rng.normal(size=(200, 2)) + 3])
    km = emdask.KMeans(3, n_init="auto", random_state=np.random.RandomState(0)).fit(X)
    km.save(tmp_path / "km.zarr")  # a RandomState is not kept (the fitted model does not depend on it)
    np.testing.assert_array_equal(emdask.load(tmp_path / "km.zarr").predict(X), km.predict(X))
    with pytest.raises(ValueError, match="init may not be a callable"):
        emdask.KMeans(3, init=lambda X, k, random_state: X[:k]).fit(X)
    # a warm start carries its bound: one iteration per fit converges as scikit-learn's does
    ours = emdask.GaussianMixture(2, max_iter=1, warm_start=True, random_state=0)
    theirs = SkGaussianMixture(2, max_iter=1, warm_start=True, random_state=0)
    calls = []
    for model in (ours, theirs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            calls.append(next(i for i in range(1, 50) if model.fit(X).converged_))
    assert calls[0] <= calls[1] + 1 and calls[0] < 10
    assert len(ours.lower_bounds_) == 1 and ours.lower_bounds_[0] == ours.lower_bound_


def test_models_scored_together_use_each_ones_standardisation_or_refuse():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(100, 2)), rng.normal(size=(100, 2)) + 4]) * 10 + 50
    Xs = (X - X.mean(axis=0)) / X.std(axis=0)
    plain = emdask.GaussianMixture(2, random_state=0).fit(Xs)
    scaled = clone(plain).fit(Xs).with_input_scaling(X.mean(axis=0), X.std(axis=0))
    assert scaled.score(X) == pytest.approx(plain.score(Xs), rel=1e-12)  # raw rows in, as the model was fitted
    assert emdask.bic_of([scaled, scaled], X)[0] == pytest.approx(plain.bic(Xs), rel=1e-12)
    with pytest.raises(ValueError, match="standardise their input differently"):
        emdask.bic_of([scaled, plain], X)
