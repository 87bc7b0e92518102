"""Statistics are values: the sum over any chunking equals the statistics of the whole."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from emdask._random import row_uniforms
from emdask._stats import Moments, TopK
from emdask.engine import summarize_chunk
from emdask.kmeans import KMeansModel


@st.composite
def chunked(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Data with duplicate rows, weights with zeros, and cut points that may make empty chunks."""
    n = draw(st.integers(1, 300))
    d = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 6, (n, d)).astype(np.float64) * rng.choice([1e-3, 1.0, 1e4])
    w = rng.choice([0.0, 0.5, 1.0, 3.0], n)
    w[rng.integers(n)] = 1.0
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=6)))
    return x, w, cuts


def _split(a: np.ndarray, cuts: list[int]) -> list[tuple[int, np.ndarray]]:
    edges = [0, *cuts, len(a)]
    return [(lo, a[lo:hi]) for lo, hi in zip(edges[:-1], edges[1:])]


@settings(max_examples=60, deadline=None)
@given(chunked(), st.integers(1, 6))
def test_kmeans_stats_add_up(data, k):
    x, w, cuts = data
    centres = x[np.linspace(0, len(x) - 1, k).astype(int)] + 0.1
    model = KMeansModel(k)
    whole = model.e_step(x, w, 0, centres)
    parts = [model.e_step(xc, wc, lo, centres) for (lo, xc), (_, wc) in zip(_split(x, cuts), _split(w, cuts))]
    total = parts[0]
    for p in parts[1:]:
        total = total + p
    np.testing.assert_allclose(total.counts, whole.counts, rtol=1e-12)
    np.testing.assert_allclose(total.sums, whole.sums, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(total.inertia, whole.inertia, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(total.far.index, whole.far.index)
    np.testing.assert_allclose(model.m_step(total, centres), model.m_step(whole, centres), rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(chunked())
def test_first_pass_summary_does_not_depend_on_chunking(data):
    x, w, cuts = data
    whole = summarize_chunk(x, w, 0, 42, 10, "X")
    parts = [summarize_chunk(xc, wc, lo, 42, 10, "X") for (lo, xc), (_, wc) in zip(_split(x, cuts), _split(w, cuts))]
    total = parts[0]
    for p in reversed(parts[1:]):  # any order
        total = p + total
    np.testing.assert_allclose(total.moments.mean, x.mean(axis=0), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(total.moments.var, x.var(axis=0), rtol=1e-9, atol=1e-9)
    assert total.weight == w.sum() and total.positive == (w > 0).sum()
    np.testing.assert_array_equal(total.sample.index, whole.sample.index)
    assert set(total.sample.index) <= set(np.flatnonzero(w > 0))


def test_topk_keeps_largest_and_breaks_ties_by_row():
    rows = np.arange(12.0).reshape(6, 2)
    a = TopK.of(3, np.array([1.0, 5.0, 5.0]), 0, rows[:3])
    b = TopK.of(3, np.array([5.0, -np.inf, 2.0]), 3, rows[3:])
    for merged in (a + b, b + a):
        np.testing.assert_array_equal(merged.index, [1, 2, 3])
        np.testing.assert_array_equal(merged.rows, rows[[1, 2, 3]])


def test_moments_merge_is_stable_far_from_origin():
    x = 1e8 + np.random.default_rng(0).normal(size=(1000, 2))
    merged = Moments.of(x[:300]) + Moments.of(x[300:])
    np.testing.assert_allclose(merged.var, x.var(axis=0), rtol=1e-6)


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from([0, 1, 31, 32, 33, 4095, 4096, 4097, 10_001]), st.integers(1, 16),
    st.sampled_from([np.uint8, np.int64, np.float32, np.float64, np.bool_]), st.booleans(), st.integers(0, 2**31),
)
def test_moments_of_a_chunk_are_numpys(n, d, dtype, strided, seed):
    """Row counts around the groups of 32 rows and the blocks of 4096, every column count up to 16, every input type,
    strided chunks as well: the mean and variance per column are NumPy's of the float64 rows."""
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(2 * n, d)) * 50 + 3).astype(dtype)
    x = x[::2] if strided else x[:n]
    moments = Moments.of(x)
    assert moments.n == n
    if n:
        np.testing.assert_allclose(moments.mean, x.astype(np.float64).mean(axis=0), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(moments.var, x.astype(np.float64).var(axis=0), rtol=1e-10, atol=1e-12)


def test_row_uniforms_are_the_same_for_any_split():
    whole = row_uniforms(3, 9, 0, 1000)
    parts = np.concatenate([row_uniforms(3, 9, lo, hi - lo) for lo, hi in [(0, 5), (5, 6), (6, 333), (333, 1000)]])
    np.testing.assert_array_equal(parts, whole)
    assert not np.array_equal(row_uniforms(3, 10, 0, 1000), whole)
