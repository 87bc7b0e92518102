"""Compiled chunk kernels (numba): the K-means and Gaussian-mixture E-steps fused into one pass over the rows.

For many features the K-means distances are a matrix product (BLAS) on each cache-sized block;
compiled passes do the rest: :func:`centred_into` centres the block and checks its range,
:func:`first_argmin_rows` (float32) or :func:`first_argmin` picks the nearest centres and
:func:`join_labelled` adds each row to its cluster with its exact distance.

For few features (D <= 16: pixels, small tables) a fused loop beats the matrix-product path: rows
go in small blocks, SIMD lanes holding rows, and for each centre that can be nearest to one of
the block's rows (rows close together, as pixels in image order, rule most centres out) the exact
float64 squared distances and the running first minimum are updated for the whole block; then the
rows join their clusters' counts, sums and inertia (a block with few labels in one vectorised
pass a label), and the farthest rows are kept as they pass, with no (rows x K) block and no
per-row output in memory.  Runs without the GIL,
so Dask's threads run it in parallel; numba's own threading is not used (one level of parallelism).

The Gaussian mixture's E-step is fused the same way: per row the K log-densities, their
log-sum-exp and the moments about each mean, with no (rows x K) block.  For 1 M x 8, K=8 the
diagonal kernel is several times faster than the blocked NumPy path and the full one 1.5x
(bench/); with many features the full covariance's matrix products are faster in BLAS.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import cast

import numba
import numba.extending
import numpy as np

#: The fused K-means and full-covariance kernels are used up to this many features (K-means on data float32 holds
#: exactly: fewer, ``kmeans.fused``); above, BLAS wins (bench/).
MAX_FEATURES = 16


#: The list of candidates for a chunk's farthest rows the K-means kernels fill (:func:`_gather_far`): distances,
#: row numbers, labels, and two 1-element arrays, its length and the distance a row must exceed to join it.
FarList = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
#: Rows per block of the fused K-means pass: the block's features, best distances and labels stay in L1.
ROW_BLOCK = 64
#: The same for RGB rows, whose blocks are small: fewer blocks' fixed costs (bench/RESULTS.md).
RGB_ROW_BLOCK = 128
#: Interleaved partial sums of the fused pass: consecutive rows of one cluster (common in sorted colours) would
#: otherwise wait on each other's additions to the same count.
_LANES = 4
#: Unit roundoff of float32, for the bound on the error of a distance computed in float32 lanes.
_U32 = 2.0**-24
#: After this many blocks in a row where every centre could be nearest (rows in no spatial order), the fused pass
#: stops looking for a block's candidate centres for :data:`_PAUSE_BLOCKS` blocks.
_USELESS_BLOCKS = 8
_PAUSE_BLOCKS = 256
#: Up to this many centres (padded to fours), finding a block's candidates costs what it saves (bench/RESULTS.md).
_FEW_CENTRES = 8
#: A block whose rows carry at most this many labels sums each label's rows in one vectorised pass.
_MASKED_LABELS = 4
#: The label of no cluster: rows past a block's end.
_NO_LABEL = np.uint64(2**63)


def _prefer_512_bit_vectors(typingctx: object) -> tuple[object, object]:
    """Marks the calling kernel for 512-bit SIMD vectors where the CPU has them (clang's ``-mprefer-vector-width``).

    LLVM vectorises for 256-bit registers on Intel's AVX-512 chips by default, a guard against the frequency drop
    of their first generations; these kernels' loops run twice the lanes a cycle in 512-bit registers
    (bench/RESULTS.md).  llvmlite knows no string attributes, hence the set's own ``add``.
    """
    def codegen(context: object, builder: object, signature: object, args: object) -> object:
        set.add(builder.function.attributes, '"prefer-vector-width"="512"')  # type: ignore[attr-defined]
        return context.get_dummy_value()  # type: ignore[attr-defined]
    return numba.types.none(), codegen


#: Called first in a kernel, compiled into it: :func:`_prefer_512_bit_vectors` (typed as compiled code calls it).
_wide_vectors = cast(Callable[[], None], numba.extending.intrinsic(_prefer_512_bit_vectors))


@numba.njit(nogil=True, cache=True, inline="always")
def _exact_dist2(x64: np.ndarray, i: int, centres: np.ndarray, c: int, dp: int) -> float:
    """Row ``i`` of ``x64`` ((3, B) for RGB, else (B, dp)) to centre ``c`` of ``centres`` (K, dp): the exact float64
    squared distance, features summed in groups of four (RGB: one group of three), in the order the float64 lanes
    sum them."""
    if dp == 3:
        t0, t1, t2 = x64[0, i] - centres[c, 0], x64[1, i] - centres[c, 1], x64[2, i] - centres[c, 2]
        return t0 * t0 + t1 * t1 + t2 * t2
    s = 0.0
    for j in range(0, dp, 4):
        t0, t1 = x64[i, j] - centres[c, j], x64[i, j + 1] - centres[c, j + 1]
        t2, t3 = x64[i, j + 2] - centres[c, j + 2], x64[i, j + 3] - centres[c, j + 3]
        g = t0 * t0 + t1 * t1 + t2 * t2 + t3 * t3
        s = g if j == 0 else s + g
    return s


def _float32_lanes(lanes: np.ndarray) -> bool:
    """Whether ``lanes`` is float32 (see its overload)."""
    return lanes.dtype == np.float32


@numba.extending.overload(_float32_lanes)
def _float32_lanes_compiled(lanes: numba.types.Array) -> object:
    """The same as a constant of the compiled function: each lane type's kernel is compiled with its own branches
    only, none left inside the per-row loops."""
    value = lanes.dtype == numba.types.float32

    def constant(lanes: numba.types.Array) -> object:  # numba wants the overload's own signature
        return value
    return constant


@numba.njit(nogil=True, cache=True, error_model="numpy")
def lloyd_chunk(
    x: np.ndarray,
    w: np.ndarray,
    centres_t: np.ndarray,
    lanes: np.ndarray,
    counts: np.ndarray,
    sums: np.ndarray,
    far: FarList,
    offset: int,
) -> float:
    """Assign every row of ``x`` (n, D) to its nearest centre (``centres_t`` is (D, K)); returns the inertia.

    Adds into ``counts`` (K,) and ``sums`` (K, D); ``w`` (n,) weights, or empty for unit weights.
    ``lanes`` is an empty array of the arithmetic's type.  Rows go in blocks of :data:`ROW_BLOCK`
    (:data:`RGB_ROW_BLOCK`), features first, so the squared distances to four centres at a time
    and the running first minimum vectorise across rows (SIMD lanes hold rows).  Only the
    centres that can be nearest to one of a block's rows are visited (:func:`_block_candidates`);
    where that rules out none for a run of blocks (rows in no order), it pauses.

    float64 lanes compute the exact distances.  float32 lanes (for data that float32 holds
    exactly: twice the rows per instruction) compute them about the centres' mean and keep the
    runner-up too; where the two are closer than the bound on float32's error the row is
    assigned again from exact float64 distances, so the labels are those of float64 arithmetic.
    Either way each row's distance to its centre, the counts, sums and inertia are float64: the
    rows' float64 squared distances to their centres are summed as they join their clusters, with
    no per-row pass of its own.

    The K rows farthest from their centres (positive weight; ties to the first row) are kept in
    ``far``, the list of candidates :func:`_gather_far` fills (row numbers count from ``offset``), with
    no per-row output; a block's exact distances are computed for it only where a row may be
    farther than the list's bar (:func:`_may_be_farther`).
    """
    _wide_vectors()
    n, d = x.shape
    k = centres_t.shape[1]
    narrow = _float32_lanes(lanes)
    bar = far[-1]  # the distance a row must exceed to join the farthest rows' list (raised as it fills)
    dp = 3 if d == 3 else d + (-d) % 4  # RGB pixels in one group of three; else groups of four, padded with zeros
    kp = k + (-k) % 4  # centres four at a time, padded with centres at infinity
    origin = np.zeros(d)
    if narrow:  # about the centres' mean, float32 rounding is relative to the clusters' spread, not to |x|
        for j in range(d):
            origin[j] = centres_t[j].mean()
    exact_centres = np.zeros((k, dp))
    exact_centres[:, :d] = centres_t.T
    centres = np.zeros((dp, kp), lanes.dtype)
    centres[:d, k:] = np.inf
    about = np.full((d, kp), np.inf)  # float64 centres about the origin, for the blocks' candidates
    radius2 = 0.0
    for c in range(k):
        r = 0.0
        for j in range(d):
            v = centres_t[j, c] - origin[j]
            centres[j, c] = v
            about[j, c] = v
            r += v * v
        radius2 = max(radius2, r)
    # |d32 - d| <= (dp + 7) u d + 2 u R^2 for every centre (R: the centres' largest distance to the origin), so
    # the float32 first minimum is the exact one when the runner-up is farther than twice that, with a margin of 2;
    # float64 lanes' distances are exact: no margin
    relative, absolute = (2 * _U32 * (dp + 7), 8 * _U32 * radius2) if narrow else (0.0, 0.0)
    rows = RGB_ROW_BLOCK if dp == 3 else ROW_BLOCK  # many-feature loops run over ROW_BLOCK rows, a constant
    x64 = np.zeros((dp, rows)) if dp == 3 else np.zeros((rows, dp))  # RGB features first for the masked join
    xs = np.zeros((dp, rows), lanes.dtype)
    acc = np.empty(rows, lanes.dtype)
    best = np.empty(rows, lanes.dtype)
    second = np.empty(rows, lanes.dtype)
    label = np.empty(rows, lanes.dtype)  # the lanes' own type: compares and selects keep one lane width
    codes = np.empty(rows, np.uint64)
    exact = np.zeros(rows)
    weights = np.zeros(rows)
    # per interleaved lane and cluster: the weight, the weighted sum and the weighted squared distance
    part = np.zeros((_LANES, k, d + 2))
    every = np.arange(kp).astype(lanes.dtype)  # each centre's label, in the lanes' type
    candidates = np.zeros((dp, kp), lanes.dtype)  # a block's candidate centres, four at a time, padded at infinity
    named = np.zeros(kp, lanes.dtype)  # their labels
    spread, dist2, picked = np.empty(rows), np.empty(kp), np.empty(kp, np.int64)
    spread_bits, dist2_bits = spread.view(np.int64), dist2.view(np.int64)
    whole = False  # whether candidates holds every centre (the loops below read one array: two measured slower)
    useless = 0  # blocks in a row where every centre was a candidate
    pause = 0  # blocks left before the candidates are looked for again
    for start in range(0, n, rows):
        m = min(rows, n - start)
        if d == 3:  # the same loads with the feature loop unrolled
            _load_block(x, start, m, 3, origin, x64, xs, narrow)
        else:
            _load_block(x, start, m, d, origin, x64, xs, narrow)
        best[:] = np.inf
        if narrow:  # float64 lanes' first minimum is exact: no runner-up
            second[:] = np.inf
        label[:] = 0
        groups = kp
        if kp > _FEW_CENTRES and pause > 0:
            pause -= 1
        elif kp > _FEW_CENTRES:
            held = _block_candidates(xs, m, d, about, k, spread, spread_bits, dist2, dist2_bits, picked, narrow)
            if held + (-held) % 4 < kp:  # a group of four centres or more left out
                groups, useless, whole = held + (-held) % 4, 0, False
                _take_candidates(centres, picked, held, groups, d, candidates, named)
            else:
                useless += 1
                if useless == _USELESS_BLOCKS:
                    useless, pause = 0, _PAUSE_BLOCKS
        if groups == kp and not whole:
            candidates[:] = centres
            named[:] = every
            whole = True
        for c in range(0, groups, 4):
            if dp == 3:
                _nearest_of_four_rgb(xs, candidates, named, c, best, second, label, narrow)
                continue
            for cc in range(c, c + 4):
                for j in range(0, dp, 4):
                    a0, a1 = candidates[j, cc], candidates[j + 1, cc]
                    a2, a3 = candidates[j + 2, cc], candidates[j + 3, cc]
                    r0, r1, r2, r3 = xs[j], xs[j + 1], xs[j + 2], xs[j + 3]
                    if j == 0:
                        for i in range(ROW_BLOCK):
                            t0, t1, t2, t3 = r0[i] - a0, r1[i] - a1, r2[i] - a2, r3[i] - a3
                            acc[i] = t0 * t0 + t1 * t1 + t2 * t2 + t3 * t3
                    else:
                        for i in range(ROW_BLOCK):
                            t0, t1, t2, t3 = r0[i] - a0, r1[i] - a1, r2[i] - a2, r3[i] - a3
                            acc[i] += t0 * t0 + t1 * t1 + t2 * t2 + t3 * t3
                fc = named[cc]
                if narrow:  # the first minimum (a later centre must be strictly nearer) and the runner-up
                    for i in range(ROW_BLOCK):
                        a, b = acc[i], best[i]
                        second[i] = min(second[i], max(a, b))
                        best[i] = min(a, b)
                        label[i] = fc if a < b else label[i]
                else:
                    for i in range(ROW_BLOCK):
                        a, b = acc[i], best[i]
                        best[i] = min(a, b)
                        label[i] = fc if a < b else label[i]
        if narrow and k > 1:
            _relabel_unsure(x64, m, exact_centres, dp, best, second, label, relative, absolute)
        if d == 3:  # the same with the feature loop unrolled
            _join_block(part, label, codes, x64, xs, w, start, m, 3, k, narrow, weights, exact_centres)
        else:
            _join_block(part, label, codes, x64, xs, w, start, m, d, k, narrow, weights, exact_centres)
        if _may_be_farther(best, m, bar[0], relative, absolute):  # the exact distances, rarely needed
            for i in range(m):
                exact[i] = _exact_dist2(x64, i, exact_centres, int(label[i]), dp) if narrow else best[i]
            _gather_far(exact, label, w, start, m, offset, far, k)
    for lane in range(_LANES):
        counts += part[lane, :, 0]
        sums += part[lane, :, 1:d + 1]
    return part[:, :, d + 1].sum()


@numba.njit(nogil=True, cache=True, inline="always")
def _may_be_farther(best: np.ndarray, m: int, bar: float, relative: float, absolute: float) -> bool:
    """Whether a row of the block, whose nearest distances in the lanes' type are ``best[:m]``, may lie farther than
    ``bar`` from its centre: ``(best + absolute) * (1 + relative)`` bounds the exact distance (in float32 lanes the
    bound :func:`_unsure` uses, and a row labelled again from exact distances is no farther than that; 0 and 0 in
    float64 lanes).  One vectorised test a block."""
    farther = False
    for i in range(m):
        farther |= not (np.float64(best[i]) + absolute) * (1 + relative) <= bar  # a NaN may be
    return farther


@numba.njit(nogil=True, cache=True, inline="always")
def _block_candidates(
    xs: np.ndarray, m: int, d: int, about: np.ndarray, k: int, spread: np.ndarray, spread_bits: np.ndarray,
    dist2: np.ndarray, dist2_bits: np.ndarray, picked: np.ndarray, narrow: bool,
) -> int:
    """The centres that can be nearest to a row of the block (``xs`` (d, B), its first ``m`` rows): their numbers go
    to the front of ``picked``; returns how many.

    The block's rows lie within ``r`` of its middle row ``p``.  A centre farther from ``p`` than
    the nearest centre's distance plus ``2r`` is, by the triangle inequality, farther than that
    centre from every row of the block: neither a first minimum nor a runner-up that matters.
    Rows of pixels in image order mostly lie close together.  ``about`` (d, K) holds the centres
    in float64; the bar has a margin for float64's rounding and, in float32 lanes, for the rows'.
    ``spread`` (B,) and ``dist2`` (K,) are scratch with integer views: the largest and least of
    non-negative floats are those of their bits, and integer extrema vectorise where float ones do not.
    """
    for i in range(spread.shape[0]):
        spread[i] = 0.0
    for c in range(dist2.shape[0]):
        dist2[c] = 0.0
    pivot, pivot2 = m // 2, 0.0
    for j in range(d):
        pj = np.float64(xs[j, pivot])
        pivot2 += pj * pj
        for i in range(spread.shape[0]):
            t = np.float64(xs[j, i]) - pj
            spread[i] += t * t
        for c in range(dist2.shape[0]):
            t = pj - about[j, c]
            dist2[c] += t * t
    widest = spread_bits[0]
    for i in range(1, m):
        widest = max(widest, spread_bits[i])
    least = dist2_bits[0]
    for c in range(1, k):
        least = min(least, dist2_bits[c])
    spread_bits[0], spread_bits[1] = widest, least  # back to floats: the radius and the nearest centre, squared
    radius = math.sqrt(spread[0])
    slack = 8 * _U32 * (math.sqrt(pivot2) + radius) if narrow else 0.0
    bar = (math.sqrt(spread[1]) + 2 * radius) * (1 + 2.0**-30) + slack + 1e-150  # 1e-150: squares that underflowed
    bar2 = bar * bar
    held = 0
    for c in range(k):
        picked[held] = c
        held += not dist2[c] > bar2  # a NaN keeps every centre
    return held


@numba.njit(nogil=True, cache=True, inline="always")
def _take_candidates(
    centres: np.ndarray, picked: np.ndarray, held: int, groups: int, d: int, candidates: np.ndarray, named: np.ndarray,
) -> None:
    """The ``held`` centres numbered at the front of ``picked`` into ``candidates`` (dp, K) and their labels into
    ``named``, padded to ``groups`` with centres at infinity."""
    for q in range(groups):
        if q < held:
            c = picked[q]
            named[q] = c
            for j in range(d):
                candidates[j, q] = centres[j, c]
        else:
            named[q] = 0
            for j in range(d):
                candidates[j, q] = np.inf


@numba.njit(nogil=True, cache=True, inline="always")
def _load_block(
    x: np.ndarray, start: int, m: int, d: int, origin: np.ndarray, x64: np.ndarray, xs: np.ndarray, narrow: bool
) -> None:
    """Rows ``start .. start+m`` of ``x`` into the block: the lanes' ``xs`` (d, m), features first, about ``origin`` in
    float32 lanes, which also keep the float64 rows in ``x64`` (RGB (3, m), else (m, d): each row's features
    together for its exact distance and join); float64 lanes hold the rows themselves and need no ``x64``."""
    rows = x[start:start + m]  # indexed from 0 by the loops' counters: no negative-index tests
    if narrow:
        for i in range(m):
            for j in range(d):
                if d == 3:
                    x64[j, i] = np.float64(rows[i, j])
                else:
                    x64[i, j] = np.float64(rows[i, j])
        for j in range(d):
            o = origin[j]
            for i in range(m):
                xs[j, i] = (x64[j, i] if d == 3 else x64[i, j]) - o
    else:
        for i in range(m):
            for j in range(d):
                xs[j, i] = np.float64(rows[i, j])


@numba.njit(nogil=True, cache=True, inline="always")
def _join_block(
    part: np.ndarray, label: np.ndarray, codes: np.ndarray, x64: np.ndarray, xs: np.ndarray, w: np.ndarray,
    start: int, m: int, d: int, k: int, narrow: bool, weights: np.ndarray, centres: np.ndarray,
) -> None:
    """The block's ``m`` rows join their clusters.

    Pixels in image order mostly share one or two labels a block: where an RGB block has at
    most :data:`_MASKED_LABELS` (K <= 64), each label's rows are summed in one masked pass that
    vectorises (:func:`_masked_join`).  Else each row joins its cluster in turn (:func:`_join`),
    in a loop for unit weights (``w`` empty) and one for weights: a test of the weights inside
    the loop would be paid on every row.  ``codes`` (uint64, B) and ``weights`` (B,) are scratch
    for the labels as integers and the block's weights.
    """
    for i in range(m):  # converted in a loop that vectorises; unsigned, so indexing needs no negative-index test
        codes[i] = np.uint64(label[i])
    if w.shape[0]:  # rows past the block's end are never selected: their weights need not be zeroed
        weights[:m] = w[start:start + m]
    used = _few_labels(codes, m) if d == 3 and k <= 64 else np.uint64(0)
    if used:
        codes[m:] = _NO_LABEL
        while used:
            low = used & (~used + np.uint64(1))
            used ^= low
            f = (np.float64(low).view(np.int64) >> 52) - 1023  # the set bit's number: exact for a power of two
            if narrow:  # the float64 rows: float32 lanes keep them in x64, float64 lanes' xs are them
                _masked_join(part[0, f], np.uint64(f), codes, x64, weights if w.shape[0] else w, centres[f])
            else:
                _masked_join(part[0, f], np.uint64(f), codes, xs, weights if w.shape[0] else w, centres[f])
    elif w.shape[0] == 0:
        for i in range(m):
            _join(part, i % _LANES, codes[i], x64, xs, i, 1.0, d, narrow, centres)
    else:
        for i in range(m):
            _join(part, i % _LANES, codes[i], x64, xs, i, weights[i], d, narrow, centres)


@numba.njit(nogil=True, cache=True, inline="always")
def _few_labels(codes: np.ndarray, m: int) -> np.uint64:
    """The labels ``codes[:m]`` (each below 64) as the bits of a word if they take at most :data:`_MASKED_LABELS`
    values, else 0."""
    used = np.uint64(0)
    for i in range(m):
        used |= np.uint64(1) << codes[i]
    rest, seen = used, 0
    while rest and seen <= _MASKED_LABELS:
        rest &= rest - np.uint64(1)
        seen += 1
    return used if seen <= _MASKED_LABELS else np.uint64(0)


@numba.njit(nogil=True, cache=True, fastmath={"reassoc"})
def _masked_join(
    total: np.ndarray, f: np.uint64, codes: np.ndarray, rows: np.ndarray, w: np.ndarray, centre: np.ndarray
) -> None:
    """The RGB rows of the block labelled ``f`` (``rows`` (3, B) in float64; ``w`` (B,) their weights, or empty) add
    their weight, weighted sum and weighted squared distance to ``centre`` (3,) into ``total`` (5,), in one pass over
    the block that vectorises (its sums reassociated).  Rows past the block's end carry a label no cluster has."""
    _wide_vectors()
    c = s0 = s1 = s2 = e = 0.0
    r0, r1, r2 = rows[0], rows[1], rows[2]
    c0, c1, c2 = centre[0], centre[1], centre[2]
    for i in range(codes.shape[0]):
        sel = (1.0 if w.shape[0] == 0 else w[i]) if codes[i] == f else 0.0
        c += sel
        s0 += sel * r0[i]
        s1 += sel * r1[i]
        s2 += sel * r2[i]
        t0, t1, t2 = r0[i] - c0, r1[i] - c1, r2[i] - c2
        e += sel * (t0 * t0 + t1 * t1 + t2 * t2)
    total[0] += c
    total[1] += s0
    total[2] += s1
    total[3] += s2
    total[4] += e


@numba.njit(nogil=True, cache=True, inline="always")
def _join(
    part: np.ndarray, lane: int, c: int, x64: np.ndarray, xs: np.ndarray, i: int, wi: float, d: int, narrow: bool,
    centres: np.ndarray,
) -> None:
    """Row ``i`` of the block, weighted ``wi``, joins cluster ``c`` in ``part[lane]``: its weight, its sum and its
    weighted squared distance to ``centres[c]`` (float64, (K, >= d)).

    One array for all: the count and the sums of a cluster share a cache line and an address.
    """
    part[lane, c, 0] += wi
    e = 0.0
    for j in range(d):
        v = (x64[j, i] if d == 3 else x64[i, j]) if narrow else np.float64(xs[j, i])
        part[lane, c, j + 1] += wi * v
        t = v - centres[c, j]
        e += t * t
    part[lane, c, d + 1] += wi * e


@numba.njit(nogil=True, cache=True, inline="always")
def _unsure(best: float, second: float, relative: float, absolute: float) -> bool:
    """Whether float32 distances ``best`` <= ``second`` are too close to tell apart (NaN, both infinite, is too; a
    runner-up at infinity, a block's only candidate centre, is not)."""
    b, s = np.float64(best), np.float64(second)
    return not (s * (1 - relative) - absolute > b * (1 + relative))  # s - b > relative (s + b) + absolute, inf-safe


@numba.njit(nogil=True, cache=True)
def _relabel_unsure(
    x64: np.ndarray, m: int, exact_centres: np.ndarray, dp: int, best: np.ndarray, second: np.ndarray,
    label: np.ndarray, relative: float, absolute: float,
) -> None:
    """Rows whose float32 nearest and runner-up are within float32's error bound: labelled from exact distances."""
    _wide_vectors()
    flagged = False
    for i in range(m):  # vectorised: most blocks have no such row
        flagged |= _unsure(best[i], second[i], relative, absolute)
    if not flagged:
        return
    for i in range(m):
        if _unsure(best[i], second[i], relative, absolute):
            c, nearest = 0, np.inf
            for cc in range(exact_centres.shape[0]):
                v = _exact_dist2(x64, i, exact_centres, cc, dp)
                if v < nearest:
                    c, nearest = cc, v
            label[i] = c


@numba.njit(nogil=True, cache=True, inline="always")
def _gather_far(
    dist2: np.ndarray, label: np.ndarray, w: np.ndarray, start: int, m: int, offset: int, far: FarList, k: int,
) -> None:
    """A block's rows ``start .. start+m`` (distances ``dist2[:m]``, labels ``label[:m]``) of positive weight join
    the list of candidates for the ``k`` farthest rows when farther than its bar.

    The bar is the k-th largest distance in the list once it was cut back (-inf before). One vectorised test a
    block: once the list holds far rows, few blocks have a row farther still.
    """
    keys, rows, labels, held, bar = far
    farther = False
    for i in range(m):
        farther |= dist2[i] > bar[0]
    if farther:
        for i in range(m):
            if dist2[i] > bar[0] and (w.shape[0] == 0 or w[start + i] > 0):
                n = held[0]
                keys[n], rows[n], labels[n] = dist2[i], offset + start + i, int(label[i])
                held[0] = n + 1
                if held[0] == keys.shape[0]:
                    held[0], bar[0] = _keep_farthest(keys, rows, labels, k)


@numba.njit(nogil=True, cache=True)
def _keep_farthest(keys: np.ndarray, rows: np.ndarray, labels: np.ndarray, size: int) -> tuple[int, float]:
    """Keep the ``size`` largest ``keys`` (ties to the first, entries being in row order) in place, in row order;
    returns their number and the smallest of them, which a later row must exceed to join them."""
    kth = kth_largest(keys, size)
    ties = size - np.sum(keys > kth)
    kept = 0
    for i in range(keys.shape[0]):
        if keys[i] > kth or (keys[i] == kth and ties > 0):
            ties -= keys[i] == kth
            keys[kept], rows[kept], labels[kept] = keys[i], rows[i], labels[i]
            kept += 1
    return kept, kth


@numba.njit(nogil=True, cache=True, inline="always")
def _four_dist2(y0: float, y1: float, y2: float, centres: np.ndarray, c: int) -> tuple[float, float, float, float]:
    """The squared distances of one RGB row to centres ``c .. c+3`` of ``centres`` (3, K), in the lanes' type."""
    t0, t1, t2 = y0 - centres[0, c], y1 - centres[1, c], y2 - centres[2, c]
    d0 = t0 * t0 + t1 * t1 + t2 * t2
    t0, t1, t2 = y0 - centres[0, c + 1], y1 - centres[1, c + 1], y2 - centres[2, c + 1]
    d1 = t0 * t0 + t1 * t1 + t2 * t2
    t0, t1, t2 = y0 - centres[0, c + 2], y1 - centres[1, c + 2], y2 - centres[2, c + 2]
    d2 = t0 * t0 + t1 * t1 + t2 * t2
    t0, t1, t2 = y0 - centres[0, c + 3], y1 - centres[1, c + 3], y2 - centres[2, c + 3]
    return d0, d1, d2, t0 * t0 + t1 * t1 + t2 * t2


@numba.njit(nogil=True, cache=True, inline="always")
def _nearest_of_four_rgb(
    xs: np.ndarray, centres: np.ndarray, ids: np.ndarray, c: int, best: np.ndarray, second: np.ndarray,
    label: np.ndarray, runner_up: bool,
) -> None:
    """Centres ``c .. c+3`` of ``centres`` (labels ``ids``) against a block of RGB rows (``xs`` (3, B)): the running
    minimum and label, and the runner-up if ``runner_up`` (float32 lanes; float64 lanes' minimum is exact).

    Four centres per visit of the block: its rows, minima and labels are loaded and stored once for four.
    The first minimum: a later centre must be strictly nearer.
    """
    f0, f1, f2, f3 = ids[c], ids[c + 1], ids[c + 2], ids[c + 3]
    r, q, p = xs[0], xs[1], xs[2]
    if runner_up:
        for i in range(best.shape[0]):
            d0, d1, d2, d3 = _four_dist2(r[i], q[i], p[i], centres, c)
            b, s, lb = best[i], second[i], label[i]
            s = min(s, max(d0, b))
            lb = f0 if d0 < b else lb
            b = min(d0, b)
            s = min(s, max(d1, b))
            lb = f1 if d1 < b else lb
            b = min(d1, b)
            s = min(s, max(d2, b))
            lb = f2 if d2 < b else lb
            b = min(d2, b)
            s = min(s, max(d3, b))
            lb = f3 if d3 < b else lb
            best[i], second[i], label[i] = min(d3, b), s, lb
    else:
        for i in range(best.shape[0]):
            d0, d1, d2, d3 = _four_dist2(r[i], q[i], p[i], centres, c)
            b, lb = best[i], label[i]
            lb = f0 if d0 < b else lb
            b = min(d0, b)
            lb = f1 if d1 < b else lb
            b = min(d1, b)
            lb = f2 if d2 < b else lb
            b = min(d2, b)
            lb = f3 if d3 < b else lb
            best[i], label[i] = min(d3, b), lb


#: Rows per block of :func:`column_moments`: each block's mean is taken first, then its squares about it.
_MOMENT_BLOCK = 4096
#: Rows whose values :func:`column_moments` adds at a time (a divisor of the block).
_MOMENT_GROUP = 32


@numba.njit(nogil=True, cache=True, error_model="numpy")
def column_moments(flat: np.ndarray, d: int) -> tuple[float, np.ndarray, np.ndarray]:
    """Row count, mean and centred sum of squares of each column of a C-ordered (n, ``d``) array given as its
    ``flat`` (n * d,) view, in float64.

    Blocks of rows are summed twice (the mean, then squares about it) and merged by Chan et
    al.'s formula, as :class:`emdask._stats.Moments` merges chunks: no float64 copy of the rows.
    The sums run over :data:`_MOMENT_GROUP` rows' values at a time into as many partial sums,
    entry ``t`` holding column ``t % d``: a loop the compiler vectorises, where one over a row's
    few columns is a chain of dependent additions.
    """
    _wide_vectors()
    n = flat.shape[0] // d if d else 0
    width = _MOMENT_GROUP * d
    mean, m2 = np.zeros(d), np.zeros(d)
    acc, pattern = np.zeros(width), np.zeros(width)
    block_mean, block_m2 = np.zeros(d), np.zeros(d)
    for start in range(0, n, _MOMENT_BLOCK):
        stop = min(n, start + _MOMENT_BLOCK)
        size = stop - start
        whole = (start + size // _MOMENT_GROUP * _MOMENT_GROUP) * d  # the block's values up to its last whole group
        acc[:] = 0.0
        for g in range(start * d, whole, width):
            group = flat[g:g + width]  # indexed from 0 by the loop's counter: no negative-index test, so it vectorises
            for t in range(width):
                acc[t] += np.float64(group[t])
        block_mean[:] = 0.0
        for t in range(width):
            block_mean[t % d] += acc[t]
        for q in range(whole, stop * d):
            block_mean[(q - whole) % d] += np.float64(flat[q])
        block_mean /= size
        for t in range(width):
            pattern[t] = block_mean[t % d]
        acc[:] = 0.0
        for g in range(start * d, whole, width):
            group = flat[g:g + width]
            for t in range(width):
                v = np.float64(group[t]) - pattern[t]
                acc[t] += v * v
        block_m2[:] = 0.0
        for t in range(width):
            block_m2[t % d] += acc[t]
        for q in range(whole, stop * d):
            v = np.float64(flat[q]) - pattern[(q - whole) % d]
            block_m2[(q - whole) % d] += v * v
        total = start + size
        for j in range(d):
            delta = block_mean[j] - mean[j]
            mean[j] += delta * (size / total)
            m2[j] += block_m2[j] + delta * delta * (start * size / total)
    return float(n), mean, m2


@numba.njit(nogil=True, cache=True, fastmath={"nnan"})
def centred_into(x: np.ndarray, origin: np.ndarray, out: np.ndarray) -> float:
    """``out[:] = x - origin`` in ``out``'s precision, in one pass; returns ``max |out|`` (its range check).

    The running maxima are kept per column, so the loop over columns vectorises.
    """
    _wide_vectors()
    top = np.zeros(x.shape[1], out.dtype)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            v = x[i, j] - origin[j]
            out[i, j] = v
            top[j] = max(top[j], abs(v))
    return top.max() if x.shape[1] else 0.0


@numba.njit(nogil=True, cache=True)
def first_argmin(half_norms: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> None:
    """``labels[i]`` = the first ``c`` minimising ``half_norms[c] - scores[c, i]`` ((K, n) scores).

    The difference is rounded to the scores' precision.  Selects instead of branches, so the loop
    over ``i`` vectorises (fastest with int32 ``labels`` for float32 scores: equal lane widths).
    """
    _wide_vectors()
    k, n = scores.shape
    best = half_norms[0] - scores[0]
    labels[:] = 0
    for c in range(1, k):
        h = half_norms[c]
        row = scores[c]
        label = labels.dtype.type(c)
        for i in range(n):
            v = h - row[i]
            better = v < best[i]
            best[i] = v if better else best[i]
            labels[i] = label if better else labels[i]


@numba.njit(nogil=True, cache=True)
def first_argmin_rows(half_norms: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> None:
    """``labels[i]`` = the first ``c`` minimising ``half_norms[c] - scores[i, c]`` (float32 (n, K) scores, each row's
    K scores together, as a matrix product writes them fastest); ``scores`` is overwritten.

    The same choice as :func:`first_argmin`: each difference, rounded to float32, becomes an
    integer that sorts as it does, shifted above the column number, so the least such key is the
    first minimum and each row's search is one integer minimum the compiler vectorises.  A NaN
    difference (inf - inf: a centre too far for float32) counts as +inf, never the minimum.
    """
    _wide_vectors()
    n, k = scores.shape
    for i in range(n):
        for c in range(k):
            v = half_norms[c] - scores[i, c]
            scores[i, c] = v if v == v else np.inf
    bits = scores.view(np.int32)
    for i in range(n):
        least = np.int64(0x7FFFFFFFFFFFFFFF)
        for c in range(k):
            b = bits[i, c]
            least = min(least, (np.int64(b ^ ((b >> 31) & 0x7FFFFFFF)) << 32) | c)
        labels[i] = least & 0xFFFFFFFF


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc"})
def labelled_dist2(x: np.ndarray, labels: np.ndarray, centres: np.ndarray, dist2: np.ndarray) -> None:
    """``dist2[i]`` = the exact squared distance (float64, from the residual) of row ``i`` to its centre."""
    _wide_vectors()
    for i in range(x.shape[0]):
        dist2[i] = _residual_dist2(x, i, centres, labels[i])


@numba.njit(nogil=True, cache=True, inline="always")
def _residual_dist2(x: np.ndarray, i: int, centres: np.ndarray, c: int) -> float:
    """Row ``i`` of ``x`` to centre ``c``: the exact float64 squared distance, from the residual."""
    s = 0.0
    for j in range(x.shape[1]):
        t = np.float64(x[i, j]) - centres[c, j]
        s += t * t
    return s


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc"})
def join_labelled(
    x: np.ndarray,
    w: np.ndarray,
    start: int,
    labels: np.ndarray,
    centres: np.ndarray,
    counts: np.ndarray,
    sums: np.ndarray,
    far: FarList,
    offset: int,
) -> float:
    """Rows ``start ..`` of a chunk (``x`` holds them, ``w`` all the chunk's weights or empty) join their labelled
    clusters: float64 counts and sums, the exact distance to the centre, the inertia,
    and the far rows as :func:`lloyd_chunk` keeps them; returns the inertia."""
    _wide_vectors()
    n, d = x.shape
    dist2 = np.empty(n)
    inertia = 0.0
    for i in range(n):
        c = labels[i]
        wi = 1.0 if w.shape[0] == 0 else w[start + i]
        dist2[i] = _residual_dist2(x, i, centres, c)
        inertia += wi * dist2[i]
        counts[c] += wi
        for j in range(d):
            sums[c, j] += wi * np.float64(x[i, j])
    _gather_far(dist2, labels, w, start, n, offset, far, centres.shape[0])
    return inertia


#: Rows per block of the Gaussian-mixture kernels: a block's features, log-densities and responsibilities stay in
#: cache, and the per-block sums over rows (one horizontal reduction per component and feature) are few a row.
GAUSSIAN_BLOCK = 256


@numba.njit(nogil=True, cache=True)
def _block_rows(n: int) -> int:
    """:data:`GAUSSIAN_BLOCK` rows, or ``n`` if fewer (at least 1), as a value the compiler cannot see: with a
    constant trip count LLVM unrolls the rows' loops into scalar code, which numba does not vectorise (it runs
    no SLP pass)."""
    return max(1, min(GAUSSIAN_BLOCK, n))


_LOG2E = 1.4426950408889634
_LN2_HI, _LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10  # ln 2 in two parts (Cody and Waite)
#: exp's Taylor coefficients 1/j!, j = 13 down to 0: on |r| <= ln(2)/2 the truncation error is below 1e-17.
_EXP_TAYLOR = tuple(1.0 / math.factorial(j) for j in range(13, -1, -1))
#: Below this exp(v) is subnormal; the responsibilities take it as 0.
_EXP_FLOOR = -708.0


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def _exp_nonpositive(v: np.ndarray, out: np.ndarray, bits: np.ndarray) -> None:
    """``out = exp(v)`` for ``v <= 0`` (within 2 ulp of ``np.exp``; 0 below :data:`_EXP_FLOOR`), in SIMD lanes.

    2^n exp(r) with n the nearest integer to v / ln 2: the polynomial in r and the exponent
    bits of 2^n (``bits``, int64 scratch) are plain arithmetic, which vectorises where a call
    to the C library's ``exp`` cannot.
    """
    _wide_vectors()
    scale = bits.view(np.float64)
    for i in range(v.shape[0]):
        x = max(v[i], _EXP_FLOOR)
        nf = np.floor(x * _LOG2E + 0.5)
        r = (x - nf * _LN2_HI) - nf * _LN2_LO
        p = 0.0
        for coefficient in _EXP_TAYLOR:
            p = p * r + coefficient
        out[i] = p
        bits[i] = (np.int64(nf) + 1023) << 52
    for i in range(v.shape[0]):
        out[i] = out[i] * scale[i] if v[i] >= _EXP_FLOOR else 0.0


#: log's series 2 atanh(s) = 2 s + sum 2 s^(2j+1) / (2j+1), j = 11 down to 1: on |s| <= 3 - 2 sqrt(2) the rest is
#: below 1e-17.
_LOG_ATANH = tuple(2.0 / (2 * j + 1) for j in range(11, 0, -1))
_SQRT2 = math.sqrt(2.0)


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def _log_at_least_one(z: np.ndarray, out: np.ndarray, bits: np.ndarray) -> None:
    """``out = log(z)`` for finite ``z >= 1`` (within 2 ulp of ``np.log``; NaN elsewhere), in SIMD lanes.

    z = 2^e m with m in [sqrt(2)/2, sqrt(2)): e ln 2 + 2 atanh((m - 1) / (m + 1)) by its series; the
    exponent and mantissa are bit fields (``bits``, int64 scratch), so nothing calls the C library.
    """
    _wide_vectors()
    zbits = z.view(np.int64)
    mantissa = bits.view(np.float64)
    for i in range(z.shape[0]):
        bits[i] = (zbits[i] & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000  # z's mantissa, in [1, 2)
    for i in range(z.shape[0]):
        m = mantissa[i]
        high = m >= _SQRT2
        m = 0.5 * m if high else m
        e = np.float64((zbits[i] >> 52) - 1023) + (1.0 if high else 0.0)
        s = (m - 1.0) / (m + 1.0)
        s2 = s * s
        p = 0.0
        for coefficient in _LOG_ATANH:
            p = p * s2 + coefficient
        value = (e * _LN2_HI + (2.0 * s + s * (s2 * p))) + e * _LN2_LO
        out[i] = value if 1.0 <= z[i] < np.inf else np.nan


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _responsibilities(logp: np.ndarray, w: np.ndarray, start: int, m: int, scratch: np.ndarray) -> float:
    """``logp`` (K, B), log(pi_k N(x | k)) of a block's rows, becomes their weighted responsibilities in place
    (log-sum-exp over the components, across rows in the lanes); returns the first ``m`` rows' weighted
    log-likelihood.  ``scratch`` (4, B) float64."""
    _wide_vectors()
    k, b = logp.shape
    top, z, v = scratch[0], scratch[1], scratch[2]
    bits = scratch[3].view(np.int64)
    top[:] = -np.inf
    for c in range(k):
        for i in range(b):
            top[i] = max(top[i], logp[c, i])
    z[:] = 0.0
    for c in range(k):
        row = logp[c]
        for i in range(b):
            v[i] = row[i] - top[i]
        _exp_nonpositive(v, row, bits)
        for i in range(b):
            z[i] += row[i]
    _log_at_least_one(z[:m], v[:m], bits[:m])
    total = 0.0
    for i in range(m):
        wi = 1.0 if w.shape[0] == 0 else w[start + i]
        total += wi * (top[i] + v[i])
        v[i] = wi / z[i]
    for c in range(k):
        row = logp[c]
        for i in range(m):
            row[i] *= v[i]
    return total


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc"})
def gaussian_diag_chunk(
    x: np.ndarray,
    w: np.ndarray,
    means: np.ndarray,
    prec_chol: np.ndarray,
    log_const: np.ndarray,
    nk: np.ndarray,
    sx: np.ndarray,
    sxx: np.ndarray,
) -> float:
    """One fused pass of the diagonal-covariance GMM E-step; returns the weighted log-likelihood.

    Per row: log(pi_k N(x | mu_k, diag)) = ``log_const[k] - 0.5 |(x - mu_k) * prec_chol[k]|^2``,
    responsibilities by log-sum-exp, then ``nk``, ``sx`` and ``sxx`` (K, D) gain ``w r (x - mu_k)``
    and its square: moments about each current mean, as the plain path computes them.  ``w`` empty:
    unit weights.  Rows go in blocks of :data:`GAUSSIAN_BLOCK`, features first, so every step
    but the exponentials runs across rows in the SIMD lanes and the sums over a block's rows are
    vector reductions (``reassoc``: their order is the machine's, each term float64).
    """
    _wide_vectors()
    n, d = x.shape
    k = means.shape[0]
    block = _block_rows(n)
    xs = np.zeros((d, block))
    logp = np.zeros((k, block))
    scratch = np.zeros((4, block))
    total = 0.0
    for start in range(0, n, block):
        m = min(block, n - start)
        for i in range(m):
            for j in range(d):
                xs[j, i] = np.float64(x[start + i, j])
        for c in range(k):
            acc = logp[c]
            acc[:] = 0.0
            for j in range(d):
                mu, p, row = means[c, j], prec_chol[c, j], xs[j]
                for i in range(block):
                    t = (row[i] - mu) * p
                    acc[i] += t * t
            for i in range(block):
                acc[i] = log_const[c] - 0.5 * acc[i]
        total += _responsibilities(logp, w, start, m, scratch)
        for c in range(k):
            r = logp[c]
            s = 0.0
            for i in range(m):
                s += r[i]
            nk[c] += s
            for j in range(d):
                mu, row = means[c, j], xs[j]
                s1 = s2 = 0.0
                for i in range(m):
                    t = row[i] - mu
                    ry = r[i] * t
                    s1 += ry
                    s2 += ry * t
                sx[c, j] += s1
                sxx[c, j] += s2
    return total


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc"})
def gaussian_full_chunk(
    x: np.ndarray,
    w: np.ndarray,
    means: np.ndarray,
    prec_chol: np.ndarray,
    log_const: np.ndarray,
    nk: np.ndarray,
    sx: np.ndarray,
    sxx: np.ndarray,
) -> float:
    """One fused pass of the full (or tied) covariance GMM E-step; returns the weighted log-likelihood.

    Per row: ``y = x - mu_k`` and log(pi_k N) = ``log_const[k] - 0.5 |y @ prec_chol[k]|^2`` (K, D, D)
    factors), responsibilities by log-sum-exp, then ``nk``, ``sx`` (K, D) and ``sxx`` (K, D, D) gain
    ``w r y`` and ``w r y y^T`` (its lower triangle summed, then mirrored).  ``w`` empty: unit weights.
    Blocks of :data:`GAUSSIAN_BLOCK` rows, features first, as :func:`gaussian_diag_chunk`.
    """
    _wide_vectors()
    n, d = x.shape
    k = means.shape[0]
    block = _block_rows(n)
    xs = np.zeros((d, block))
    logp = np.zeros((k, block))
    scratch = np.zeros((4, block))
    y = np.zeros((d, block))
    ry = np.zeros((d, block))
    z = np.zeros(block)
    total = 0.0
    for start in range(0, n, block):
        m = min(block, n - start)
        for i in range(m):
            for j in range(d):
                xs[j, i] = np.float64(x[start + i, j])
        for c in range(k):
            for j in range(d):
                mu, row, out = means[c, j], xs[j], y[j]
                for i in range(block):
                    out[i] = row[i] - mu
            acc = logp[c]
            acc[:] = 0.0
            for j in range(d):
                z[:] = 0.0
                for q in range(d):
                    f, yq = prec_chol[c, q, j], y[q]
                    if f != 0.0:  # precision Cholesky factors are triangular: half the products are zero
                        for i in range(block):
                            z[i] += yq[i] * f
                for i in range(block):
                    acc[i] += z[i] * z[i]
            for i in range(block):
                acc[i] = log_const[c] - 0.5 * acc[i]
        total += _responsibilities(logp, w, start, m, scratch)
        for c in range(k):
            r = logp[c]
            s = 0.0
            for i in range(m):
                s += r[i]
            nk[c] += s
            for a in range(d):
                mu, row, ya, rya = means[c, a], xs[a], y[a], ry[a]
                s = 0.0
                for i in range(m):
                    ya[i] = row[i] - mu
                    rya[i] = r[i] * ya[i]
                    s += rya[i]
                sx[c, a] += s
                for b in range(a + 1):
                    yb = y[b]
                    s = 0.0
                    for i in range(m):
                        s += rya[i] * yb[i]
                    sxx[c, a, b] += s
    for c in range(k):
        for a in range(d):
            for b in range(a + 1, d):
                sxx[c, a, b] = sxx[c, b, a]
    return total


#: 24-bit colours packed as 0xRRGGBB: the size of a dense colour table.
N_COLOURS = 1 << 24


@numba.njit(nogil=True, cache=True)
def count_colours(pixels: np.ndarray, counts: np.ndarray, seen: np.ndarray) -> int:
    """Count the packed colours of ``pixels`` (n, 3) uint8 into the dense table ``counts`` (2^24,).

    Each colour met for the first time is appended to ``seen``; returns how many there are.  The
    caller reads their counts and zeroes those entries, so the table is reused clean.
    """
    m = 0
    for i in range(pixels.shape[0]):
        p = (np.uint32(pixels[i, 0]) << 16) | (np.uint32(pixels[i, 1]) << 8) | np.uint32(pixels[i, 2])
        if counts[p] == 0:
            seen[m] = p
            m += 1
        counts[p] += 1
    return m


@numba.njit(nogil=True, cache=True)
def merge_counts(
    a: np.ndarray, na: np.ndarray, b: np.ndarray, nb: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The union of two increasing colour lists with their counts added (a linear merge)."""
    out = np.empty(len(a) + len(b), dtype=a.dtype)
    counts = np.empty(len(a) + len(b), dtype=na.dtype)
    i = j = m = 0
    while i < len(a) and j < len(b):
        if a[i] < b[j]:
            out[m], counts[m] = a[i], na[i]
            i += 1
        elif b[j] < a[i]:
            out[m], counts[m] = b[j], nb[j]
            j += 1
        else:
            out[m], counts[m] = a[i], na[i] + nb[j]
            i += 1
            j += 1
        m += 1
    while i < len(a):
        out[m], counts[m] = a[i], na[i]
        i += 1
        m += 1
    while j < len(b):
        out[m], counts[m] = b[j], nb[j]
        j += 1
        m += 1
    return out[:m], counts[:m]


@numba.njit(nogil=True, cache=True, inline="always")
def _nearest_code(r: float, g: float, b: float, codebook: np.ndarray) -> int:
    """The first nearest code of one colour (exact float64 distances, as ``lloyd_chunk``)."""
    best, best_d = 0, np.inf
    for c in range(codebook.shape[0]):
        t0, t1, t2 = r - codebook[c, 0], g - codebook[c, 1], b - codebook[c, 2]
        d = t0 * t0 + t1 * t1 + t2 * t2
        if d < best_d:
            best, best_d = c, d
    return best


@numba.njit(nogil=True, cache=True)
def colour_table(codebook: np.ndarray, table: np.ndarray) -> None:
    """``table[0xRRGGBB]`` = the nearest code of every 24-bit colour (``codebook`` (K, 3) float64).

    Per (red, green) the K partial distances are computed once and only the blue term varies.
    """
    k = codebook.shape[0]
    partial = np.empty(k)
    for r in range(256):
        for g in range(256):
            for c in range(k):
                t0, t1 = r - codebook[c, 0], g - codebook[c, 1]
                partial[c] = t0 * t0 + t1 * t1
            base = (r << 16) | (g << 8)
            for b in range(256):
                best, best_d = 0, np.inf
                for c in range(k):
                    t2 = b - codebook[c, 2]
                    d = partial[c] + t2 * t2
                    if d < best_d:
                        best, best_d = c, d
                table[base | b] = best


@numba.njit(nogil=True, cache=True)
def encode_pixels(pixels: np.ndarray, codebook: np.ndarray, table: np.ndarray, codes: np.ndarray) -> float:
    """Codes (n,) of ``pixels`` (n, 3) uint8 from the colour ``table`` (or, if it is empty, the nearest
    code computed here); returns the sum of squared errors of ``codebook[codes]``."""
    sse = 0.0
    for i in range(pixels.shape[0]):
        r, g, b = np.float64(pixels[i, 0]), np.float64(pixels[i, 1]), np.float64(pixels[i, 2])
        if table.shape[0]:
            code = table[(np.uint32(pixels[i, 0]) << 16) | (np.uint32(pixels[i, 1]) << 8) | np.uint32(pixels[i, 2])]
        else:
            code = _nearest_code(r, g, b, codebook)
        codes[i] = code
        t0, t1, t2 = r - codebook[code, 0], g - codebook[code, 1], b - codebook[code, 2]
        sse += t0 * t0 + t1 * t1 + t2 * t2
    return sse


@numba.njit(nogil=True, cache=True)
def kth_largest(keys: np.ndarray, size: int) -> float:
    """The ``size``-th largest of ``keys`` (``size`` >= 1; -inf when there are fewer), by a min-heap of ``size``.

    One comparison per key once the heap holds large keys: a chunk's far rows without sorting or copying it.
    """
    heap = np.full(size, -np.inf)
    for v in keys:
        if v > heap[0]:
            i = 0
            while True:
                child = 2 * i + 1
                if child >= size:
                    break
                if child + 1 < size and heap[child + 1] < heap[child]:
                    child += 1
                if heap[child] >= v:
                    break
                heap[i] = heap[child]
                i = child
            heap[i] = v
    return heap[0]


@numba.njit(nogil=True, cache=True)
def positions_at_least(keys: np.ndarray, threshold: float) -> np.ndarray:
    """Positions of the ``keys`` not below ``threshold``, without a mask as long as ``keys``."""
    m = 0
    for v in keys:
        m += v >= threshold
    out = np.empty(m, np.int64)
    m = 0
    for i in range(keys.shape[0]):
        if keys[i] >= threshold:
            out[m] = i
            m += 1
    return out


@numba.njit(nogil=True, cache=True)
def decoded_means(codes: np.ndarray, codebook: np.ndarray, factor: int, out: np.ndarray) -> None:
    """``out`` (3, ceil(H / factor), ceil(W / factor)) uint8: the mean colour of ``codebook[codes]`` over each
    ``factor`` x ``factor`` window of the (H, W) codes (the windows at the edges hold fewer pixels), rounded.

    A reduced view of the stored image, made from the codes without decoding them into an (H, W, 3) array.
    """
    h, w = codes.shape
    for oy in range(out.shape[1]):
        y0, y1 = oy * factor, min(h, (oy + 1) * factor)
        for ox in range(out.shape[2]):
            x0, x1 = ox * factor, min(w, (ox + 1) * factor)
            r = g = b = 0.0
            for y in range(y0, y1):
                for x in range(x0, x1):
                    c = codes[y, x]
                    r += codebook[c, 0]
                    g += codebook[c, 1]
                    b += codebook[c, 2]
            n = (y1 - y0) * (x1 - x0)
            out[0, oy, ox] = np.uint8(np.floor(r / n + 0.5))
            out[1, oy, ox] = np.uint8(np.floor(g / n + 0.5))
            out[2, oy, ox] = np.uint8(np.floor(b / n + 0.5))
