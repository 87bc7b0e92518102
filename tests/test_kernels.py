"""The fused K-means kernel against a brute-force reference, for every input dtype, with weights and ties."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from emdask import kmeans
from emdask._stats import TopK
from emdask.kmeans import KMeansModel


def brute(x: np.ndarray, w: np.ndarray, centres: np.ndarray):
    """Exact float64 distances, first minimum, weighted sums: the E-step written the plain way."""
    d = ((x.astype(np.float64)[:, None, :] - centres[None]) ** 2).sum(-1)
    labels = d.argmin(axis=1)
    dist2 = d[np.arange(len(x)), labels]
    k = len(centres)
    counts = np.array([w[labels == j].sum() for j in range(k)])
    sums = np.array([(w[labels == j, None] * x[labels == j].astype(np.float64)).sum(axis=0) for j in range(k)])
    return labels, counts, sums, float(w @ dist2)


def assert_farthest(
    far: TopK, x: np.ndarray, w: np.ndarray, centres: np.ndarray, offset: int = 0, rtol: float = 0.0
) -> None:
    """``far`` holds the K rows farthest from their centres (positive weight, ties to the first), as TopK keeps
    them from every row's exact distance (to ``rtol``: the kernel sums more than three features in fours)."""
    d = ((x.astype(np.float64)[:, None, :] - centres[None]) ** 2).sum(-1)
    labels = d.argmin(axis=1)
    keys = np.where(w > 0, d[np.arange(len(x)), labels], -np.inf)
    expected = TopK.of(len(centres), keys, offset, x, (labels, w))
    np.testing.assert_array_equal(far.index, expected.index)
    np.testing.assert_allclose(far.keys, expected.keys, rtol=rtol, atol=0)
    np.testing.assert_array_equal(far.rows, expected.rows)
    np.testing.assert_array_equal(far.extra, expected.extra)


@settings(max_examples=80, deadline=None)
@given(
    st.integers(0, 400), st.integers(1, kmeans.MAX_FEATURES), st.sampled_from([1, 2, 5, 12, 32, 37, 64]),
    st.sampled_from([np.uint8, np.int64, np.float32, np.float64, np.bool_]), st.integers(0, 2**31),
    st.booleans(),
)
def test_fused_estep_equals_brute_force(n, d, k, dtype, seed, weighted):
    """Every kind of dtype the fused kernel takes, in float64 lanes (data float32 cannot hold) and float32 lanes
    (uint8, float32 and bool); small integers, so exact ties are everywhere."""
    assume(kmeans.fused(np.dtype(dtype), d))
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 4, (n, d)).astype(dtype)  # small integers: many exact ties
    centres = rng.integers(0, 4, (k, d)).astype(np.float64)
    w = rng.choice([0.0, 0.5, 2.0], n) if weighted else np.ones(n)
    stats = KMeansModel(k).e_step(x, w if weighted else None, 0, centres)
    labels, counts, sums, inertia = brute(x, w, centres)
    np.testing.assert_allclose(stats.counts, counts, rtol=1e-12)
    np.testing.assert_allclose(stats.sums, sums, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(stats.inertia, inertia, rtol=1e-12, atol=1e-12)
    assert_farthest(stats.far, x, w, centres)


@pytest.mark.parametrize(("dtype", "k", "path"), [
    (np.uint8, 5, "fused"), (np.float32, 100, "fused"), (np.int16, 96, "fused"), (np.int64, 3, "fused"),
    (np.float64, 3, "fused"), (np.float32, 5, "fused"), (np.uint8, 5, "matrix products"),
    (np.float32, 64, "matrix products"),
])
def test_farthest_rows_of_a_large_chunk(dtype, k, path, monkeypatch):
    """Enough rows to fill the kernel's list of far candidates many times over, in three orders: the rows drifting
    away from the centres or towards them, or shuffled; integer types with exact ties everywhere, floats on a continuum;
    int16 and int64 go to the kernel in blocks; the matrix-product path (many features) keeps them the same way."""
    if path == "matrix products":
        monkeypatch.setattr(kmeans, "MAX_FEATURES", 0)
    rng = np.random.default_rng(k)
    n = kmeans.FUSED_ROWS + 4099
    drift = np.arange(n)[:, None] / 7_000
    if np.dtype(dtype).kind == "f":
        x = (rng.normal(size=(n, 2)) + drift).astype(dtype)
        centres = rng.normal(size=(k, 2))
    else:
        x = (rng.integers(0, 4, (n, 2)) + drift // 1).astype(dtype)
        centres = rng.integers(0, 4, (k, 2)) + rng.choice([0.0, 0.5], (k, 2))  # distances on a lattice of 1/4
    w = rng.choice([0.0, 1.0, 3.0], n)
    assert_farthest(KMeansModel(k).e_step(x, w, 1000, centres).far, x, w, centres, offset=1000)
    assert_farthest(KMeansModel(k).e_step(x[::-1], None, 0, centres).far, x[::-1], np.ones(n), centres)
    shuffled = x[rng.permutation(n)]  # few candidates once the list first fills: the threshold it keeps decides
    assert_farthest(KMeansModel(k).e_step(shuffled, None, 0, centres).far, shuffled, np.ones(n), centres)


@pytest.mark.parametrize(("d", "k", "dtype"), [
    (3, 12, np.float64), (3, 16, np.float32), (3, 20, np.uint8), (3, 64, np.float32), (3, 70, np.float32),
    (3, 70, np.int16), (5, 24, np.float64), (7, 40, np.float32),
])
def test_rows_close_together_get_the_labels_of_all_centres(d, k, dtype):
    """Rows in order along a path through the centres, as pixels in image order lie: the fused pass weighs only the
    centres that can be nearest to a block's rows, and must give what all centres give.  Blocks straddle the
    boundaries between centres, and most of them hold one or two labels (RGB up to K=64: summed a label at a time);
    integer rows and centres on a lattice of 1/2 tie exactly; float32 lanes (RGB with K=64 and 70, D=7 with K=40)
    need their runner-up among the candidates.  The path starts with rows in random order, after which the pass
    stops looking for candidates a while, then finds them again."""
    rng = np.random.default_rng(k + d)
    centres = rng.uniform(0, 200, (k, d))
    if np.dtype(dtype).kind != "f":
        centres = np.round(centres) + rng.choice([0.0, 0.5], (k, d))
    steps = np.linspace(0, 1, 60_000 // (k - 1), endpoint=False)[:, None]
    path = np.concatenate([a + steps * (b - a) for a, b in zip(centres[:-1], centres[1:])])
    path += rng.normal(scale=0.7, size=path.shape)
    x = np.concatenate([path[rng.permutation(len(path))[:3000]], path])
    x = (np.round(np.clip(x, 0, 255)) if np.dtype(dtype).kind != "f" else x).astype(dtype)
    w = rng.choice([0.0, 1.0, 2.5], len(x))
    for weights in (None, w):
        stats = KMeansModel(k).e_step(x, weights, 0, centres)
        labels, counts, sums, inertia = brute(x, np.ones(len(x)) if weights is None else weights, centres)
        np.testing.assert_array_equal(stats.counts, counts)
        np.testing.assert_allclose(stats.sums, sums, rtol=1e-12)
        assert stats.inertia == pytest.approx(inertia, rel=1e-12)
        assert_farthest(stats.far, x, np.ones(len(x)) if weights is None else weights, centres, rtol=1e-15)


@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_float32_lanes_give_the_float64_labels_where_float32_cannot_tell_the_centres_apart(offset):
    """Rows halfway between two centres, a few float32 spacings to either side, among 98 far centres that move the
    float32 origin away: float32 distances tie or flip, the labels must still be float64's first minimum."""
    spacing = float(np.spacing(np.float32(offset + 0.5)))
    first = np.concatenate([offset + 0.5 + np.arange(-200, 201) * spacing, offset + np.linspace(0.45, 0.55, 4001)])
    x = np.stack([first, np.full(len(first), offset)], axis=1).astype(np.float32)
    far = np.stack([np.linspace(1e5, 2e5, 98), np.full(98, offset)], axis=1)
    centres = np.concatenate([[[offset, offset], [offset + 1.00731, offset]], far])
    assert kmeans.fused(x.dtype, 2)
    stats = KMeansModel(len(centres)).e_step(x, None, 0, centres)
    labels, counts, sums, inertia = brute(x, np.ones(len(x)), centres)
    np.testing.assert_array_equal(stats.counts, counts)
    np.testing.assert_allclose(stats.sums, sums, rtol=1e-12)
    assert stats.inertia == pytest.approx(inertia, rel=1e-12)
    assert 0 < counts[0] < len(x)  # both near centres win some rows


@pytest.mark.parametrize("side", [-1.0, 1.0])
def test_float32_lanes_keep_the_farthest_rows_where_float32_cannot_tell_their_distances_apart(side):
    """Rows moving away from a centre a float32 spacing at a time, among 98 far centres that move the float32
    origin away: thousands of rows in a row share one float32 distance, off the exact one by the centre's rounding,
    and the farthest rows are the last ones."""
    near = np.array([0.1, 0.2])
    start = np.float32(near[0] + side * 0.5)
    steps = start + side * np.arange(20_000) * np.spacing(abs(start))
    x = np.stack([steps, np.full(len(steps), near[1])], axis=1).astype(np.float32)
    far = np.stack([np.linspace(1e5, 2e5, 98), np.zeros(98)], axis=1)
    centres = np.concatenate([[near], far])
    assert kmeans.fused(x.dtype, 2) and np.all(np.diff(x[:, 0]) * side > 0)
    assert_farthest(KMeansModel(len(centres)).e_step(x, None, 0, centres).far, x, np.ones(len(x)), centres)


@pytest.mark.parametrize("dtype", [np.uint8, np.float64])
def test_fused_and_matrix_product_paths_agree_on_pixels(dtype, monkeypatch):
    from skimage import data

    x = data.coffee().reshape(-1, 3).astype(dtype)
    centres = x[:: len(x) // 9][:9].astype(np.float64) + 0.37
    fused = KMeansModel(9).e_step(x, None, 0, centres)
    monkeypatch.setattr(kmeans, "MAX_FEATURES", 0)
    blas = KMeansModel(9).e_step(x, None, 0, centres)
    np.testing.assert_array_equal(fused.counts, blas.counts)
    np.testing.assert_allclose(fused.sums, blas.sums, rtol=1e-12)
    np.testing.assert_allclose(fused.inertia, blas.inertia, rtol=1e-9)
    np.testing.assert_array_equal(fused.far.index, blas.far.index)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 300), st.integers(1, 10), st.integers(1, 6), st.sampled_from(["full", "tied", "diag", "spherical"]),
    st.sampled_from([np.uint8, np.float32, np.float64]), st.integers(0, 2**31), st.booleans(),
)
def test_fused_gaussian_estep_equals_the_plain_path(n, d, k, cov, dtype, seed, weighted):
    from emdask import gaussian

    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(n, d)) * 20 + 100).astype(dtype)
    if cov in ("full", "tied"):  # correlated, anisotropic: A A^T + a ridge
        a = rng.normal(scale=10, size=(k if cov == "full" else 1, d, d))
        variances = a @ a.transpose(0, 2, 1) + np.eye(d)
        variances = variances if cov == "full" else variances[0]
    else:
        variances = rng.uniform(0.5, 400, (k, d) if cov == "diag" else k)
    weights = rng.dirichlet(np.ones(k))
    params = gaussian.GaussianParams(weights, rng.normal(100, 20, (k, d)), variances,
                                     gaussian.precision_cholesky(variances, cov), cov)
    w = rng.choice([0.0, 0.5, 2.0], n) if weighted else None
    model = gaussian.GaussianModel(k, cov)
    fused = model.e_step(x, w, 0, params)
    gaussian.FUSED = False
    try:
        plain = model.e_step(x, w, 0, params)
    finally:
        gaussian.FUSED = True
    for name in ("nk", "sx", "sxx"):
        np.testing.assert_allclose(getattr(fused, name), getattr(plain, name), rtol=1e-9, atol=1e-9 * max(1, n))
    assert fused.loglik == pytest.approx(plain.loglik, rel=1e-12, abs=1e-9)
    assert fused.weight == pytest.approx(plain.weight, rel=1e-15)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 5000), st.integers(kmeans.FLOAT32_FEATURES + 1, 48), st.integers(1, 70),
    st.sampled_from([np.uint8, np.float32, np.float64]), st.integers(0, 2**31), st.booleans(),
)
def test_matrix_product_estep_equals_brute_force(n, d, k, dtype, seed, weighted):
    """Many features: blocked matrix-product scores, first argmin and compiled sums, against the plain E-step.

    The scores are rounded (float32 for float32 data, and in the E-step for uint8 data), so among
    centres at equal distance the choice may differ from the exact first minimum: each label must be
    a nearest centre up to that rounding, and the statistics must be exactly those of the labels
    chosen.  ``nearest`` (predict's labels, float64 for integers) is held to the same bound.
    """
    from emdask._linalg import nearest, nearest_labels

    assume(not kmeans.fused(np.dtype(dtype), d))
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 4, (n, d)).astype(dtype)  # small integers: many ties
    centres = rng.integers(0, 4, (k, d)).astype(np.float64)
    w = rng.choice([0.0, 0.5, 2.0], n) if weighted else np.ones(n)
    exact = ((x.astype(np.float64)[:, None, :] - centres[None]) ** 2).sum(-1)
    nearest_enough = exact.min(axis=1) + 1e-4 * (1 + exact.min(axis=1))
    labels, dist2 = nearest(x, centres)
    assert np.all(exact[np.arange(n), labels] <= nearest_enough)
    np.testing.assert_array_equal(dist2, exact[np.arange(n), labels])
    blocks = [block.copy() for _, block in nearest_labels(x, centres, float32_integers=True)]
    chosen = np.concatenate(blocks) if blocks else np.empty(0, np.int32)  # the E-step's labels
    assert np.all(exact[np.arange(n), chosen] <= nearest_enough)
    stats = KMeansModel(k).e_step(x, w if weighted else None, 0, centres)
    counts = np.bincount(chosen, weights=w, minlength=k)
    sums = np.array([(w[chosen == j, None] * x[chosen == j].astype(np.float64)).sum(axis=0) for j in range(k)])
    np.testing.assert_allclose(stats.counts, counts, rtol=1e-12)
    np.testing.assert_allclose(stats.sums, sums.reshape(k, d), rtol=1e-12, atol=1e-12)
    assert stats.inertia == pytest.approx(float(w @ exact[np.arange(n), chosen]), rel=1e-12, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 300), st.integers(1, 70), st.integers(0, 2**31), st.sampled_from([1e-30, 1e-3, 1.0, 1e6, 1e30]))
def test_first_minimum_over_rows_of_scores_is_numpys(n, k, seed, scale):
    """The row-wise search by packed integer keys picks what NumPy's argmin of the float32 differences picks: the
    first of equal minima, negative and positive values, tiny and huge ones alike; a NaN difference (inf - inf)
    is never the minimum (a row of them gets the first centre)."""
    from emdask._kernels import first_argmin_rows

    rng = np.random.default_rng(seed)
    grid = rng.integers(-3, 4, (n, k)) * scale  # many exact ties, zeros, both signs
    smooth = rng.normal(size=(n, k)) * scale
    scores = np.where(rng.random((n, k)) < 0.5, grid, smooth).astype(np.float32)
    half = (rng.integers(0, 3, k) * scale).astype(np.float32)
    half[rng.random(k) < 0.1] = np.inf
    scores[rng.random((n, k)) < 0.05] = np.inf
    scores[0] = np.inf
    half[0] = np.inf  # row 0: all differences NaN or +inf
    labels = np.empty(n, np.int32)
    first_argmin_rows(half, scores.copy(), labels)
    with np.errstate(invalid="ignore"):
        v = half[None, :] - scores
    np.testing.assert_array_equal(labels, np.argmin(np.where(np.isnan(v), np.inf, v), axis=1))


def test_vectorised_exp_is_numpys_within_two_ulp_and_zero_where_subnormal():
    from emdask._kernels import _EXP_FLOOR, _exp_nonpositive

    rng = np.random.default_rng(0)
    edges = [0.0, 5e-324, 1e-300, 708.0, 709.0, 1e308]
    v = -np.concatenate([rng.random(100_000) * 40, rng.random(10_000) * 800, edges])
    out, bits = np.empty_like(v), np.empty(len(v), np.int64)
    _exp_nonpositive(v, out, bits)
    normal = v >= _EXP_FLOOR
    np.testing.assert_allclose(out[normal], np.exp(v[normal]), rtol=2.5e-16, atol=0)
    assert np.all(out[~normal] == 0.0) and np.all(out[v == 0.0] == 1.0)


def test_vectorised_log_is_numpys_within_two_ulp_and_nan_below_one():
    from emdask._kernels import _log_at_least_one

    rng = np.random.default_rng(0)
    z = np.concatenate([
        1 + rng.random(100_000) * 1e-6, 1 + rng.random(100_000), 1 + rng.random(100_000) * 1e6,
        2.0 ** np.arange(1000), np.sqrt(2) * 2.0 ** np.arange(60), np.nextafter(np.sqrt(2), 0) * 2.0 ** np.arange(60),
        [1.0, np.nextafter(1.0, 2.0), np.finfo(np.float64).max],
    ])
    out, bits = np.empty_like(z), np.empty(len(z), np.int64)
    _log_at_least_one(z, out, bits)
    reference = np.log(z)
    assert np.all(np.abs(out - reference) <= 2 * np.spacing(np.maximum(reference, np.finfo(np.float64).tiny)))
    assert out[-3] == 0.0
    below = np.array([np.nextafter(1.0, 0.0), 0.5, 0.0, -1.0, np.nan, np.inf])
    _log_at_least_one(below, out[: len(below)], bits[: len(below)])
    assert np.isnan(out[: len(below)]).all()


def test_kernels_ask_llvm_for_512_bit_vectors():
    """LLVM's Intel tuning keeps 256-bit vectors unless a function asks for more (bench/RESULTS.md)."""
    import numba

    from emdask._kernels import first_argmin_rows

    compiled = numba.njit(first_argmin_rows.py_func)  # a fresh compile: a cached kernel keeps no IR
    compiled(np.zeros(4, np.float32), np.zeros((8, 4), np.float32), np.empty(8, np.int32))
    (ir,) = compiled.inspect_llvm().values()
    assert '"prefer-vector-width"="512"' in ir
