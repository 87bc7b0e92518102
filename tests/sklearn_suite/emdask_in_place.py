"""pytest plugin: scikit-learn's own test modules for KMeans and GaussianMixture, run with emdask's estimators put in
their place (``tests/test_sklearn_suite.py`` runs them).

The stand-ins take scikit-learn's constructor arguments: the ones emdask has mean what they mean there; ``algorithm``,
``copy_x``, ``verbose`` and ``verbose_interval`` are accepted and do nothing (emdask has one algorithm, Lloyd's, never
modifies X and reports progress through logging).
"""
from __future__ import annotations

from typing import Any

import emdask


class KMeans(emdask.KMeans):
    def __init__(self, n_clusters: int = 8, *, init: Any = "k-means++", n_init: Any = "auto", max_iter: int = 300,
                 tol: float = 1e-4, verbose: int = 0, random_state: Any = None, copy_x: bool = True,
                 algorithm: str = "lloyd") -> None:
        super().__init__(n_clusters, init=init, n_init=n_init, max_iter=max_iter, tol=tol, random_state=random_state)
        self.verbose, self.copy_x, self.algorithm = verbose, copy_x, algorithm


class GaussianMixture(emdask.GaussianMixture):
    def __init__(self, n_components: int = 1, *, covariance_type: Any = "full", tol: float = 1e-3,
                 reg_covar: float = 1e-6, max_iter: int = 100, n_init: int = 1, init_params: str = "kmeans",
                 weights_init: Any = None, means_init: Any = None, precisions_init: Any = None,
                 random_state: Any = None, warm_start: bool = False, verbose: int = 0,
                 verbose_interval: int = 10) -> None:
        super().__init__(n_components, covariance_type=covariance_type, tol=tol, reg_covar=reg_covar,
                         max_iter=max_iter, n_init=n_init, init_params=init_params, weights_init=weights_init,
                         means_init=means_init, precisions_init=precisions_init, random_state=random_state,
                         warm_start=warm_start)
        self.verbose, self.verbose_interval = verbose, verbose_interval


#: scikit-learn tests left out, by function name, and why.  Besides these, every test with sparse input: emdask fits
#: dense data, and sparse input is a one-line error that says so (tests/test_sklearn.py).
LEFT_OUT = {
    # private helpers of scikit-learn's own implementation, not part of the estimator
    "test_sample_weight_init": "calls KMeans._init_centroids",
    "test_sample_weight_zero": "calls KMeans._init_centroids",
    "test_gaussian_mixture_precisions_init": "calls GaussianMixture._set_parameters",
    "test_gaussian_mixture_all_init_does_not_estimate_gaussian_parameters": "mocks _estimate_gaussian_parameters",
    # printed progress: emdask reports progress through logging
    "test_kmeans_verbose": "verbose printing",
    # one algorithm, Lloyd's: algorithm='elkan' is accepted by the stand-in and means nothing
    "test_warning_elkan_1_cluster": "algorithm='elkan'",
    # scikit-learn's Lloyd also stops when the labels repeat; emdask stops on the centres' shift, one pass later when
    # a duplicated start re-seeds a cluster (the same centres; n_iter_ 2 instead of 1)
    "test_relocating_with_duplicates": "n_iter_ of a re-seeded start",
    # max_iter=0 (the initialisation only) is an error in emdask: a fit makes at least one pass
    "test_max_iter_zero": "max_iter=0",
    "test_init_means_not_duplicated": "max_iter=0",
    # emdask's own words for these errors and warnings, naming the argument as given (weights_init, n_samples, ...)
    "test_check_weights": "message wording",
    "test_check_means": "message wording",
    "test_check_precisions": "message wording",
    "test_gaussian_mixture_fit_convergence_warning": "message wording",
    "test_regularisation": "message wording",
    "test_sample": "message wording",
}


def _sparse(item: Any) -> bool:
    return any(word in item.name for word in ("sparse", "csr", "csc"))


def pytest_collection_modifyitems(session: Any, config: Any, items: list[Any]) -> None:
    """Every collected scikit-learn test module sees emdask's estimators under scikit-learn's names; the tests
    left out are deselected (and counted as such)."""
    left = [item for item in items if item.originalname in LEFT_OUT or _sparse(item)]
    config.hook.pytest_deselected(items=left)
    items[:] = [item for item in items if item not in left]
    for item in items:
        for name, stand_in in (("KMeans", KMeans), ("GaussianMixture", GaussianMixture)):
            if hasattr(item.module, name):
                setattr(item.module, name, stand_in)
