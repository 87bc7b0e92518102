"""Per-iteration K-means on ~20 M RGB pixels of real photos: emdask vs scikit-learn vs dask-ml.

The pixels are random crops of the bundled photos, rescaled (``data/make_image_set.py``'s
variants): real colour statistics, never one photo tiled, so counting colours gains nothing from
repetition.  All tools start from the same centres and run 20 iterations with ``tol=0``;
scikit-learn and dask-ml get float32, emdask the uint8 pixels.  Timed in one process on the same
machine; the table gives seconds per iteration and ratios.
Usage: ``python -m bench [--pixels 20e6] [--k 16] [--iters 20] [--quick]``.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import time
import warnings
from pathlib import Path

import dask
import dask.array as da
import numpy as np

ROOT = Path(__file__).parents[1]


def photo_pixels(n_pixels: int, seed: int = 0) -> np.ndarray:
    """``n_pixels`` uint8 RGB pixels (n, 3) from rescaled random crops of the bundled photos."""
    spec = importlib.util.spec_from_file_location("make_image_set", ROOT / "data" / "make_image_set.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    rng = np.random.default_rng(seed)
    sources, parts, total = module.photos(), [], 0
    while total < n_pixels:
        image = module.variant(sources[rng.integers(len(sources))], rng, 2048).reshape(-1, 3)
        parts.append(image)
        total += len(image)
    return np.concatenate(parts)[:n_pixels]


def time_emdask(X: np.ndarray, init: np.ndarray, iters: int, chunk_rows: int, scheduler: str) -> tuple[float, float]:
    import emdask

    Xd = da.from_array(X, chunks=(chunk_rows, 3)).persist()
    km = emdask.KMeans(len(init), init=init, max_iter=iters, tol=0)
    t0 = time.perf_counter()
    km.fit(Xd)
    total = time.perf_counter() - t0
    per_iter = statistics.median(h["seconds"] for h in km.history_)
    return per_iter, total / km.n_iter_


def time_counted(X: np.ndarray, init: np.ndarray, iters: int, chunk_rows: int) -> tuple[float, float, float]:
    """emdask on the colour histogram (the image path): per in-memory Lloyd iteration, (counting + fit) / n_iter,
    and pixels per distinct colour."""
    import dask

    from emdask import codebooks

    Xd = da.from_array(X.reshape(-1, 1, 3), chunks=(chunk_rows, 1, 3)).persist()
    t0 = time.perf_counter()
    (histogram,) = dask.compute(codebooks.histogram_of([Xd]))
    t1 = time.perf_counter()
    fit = codebooks.fit(histogram, len(init), codebooks.Settings(init=init, tol=0.0, max_iter=iters))
    total = time.perf_counter() - t0
    return (total - (t1 - t0)) / fit.n_iter, total / fit.n_iter, len(X) / len(histogram.colours)


def time_sklearn(X: np.ndarray, init: np.ndarray, iters: int) -> float:
    from sklearn.cluster import KMeans

    t0 = time.perf_counter()
    km = KMeans(len(init), init=init, n_init=1, max_iter=iters, tol=0, algorithm="lloyd").fit(X)
    return (time.perf_counter() - t0) / km.n_iter_


def time_faiss(X: np.ndarray, init: np.ndarray, iters: int) -> float:
    """faiss's Kmeans on every point (no subsampling), all cores, from the same centres."""
    import faiss

    faiss.omp_set_num_threads(os.cpu_count() or 1)
    km = faiss.Kmeans(X.shape[1], len(init), niter=iters, verbose=False, seed=0,
                      max_points_per_centroid=len(X), min_points_per_centroid=1)
    t0 = time.perf_counter()
    km.train(np.ascontiguousarray(X, dtype=np.float32), init_centroids=init.astype(np.float32))
    return (time.perf_counter() - t0) / iters


def time_daskml(X: np.ndarray, init: np.ndarray, iters: int, chunk_rows: int) -> float:
    from dask_ml.cluster import KMeans

    Xd = da.from_array(X, chunks=(chunk_rows, 3)).persist()
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        km = KMeans(n_clusters=len(init), init=init, max_iter=iters, tol=0).fit(Xd)
    return (time.perf_counter() - t0) / km.n_iter_


def main(limits: tuple[float, float] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pixels", type=float, default=20e6)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--chunk-rows", type=int, default=2_500_000)
    parser.add_argument("--quick", action="store_true", help="1 M pixels, 5 iterations (a smoke run)")
    args, _ = parser.parse_known_args()
    if args.quick:
        args.pixels, args.iters = 1e6, 5
    from bench import limits as machine

    gflops, gbps = limits or machine.measure()
    pixels = photo_pixels(int(args.pixels))
    X = pixels.astype(np.float32)
    rng = np.random.default_rng(0)
    init = X[rng.choice(len(X), args.k, replace=False)].astype(np.float64) + 0.25
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}"
    )
    print(f"data: {len(X):,} RGB pixels of real photos, K={args.k}, {args.iters} iterations, fixed init")
    rows: list[tuple[str, float]] = []
    rows.append(("scikit-learn KMeans(lloyd), float32", time_sklearn(X, init, args.iters)))
    with dask.config.set(scheduler="threads"):
        per_iter, overall = time_emdask(pixels, init, args.iters, args.chunk_rows, "threads")
        rows.append(("emdask, every pixel, per pass", per_iter))
        rows.append(("emdask, every pixel, fit/n_iter", overall))
        per_iter, overall, ratio = time_counted(pixels, init, args.iters, args.chunk_rows)
        rows.append((f"emdask, colours counted ({ratio:.1f} px/colour), per pass", per_iter))
        rows.append(("emdask, colours counted, (count+fit)/n_iter", overall))
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster, Client(cluster):
        per_iter, overall = time_emdask(pixels, init, args.iters, args.chunk_rows, "distributed")
        rows.append(("emdask, LocalCluster 2x1, every pixel, per pass", per_iter))
    with dask.config.set(scheduler="threads"):
        rows.append(("dask-ml KMeans, threads, float32", time_daskml(X, init, args.iters, args.chunk_rows)))
    rows.append(("faiss Kmeans, every point, float32", time_faiss(X, init, args.iters)))
    floor = machine.floor_seconds(2.0 * len(X) * args.k * 3, len(X) * 3, gflops, gbps)
    print(f"machine floor per iteration: {floor:.4f} s (GEMM of the distances, or one read of the uint8 pixels)")
    sk, dml, fa = rows[0][1], rows[-2][1], rows[-1][1]
    print(f"\n{'case':58s} {'s/iter':>8s} {'vs sklearn':>11s} {'vs faiss':>9s} {'vs dask-ml':>11s} {'vs floor':>9s}")
    for name, t in rows:
        print(f"{name:58s} {t:8.3f} {t / sk:10.2f}x {t / fa:8.2f}x {t / dml:10.2f}x {t / floor:8.1f}x")


if __name__ == "__main__":
    main()
