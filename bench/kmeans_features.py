"""K-means on 2 M x 32 float32 features, K=64, 20 iterations from a fixed init: emdask vs scikit-learn vs faiss.

Whole fits, the same input for all (faiss takes float32 only: it gets the values as float32), the
inertia of each tool's final centres computed alike (``bench.kmeans_pixels.inertia``); the tools
alternate over ``--rounds`` rounds.  ``--features``, ``--clusters`` and ``--dtype`` (``uint8``: the
blobs scaled into 0-255) change the case.
Usage: ``python -m bench.kmeans_features [--features 32] [--clusters 64] [--dtype float32] [--quick]``;
``python -m bench`` runs it with the others, at its defaults.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable

import dask
import dask.array as da
import numpy as np

from bench import limits as machine
from bench.gmm import blobs
from bench.kmeans_pixels import emdask_case, faiss_case, sklearn_case, threads
from bench.rounds import Outcome, interleaved, print_table, standalone


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=float, default=2e6)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--clusters", type=int, default=64)
    parser.add_argument("--dtype", choices=["float32", "uint8"], default="float32")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default: %(default)s)")


def run(args: argparse.Namespace, limits: tuple[float, float]) -> None:
    n, iters = (200_000, 5) if args.quick else (int(args.rows), 20)
    d, k = args.features, args.clusters
    X = blobs(n, d, k)
    X = (X * 8 + 128).clip(0, 255).astype(np.uint8) if args.dtype == "uint8" else X.astype(np.float32)
    init = X[np.random.default_rng(1).choice(n, k, replace=False)].astype(np.float64)

    def cases(X: np.ndarray) -> dict[str, tuple[str, Callable[[], Outcome]]]:
        with dask.config.set(scheduler="threads"):
            Xd = da.from_array(X, chunks=(-(-len(X) // 8), d)).persist()
        return {
            "scikit-learn KMeans(lloyd)": (str(X.dtype), sklearn_case(X, init, iters)),
            "emdask, threads": (str(X.dtype), threads(emdask_case(Xd, init, iters, X))),
            "faiss Kmeans, every point": ("float32", faiss_case(X, init, iters)),
        }

    for _, case in cases(X[:20_000]).values():  # untimed: compiled code loaded, thread pools started
        case()
    timed_cases = cases(X)
    outcomes = interleaved({name: case for name, (_, case) in timed_cases.items()}, args.rounds)
    floor = machine.floor_seconds(2.0 * n * k * d, X.nbytes, *limits)
    print_table(f"K-means, {n:,} x {d} features, K={k}, {iters} iterations from the same centres, "
                f"{args.rounds} round(s)", {name: (dtype, outcomes[name]) for name, (dtype, _) in timed_cases.items()},
                floor, "inertia")


if __name__ == "__main__":
    standalone(__doc__, add_arguments, run)
