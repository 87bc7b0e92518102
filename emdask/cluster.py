"""``emdask.KMeans``: exact K-means on chunked data, with the scikit-learn estimator surface."""
from __future__ import annotations

import logging
from typing import Any, Self

import dask.array as da
import numpy as np
from sklearn.base import ClassNamePrefixFeaturesOutMixin, ClusterMixin, TransformerMixin

from emdask._base import BaseEstimator, ConvergenceWarning, Plan, warn
from emdask._linalg import nearest, sq_distances
from emdask._random import RandomState
from emdask._validation import (
    as_weights,
    block_offset,
    check_choice,
    check_finite_chunk,
    check_float,
    check_int,
    describe,
)
from emdask.engine import Cache, ChunkedData, FitResult, Passes, Summary
from emdask.errors import InputError
from emdask.init import initial_centres, warm_up
from emdask.kmeans import KMeansModel

logger = logging.getLogger("emdask")

_INITS = ("k-means||", "k-means++", "random")


class KMeans(ClusterMixin, TransformerMixin, ClassNamePrefixFeaturesOutMixin, BaseEstimator):
    """K-means clustering (Lloyd's algorithm) of data larger than memory, one pass over the data per iteration.

    Parameters
    ----------
    n_clusters : int
        Number of centres K.
    init : {"k-means||", "k-means++", "random"} or array of shape (n_clusters, n_features)
        ``"k-means||"`` (default): scalable k-means|| over all the data (``init_rounds`` passes plus
        one).  ``"k-means++"`` and ``"random"``: on a weighted random sample of
        ``init_sample_size`` rows drawn in the first pass (the whole data when it is smaller),
        then refined by Lloyd on that sample in memory (a warm-up), so the exact passes start near
        a fixed point.  An array: these centres, as given.
    n_init : int or "auto"
        Restarts from different initialisations; the one with the lowest inertia is kept.  ``"auto"``
        as scikit-learn: 10 for ``init="random"``, else 1.
    max_iter : int
        Maximum Lloyd iterations (passes) per restart.
    tol : float
        Convergence when the sum of squared centre shifts is at most ``tol`` times the mean
        feature variance of the data (scikit-learn's definition).
    random_state : None, int or numpy.random.Generator
        Seed; a given seed gives the same result on every scheduler.
    cache : {"auto", True, False}
        Hold the data in cluster memory between passes (``True``) or re-read it from its source
        on each pass (``False``); ``"auto"`` caches only when it fits in half the memory of the
        active cluster (or of this machine).
    oversampling_factor, init_rounds : float, int
        k-means|| draws about ``oversampling_factor * n_clusters`` candidates in each of
        ``init_rounds`` rounds (5 by default, as Bahmani et al.; Spark's 2 rounds gave 3-4% worse
        final inertia on photos here).  Each round is a pass whose distance work grows with the
        candidates: on a 0.25-gigapixel set the 5 rounds cost about 30 K-means passes.
    init_sample_size : int or None
        Rows sampled for ``"k-means++"`` and ``"random"``; default ``max(20000, 100 * n_clusters)``.
    checkpoint : str or None
        A local Zarr path: the fit's state is saved there after every iteration, and a fit of the
        same data with the same parameters resumes from it (after a crash, a kill or a retry).
        It is removed when the fit ends; one from another fit is an error.

    Attributes
    ----------
    cluster_centers_ : ndarray (n_clusters, n_features), float64
    inertia_ : float
        Sum of weighted squared distances of the rows to their nearest centre.
    n_iter_ : int
    converged_ : bool
    history_ : list of dict
        Per iteration of the kept restart: ``iteration``, ``objective`` (inertia with the
        centres before that iteration's M-step), ``shift``, ``seconds``.
    labels_ : ndarray (n_samples,) int32, or a lazy Dask array
        The nearest centre of each row of the data of ``fit``: computed for NumPy (or pandas) input;
        for Dask input a lazy array (``.compute()`` or ``.persist()`` it; each reads the data once
        more), so a fit never holds a label per row of data larger than memory.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        The column names of a pandas frame given to ``fit``; ``predict`` checks them.
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: str | np.ndarray = "k-means||",
        n_init: int | str = 1,
        max_iter: int = 300,
        tol: float = 1e-4,
        random_state: RandomState = None,
        cache: Cache = "auto",
        oversampling_factor: float = 2.0,
        init_rounds: int = 5,
        init_sample_size: int | None = None,
        checkpoint: str | None = None,
    ):
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.cache = cache
        self.oversampling_factor = oversampling_factor
        self.init_rounds = init_rounds
        self.init_sample_size = init_sample_size
        self.checkpoint = checkpoint

    def _check_params(self, n_samples: int, n_features: int) -> tuple[int, np.ndarray | str, int]:
        k = check_int(self.n_clusters, "n_clusters", 1, n_samples, f"n_samples={n_samples}")
        check_int(self.max_iter, "max_iter", 1)
        # "auto" as scikit-learn: one run from a careful start (k-means||, k-means++, given centres), ten from random
        random_start = isinstance(self.init, str) and self.init == "random"
        n_init = (10 if random_start else 1) if _is_auto(self.n_init) else check_int(self.n_init, "n_init", 1)
        check_float(self.tol, "tol")
        check_choice(self.cache, "cache", ("auto", True, False))
        check_float(self.oversampling_factor, "oversampling_factor", 0.0, low_open=True)
        check_int(self.init_rounds, "init_rounds", 1)
        if self.init_sample_size is not None:
            check_int(self.init_sample_size, "init_sample_size", 1)
        if isinstance(self.init, str):
            return k, check_choice(self.init, "init", _INITS), n_init
        if callable(self.init):
            raise InputError("init may not be a callable in emdask (it would need all of X in memory): call it on "
                             "a sample and pass the centres it returns, or use 'k-means||' or 'k-means++'")
        init = np.array(self.init, dtype=np.float64, copy=True)
        if init.shape != (k, n_features):
            raise InputError(
                f"init must be an array of shape (n_clusters, n_features) = ({k}, {n_features}) "
                f"or one of {', '.join(map(repr, _INITS))}; got {describe(np.asarray(self.init))}"
            )
        if not np.isfinite(init).all():
            raise InputError("init contains NaN or infinity; expected finite centres")
        if n_init != 1:
            warn(f"init is an array of centres, so n_init={n_init} runs once", RuntimeWarning)
        return k, init, 1

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> Self:
        """Fit the centres to ``X`` (n_samples, n_features): a NumPy array or a Dask array of any row chunking.

        ``sample_weight`` (n_samples,) weighs each row in the initialisation, the assignments'
        inertia and the means.  Runs on the active Dask scheduler (a ``distributed.Client`` if one
        exists).
        """
        self._fit(X, sample_weight)
        self.labels_ = self.predict(X)
        return self

    @property
    def _n_features_out(self) -> int:
        """Columns of ``transform``: one distance per centre (``get_feature_names_out`` names them kmeans0, ...)."""
        return int(self.cluster_centers_.shape[0])

    def _validate(self, Xd: da.Array) -> tuple[int, np.ndarray | str, int]:
        return self._check_params(*Xd.shape)

    def _sample_size(self, checked: tuple[int, np.ndarray | str, int]) -> int:
        if isinstance(checked[1], np.ndarray):  # the centres are given: no sample to draw
            return 0
        return self.init_sample_size or max(20_000, 100 * checked[0])

    def _plan(self, data: Passes, summary: Summary, checked: tuple[int, np.ndarray | str, int], seed: int) -> Plan:
        k, init, n_init = checked
        model = KMeansModel(k, self.tol * float(np.mean(summary.moments.var)))

        def initial(restart: int, passes: Passes) -> np.ndarray:
            return init if isinstance(init, np.ndarray) else self._initial_centres(passes, summary, k, seed, restart)

        def final_inertia(result: FitResult, passes: Passes) -> float:
            last = result.history[-1]
            inertia = last.objective if last.shift == 0 else passes.map_reduce(model.e_step, result.params).inertia
            logger.info("inertia %.10g after %d iterations", inertia, result.n_iter)
            return float(inertia)

        return Plan(model, n_init, initial, final_inertia)

    def _finish(self, result: FitResult, score: float, n_features: int) -> None:
        self.cluster_centers_ = result.params
        self.inertia_ = score
        self.n_iter_ = result.n_iter
        self.converged_ = result.converged
        self.history_ = result.history_dicts()
        self.n_features_in_ = n_features
        distinct = len(np.unique(self.cluster_centers_, axis=0))
        if distinct < self.n_clusters:
            warn(
                f"Number of distinct clusters ({distinct}) found smaller than n_clusters ({self.n_clusters}). "
                "Possibly due to duplicate points in X.",  # scikit-learn's words, so its users' filters match
                ConvergenceWarning,
            )

    def _initial_centres(self, data: Passes, summary: Summary, k: int, seed: int, restart: int) -> np.ndarray:
        method = str(self.init)
        centres = initial_centres(
            data, summary, k, method, seed, restart, oversampling=self.oversampling_factor, rounds=self.init_rounds
        )
        # k-means|| already ends with Lloyd on its weighted candidates; a sample start gets it here
        return centres if method == "k-means||" else warm_up(summary, centres)

    _fitted_attribute = "cluster_centers_"
    _fitted_arrays = ("cluster_centers_",)
    _array_dimensions = {"cluster_centers_": ("cluster", "feature")}
    _fitted_scalars = ("inertia_", "n_iter_", "converged_", "n_features_in_")

    def predict(self, X: Any) -> np.ndarray | da.Array:
        """Index of the nearest centre of each row: a NumPy array for NumPy input, a lazy Dask array for Dask input."""
        Xd, in_memory = self._rows(X)
        labels = da.map_blocks(_labels_chunk, Xd, self.cluster_centers_, drop_axis=1, dtype=np.int32)
        return labels.compute() if in_memory else labels

    def transform(self, X: Any) -> np.ndarray | da.Array:
        """Euclidean distances (n_samples, n_clusters) of each row to every centre."""
        Xd, in_memory = self._rows(X)
        k = self.n_clusters
        dist = da.map_blocks(_distances_chunk, Xd, self.cluster_centers_, chunks=(Xd.chunks[0], (k,)), dtype=np.float64)
        return dist.compute() if in_memory else dist

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Minus the inertia of ``X`` with the fitted centres (higher is better)."""
        Xd, _ = self._rows(X)
        data = ChunkedData(Xd, as_weights(sample_weight, Xd), cache=False)
        return -data.map_reduce(_scored_chunk, self.cluster_centers_).inertia


def _is_auto(value: Any) -> bool:
    return isinstance(value, str) and value == "auto"


def _scored_chunk(x: np.ndarray, w: np.ndarray | None, offset: int, centres: np.ndarray) -> Any:
    check_finite_chunk(x, offset, "X")
    return KMeansModel(len(centres)).e_step(x, w, offset, centres)


def _labels_chunk(x: np.ndarray, centres: np.ndarray, block_info: dict[Any, Any] | None = None) -> np.ndarray:
    check_finite_chunk(x, block_offset(block_info), "X")
    return nearest(x, centres)[0].astype(np.int32)


def _distances_chunk(x: np.ndarray, centres: np.ndarray, block_info: dict[Any, Any] | None = None) -> np.ndarray:
    check_finite_chunk(x, block_offset(block_info), "X")
    return np.sqrt(sq_distances(x, centres).astype(np.float64))
