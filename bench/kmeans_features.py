"""K-means on 2 M x 32 float32 features, K=64, 20 iterations from a fixed init: emdask vs scikit-learn vs faiss.

The three tools alternate over ``--rounds`` rounds (``bench.rounds``); each row is a median.

Usage: ``python -m bench.kmeans_features [--quick]``; ``python -m bench`` runs it with the others.
"""
from __future__ import annotations

import argparse
import statistics
import time

import dask
import dask.array as da
import numpy as np

from bench import limits as machine
from bench.gmm import blobs
from bench.kmeans_pixels import time_faiss, time_sklearn
from bench.rounds import interleaved


def time_emdask(X: np.ndarray, init: np.ndarray, iters: int, chunk_rows: int) -> float:
    import emdask

    with dask.config.set(scheduler="threads"):
        Xd = da.from_array(X, chunks=(chunk_rows, X.shape[1])).persist()
        km = emdask.KMeans(len(init), init=init, max_iter=iters, tol=0).fit(Xd)
    return statistics.median(h["seconds"] for h in km.history_)


def main(limits: tuple[float, float] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="200 k rows, 5 iterations")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median of each tool is shown")
    args, _ = parser.parse_known_args()
    n, d, k, iters = (200_000, 32, 64, 5) if args.quick else (2_000_000, 32, 64, 20)
    gflops, gbps = limits or machine.measure()
    X = blobs(n, d, k).astype(np.float32)
    init = X[np.random.default_rng(1).choice(n, k, replace=False)].astype(np.float64)
    medians = interleaved({
        "scikit-learn KMeans(lloyd)": lambda: time_sklearn(X, init, iters),
        "faiss Kmeans, every point": lambda: time_faiss(X, init, iters),
        "emdask, threads, per pass": lambda: time_emdask(X, init, iters, 250_000),
    }, args.rounds)
    rows = list(medians.items())
    floor = machine.floor_seconds(2.0 * n * k * d, X.nbytes, gflops, gbps)
    print(
        f"\n{f'case ({n:,} x {d} float32, K={k})':38s} {'s/iter':>8s} {'vs sklearn':>11s} "
        f"{'vs faiss':>9s} {'vs floor':>9s}"
    )
    for name, t in rows:
        print(f"{name:38s} {t:8.3f} {t / rows[0][1]:10.2f}x {t / rows[1][1]:8.2f}x {t / floor:8.1f}x")


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"({time.perf_counter() - t0:.0f} s)")
