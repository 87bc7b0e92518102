"""The scikit-learn estimator conventions: parameters are the ``__init__`` arguments, stored as given."""
from __future__ import annotations

import inspect
from typing import Any, Self

import dask.array as da

from emdask._validation import as_rows


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
