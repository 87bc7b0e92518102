"""K-means as hard EM: the E-step assigns each row to its nearest centre, the M-step takes weighted means.

It is the zero-variance limit of a Gaussian mixture with shared spherical covariance
(course notes, "K-means as hard GMM"): responsibilities become 0/1 and the mixing weights
drop out.  The statistics of a chunk are the per-cluster weight and weighted sum, the chunk's
inertia, and the points farthest from their centres (to re-seed clusters that empty).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from emdask._kernels import MAX_FEATURES, FarList, join_labelled, lloyd_chunk
from emdask._linalg import exact_in_float32, nearest_labels
from emdask._stats import Stats, TopK
from emdask.engine import StopOn

logger = logging.getLogger("emdask")


@dataclass(frozen=True)
class KMeansStats(Stats):
    """Partial statistics of one chunk (float64)."""

    counts: np.ndarray  # (K,) sum of weights per cluster
    sums: np.ndarray  # (K, D) weighted sum of rows per cluster
    inertia: float  # sum of w * |x - c_label|^2
    far: TopK  # the K rows farthest from their centre, with (label, weight)


@dataclass(frozen=True)
class KMeansModel:
    """The model: Lloyd's iteration for ``n_clusters`` centres.

    ``tol`` is absolute, on the sum over centres of the squared shift between iterations
    (scikit-learn scales its ``tol`` by the mean feature variance to get it).
    """

    n_clusters: int
    tol: float = 0.0
    stop_on: StopOn = "shift"  # converged when the centres moved by at most tol (scikit-learn)
    objective_name = "inertia"

    def e_step(self, x: np.ndarray, w: np.ndarray | None, offset: int, centres: np.ndarray) -> KMeansStats:
        """Assign the chunk's rows to their nearest centre and sum what the M-step needs.

        Few features (:func:`fused`): one fused compiled pass (``_kernels.lloyd_chunk``) that keeps
        no per-row output, the farthest rows among them; more: distances as matrix products in
        cache-sized blocks, each finished by compiled passes (``_kernels``).
        """
        k, d = self.n_clusters, x.shape[1]
        counts, sums = np.zeros(k), np.zeros((k, d))
        weights = np.empty(0) if w is None else np.asarray(w, dtype=np.float64)  # empty: unit weights
        if fused(x.dtype, d):
            inertia, far = _fused(x, weights, offset, centres, counts, sums)
            return KMeansStats(counts, sums, inertia, far)
        candidates = _FarRows(k)
        inertia = 0.0
        for rows, labels in nearest_labels(x, centres, float32_integers=True):
            inertia += join_labelled(
                x[rows], weights, rows.start, labels, centres, counts, sums, candidates.arrays, offset
            )
        return KMeansStats(counts, sums, inertia, candidates.top(x, weights, offset))

    def m_step(self, stats: KMeansStats, centres: np.ndarray) -> np.ndarray:
        """Weighted means; an empty cluster takes the farthest point from its centre, as scikit-learn does."""
        counts, sums = stats.counts.copy(), stats.sums.copy()
        empty = np.flatnonzero(counts == 0)
        for k_new, row, (old, weight) in zip(empty, stats.far.rows, stats.far.extra):
            row = np.asarray(row, dtype=np.float64)
            sums[int(old)] -= weight * row
            counts[int(old)] -= weight
            sums[k_new] = weight * row
            counts[k_new] = weight
        if empty.size:
            logger.info("re-seeded %d empty cluster(s) with the farthest points", min(empty.size, len(stats.far.keys)))
        new = np.array(centres, dtype=np.float64, copy=True)
        full = counts > 0
        new[full] = sums[full] / counts[full, None]
        return new

    def objective(self, stats: KMeansStats, centres: np.ndarray) -> float:
        return stats.inertia

    def shift(self, old: np.ndarray, new: np.ndarray) -> float:
        return float(((new - old) ** 2).sum())


#: Data float32 holds exactly takes the fused kernel up to this many features, in float32 lanes (twice the rows
#: an instruction); with more, float32 matrix products are faster (bench/RESULTS.md).
FLOAT32_FEATURES = 8


def fused(dtype: np.dtype, d: int) -> bool:
    """Whether the E-step on rows of ``dtype`` with ``d`` features is the fused kernel rather than matrix products:
    up to :data:`FLOAT32_FEATURES` features for data float32 holds exactly, up to ``MAX_FEATURES`` for the rest
    (whose products are float64)."""
    return d <= MAX_FEATURES and (d <= FLOAT32_FEATURES or not exact_in_float32(dtype))


#: Rows per call of the fused kernel for input types it is not compiled for, converted a block at a time.
FUSED_ROWS = 1 << 16


def _fused(
    x: np.ndarray, w: np.ndarray, offset: int, centres: np.ndarray, counts: np.ndarray, sums: np.ndarray
) -> tuple[float, TopK]:
    """The inertia and farthest rows of the chunk ``x`` (its first row is row ``offset``); counts and sums added
    in place.

    ``w`` empty: unit weights; float32 lanes for data float32 holds exactly.
    """
    k = len(centres)
    centres_t = np.ascontiguousarray(centres.T)
    lanes = np.empty(0, np.float32 if exact_in_float32(x.dtype) else np.float64)
    # the kernel is compiled for the common input types; other ones go to it a block at a time, converted exactly
    convert = None if x.dtype in _COMPILED else (np.float32 if exact_in_float32(x.dtype) else np.float64)
    step = len(x) if convert is None else FUSED_ROWS
    far = _FarRows(k)
    inertia = 0.0
    for start in range(0, len(x), max(step, 1)):
        block = x[start:start + step] if convert is None else x[start:start + step].astype(convert)
        inertia += lloyd_chunk(block, w[start:start + step], centres_t, lanes, counts, sums, far.arrays, offset + start)
    return inertia, far.top(x, w, offset)


class _FarRows:
    """The kernels' list of candidates for a chunk's ``k`` farthest rows (cut back to the farthest when full)."""

    def __init__(self, k: int):
        capacity = max(8 * k, 1024)
        self.k = k
        self.keys, self.index = np.empty(capacity), np.empty(capacity, np.int64)
        self.labels = np.empty(capacity, np.int64)
        self.held, self.bar = np.zeros(1, np.int64), np.full(1, -np.inf)  # the list's length; what a row must exceed

    @property
    def arrays(self) -> FarList:
        """What the kernels fill (``_kernels.FarList``)."""
        return self.keys, self.index, self.labels, self.held, self.bar

    def top(self, x: np.ndarray, w: np.ndarray, offset: int) -> TopK:
        """The ``k`` farthest as a :class:`TopK` (with label and weight), ``x`` the chunk, its first row ``offset``."""
        held = int(self.held[0])
        local = self.index[:held] - offset
        weights = np.ones(held) if len(w) == 0 else w[local]
        extra = np.stack([self.labels[:held], weights], axis=1)
        return TopK.among(self.k, self.keys[:held], self.index[:held], x[local], extra)


#: Input types the fused kernel is compiled for (each costs seconds of compiling, once per machine).
_COMPILED = (np.dtype(np.uint8), np.dtype(np.float32), np.dtype(np.float64))

