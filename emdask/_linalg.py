"""Distances as matrix products, block by block, with exact residuals where precision matters."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from emdask._kernels import first_argmin

#: Entries of one (rows x centres) block of distances; keeps the block in cache, never n x K.
BLOCK_ENTRIES = 2**18


#: float32 squares neither overflow nor underflow for |x - shift| in this range.
_FLOAT32_SCALES = (1e-15, 1e15)


def centred(x: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``x - shift`` in float32 for float32 data whose squares fit float32's range, else in float64.

    Ints, bools and float64 are computed in float64; so are float32 values so large (1e30) or so
    small (1e-30) that their squared distances would be inf or 0 in float32.
    """
    if x.dtype == np.float32:
        xs = x - shift.astype(np.float32)
        scale = float(np.abs(xs).max(initial=0.0))
        if scale == 0.0 or _FLOAT32_SCALES[0] < scale < _FLOAT32_SCALES[1]:
            return xs
    return x.astype(np.float64) - shift


def row_blocks(n: int, n_centres: int) -> Iterator[slice]:
    """Row slices whose distance blocks hold about :data:`BLOCK_ENTRIES` entries."""
    step = max(256, BLOCK_ENTRIES // max(1, n_centres))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def sq_distances(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (n, K) as ``|x|^2 - 2 x.c + |c|^2``, shifted by the centres' mean for precision."""
    shift = centres.mean(axis=0)
    xs = centred(x, shift)
    cs = (centres - shift).astype(xs.dtype)
    d = np.einsum("ij,ij->i", xs, xs)[:, None] - 2.0 * (xs @ cs.T) + np.einsum("ij,ij->i", cs, cs)[None, :]
    return np.maximum(d, 0, out=d)


def centre_scores(x: np.ndarray, centres: np.ndarray) -> Iterator[tuple[slice, np.ndarray]]:
    """Per cache-sized row block: its slice and scores (K, rows) whose column-wise argmin is the nearest centre.

    ``score = |c - s|^2 / 2 - (c - s).(x - s)`` (one matrix product in the data's precision, about
    the centres' mean ``s``): the squared distance less ``|x - s|^2``, which does not change the
    argmin.  Centres along the first axis, so the running minimum over them runs along contiguous rows.
    """
    shift = centres.mean(axis=0)
    cs = centres - shift
    half_norms = 0.5 * np.einsum("ij,ij->i", cs, cs)
    for rows in row_blocks(len(x), len(centres)):
        xs = centred(x[rows], shift)
        scores = cs.astype(xs.dtype) @ xs.T
        yield rows, np.subtract(half_norms.astype(xs.dtype)[:, None], scores, out=scores)


def nearest(x: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest centre of each row and the exact squared distance to it (float64).

    The argmin uses the matrix-product scores; the distance of the chosen centre is recomputed
    from the residual, so it carries no cancellation error.
    """
    labels = np.empty(len(x), dtype=np.intp)
    dist2 = np.empty(len(x), dtype=np.float64)
    for rows, scores in centre_scores(x, centres):
        first_argmin(scores, labels[rows])
        resid = x[rows].astype(np.float64) - centres[labels[rows]]
        dist2[rows] = np.einsum("ij,ij->i", resid, resid)
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
