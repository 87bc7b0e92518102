"""Distances as matrix products, block by block, with exact residuals where precision matters."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from emdask._kernels import centred_into, first_argmin, first_argmin_rows, labelled_dist2

#: Entries of one (rows x centres) block of distances; keeps the block in cache, never n x K.
BLOCK_ENTRIES = 2**17


#: float32 squares neither overflow nor underflow for |x - origin| in this range.
_FLOAT32_SCALES = (1e-15, 1e15)


def exact_in_float32(dtype: np.dtype) -> bool:
    """Whether float32 holds every value of ``dtype``: float32 itself, booleans and integers of up to 16 bits."""
    return dtype == np.float32 or (dtype.kind in "biu" and dtype.itemsize <= 2)


def centred(
    x: np.ndarray, origin: np.ndarray, out: np.ndarray | None = None, *, float32_integers: bool = False
) -> np.ndarray:
    """``x - origin`` in float32 for float32 data whose squares fit float32's range, else in float64.

    With ``float32_integers``, integers and bools float32 holds exactly (:func:`exact_in_float32`)
    are computed in float32 too: where only the nearest centre is wanted, and the time matters
    more than float64's margin on near ties.  Other integers and float64 are computed in float64;
    so are float32 values so large (1e30) or so small (1e-30) that their squared distances would
    be inf or 0 in float32.  ``out``, a float32 buffer of at least ``x``'s shape, saves the allocation.
    """
    if x.dtype == np.float32 or (float32_integers and exact_in_float32(x.dtype)):
        xs = np.empty(x.shape, np.float32) if out is None else out[: len(x)]
        scale = float(centred_into(x, origin.astype(np.float32), xs))
        if scale == 0.0 or _FLOAT32_SCALES[0] < scale < _FLOAT32_SCALES[1]:
            return xs
    return x.astype(np.float64) - origin


def row_blocks(n: int, n_centres: int) -> Iterator[slice]:
    """Row slices whose distance blocks hold about :data:`BLOCK_ENTRIES` entries."""
    step = max(256, BLOCK_ENTRIES // max(1, n_centres))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def sq_distances(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (n, K) as ``|x|^2 - 2 x.c + |c|^2``, shifted by the centres' mean for precision."""
    origin = centres.mean(axis=0)
    xs = centred(x, origin)
    cs = (centres - origin).astype(xs.dtype)
    d = np.einsum("ij,ij->i", xs, xs)[:, None] - 2.0 * (xs @ cs.T) + np.einsum("ij,ij->i", cs, cs)[None, :]
    return np.maximum(d, 0, out=d)


def nearest_labels(
    x: np.ndarray, centres: np.ndarray, *, float32_integers: bool = False
) -> Iterator[tuple[slice, np.ndarray]]:
    """Per cache-sized row block: its slice and each row's nearest centre.

    The argmin is over ``|c - s|^2 / 2 - (c - s).(x - s)``, one matrix product in the data's
    precision about the centres' mean ``s``: the squared distance less ``|x - s|^2``, which does
    not change it (``float32_integers``: as :func:`centred`'s).  The block's buffer is reused: use
    its labels before taking the next block.
    """
    k = len(centres)
    origin = centres.mean(axis=0)
    cs = centres - origin
    half_norms = 0.5 * np.einsum("ij,ij->i", cs, cs)
    with np.errstate(over="ignore"):  # centres too far for float32 are at infinity to the rows float32 holds
        cs32, half32 = cs.astype(np.float32), half_norms.astype(np.float32)
    step = next(row_blocks(len(x), k), slice(0, 0)).stop
    xs_buffer = np.empty((step, x.shape[1]), np.float32)
    scores_buffer = np.empty(k * step, np.float64)
    labels = np.empty(step, np.int32)
    for rows in row_blocks(len(x), k):
        xs = centred(x[rows], origin, xs_buffer, float32_integers=float32_integers)
        m = len(xs)
        if xs.dtype == np.float32:  # float32 products are fastest written a row's K scores together (bench/RESULTS.md)
            rows_scores = scores_buffer.view(np.float32)[: k * m].reshape(m, k)
            np.matmul(xs, cs32.T, out=rows_scores)
            first_argmin_rows(half32, rows_scores, labels[:m])
        else:
            scores = scores_buffer[: k * m].reshape(k, m)
            np.matmul(cs, xs.T, out=scores)
            first_argmin(half_norms, scores, labels[:m])
        yield rows, labels[:m]


def nearest_blocks(x: np.ndarray, centres: np.ndarray) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
    """:func:`nearest_labels` with each row's exact squared distance to its centre, recomputed from the residual in
    float64, so it carries no cancellation error."""
    dist2 = np.empty(next(row_blocks(len(x), len(centres)), slice(0, 0)).stop)
    for rows, labels in nearest_labels(x, centres):
        m = rows.stop - rows.start
        labelled_dist2(x[rows], labels, centres, dist2[:m])
        yield rows, labels, dist2[:m]


def nearest(x: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest centre of each row and the exact squared distance to it (float64), for all rows."""
    labels = np.empty(len(x), dtype=np.intp)
    dist2 = np.empty(len(x), dtype=np.float64)
    for rows, block_labels, block_dist2 in nearest_blocks(x, centres):
        labels[rows], dist2[rows] = block_labels, block_dist2
    return labels, dist2


def log_responsibilities(logp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise log-sum-exp (n,) of log-probabilities (n, K) and the responsibilities exp(logp - lse) (n, K).

    One exp per entry, reused for both (scipy's ``logsumexp`` then a second exp costs twice as much).
    """
    top = logp.max(axis=1, keepdims=True)
    top[~np.isfinite(top)] = 0.0
    resp = np.exp(logp - top)
    total = resp.sum(axis=1, keepdims=True)
    resp /= total
    with np.errstate(divide="ignore"):
        return (top + np.log(total))[:, 0], resp
