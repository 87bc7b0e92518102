"""Per-iteration K-means on ~20 M RGB pixels of a real photo tiled up: emdask vs scikit-learn vs dask-ml.

All tools start from the same centres, run 20 iterations with ``tol=0`` on float32 data, and are
timed in one process on the same machine; the table gives seconds per iteration and ratios.
Usage: ``python -m bench [--pixels 20e6] [--k 16] [--iters 20] [--quick]``.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import warnings

import dask
import dask.array as da
import numpy as np
from skimage import data


def photo_tiled(n_pixels: int) -> np.ndarray:
    """The astronaut photo's pixels (float32), repeated to ``n_pixels`` rows."""
    px = data.astronaut().reshape(-1, 3).astype(np.float32)
    reps = -(-n_pixels // len(px))
    return np.tile(px, (reps, 1))[:n_pixels]


def time_emdask(X: np.ndarray, init: np.ndarray, iters: int, chunk_rows: int, scheduler: str) -> tuple[float, float]:
    import emdask

    Xd = da.from_array(X, chunks=(chunk_rows, 3)).persist()
    km = emdask.KMeans(len(init), init=init, max_iter=iters, tol=0)
    t0 = time.perf_counter()
    km.fit(Xd)
    total = time.perf_counter() - t0
    per_iter = statistics.median(h["seconds"] for h in km.history_)
    return per_iter, total / km.n_iter_


def time_sklearn(X: np.ndarray, init: np.ndarray, iters: int) -> float:
    from sklearn.cluster import KMeans

    t0 = time.perf_counter()
    km = KMeans(len(init), init=init, n_init=1, max_iter=iters, tol=0, algorithm="lloyd").fit(X)
    return (time.perf_counter() - t0) / km.n_iter_


def time_daskml(X: np.ndarray, init: np.ndarray, iters: int, chunk_rows: int) -> float:
    from dask_ml.cluster import KMeans

    Xd = da.from_array(X, chunks=(chunk_rows, 3)).persist()
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        km = KMeans(n_clusters=len(init), init=init, max_iter=iters, tol=0).fit(Xd)
    return (time.perf_counter() - t0) / km.n_iter_


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pixels", type=float, default=20e6)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--chunk-rows", type=int, default=2_500_000)
    parser.add_argument("--quick", action="store_true", help="1 M pixels, 5 iterations (a smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.pixels, args.iters = 1e6, 5
    X = photo_tiled(int(args.pixels))
    rng = np.random.default_rng(0)
    init = X[rng.choice(len(X), args.k, replace=False)].astype(np.float64) + 0.25
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    print(f"data: {len(X):,} RGB pixels float32 ({X.nbytes / 2**20:.0f} MiB), K={args.k}, {args.iters} iterations, fixed init")
    rows: list[tuple[str, float]] = []
    rows.append(("scikit-learn KMeans(lloyd)", time_sklearn(X, init, args.iters)))
    with dask.config.set(scheduler="threads"):
        per_iter, overall = time_emdask(X, init, args.iters, args.chunk_rows, "threads")
        rows.append(("emdask, threads, per pass", per_iter))
        rows.append(("emdask, threads, fit/n_iter", overall))
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster, Client(cluster):
        per_iter, overall = time_emdask(X, init, args.iters, args.chunk_rows, "distributed")
        rows.append(("emdask, LocalCluster 2x1, per pass", per_iter))
    with dask.config.set(scheduler="threads"):
        rows.append(("dask-ml KMeans, threads", time_daskml(X, init, args.iters, args.chunk_rows)))
    sk = rows[0][1]
    dml = rows[-1][1]
    print(f"\n{'case':38s} {'s/iter':>8s} {'vs sklearn':>11s} {'vs dask-ml':>11s}")
    for name, t in rows:
        print(f"{name:38s} {t:8.3f} {t / sk:10.2f}x {t / dml:10.2f}x")


if __name__ == "__main__":
    main()
