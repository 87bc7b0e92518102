"""Initial centres: k-means++ (greedy, weighted) in memory and scalable k-means|| over chunked data."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from emdask._linalg import nearest, sq_distances
from emdask._random import client_rng, row_uniforms
from emdask._stats import Stats, TopK
from emdask.engine import InMemoryData, Passes, Summary, run_em
from emdask.kmeans import KMeansModel

logger = logging.getLogger("emdask")


def kmeans_plusplus(
    x: np.ndarray, w: np.ndarray | None, n_clusters: int, rng: np.random.Generator, n_local_trials: int | None = None
) -> np.ndarray:
    """Greedy weighted k-means++ (Arthur & Vassilvitskii 2007, with local trials as scikit-learn does).

    Each new centre is the best of ``2 + log(K)`` candidates drawn with probability proportional
    to ``w * D(x)^2``; returns (K, D) float64 centres.
    """
    n = len(x)
    w = np.ones(n) if w is None else np.asarray(w, dtype=np.float64)
    trials = n_local_trials or 2 + int(np.log(n_clusters))
    centres = np.empty((n_clusters, x.shape[1]))
    first = rng.choice(n, p=w / w.sum())
    centres[0] = x[first]
    closest = sq_distances(x, centres[:1])[:, 0].astype(np.float64)
    for c in range(1, n_clusters):
        cumulative = np.cumsum(w * closest)
        if cumulative[-1] <= 0:  # fewer distinct points than clusters: repeat one
            centres[c:] = centres[0]
            break
        ids = np.minimum(np.searchsorted(cumulative, rng.uniform(size=trials) * cumulative[-1]), n - 1)
        d = np.minimum(closest[:, None], sq_distances(x, x[ids]).astype(np.float64))
        best = int(np.argmin(w @ d))
        centres[c] = x[ids[best]]
        closest = d[:, best]
    return centres


@dataclass(frozen=True)
class OversampleStats(Stats):
    """One k-means|| round on a chunk: its cost and the rows with the smallest ``u / (w D^2)``."""

    cost: float
    picks: TopK


def _oversample_chunk(
    x: np.ndarray, w: np.ndarray | None, offset: int, candidates: np.ndarray, seed: int, stream: int, size: int
) -> OversampleStats:
    _, dist2 = nearest(x, candidates)
    wd = dist2 if w is None else w * dist2
    u = row_uniforms(seed, stream, offset, len(x))
    with np.errstate(divide="ignore"):
        keys = np.where(wd > 0, -u / wd, -np.inf)
    picks = TopK.of(size, keys, offset, x)
    return OversampleStats(float(wd.sum()), picks)


def kmeans_parallel(
    data: Passes,
    n_clusters: int,
    first: np.ndarray,
    seed: int,
    stream: int,
    rng: np.random.Generator,
    oversampling: float = 2.0,
    rounds: int = 5,
) -> np.ndarray:
    """Scalable k-means|| (Bahmani et al. 2012), one pass per round plus one to weight the candidates.

    In each round every row is taken independently with probability ``min(1, l w D^2 / phi)``,
    ``l = oversampling * K``, where ``phi`` is the current total cost.  The draw is exact in one
    pass: row x is taken iff ``u_x / (w D^2) < l / phi``, so each chunk returns its rows with the
    smallest ``u / (w D^2)`` and the cost, and the threshold is applied once ``phi`` is known.
    The candidates are then weighted by the total weight of the rows nearest to them and
    re-clustered to K centres by weighted k-means++ and Lloyd, as Spark MLlib does.
    """
    ell = oversampling * n_clusters
    candidates = np.atleast_2d(np.asarray(first, dtype=np.float64))
    for r in range(rounds):
        size = int(2 * ell) + 32
        while True:
            st = data.map_reduce(_oversample_chunk, candidates, seed, stream + r, size)
            if st.cost <= 0:
                break
            taken = st.picks.keys > -ell / st.cost
            if not (taken.all() and len(taken) == size):
                break
            size *= 4  # more rows qualified than were kept: redo the round with more room
        if st.cost <= 0:
            break
        new = np.asarray(st.picks.rows[taken], dtype=np.float64)
        candidates = np.vstack([candidates, new])
        logger.debug("k-means|| round %d: cost %.6g, %d new candidates", r + 1, st.cost, len(new))
    weights = data.map_reduce(KMeansModel(len(candidates)).e_step, candidates).counts
    keep = weights > 0
    candidates, weights = candidates[keep], weights[keep]
    if len(candidates) < n_clusters:
        extra = rng.choice(len(candidates), n_clusters - len(candidates))
        candidates = np.vstack([candidates, candidates[extra]])
        weights = np.concatenate([weights, np.full(len(extra), weights.min() * 1e-9)])
    centres = kmeans_plusplus(candidates, weights, n_clusters, rng)
    candidates_data = InMemoryData(candidates, weights, name="k-means|| candidates")
    return run_em(KMeansModel(n_clusters), candidates_data, centres, max_iter=300).params


def initial_centres(
    data: Passes,
    summary: Summary,
    k: int,
    method: str,
    seed: int,
    restart: int,
    oversampling: float = 2.0,
    rounds: int = 5,
) -> np.ndarray:
    """K starting centres by ``method``: "k-means||" over all rows, "k-means++" or "random" on the first pass's sample.

    The sample holds the whole data with its weights when it is small, else rows drawn
    proportionally to weight (which are then equally weighted).
    """
    rng = client_rng(seed, 1, restart)
    rows, weights = _sample(summary)
    p = weights / weights.sum()
    if method == "random":
        return np.asarray(rows[rng.choice(len(rows), k, replace=False, p=p)], dtype=np.float64)
    if method == "k-means++":
        return kmeans_plusplus(rows, weights, k, rng)
    first = rows[rng.choice(len(rows), p=p)]
    return kmeans_parallel(data, k, first, seed, 1000 * (restart + 1), rng, oversampling=oversampling, rounds=rounds)


def _sample(summary: Summary) -> tuple[np.ndarray, np.ndarray]:
    """The first pass's sample and the weights that make it stand for the data.

    The whole data keeps its weights.  A drawn sample (A-Res keys ``log(u) / w``, the largest
    kept) took a row of weight ``w`` with probability ``1 - exp(w t)``, ``t`` the smallest kept
    key: rows weigh ``w`` over that probability (Horvitz-Thompson), so a heavy row (a colour
    shared by many pixels) is not counted as one draw.  Equal weights give equal weights.
    """
    rows, weights = summary.sample_rows(), summary.sample_weights()
    if summary.positive <= len(rows):
        return rows, weights
    if np.all(weights == weights[0]):
        return rows, np.ones(len(rows))
    threshold = float(summary.sample.keys.min())
    return rows, weights / -np.expm1(weights * threshold)


def warm_up(summary: Summary, centres: np.ndarray, max_iter: int = 100) -> np.ndarray:
    """Lloyd's iterations on the first pass's sample, in memory, from ``centres``.

    A start for the exact passes that is already near a fixed point, so fewer passes over the
    data are needed; the exact passes still run to their own fixed point over all rows.
    """
    rows, weights = _sample(summary)
    tol = 1e-4 * float(np.mean(summary.moments.var))
    sample = InMemoryData(rows, weights, name="warm-up sample")
    return run_em(KMeansModel(len(centres), tol), sample, centres, max_iter=max_iter).params
