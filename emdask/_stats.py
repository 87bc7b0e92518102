"""Sufficient statistics as values.

A chunk's E-step returns a frozen dataclass of partial statistics; partials add with ``+``
(field by field), so the engine can reduce them in any tree and any order.  Besides arrays
and floats a field may be a :class:`TopK` (the rows with the largest keys, merged by
keeping the largest) or :class:`Moments` (count, mean and centred second moment, merged by
Chan's formula), both associative and commutative.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Self

import numpy as np

from emdask._kernels import column_moments, kth_largest, positions_at_least


@dataclass(frozen=True)
class Stats:
    """Base class of per-chunk statistics: ``a + b`` adds every field."""

    def __add__(self, other: Any) -> Self:
        if type(other) is not type(self):
            return NotImplemented
        return type(self)(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})


@dataclass(frozen=True)
class TopK:
    """The ``size`` rows with the largest keys seen so far.

    Ties are broken by the global row index, so the result does not depend on the chunking
    or on the order of the merges.  ``extra`` carries one value per row (e.g. a label).
    """

    size: int
    keys: np.ndarray  # (m,) float64
    index: np.ndarray  # (m,) int64 global row numbers
    rows: np.ndarray  # (m, D)
    extra: np.ndarray  # (m, E) float64

    @classmethod
    def of(
        cls,
        size: int,
        keys: np.ndarray,
        offset: int,
        rows: np.ndarray,
        extra: tuple[np.ndarray, ...] | None = None,
    ) -> TopK:
        """Keep the ``size`` largest of a chunk's rows (global index ``offset + i``); key ``-inf`` is never kept.

        ``extra`` is a tuple of per-row columns.  Selects before gathering, so passing a whole
        chunk's rows copies only ``size`` of them.
        """
        keys = np.asarray(keys, dtype=np.float64)
        candidates = _at_least_kth(keys, size)
        candidates = candidates[keys[candidates] > -np.inf]
        keep = candidates[_largest(keys[candidates], candidates, size)]
        if extra is None:
            kept_extra = np.zeros((len(keep), 0))
        else:
            kept_extra = np.stack([np.asarray(e)[keep].astype(np.float64) for e in extra], axis=1)  # no copy of e
        return cls(size, keys[keep], (offset + keep).astype(np.int64), rows[keep], kept_extra)

    def __add__(self, other: TopK) -> TopK:
        return TopK(
            self.size,
            np.concatenate([self.keys, other.keys]),
            np.concatenate([self.index, other.index]),
            np.concatenate([self.rows, other.rows]),
            np.concatenate([self.extra, other.extra]),
        )._select()

    def _select(self) -> TopK:
        return TopK.among(self.size, self.keys, self.index, self.rows, self.extra)

    @classmethod
    def among(cls, size: int, keys: np.ndarray, index: np.ndarray, rows: np.ndarray, extra: np.ndarray) -> TopK:
        """The ``size`` largest of candidate rows given with their global ``index`` (any order, no -inf keys)."""
        keep = _largest(keys, index, size)
        return cls(size, keys[keep], index[keep], rows[keep], extra[keep])


def _at_least_kth(keys: np.ndarray, size: int) -> np.ndarray:
    """Positions of the keys not below the ``size``-th largest (all of them when there are fewer)."""
    if len(keys) <= size:
        return np.arange(len(keys))
    return positions_at_least(keys, kth_largest(keys, size))


def _largest(keys: np.ndarray, index: np.ndarray, size: int) -> np.ndarray:
    """Positions of the ``size`` largest keys, ties to the lowest index, in that order."""
    candidates = _at_least_kth(keys, size)
    order = np.lexsort((index[candidates], -keys[candidates]))[:size]
    return candidates[order]


@dataclass(frozen=True)
class Moments:
    """Count, mean and centred sum of squares per feature; ``+`` is Chan et al.'s stable merge."""

    n: float
    mean: np.ndarray  # (D,) float64
    m2: np.ndarray  # (D,) float64

    @classmethod
    def of(cls, x: np.ndarray) -> Moments:
        """The moments of a chunk (n, D), in one compiled pass without a float64 copy."""
        x = np.asarray(x)
        if not x.dtype.isnative or not (x.dtype.kind in "biu" or x.dtype in (np.float32, np.float64)):
            x = x.astype(np.float64)  # what the compiled pass does not take: float16, other byte orders, objects
        return cls(*column_moments(np.ascontiguousarray(x).reshape(-1), x.shape[1]))

    @property
    def var(self) -> np.ndarray:
        """Population variance per feature (as ``np.var``)."""
        return self.m2 / self.n if self.n else np.zeros_like(self.m2)

    def __add__(self, other: Moments) -> Moments:
        n = self.n + other.n
        if n == 0:
            return self
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.n / n)
        m2 = self.m2 + other.m2 + delta**2 * (self.n * other.n / n)
        return Moments(n, mean, m2)
