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

    def e_step(self, x: np.ndarray, w: np.ndarray | None, offset: int, centres: np.ndarray) -> KMeansStats:
        """Assign the chunk's rows to their nearest centre and sum what the M-step needs.

        Few features: one fused compiled pass (``_kernels.lloyd_chunk``); many: distances as
        matrix products in cache-sized blocks, each finished by compiled passes (``_kernels``).
        """
        k = self.n_clusters
        labels, dist2 = np.empty(len(x), dtype=np.intp), np.empty(len(x))
        counts, sums = np.zeros(k), np.zeros((k, x.shape[1]))
        weights = np.ones(len(x)) if w is None else np.asarray(w, dtype=np.float64)
        if x.shape[1] <= MAX_FEATURES:
            inertia = lloyd_chunk(x, weights, np.ascontiguousarray(centres.T), labels, dist2, counts, sums)
        else:
            inertia = 0.0
            for rows, block_labels, block_dist2 in nearest_blocks(x, centres):
                labels[rows], dist2[rows] = block_labels, block_dist2
                inertia += add_labelled(x[rows], weights[rows], block_labels, block_dist2, counts, sums)
        keys = dist2 if w is None else np.where(weights > 0, dist2, -np.inf)
        far = TopK.of(k, keys, offset, x, (labels, weights))
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
