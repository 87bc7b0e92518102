"""emdask: exact out-of-core Expectation-Maximization (K-means, Gaussian and Bernoulli mixtures) on Dask.

The names below load on first use (PEP 562): a Dask worker that runs a chunk of an image set imports
``emdask.codebooks``, not the estimators and scikit-learn with them (about a second per process).
"""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_HOME = {
    "BernoulliMixture": "emdask.mixture", "GaussianMixture": "emdask.mixture", "bic_of": "emdask.mixture",
    "select_by_bic": "emdask.mixture", "KMeans": "emdask.cluster", "ConvergenceWarning": "emdask._base",
    "NotFittedError": "emdask._base", "fit_together": "emdask._base", "InputError": "emdask.errors",
    "load": "emdask.kinds", "StoreError": "emdask.store",
}
__all__ = [
    "BernoulliMixture", "ConvergenceWarning", "GaussianMixture", "InputError", "KMeans", "NotFittedError", "StoreError",
    "__version__", "bic_of", "fit_together", "load", "select_by_bic",
]

if TYPE_CHECKING:
    from emdask._base import ConvergenceWarning, NotFittedError, fit_together
    from emdask.cluster import KMeans
    from emdask.errors import InputError
    from emdask.kinds import load
    from emdask.mixture import BernoulliMixture, GaussianMixture, bic_of, select_by_bic
    from emdask.store import StoreError


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'emdask' has no attribute {name!r}")
    value = getattr(import_module(_HOME[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOME])
