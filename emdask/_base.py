"""The scikit-learn estimator conventions: parameters are the ``__init__`` arguments, stored as given."""
from __future__ import annotations

import inspect
import os
import sys
import warnings
from collections.abc import Sequence
from functools import partial
from typing import Any, Self

import dask.array as da

from emdask._validation import as_rows, as_weights


class BaseEstimator:
    """``get_params`` / ``set_params`` / ``repr`` from the constructor's signature."""

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return sorted(p.name for p in sig.parameters.values() if p.name != "self" and p.kind != p.VAR_KEYWORD)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor parameters and their current values."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Self:
        """Set constructor parameters by name; unknown names are an error."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"{type(self).__name__} has no parameter {name!r}; valid parameters: {', '.join(valid)}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {
            p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values() if p.name != "self"
        }
        changed = [
            f"{k}={v!r}" for k, v in self.get_params().items() if not (v is defaults.get(k) or _same(v, defaults.get(k)))
        ]
        return f"{type(self).__name__}({', '.join(changed)})"

    cache: Any

    def _validate(self, Xd: da.Array) -> Any:
        """Check the parameters against the data's shape before any pass; returns what ``_fit_on`` needs."""
        raise NotImplementedError

    def _fit_on(self, data: Any, Xd: da.Array, weights: da.Array | None, checked: Any) -> Self:
        """Fit with every pass over the data made through ``data`` (a ``ChunkedData`` or shared passes)."""
        raise NotImplementedError

    def _fit(self, X: Any, sample_weight: Any) -> Self:
        data, Xd, w, (checked,) = _prepared([self], X, sample_weight)
        return self._fit_on(data, Xd, w, checked)

    _fitted_attribute: str = ""
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

        return Checkpoint(path, fingerprint(self, X, weights))

    def save(self, store: Any, *, overwrite: bool = False) -> None:
        """Write the fitted model to a Zarr store (a path, a ``.zip`` path, an fsspec URL or a Store); see ``emdask.load``.

        The store appears complete or not at all; an existing one is replaced only with ``overwrite=True``.
        """
        from emdask.store import save_model

        save_model(self, store, overwrite=overwrite)

    def _check_fitted(self) -> None:
        if not hasattr(self, self._fitted_attribute):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X) first")

    def _rows(self, X: Any) -> tuple[da.Array, bool]:
        """``X`` for a fitted model: validated rows with as many features as in ``fit``, and whether it was in memory."""
        self._check_fitted()
        Xd, in_memory = as_rows(X)
        if Xd.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {Xd.shape[1]} features, but this {type(self).__name__} was fitted with {self.n_features_in_}"
            )
        return Xd, in_memory


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(type(a) is type(b) and a == b)
    except Exception:
        return False


class NotFittedError(ValueError, AttributeError):
    """Raised when a model is used before ``fit``."""


class ConvergenceWarning(UserWarning):
    """A fit ended in a state the user should know about (not converged, fewer distinct clusters)."""


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
        raise ValueError("estimators must hold at least one estimator; got none")
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
    checked = [e._validate(Xd) for e in estimators]
    return ChunkedData(Xd, w, cache=estimators[0].cache), Xd, w, checked


def _fit_member(estimator: BaseEstimator, Xd: da.Array, w: da.Array | None, checked: Any, data: Any) -> BaseEstimator:
    return estimator._fit_on(data, Xd, w, checked)
