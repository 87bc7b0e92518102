"""K-means as hard EM: the E-step assigns each row to its nearest centre, the M-step takes weighted means.

It is the zero-variance limit of a Gaussian mixture with shared spherical covariance
(course notes, "K-means as hard GMM"): responsibilities become 0/1 and the mixing weights
drop out.  The statistics of a chunk are the per-cluster weight and weighted sum, the chunk's
inertia, and the points farthest from their centres (to re-seed clusters that empty).
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from emdask._kernels import MAX_FEATURES, add_labelled, lloyd_chunk
from emdask._linalg import nearest_blocks
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

        Few features: one fused compiled pass (``_kernels.lloyd_chunk``) over blocks of
        :data:`FUSED_ROWS` rows, whose labels and distances stay in cache; many: distances as
        matrix products in cache-sized blocks, each finished by compiled passes (``_kernels``).
        """
        k, (n, d) = self.n_clusters, x.shape
        counts, sums = np.zeros(k), np.zeros((k, d))
        if d <= MAX_FEATURES:
            weights = np.empty(0) if w is None else np.asarray(w, dtype=np.float64)
            blocks = _fused_blocks(x, weights, centres, counts, sums)
        else:
            weights = np.ones(n) if w is None else np.asarray(w, dtype=np.float64)
            blocks = _blas_blocks(x, weights, centres, counts, sums)
        inertia, far = 0.0, TopK.of(k, np.empty(0), offset, x[:0], (np.empty(0), np.empty(0)))
        for rows, labels, dist2, part in blocks:
            inertia += part
            block_weights = np.broadcast_to(1.0, len(labels)) if w is None else w[rows]
            keys = dist2 if w is None else np.where(block_weights > 0, dist2, -np.inf)
            far = far + TopK.of(k, keys, offset + rows.start, x[rows], (labels, block_weights))
        return KMeansStats(counts, sums, float(inertia), far)

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


#: The fused kernel computes in float32 lanes from this many centres on (bench/RESULTS.md).
FLOAT32_FROM = 32
#: Rows per call of the fused kernel: their labels and distances (16 bytes a row) stay in the core's cache.
FUSED_ROWS = 1 << 16


def _fused_blocks(
    x: np.ndarray, w: np.ndarray, centres: np.ndarray, counts: np.ndarray, sums: np.ndarray
) -> Iterator[tuple[slice, np.ndarray, np.ndarray, float]]:
    """Per block of rows: its slice, labels, exact distances and inertia; its counts and sums added in place.

    ``w`` empty: unit weights.  float32 arithmetic where float32 holds the data exactly and there are
    :data:`FLOAT32_FROM` centres or more (``lloyd_chunk``; with fewer, checking its labels costs what it saves).
    """
    centres_t = np.ascontiguousarray(centres.T)
    exact32 = _exact_in_float32(x.dtype)
    narrow = exact32 and len(centres) >= FLOAT32_FROM
    lanes = np.empty(0, np.float32 if narrow else np.float64)
    # the kernel is compiled for the common input types; other ones go to it a block at a time, converted exactly
    convert = None if x.dtype in _COMPILED else (np.float32 if exact32 else np.float64)
    labels, dist2 = np.empty(min(len(x), FUSED_ROWS), np.intp), np.empty(min(len(x), FUSED_ROWS))
    for start in range(0, len(x), FUSED_ROWS):
        rows = slice(start, min(len(x), start + FUSED_ROWS))
        m = rows.stop - start
        block = x[rows] if convert is None else x[rows].astype(convert)
        inertia = lloyd_chunk(block, w[rows], centres_t, lanes, labels[:m], dist2[:m], counts, sums)
        yield rows, labels[:m], dist2[:m], inertia


#: Input types the fused kernel is compiled for (each costs seconds of compiling, once per machine).
_COMPILED = (np.dtype(np.uint8), np.dtype(np.float32), np.dtype(np.float64))


def _exact_in_float32(dtype: np.dtype) -> bool:
    """Whether float32 holds every value of ``dtype``: float32 itself, booleans and integers of up to 16 bits."""
    return dtype == np.float32 or (dtype.kind in "biu" and dtype.itemsize <= 2)


def _blas_blocks(
    x: np.ndarray, w: np.ndarray, centres: np.ndarray, counts: np.ndarray, sums: np.ndarray
) -> Iterator[tuple[slice, np.ndarray, np.ndarray, float]]:
    """The same from distances as matrix products (``_linalg.nearest_blocks``), for many features, as one block:
    its cache-sized blocks are small for large K, and merging far rows per block would cost more than it saves."""
    labels, dist2 = np.empty(len(x), dtype=np.intp), np.empty(len(x))
    inertia = 0.0
    for rows, block_labels, block_dist2 in nearest_blocks(x, centres):
        labels[rows], dist2[rows] = block_labels, block_dist2
        inertia += add_labelled(x[rows], w[rows], block_labels, block_dist2, counts, sums)
    yield slice(0, len(x)), labels, dist2, inertia
