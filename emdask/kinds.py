"""The model kinds, in one place: a new kind is one model file, one estimator and one line here.

Storage, checkpoints and the flows go through this registry; none of them names an estimator.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emdask._base import BaseEstimator
from emdask.cluster import KMeans
from emdask.errors import InputError
from emdask.mixture import BernoulliMixture, GaussianMixture
from emdask.store import Target, at, read_snapshot


@dataclass(frozen=True)
class Kind:
    """A model kind: its short name (flows, command lines), its estimator, the constructor's K and whether it
    has a likelihood (so candidates of K compare by BIC)."""

    name: str
    estimator: type[BaseEstimator]
    k_param: str
    likelihood: bool

    def make(self, k: int, **params: Any) -> BaseEstimator:
        """An estimator of this kind with K clusters or components; ``params`` it does not take are left out."""
        names = set(self.estimator().get_params())
        return self.estimator(**{self.k_param: k}, **{key: v for key, v in params.items() if key in names})

    def k_of(self, estimator: BaseEstimator) -> int:
        return int(estimator.get_params()[self.k_param])


KINDS = (
    Kind("kmeans", KMeans, "n_clusters", likelihood=False),
    Kind("gmm", GaussianMixture, "n_components", likelihood=True),
    Kind("bernoulli", BernoulliMixture, "n_components", likelihood=True),
)
BY_NAME = {kind.name: kind for kind in KINDS}
_BY_CLASS = {kind.estimator.__name__: kind for kind in KINDS}


def kind_of(estimator: BaseEstimator) -> Kind:
    return _BY_CLASS[type(estimator).__name__]


def named(name: str) -> Kind:
    """The kind with this short name; an :class:`InputError` listing the kinds otherwise."""
    if name not in BY_NAME:
        raise InputError(f"model must be one of {', '.join(map(repr, BY_NAME))}; got {name!r}")
    return BY_NAME[name]


def load(target: Target, storage_options: dict[str, Any] | None = None) -> Any:
    """Read a model written by ``model.save(target)``, of any registered kind; it predicts exactly as saved.

    ``storage_options`` (endpoint, credentials) are for an fsspec URL.
    """
    target = at(target, storage_options)
    return read_snapshot(
        target, tuple(_BY_CLASS), lambda group, meta: _BY_CLASS[meta["kind"]].estimator._from_group(group, meta, target)
    )
