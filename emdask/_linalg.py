"""Distances as matrix products, block by block, with exact residuals where precision matters."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

#: Entries of one (rows x centres) block of distances; keeps the block in cache, never n x K.
BLOCK_ENTRIES = 2**18


def compute_dtype(dtype: np.dtype) -> type[np.floating]:
    """float32 data is computed in float32; everything else (ints, bools, float64) in float64."""
    return np.float32 if dtype == np.float32 else np.float64


def row_blocks(n: int, n_centres: int) -> Iterator[slice]:
    """Row slices whose distance blocks hold about :data:`BLOCK_ENTRIES` entries."""
    step = max(256, BLOCK_ENTRIES // max(1, n_centres))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def sq_distances(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (n, K) as ``|x|^2 - 2 x.c + |c|^2``, shifted by the centres' mean for precision."""
    ctype = compute_dtype(x.dtype)
    shift = centres.mean(axis=0)
    xs = x.astype(ctype) - shift.astype(ctype)
    cs = (centres - shift).astype(ctype)
    d = np.einsum("ij,ij->i", xs, xs)[:, None] - 2.0 * (xs @ cs.T) + np.einsum("ij,ij->i", cs, cs)[None, :]
    return np.maximum(d, 0, out=d)


def nearest(x: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest centre of each row and the exact squared distance to it (float64).

    The argmin uses the matrix-product form in the data's precision; the distance of the chosen
    centre is recomputed from the residual, so inertia carries no cancellation error.
    """
    ctype = compute_dtype(x.dtype)
    shift = centres.mean(axis=0)
    cs = (centres - shift).astype(ctype)
    half_norms = 0.5 * np.einsum("ij,ij->i", cs, cs)
    labels = np.empty(len(x), dtype=np.intp)
    dist2 = np.empty(len(x), dtype=np.float64)
    for rows in row_blocks(len(x), len(centres)):
        xs = x[rows].astype(ctype) - shift.astype(ctype)
        lab = np.argmin(half_norms[None, :] - xs @ cs.T, axis=1)
        resid = x[rows].astype(np.float64) - centres[lab]
        labels[rows] = lab
        dist2[rows] = np.einsum("ij,ij->i", resid, resid)
    return labels, dist2
