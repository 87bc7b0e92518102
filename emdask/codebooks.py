"""Colour codebooks: the colour histogram of images, exact K-means on it in memory, and the PSNR of a codebook.

24-bit colours are a bounded space: however many pixels a set holds, its histogram (distinct
colours and their counts) has at most 2^24 entries, a few MB for real photos.  One read of the
pixels builds it (each chunk counts its colours; partial histograms merge in a tree of tasks).
Lloyd's iteration on the histogram, each colour weighted by its count, makes exactly the
assignments, sums and centres of Lloyd over every pixel, so the fit to convergence, every
restart and a search over K for a PSNR target all run in memory without reading the images
again.  The PSNR of any codebook is exact from the histogram too: the sum of squared errors is
``sum(count * |colour - nearest code|^2)``.
"""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np

from emdask._kernels import N_COLOURS, colour_table, count_colours, merge_counts
from emdask._random import RandomState, client_rng, make_seed
from emdask._stats import Stats
from emdask._validation import check_choice, check_float, check_int
from emdask.engine import InMemoryData, run_em, tree_sum
from emdask.errors import InputError
from emdask.init import kmeans_plusplus
from emdask.kmeans import KMeansModel

logger = logging.getLogger("emdask")

#: The numbers of colours that a PSNR target chooses from.
K_CANDIDATES = (2, 4, 8, 16, 32, 64, 128, 256)
#: k-means++ starts from at most this many colours drawn by count (all of them when there are fewer).
INIT_SAMPLE = 100_000
INITS = ("k-means++", "random")
#: A PSNR target's search for K estimates each K's PSNR from this many pixels drawn from the histogram.
SEARCH_SAMPLE = 200_000
#: Below the chosen K, a candidate whose estimated PSNR is within this many dB of the target is fitted exactly.
SEARCH_MARGIN = 0.25
#: Restarts of a codebook fit: in memory on the histogram they cost little next to the reads, and the best of a
#: few k-means++ starts is a better codebook than one.
N_INIT = 4


def pack(rgb: np.ndarray) -> np.ndarray:
    """(n, 3) uint8 colours as (n,) uint32 ``0xRRGGBB``."""
    rgb = rgb.astype(np.uint32)
    return (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]


def unpack(packed: np.ndarray) -> np.ndarray:
    """(n,) uint32 ``0xRRGGBB`` as (n, 3) uint8 colours."""
    return np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=1).astype(np.uint8)


@dataclass(frozen=True)
class Histogram(Stats):
    """Distinct colours and how many pixels have each: histograms of disjoint pixels add."""

    colours: np.ndarray  # (m,) uint32 0xRRGGBB, strictly increasing
    counts: np.ndarray  # (m,) uint64, all positive

    def __add__(self, other: Any) -> Histogram:
        if not isinstance(other, Histogram):
            return NotImplemented
        return Histogram(*merge_counts(self.colours, self.counts, other.colours, other.counts))

    @classmethod
    def empty(cls) -> Histogram:
        return cls(np.empty(0, np.uint32), np.empty(0, np.uint64))

    @classmethod
    def of(cls, pixels: np.ndarray) -> Histogram:
        """The histogram of (..., 3) uint8 pixels, counted in a dense table reused by this thread."""
        flat = np.ascontiguousarray(pixels).reshape(-1, 3)
        table = _counting_table()
        seen = np.empty(min(len(flat), N_COLOURS), np.uint32)
        m = count_colours(flat, table, seen)
        colours = np.sort(seen[:m])
        counts = table[colours].astype(np.uint64)
        table[colours] = 0
        return cls(colours, counts)

    @property
    def n_pixels(self) -> int:
        return int(self.counts.sum())

    @property
    def rgb(self) -> np.ndarray:
        return unpack(self.colours)

    def drawn(self, size: int, rng: np.random.Generator) -> Histogram:
        """``size`` pixels drawn at random from the counted ones: their distinct colours, counted by draws."""
        picks, draws = np.unique(rng.choice(len(self.colours), size, p=self.counts / self.counts.sum()),
                                 return_counts=True)
        return Histogram(self.colours[picks], draws.astype(np.uint64))

    def check(self, where: str) -> None:
        """A stored histogram must be increasing colours with positive counts; raises ValueError naming ``where``."""
        c, n = self.colours, self.counts
        if (
            c.ndim != 1
            or c.shape != n.shape
            or (len(c) and (np.any(np.diff(c.astype(np.int64)) <= 0) or c[-1] >= N_COLOURS))
        ):
            raise InputError(f"{where} is damaged: its colours are not distinct increasing 24-bit values")
        if np.any(n == 0):
            raise InputError(f"{where} is damaged: it has colours counted zero times")


_NO_TABLE = np.empty(0, np.uint16)
_local = threading.local()


def _counting_table() -> np.ndarray:
    """This thread's dense (2^24,) uint32 counting table (64 MiB), zero between uses."""
    table = getattr(_local, "table", None)
    if table is None:
        table = _local.table = np.zeros(N_COLOURS, np.uint32)
    return table


def psnr_from_sse(sse: float, n_values: int) -> float:
    """PSNR in dB of 8-bit data from the sum of squared errors over ``n_values`` samples."""
    return float("inf") if sse == 0 else float(10 * np.log10(255.0**2 * n_values / sse))


def _block_histogram(block: np.ndarray) -> Histogram:
    return Histogram.of(block)


def histogram_of(pixels: Sequence[da.Array]) -> Any:
    """The lazy (delayed) histogram of images (each (H, W, 3) uint8): one task per chunk, merged in a tree."""
    parts = [dask.delayed(_block_histogram)(b) for image in pixels for b in image.to_delayed().ravel()]
    return tree_sum(parts) if parts else dask.delayed(Histogram.empty)()


def table_for(codebook: np.ndarray, n_pixels: int) -> np.ndarray:
    """The colour -> code table of ``codebook`` when it pays: building it costs about as much as coding
    2^24 pixels directly, so smaller sets get an empty table (codes computed per pixel)."""
    if n_pixels <= N_COLOURS:
        return _NO_TABLE
    table = np.empty(N_COLOURS, np.uint8 if len(codebook) <= 256 else np.uint16)
    colour_table(np.asarray(codebook, np.float64), table)
    return table


@dataclass(frozen=True)
class Fit:
    """One codebook fitted to a histogram, and how the fit went."""

    codebook: np.ndarray  # (K, 3) uint8
    centres: np.ndarray  # (K, 3) float64, before rounding
    n_iter: int
    converged: bool
    inertia: float  # of the float centres
    history: list[float]  # inertia per iteration
    sse: float  # of the uint8 codebook: what the stored image loses
    n_pixels: int

    @property
    def psnr(self) -> float:
        return psnr_from_sse(self.sse, 3 * self.n_pixels)


@dataclass(frozen=True)
class Settings:
    """How codebooks are fitted: the initialisation, restarts, iterations, tolerance and seed."""

    init: Any = "k-means++"
    n_init: int = N_INIT
    max_iter: int = 300
    tol: float = 1e-4
    random_state: RandomState = None

    def checked(self) -> Settings:
        if isinstance(self.init, str):
            check_choice(self.init, "init", INITS)
        check_int(self.n_init, "n_init", 1)
        check_int(self.max_iter, "max_iter", 1)
        check_float(self.tol, "tol")
        return Settings(self.init, self.n_init, self.max_iter, self.tol, make_seed(self.random_state))


def fit(histogram: Histogram, k: int, settings: Settings, sample: int | None = None) -> Fit:
    """Exact K-means (Lloyd) of the pixels that ``histogram`` counts, in memory, to convergence.

    ``tol`` is scikit-learn's, relative to the pixels' mean channel variance, so the fit stops
    where Lloyd over every pixel stops.  The best of ``n_init`` restarts (lowest inertia) is kept.
    K larger than the number of distinct colours gives a ``ConvergenceWarning`` and repeated colours.
    ``sample``: fit ``sample`` pixels drawn from the histogram instead (an estimate, for the search over K).
    """
    if sample is not None and sample < histogram.n_pixels:
        histogram = histogram.drawn(sample, np.random.default_rng(make_seed(settings.random_state)))
    rgb, weights = histogram.rgb, histogram.counts.astype(np.float64)
    total = weights.sum()
    mean = weights @ rgb / total
    variance = float(np.mean(weights @ (rgb - mean) ** 2 / total))
    model = KMeansModel(k, settings.tol * variance)
    data = InMemoryData(rgb, weights, name="colour histogram", threads=_threads(len(rgb)))
    seed = make_seed(settings.random_state)
    best = None
    for restart in range(settings.n_init if isinstance(settings.init, str) else 1):  # a given start runs once
        start = _initial(rgb, weights, k, settings.init, client_rng(seed, 1, restart))
        result = run_em(model, data, start, settings.max_iter)
        last = result.history[-1]
        inertia = last.objective if last.shift == 0 else data.map_reduce(model.e_step, result.params).inertia
        if best is None or inertia < best[0]:
            best = (inertia, result)
    assert best is not None
    inertia, result = best
    distinct = len(np.unique(result.params, axis=0))
    if distinct < k:
        from emdask._base import ConvergenceWarning, warn  # here: a worker fitting a codebook needs no estimator

        warn(f"Number of distinct clusters ({distinct}) found smaller than n_clusters ({k}): the images have fewer "
             "distinct colours than K", ConvergenceWarning)
    codebook = np.clip(np.rint(result.params), 0, 255).astype(np.uint8)
    # what the stored image loses: every pixel coded by its nearest colour of the uint8 codebook (exact in float64)
    return Fit(codebook, result.params, result.n_iter, result.converged, float(inertia),
               [h.objective for h in result.history], coded_sse(histogram, codebook, data), histogram.n_pixels)


def coded_sse(histogram: Histogram, codebook: np.ndarray, data: InMemoryData | None = None) -> float:
    """What coding the pixels that ``histogram`` counts with the uint8 ``codebook`` loses: the sum of squared
    errors of each colour's nearest code (exact float64, first nearest, as the encoder codes)."""
    if data is None:
        data = InMemoryData(histogram.rgb, histogram.counts.astype(np.float64), name="colour histogram",
                            threads=_threads(len(histogram.colours)))
    return float(data.map_reduce(KMeansModel(len(codebook)).e_step, codebook.astype(np.float64)).inertia)


def _threads(n_colours: int) -> int:
    """This process's cores for a large histogram (its passes run here while the cluster waits); one for a small one."""
    return (os.cpu_count() or 1) if n_colours >= 1 << 18 else 1


def _initial(rgb: np.ndarray, weights: np.ndarray, k: int, init: Any, rng: np.random.Generator) -> np.ndarray:
    """K starting colours: given, or by k-means++ / at random from the colours weighted by their counts.

    With more than :data:`INIT_SAMPLE` distinct colours, k-means++ runs on that many drawn by count
    (each drawn colour weighted by its draws): the start only has to be good, Lloyd is exact.
    """
    if not isinstance(init, str):
        return np.asarray(init, dtype=np.float64)
    p = weights / weights.sum()
    if init == "random":
        return rgb[rng.choice(len(rgb), k, replace=len(rgb) < k, p=p)].astype(np.float64)
    if len(rgb) > INIT_SAMPLE:
        drawn = Histogram(pack(rgb), weights.astype(np.uint64)).drawn(INIT_SAMPLE, rng)
        return kmeans_plusplus(drawn.rgb, drawn.counts.astype(np.float64), k, rng)
    return kmeans_plusplus(rgb, weights, k, rng)


#: What a PSNR target is measured on: all the pixels of the set together, or its worst image.
PSNR_OVER = ("set", "worst")


def search(
    fit_all: Callable[[int, int, int | None], list[Fit]],
    psnr: float,
    candidates: Sequence[int],
    n_init: int,
    measure: Callable[[Sequence[Fit]], float] | None = None,
    over: str = "set",
) -> tuple[int, list[Fit], dict[int, float], dict[int, float]]:
    """The smallest K of ``candidates`` whose codebooks (``fit_all(K, restarts, sample)``: one per group of images)
    reach ``psnr`` dB: ``measure(fits)``, by default the PSNR over all the pixels together (``over`` names it
    in the log); no pixel is read.

    A bisection (PSNR grows with K) on fits to :data:`SEARCH_SAMPLE` pixels drawn from the
    histograms estimates K cheaply; then K is fitted exactly with ``n_init`` restarts, and the
    next larger K while the exact PSNR misses the target, and the next smaller K while its
    estimate is within :data:`SEARCH_MARGIN` dB of the target and its exact fit reaches it.  So
    the search costs about one exact fit of the chosen K.  Returns K, its fits, the exact PSNR
    of every K fitted exactly and the estimates.  When no candidate reaches the target the
    largest is used, with a warning.
    """
    usable = sorted(candidates)
    measured = pooled if measure is None else measure
    where = "over the set" if over == "set" else "on the worst image"
    estimated: dict[int, float] = {}
    exact: dict[int, float] = {}
    fits: dict[int, list[Fit]] = {}

    def estimate(i: int) -> float:
        k = usable[i]
        if k not in estimated:
            estimated[k] = measured(fit_all(k, 1, SEARCH_SAMPLE))
            logger.debug("K=%d: PSNR about %.2f dB %s (estimated from a sample; target %.2f dB)", k, estimated[k],
                         where, psnr)
        return estimated[k]

    def reaches(i: int) -> bool:
        k = usable[i]
        if k not in exact:
            fits[k] = fit_all(k, n_init, None)
            exact[k] = measured(fits[k])
            logger.info("K=%d: PSNR %.2f dB %s (target %.2f dB)", k, exact[k], where, psnr)
        return exact[k] >= psnr

    lo, hi = 0, len(usable) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if estimate(mid) >= psnr:
            hi = mid
        else:
            lo = mid + 1
    while not reaches(lo) and lo + 1 < len(usable):
        lo += 1
    if exact[usable[lo]] < psnr:
        logger.warning("no K among %s reaches PSNR %.2f dB %s; using K=%d (%.2f dB)", usable, psnr, where, usable[lo],
                       exact[usable[lo]])
    else:
        while lo > 0 and estimate(lo - 1) >= psnr - SEARCH_MARGIN and reaches(lo - 1):
            lo -= 1
    k = usable[lo]
    return k, fits[k], exact, estimated


def pooled(fits: Sequence[Fit]) -> float:
    """The PSNR over all the pixels of several codebooks' images."""
    return psnr_from_sse(sum(f.sse for f in fits), 3 * sum(f.n_pixels for f in fits))


def worst(fits: Sequence[Fit]) -> float:
    """The lowest PSNR of several codebooks, each over its own images (per-image codebooks: the worst image)."""
    return min(psnr_from_sse(f.sse, 3 * f.n_pixels) for f in fits)


def fit_summary(fits: Sequence[Fit]) -> dict[str, Any]:
    """What an image set records of its codebook fits (plain JSON)."""
    return {
        "n_iter": [f.n_iter for f in fits],
        "converged": [f.converged for f in fits],
        "inertia": [f.inertia for f in fits],
        "history": [f.history for f in fits],
    }

