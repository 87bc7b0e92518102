"""Compiled chunk kernels (numba): the K-means E-step fused into one pass over the rows.

For few features (image pixels: D = 3) a fused loop beats the matrix-product path: per row it
computes the K exact squared distances in float64 (the inner loop runs over the centres, which
LLVM vectorises), takes the first minimum, and adds the row to its cluster's count, sum and
inertia, with no (rows x K) block in memory.  Runs without the GIL, so Dask's threads run it in
parallel; numba's own threading is not used (one level of parallelism).
"""
from __future__ import annotations

import numba
import numpy as np

#: The fused kernel is used up to this many features; above it the BLAS path wins (bench/).
MAX_FEATURES = 16


@numba.njit(nogil=True, cache=True, error_model="numpy")
def lloyd_chunk(
    x: np.ndarray,
    w: np.ndarray,
    centres_t: np.ndarray,
    labels: np.ndarray,
    dist2: np.ndarray,
    counts: np.ndarray,
    sums: np.ndarray,
) -> float:
    """Assign every row of ``x`` (n, D) to its nearest centre (``centres_t`` is (D, K)); returns the inertia.

    Fills ``labels`` (n,) and ``dist2`` (n,), adds into ``counts`` (K,) and ``sums`` (K, D); ``w`` (n,) weights.
    """
    n, d = x.shape
    k = centres_t.shape[1]
    acc = np.empty(k)
    inertia = 0.0
    for i in range(n):
        acc[:] = 0.0
        for j in range(d):
            v = np.float64(x[i, j])
            for c in range(k):
                t = v - centres_t[j, c]
                acc[c] += t * t
        best = 0
        best_d = acc[0]
        for c in range(1, k):
            if acc[c] < best_d:
                best_d = acc[c]
                best = c
        wi = w[i]
        labels[i] = best
        dist2[i] = best_d
        counts[best] += wi
        inertia += wi * best_d
        for j in range(d):
            sums[best, j] += wi * np.float64(x[i, j])
    return inertia
