"""Mixture estimators with scikit-learn's surface: ``GaussianMixture`` and ``BernoulliMixture``.

Both share one fit loop (restarts, warm start, history, convergence warning) and the per-row
outputs; each supplies its model, its initialisation and its parameters.
"""
from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Self

import dask.array as da
import numpy as np
from sklearn.base import DensityMixin

from emdask._base import BaseEstimator, ConvergenceWarning, Plan, fit_together, warn
from emdask._linalg import log_responsibilities
from emdask._random import RandomState, client_rng, make_seed
from emdask._stats import Stats
from emdask._validation import as_rows, block_offset, check_choice, check_finite_chunk, check_float, check_int, describe
from emdask.bernoulli import BernoulliModel, BernoulliParams, check_binary
from emdask.engine import (
    Cache,
    ChunkCheck,
    ChunkedData,
    FitResult,
    Passes,
    Summary,
    run_em,
    run_shared,
)
from emdask.errors import InputError
from emdask.gaussian import (
    COVARIANCE_TYPES,
    CovarianceType,
    GaussianModel,
    GaussianParams,
    covariances_from_precisions,
)
from emdask.init import initial_centres
from emdask.kmeans import KMeansModel

logger = logging.getLogger("emdask")

_INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")


class _Mixture(DensityMixin, BaseEstimator):
    """The fit loop and per-row outputs shared by the mixtures; subclasses define the model maths hooks."""

    n_components: int
    max_iter: int
    n_init: int
    tol: float
    random_state: RandomState
    warm_start: bool
    cache: Cache
    #: How many ``*_init`` arrays make a complete start (then no restart needs a sample or an initial pass).
    _start_arrays: int
    _check_chunk: ChunkCheck | None = None
    weights_: np.ndarray
    means_: np.ndarray
    n_features_in_: int

    @abstractmethod
    def _model(self, n_samples: int) -> Any:
        """The model for a fit, after checking the parameters."""

    @abstractmethod
    def _model_for(self, k: int) -> Any:
        """The model with the current parameters, unchecked (for a fitted estimator)."""

    @abstractmethod
    def _given(self, k: int, d: int) -> dict[str, np.ndarray]:
        """The initial parameters the user gave (``*_init``), checked against K and the number of features."""

    @abstractmethod
    def _initial_params(
        self, data: Passes, summary: Summary, model: Any, given: dict[str, np.ndarray], seed: int, restart: int
    ) -> Any:
        """A restart's starting parameters, its passes (if any) made through ``data``."""

    @abstractmethod
    def _params(self) -> Any:
        """The fitted parameters as the model's parameter object (a warm start starts from them)."""

    @abstractmethod
    def _set_params(self, params: Any) -> None:
        """Set the fitted attributes from the model's parameter object."""

    @staticmethod
    def _init_arrays(specs: tuple[tuple[str, Any, tuple[int, ...]], ...], hint: str = "") -> dict[str, np.ndarray]:
        """The given initial parameters (name, value, shape), copied and checked; ``weights_init`` sums to 1."""
        given: dict[str, np.ndarray] = {}
        for name, value, shape in specs:
            if value is None:
                continue
            arr = np.array(value, dtype=np.float64, copy=True)
            if arr.shape != shape:
                raise InputError(f"{name} must have shape {shape}{hint}; got {describe(np.asarray(value))}")
            if not np.isfinite(arr).all():
                raise InputError(f"{name} contains NaN or infinity")
            given[name] = arr
        w = given.get("weights_init")
        if w is not None and (np.any(w < 0) or not np.isclose(w.sum(), 1.0, rtol=0, atol=1e-6)):
            raise InputError(f"weights_init must be non-negative and sum to 1; got sum {w.sum()!r}")
        return given

    def _check_common(self, n_samples: int) -> int:
        k = check_int(self.n_components, "n_components", 1, n_samples, f"n_samples={n_samples}")
        check_choice(self.cache, "cache", ("auto", True, False))
        check_int(self.max_iter, "max_iter", 1)
        check_int(self.n_init, "n_init", 1)
        check_float(self.tol, "tol")
        return k

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> Self:
        """Fit to ``X`` (n_samples, n_features), NumPy or Dask; ``sample_weight`` weighs rows in E- and M-steps."""
        return self._fit(X, sample_weight)

    def _validate(self, Xd: da.Array) -> tuple[Any, dict[str, np.ndarray]]:
        n, d = Xd.shape
        if n < 2:
            raise InputError(f"X must have at least 2 samples to fit a {type(self).__name__}; got n_samples={n} "
                             f"({describe(Xd)})")
        model = self._model(n)
        return model, self._given(model.n_components, d)

    def _sample_size(self, checked: tuple[Any, dict[str, np.ndarray]]) -> int:
        if len(checked[1]) == self._start_arrays:  # the whole start is given: no sample to draw
            return 0
        return max(20_000, 100 * checked[0].n_components)

    def _plan(self, data: Passes, summary: Summary, checked: tuple[Any, dict[str, np.ndarray]], seed: int) -> Plan:
        model, given = checked
        d = summary.moments.mean.shape[0]
        warm = self.warm_start and hasattr(self, "means_") and self.means_.shape == (model.n_components, d)

        def initial(restart: int, passes: Passes) -> Any:
            return self._params() if warm else self._initial_params(passes, summary, model, given, seed, restart)

        if warm:  # the bound carries over, so one iteration per fit converges as it would in one fit
            model = replace(model, previous_objective=self.lower_bound_)
        return Plan(model, 1 if warm else self.n_init, initial, _minus_lower_bound)

    def _finish(self, best: FitResult, score: float, n_features: int) -> None:
        """Set the fitted attributes from the kept restart; warn when it did not converge."""
        self._set_params(best.params)
        self.converged_ = best.converged
        self.n_iter_ = best.n_iter
        self.lower_bound_ = best.history[-1].objective
        self.lower_bounds_ = [h.objective for h in best.history]
        self.history_ = best.history_dicts()
        self.n_features_in_ = n_features
        if not self.converged_:
            warn(
                f"{type(self).__name__} did not converge in max_iter={self.max_iter} iterations (tol={self.tol}); "
                "increase max_iter or tol, or check the initialisation",
                ConvergenceWarning,
            )

    # -- using a fitted model ------------------------------------------------------------

    _fitted_attribute = "means_"
    _fitted_scalars = ("n_iter_", "converged_", "lower_bound_", "n_features_in_")

    def _per_row(self, X: Any, kind: str) -> np.ndarray | da.Array:
        Xd, in_memory = self._rows(X)
        model, params, k = self._model_for(len(self.weights_)), self._params(), len(self.weights_)
        check = type(self)._check_chunk
        if kind == "proba":
            out = da.map_blocks(_chunk_output, Xd, model, params, kind, check, chunks=(Xd.chunks[0], (k,)),
                                dtype=np.float64)
        else:
            dtype = np.int64 if kind == "labels" else np.float64
            out = da.map_blocks(_chunk_output, Xd, model, params, kind, check, drop_axis=1, dtype=dtype)
        return out.compute() if in_memory else out

    def predict(self, X: Any) -> np.ndarray | da.Array:
        """Most probable component of each row (lazy Dask array for Dask input)."""
        return self._per_row(X, "labels")

    def predict_proba(self, X: Any) -> np.ndarray | da.Array:
        """Responsibilities (n_samples, n_components)."""
        return self._per_row(X, "proba")

    def score_samples(self, X: Any) -> np.ndarray | da.Array:
        """Log-likelihood of each row."""
        return self._per_row(X, "loglik")

    def fit_predict(self, X: Any, y: Any = None, sample_weight: Any = None) -> np.ndarray | da.Array:
        """Fit, then the most probable component of each row of ``X``."""
        return self.fit(X, sample_weight=sample_weight).predict(X)

    def score(self, X: Any, y: Any = None) -> float:
        """Mean log-likelihood per sample."""
        return mean_log_likelihoods([self], X)[0]

    def bic(self, X: Any) -> float:
        """Bayesian information criterion on ``X`` (lower is better)."""
        return bic_of([self], X)[0]

    def aic(self, X: Any) -> float:
        """Akaike information criterion on ``X`` (lower is better)."""
        n = as_rows(X)[0].shape[0]
        return -2 * self.score(X) * n + 2 * self._n_parameters()

    def _n_parameters(self) -> int:
        return int(self._model_for(len(self.weights_)).n_parameters(self.n_features_in_))

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n_samples`` rows from the fitted mixture; returns (X, component labels)."""
        self._check_fitted()
        check_int(n_samples, "n_samples", 1)
        rng = client_rng(make_seed(self.random_state), 3)
        counts = rng.multinomial(n_samples, self.weights_)
        parts = [self._draw(rng, k, int(count)) for k, count in enumerate(counts)]
        return np.vstack(parts), np.repeat(np.arange(len(counts)), counts)

    def _draw(self, rng: np.random.Generator, k: int, count: int) -> np.ndarray:
        raise NotImplementedError



class GaussianMixture(_Mixture):
    """Gaussian mixture fitted by exact EM over data larger than memory, one pass per iteration.

    Parameters follow :class:`sklearn.mixture.GaussianMixture`: ``n_components``,
    ``covariance_type`` ("full", "tied", "diag", "spherical"), ``tol`` (on the change of the mean
    log-likelihood per sample), ``reg_covar`` (added to the covariances' diagonal), ``max_iter``,
    ``n_init``, ``init_params``, ``weights_init``, ``means_init``, ``precisions_init``,
    ``random_state``, ``warm_start``.  ``cache`` and ``checkpoint`` are as in :class:`emdask.KMeans`.

    ``init_params``: "kmeans" (emdask's K-means: k-means|| then Lloyd, then one pass with each row
    given to its nearest centre), "k-means++" and "random_from_data" (centres from the first
    pass's sample, then that pass), or "random" (random responsibilities per row).  Given
    ``weights_init``, ``means_init`` and ``precisions_init`` replace what the initialisation
    estimated; with all three no initialisation pass runs.

    Attributes: ``weights_``, ``means_``, ``covariances_``, ``precisions_``,
    ``precisions_cholesky_``, ``converged_``, ``n_iter_``, ``lower_bound_`` (mean log-likelihood
    per sample at the last E-step), ``history_``, ``n_features_in_``.
    """

    _start_arrays = 3  # weights_init, means_init, precisions_init

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: CovarianceType = "full",
        tol: float = 1e-3,
        reg_covar: float = 1e-6,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "kmeans",
        weights_init: Any = None,
        means_init: Any = None,
        precisions_init: Any = None,
        random_state: RandomState = None,
        warm_start: bool = False,
        cache: Cache = "auto",
        checkpoint: str | None = None,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.cache = cache
        self.checkpoint = checkpoint

    # -- fitting -------------------------------------------------------------------------

    def _model(self, n_samples: int) -> GaussianModel:
        k = self._check_common(n_samples)
        check_choice(self.covariance_type, "covariance_type", COVARIANCE_TYPES)
        check_choice(self.init_params, "init_params", _INIT_PARAMS)
        check_float(self.reg_covar, "reg_covar")
        return self._model_for(k)

    def _model_for(self, k: int) -> GaussianModel:
        return GaussianModel(k, self.covariance_type, float(self.reg_covar), float(self.tol))

    def _given(self, k: int, d: int) -> dict[str, np.ndarray]:
        """The user's initial parameters, validated for shape and values."""
        cov_shape = {"full": (k, d, d), "tied": (d, d), "diag": (k, d), "spherical": (k,)}[self.covariance_type]
        given = self._init_arrays(
            (
                ("weights_init", self.weights_init, (k,)),
                ("means_init", self.means_init, (k, d)),
                ("precisions_init", self.precisions_init, cov_shape),
            ),
            f" for covariance_type={self.covariance_type!r}",
        )
        p = given.get("precisions_init")
        if p is not None:
            ok = np.all(p > 0) if self.covariance_type in ("diag", "spherical") else all(
                np.all(np.linalg.eigvalsh(m) > 0) and np.allclose(m, m.T) for m in (p if p.ndim == 3 else [p])
            )
            if not ok:
                raise InputError(
                    "precisions_init must be symmetric positive definite (positive for diag and spherical)"
                )
        return given

    def _initial_params(
        self,
        data: Passes,
        summary: Summary,
        model: GaussianModel,
        given: dict[str, np.ndarray],
        seed: int,
        restart: int,
    ) -> GaussianParams:
        if len(given) == self._start_arrays:
            covs, pcs = covariances_from_precisions(given["precisions_init"], model.covariance_type)
            return GaussianParams(given["weights_init"], given["means_init"], covs, pcs, model.covariance_type)
        k = model.n_components
        if self.init_params == "random":
            centres = np.repeat(summary.moments.mean[None], k, axis=0)
            stats = data.map_reduce(model.random_stats, centres, seed, 5000 + 100 * restart)
        else:
            method = {"kmeans": "k-means||", "k-means++": "k-means++", "random_from_data": "random"}[self.init_params]
            centres = initial_centres(data, summary, k, method, seed, restart)
            if self.init_params == "kmeans":
                lloyd = KMeansModel(k, 1e-4 * float(np.mean(summary.moments.var)))
                centres = run_em(lloyd, data, centres, max_iter=300).params
            stats = data.map_reduce(model.hard_stats, centres)
        est = model.parameters(stats, centres)
        covs, pcs = est.covariances, est.precisions_cholesky
        if "precisions_init" in given:
            covs, pcs = covariances_from_precisions(given["precisions_init"], model.covariance_type)
        weights = given.get("weights_init", est.weights)
        means = given.get("means_init", est.means)
        return GaussianParams(weights, means, covs, pcs, model.covariance_type)

    _fitted_arrays = ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_")
    _array_dimensions = {"weights_": ("component",), "means_": ("component", "feature")}

    def _dimensions(self, key: str, ndim: int) -> list[str]:
        """Covariances and precisions by ``covariance_type``: (component, feature, feature_t), (feature, feature_t),
        (component, feature) or (component,)."""
        if key in ("covariances_", "precisions_cholesky_", "precisions_"):
            return {"full": ["component", "feature", "feature_t"], "tied": ["feature", "feature_t"],
                    "diag": ["component", "feature"], "spherical": ["component"]}[self.covariance_type]
        return super()._dimensions(key, ndim)
    _params_class = GaussianParams

    def _draw(self, rng: np.random.Generator, k: int, count: int) -> np.ndarray:
        if self.covariance_type in ("full", "tied"):
            cov = self.covariances_[k] if self.covariance_type == "full" else self.covariances_
            return rng.multivariate_normal(self.means_[k], cov, count)
        return self.means_[k] + rng.standard_normal((count, self.n_features_in_)) * np.sqrt(self.covariances_[k])

    def _params(self) -> GaussianParams:
        return GaussianParams(
            self.weights_, self.means_, self.covariances_, self.precisions_cholesky_, self.covariance_type
        )

    def _set_params(self, params: GaussianParams) -> None:
        self.weights_ = params.weights
        self.means_ = params.means
        self.covariances_ = params.covariances
        self.precisions_cholesky_ = params.precisions_cholesky
        pc = params.precisions_cholesky
        if self.covariance_type == "full":
            self.precisions_ = np.einsum("kij,klj->kil", pc, pc)
        elif self.covariance_type == "tied":
            self.precisions_ = pc @ pc.T
        else:
            self.precisions_ = pc**2


class BernoulliMixture(_Mixture):
    """Mixture of independent Bernoulli variables for binary data (0/1, bool or uint8), by exact EM.

    Parameters
    ----------
    n_components : int
    alpha : float
        Beta(1 + alpha, 1 + alpha) prior on every probability: ``p = (sum r x + alpha) / (N_k + 2 alpha)``
        keeps probabilities strictly inside (0, 1); 1.0 is Laplace's add-one rule.  ``alpha=0`` is
        the course notes' plain maximum-likelihood EM: a feature constant within a component gets a
        probability of exactly 0 or 1, and a row holding the other value is then impossible under
        that component (log-probability about -1e300, responsibility 0), never NaN; a row
        impossible under every component has a log-likelihood near -1e300, so ``score`` says so.
    tol, max_iter, n_init, random_state, warm_start, cache
        As in :class:`GaussianMixture`; ``tol`` is on the change of ``lower_bound_``.
    init_params : {"k-means++", "random"}
        Centres by k-means++ on the first pass's sample then one pass giving each row to its
        nearest centre, or random responsibilities per row.
    weights_init : (n_components,), means_init : (n_components, n_features) probabilities in (0, 1)
        Given starting parameters (both replace the initialisation; one replaces its part).

    Attributes: ``weights_``, ``means_`` (probabilities of a 1), ``converged_``, ``n_iter_``,
    ``lower_bound_`` (mean log posterior per sample: log-likelihood plus the prior's log density,
    the quantity EM raises), ``lower_bounds_``, ``history_``, ``n_features_in_``.  Non-binary input is an
    error that names the first offending row and column, in ``fit`` and in every method that takes X.
    """

    _check_chunk = staticmethod(check_binary)
    _fitted_arrays = ("weights_", "means_")

    def __sklearn_tags__(self) -> Any:
        """Binary data is non-negative: scikit-learn's checks then know not to send negative values."""
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        return tags
    _array_dimensions = {"weights_": ("component",), "means_": ("component", "feature")}
    _params_class = BernoulliParams
    _start_arrays = 2  # weights_init, means_init

    def __init__(
        self,
        n_components: int = 1,
        *,
        alpha: float = 1.0,
        tol: float = 1e-3,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "k-means++",
        weights_init: Any = None,
        means_init: Any = None,
        random_state: RandomState = None,
        warm_start: bool = False,
        cache: Cache = "auto",
        checkpoint: str | None = None,
    ):
        self.n_components = n_components
        self.alpha = alpha
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.cache = cache
        self.checkpoint = checkpoint

    def _model(self, n_samples: int) -> BernoulliModel:
        k = self._check_common(n_samples)
        check_choice(self.init_params, "init_params", ("k-means++", "random"))
        check_float(self.alpha, "alpha", 0.0)
        return self._model_for(k)

    def _model_for(self, k: int) -> BernoulliModel:
        return BernoulliModel(k, float(self.alpha), float(self.tol))

    def _given(self, k: int, d: int) -> dict[str, np.ndarray]:
        given = self._init_arrays((("weights_init", self.weights_init, (k,)), ("means_init", self.means_init, (k, d))))
        if "means_init" in given and not np.all((given["means_init"] > 0) & (given["means_init"] < 1)):
            raise InputError("means_init must hold probabilities strictly between 0 and 1")
        return given

    def _initial_params(
        self,
        data: Passes,
        summary: Summary,
        model: BernoulliModel,
        given: dict[str, np.ndarray],
        seed: int,
        restart: int,
    ) -> BernoulliParams:
        if len(given) < self._start_arrays:
            if self.init_params == "random":
                stats = data.map_reduce(model.random_stats, seed, 5000 + 100 * restart)
            else:
                centres = initial_centres(data, summary, model.n_components, "k-means++", seed, restart)
                stats = data.map_reduce(model.hard_stats, centres)
            est = model.m_step(stats)
            return BernoulliParams(given.get("weights_init", est.weights), given.get("means_init", est.means))
        return BernoulliParams(given["weights_init"], given["means_init"])

    def _draw(self, rng: np.random.Generator, k: int, count: int) -> np.ndarray:
        return (rng.random((count, self.n_features_in_)) < self.means_[k]).astype(np.uint8)

    def _params(self) -> BernoulliParams:
        return BernoulliParams(self.weights_, self.means_)

    def _set_params(self, params: BernoulliParams) -> None:
        self.weights_ = params.weights
        self.means_ = params.means


def _chunk_output(
    x: np.ndarray, model: Any, params: Any, kind: str, check: ChunkCheck | None,
    block_info: dict[Any, Any] | None = None,
) -> np.ndarray:
    check_finite_chunk(x, block_offset(block_info), "X")
    if check is not None:  # what fit refuses, every method refuses (the Bernoulli mixture: non-binary values)
        check(x, block_offset(block_info), "X")
    logp = model.log_prob(x, params)
    if kind == "labels":
        return logp.argmax(axis=1).astype(np.int64)
    norm, resp = log_responsibilities(logp)
    return resp if kind == "proba" else norm


def select_by_bic(
    X: Any,
    n_components: Iterable[int],
    sample_weight: Any = None,
    estimator: Callable[..., _Mixture] = GaussianMixture,
    **params: Any,
) -> tuple[_Mixture, list[dict[str, float]]]:
    """Fit one mixture per candidate number of components and keep the lowest BIC.

    All candidates (and their ``n_init`` restarts) advance together (:func:`emdask.fit_together`):
    each pass over the data serves every model still running, so the grid costs about as many
    passes as its slowest member, and each model is exactly what fitting it alone gives.  Returns the best fitted
    model and a table (one dict per candidate: ``n_components``, ``bic``, ``lower_bound``,
    ``n_iter``).  ``estimator`` is :class:`GaussianMixture` (default) or
    :class:`BernoulliMixture`; ``params`` go to each one.
    """
    ks = list(n_components)
    if not ks:
        raise InputError("n_components must list at least one candidate; got none")
    models = [estimator(n_components=k, **params) for k in ks]
    fit_together(models, X, sample_weight)
    bics = bic_of(models, X)
    table = [{"n_components": k, "bic": b, "lower_bound": m.lower_bound_, "n_iter": m.n_iter_}
             for k, m, b in zip(ks, models, bics)]
    return models[int(np.argmin(bics))], table


def bic_of(models: Sequence[_Mixture], X: Any) -> list[float]:
    """``model.bic(X)`` of several fitted mixtures, from one shared pass over ``X``."""
    n = as_rows(X)[0].shape[0]
    return [-2 * score * n + m._n_parameters() * np.log(n) for m, score in zip(models, mean_log_likelihoods(models, X))]


def mean_log_likelihoods(models: Sequence[_Mixture], X: Any) -> list[float]:
    """Each fitted mixture's mean log-likelihood per row of ``X`` (``score``), from one shared pass."""
    rows = [m._rows(X)[0] for m in models]  # each checks its features (and standardises), as predict does
    scalings = [getattr(m, "input_scaling_", None) for m in models]
    if any(not _same_scaling(a, scalings[0]) for a in scalings):
        raise InputError("the models standardise their input differently; score them one at a time")
    data = ChunkedData(rows[0] if rows else as_rows(X)[0], None, cache=False, name="scoring")
    procedures = [partial(_mean_log_likelihood, m._model_for(len(m.weights_)), m._params(), type(m)._check_chunk)
                  for m in models]
    return run_shared(data, procedures)


def _same_scaling(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    return all(np.array_equal(x, y) for x, y in zip(a, b))


@dataclass(frozen=True)
class _LogLikelihood(Stats):
    total: float
    rows: float


def _log_likelihood_chunk(
    x: np.ndarray, w: np.ndarray | None, offset: int, model: Any, params: Any, check: ChunkCheck | None
) -> _LogLikelihood:
    check_finite_chunk(x, offset, "X")
    if check is not None:
        check(x, offset, "X")
    norm, _ = log_responsibilities(model.log_prob(x, params))
    return _LogLikelihood(float(norm.sum()), float(len(x)))


def _mean_log_likelihood(model: Any, params: Any, check: ChunkCheck | None, data: Passes) -> float:
    stats = data.map_reduce(_log_likelihood_chunk, model, params, check)
    return stats.total / stats.rows


def _minus_lower_bound(result: FitResult, passes: Passes) -> float:
    """The restart to keep has the highest lower bound (its last E-step's objective)."""
    return -result.history[-1].objective
