"""The scikit-learn estimator conventions: parameters are the ``__init__`` arguments, stored as given."""
from __future__ import annotations

import os
import sys
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Self

import dask.array as da
import numpy as np
import sklearn.exceptions
from sklearn.base import BaseEstimator as SklearnBaseEstimator
from sklearn.utils.validation import validate_data

from emdask._validation import as_rows, as_weights
from emdask.errors import InputError


def axis_names(key: str, ndim: int) -> list[str]:
    """Names for the axes of an array with no shared meaning: ``<key>_0``, ``<key>_1``, ..."""
    return [f"{key.rstrip('_')}_{i}" for i in range(ndim)]


@dataclass(frozen=True)
class Plan:
    """How an estimator fits: its model, its restarts, each restart's start (``initial(restart, passes)``) and the
    score (lowest kept) of a finished restart (``score(result, passes)``); both make their passes through ``passes``."""

    model: Any
    n_init: int
    initial: Callable[[int, Any], Any]
    score: Callable[[Any, Any], float]


class BaseEstimator(SklearnBaseEstimator, ABC):
    """A scikit-learn estimator (``get_params``, ``set_params``, ``clone``, tags, ``repr``), with emdask's fit."""

    cache: Any
    random_state: Any
    max_iter: int
    #: What the first pass rejects besides NaN and infinity (the Bernoulli mixture: non-binary values).
    _check_chunk: Any = None

    @abstractmethod
    def _validate(self, Xd: da.Array) -> Any:
        """Check the parameters against the data's shape before any pass; returns what ``_plan`` needs."""

    @abstractmethod
    def _sample_size(self, checked: Any) -> int:
        """Rows of the first pass's random sample (for initialisations)."""

    @abstractmethod
    def _plan(self, data: Any, summary: Any, checked: Any, seed: int) -> Plan:
        """The model, the number of restarts, each restart's start and the score that picks the restart to keep."""

    @abstractmethod
    def _finish(self, result: Any, score: float, n_features: int) -> None:
        """Set the fitted attributes from the kept restart."""

    def _fit_on(self, data: Any, Xd: da.Array, weights: da.Array | None, checked: Any) -> Self:
        """Fit with every pass over the data made through ``data`` (a ``ChunkedData`` or shared passes): the first
        pass (checks, moments, sample), the restarts (resumable from a checkpoint), the best kept."""
        from emdask._random import make_seed
        from emdask.engine import fit_restarts, summarize

        seed = make_seed(self.random_state)
        summary = summarize(data, seed, self._sample_size(checked), type(self)._check_chunk)
        plan = self._plan(data, summary, checked, seed)
        checkpoint = self._checkpoint(Xd, weights)
        result, score = fit_restarts(plan.model, data, plan.n_init, plan.initial, self.max_iter, plan.score, checkpoint)
        if checkpoint is not None:
            checkpoint.remove()
        self._finish(result, score, Xd.shape[1])
        return self

    def _fit(self, X: Any, sample_weight: Any) -> Self:
        self.__dict__.pop("input_scaling_", None)
        data, Xd, w, (checked,) = _prepared([self], X, sample_weight)
        return self._fit_on(data, Xd, w, checked)

    _fitted_attribute: str = ""
    #: The class of the model's parameters between iterations (what a checkpoint stores); None: an array.
    _params_class: type | None = None
    #: Fitted arrays and scalars that ``save`` writes and ``emdask.load`` restores.
    _fitted_arrays: tuple[str, ...] = ()
    _fitted_scalars: tuple[str, ...] = ()
    n_features_in_: int
    history_: list[dict[str, float]]

    def _checkpoint(self, X: Any, weights: Any) -> Any:
        """The :class:`emdask.checkpoint.Checkpoint` of this fit, if the ``checkpoint`` parameter names one."""
        path = getattr(self, "checkpoint", None)
        if path is None:
            return None
        from emdask.checkpoint import Checkpoint, fingerprint

        return Checkpoint(path, fingerprint(self, X, weights), self._params_class)

    def save(self, store: Any, *, overwrite: bool = False, storage_options: dict[str, Any] | None = None) -> None:
        """Write the fitted model to a Zarr store (a path, a ``.zip`` path, an fsspec URL or a Store).

        The store appears complete or not at all; an existing one is replaced only with ``overwrite=True``.
        Its fitted arrays are Zarr arrays with dimension names (``xarray.open_zarr`` opens it); its
        parameters, fitted scalars and history are JSON attributes.  ``storage_options`` (endpoint,
        credentials) are for an fsspec URL.
        """
        from emdask import __version__
        from emdask.store import SCHEMA_VERSION, at, mark_complete, to_json, write_group

        self._check_fitted()
        params: dict[str, Any] = {}
        array_params: dict[str, np.ndarray] = {}
        for key, value in self.get_params().items():
            if isinstance(value, np.ndarray) or (
                isinstance(value, (list, tuple)) and value and not isinstance(value[0], str)
            ):
                array_params[key] = np.asarray(value)
            elif isinstance(value, (np.random.Generator, np.random.RandomState)):
                params[key] = None  # a Generator's state is not kept; the fitted model does not depend on it
            else:
                params[key] = to_json(value)
        meta = {
            "kind": type(self).__name__,
            "schema_version": SCHEMA_VERSION,
            "emdask_version": __version__,
            "params": params,
            "fitted": {key: to_json(getattr(self, key)) for key in (*self._fitted_scalars, "feature_names_in_")
                       if hasattr(self, key)},
            "history": to_json(self.history_),
        }
        with write_group(at(store, storage_options), overwrite=overwrite, meta=meta) as group:
            for key in self._fitted_arrays:
                value = np.ascontiguousarray(getattr(self, key))
                group.create_array(key, data=value, dimension_names=self._dimensions(key, value.ndim))
            for key, value in array_params.items():
                group.create_array(f"params/{key}", data=value, dimension_names=axis_names(key, value.ndim))
            scaling = getattr(self, "input_scaling_", None)
            if scaling is not None:  # the standardisation every method applies to raw rows
                for key, value in zip(("mean", "std"), scaling):
                    group.create_array(f"input_scaling/{key}", data=value, dimension_names=["feature"])
            mark_complete(group)

    #: The dimension names of each fitted array (its leading ones when it has fewer axes).
    _array_dimensions: dict[str, tuple[str, ...]] = {}

    def _dimensions(self, key: str, ndim: int) -> list[str]:
        """The dimension names of the fitted array ``key`` with ``ndim`` axes: shared names (``component``,
        ``feature``) line the arrays up in xarray."""
        names = self._array_dimensions.get(key)
        return list(names[:ndim]) if names is not None and len(names) >= ndim else axis_names(key, ndim)

    @classmethod
    def _from_group(cls, group: Any, meta: dict[str, Any], target: Any) -> Self:
        """The model that ``save`` wrote into ``group`` (its ``emdask`` attributes are ``meta``)."""
        from emdask.store import read_array

        params = dict(meta.get("params", {}))
        if "params" in group:
            for key in group["params"].array_keys():
                params[key] = read_array(group, f"params/{key}", target)
        model = cls(**params)
        for key in cls._fitted_arrays:
            setattr(model, key, read_array(group, key, target))
        for key, value in meta.get("fitted", {}).items():
            setattr(model, key, np.asarray(value, dtype=object) if key == "feature_names_in_" else value)
        model.history_ = meta.get("history", [])
        if "input_scaling" in group:
            mean, std = (read_array(group, f"input_scaling/{key}", target) for key in ("mean", "std"))
            model.input_scaling_ = (mean, std)
        return model

    def _check_fitted(self) -> None:
        if not hasattr(self, self._fitted_attribute):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with appropriate "
                                 "arguments before using this estimator.")  # scikit-learn's words

    def _rows(self, X: Any) -> tuple[da.Array, bool]:
        """``X`` for a fitted model: validated rows with the features of ``fit`` (their number, and their names
        for a pandas frame, checked as scikit-learn checks them), and whether it was in memory."""
        self._check_fitted()
        Xd, in_memory = as_rows(X)
        validate_data(self, X, skip_check_array=True, reset=False)
        scaling = getattr(self, "input_scaling_", None)
        if scaling is not None:  # raw rows in, standardised rows to the model
            Xd = (Xd.astype(np.float64) - scaling[0]) / scaling[1]
        return Xd, in_memory

    def with_input_scaling(self, mean: Any, std: Any) -> Self:
        """Declare that this fitted model was fitted to ``(X - mean) / std``: from now on (and once saved and
        loaded) every method takes raw rows and standardises them first.  A new ``fit`` forgets it."""
        self._check_fitted()
        mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
        if mean.shape != (self.n_features_in_,) or std.shape != mean.shape or not np.all(std > 0):
            raise InputError(f"mean and std must be ({self.n_features_in_},) with std > 0; got {mean.shape} and "
                             f"{std.shape}")
        self.input_scaling_ = (mean, std)
        return self


class NotFittedError(sklearn.exceptions.NotFittedError):
    """Raised when a model is used before ``fit`` (scikit-learn's, so ``except NotFittedError`` of either works)."""


class ConvergenceWarning(sklearn.exceptions.ConvergenceWarning):
    """A fit ended in a state the user should know about (not converged, fewer distinct clusters); a filter on
    scikit-learn's ConvergenceWarning covers it."""


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn(message: str, category: type[Warning]) -> None:
    """``warnings.warn`` attributed to the first frame outside emdask (the user's ``fit`` call),
    however many of emdask's own calls lie between, so no stack depth is counted by hand."""
    frame, level = sys._getframe(1), 2
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def fit_together(estimators: Sequence[BaseEstimator], X: Any, sample_weight: Any = None) -> list[BaseEstimator]:
    """Fit several estimators to the same data, sharing every pass: each chunk is read once per pass
    for all of them, and each ends exactly as its own ``fit`` (checkpoints included).

    For a grid of K, restarts or model kinds, an I/O-bound fit costs about its longest member.
    The data is cached (or not) as the first estimator's ``cache`` says.
    """
    from emdask.engine import run_shared

    if not estimators:
        raise InputError("estimators must hold at least one estimator; got none")
    data, Xd, w, checked = _prepared(estimators, X, sample_weight)
    return run_shared(data, [partial(_fit_member, e, Xd, w, c) for e, c in zip(estimators, checked)])


def _prepared(
    estimators: Sequence[BaseEstimator], X: Any, sample_weight: Any
) -> tuple[Any, da.Array, da.Array | None, list[Any]]:
    """The data's passes, its rows and weights as Dask arrays, and each estimator's checked parameters.

    Every parameter error is raised here, before the first pass; the data is cached (or not) as
    the first estimator's ``cache`` says.
    """
    from emdask.engine import ChunkedData

    Xd, _ = as_rows(X)
    w = as_weights(sample_weight, Xd)
    for e in estimators:
        validate_data(e, X, skip_check_array=True, reset=True)  # n_features_in_, and feature_names_in_ of a frame
    checked = [e._validate(Xd) for e in estimators]
    return ChunkedData(Xd, w, cache=estimators[0].cache), Xd, w, checked


def _fit_member(estimator: BaseEstimator, Xd: da.Array, w: da.Array | None, checked: Any, data: Any) -> BaseEstimator:
    return estimator._fit_on(data, Xd, w, checked)
