"""K-means on 2 M x 32 float32 features, K=64, 20 iterations from a fixed init: emdask vs scikit-learn vs faiss.

Whole fits, the same float32 input for all, the inertia of each tool's final centres computed
alike (``bench.kmeans_pixels.inertia``); the tools alternate over ``--rounds`` rounds.
Usage: ``python -m bench.kmeans_features [--quick]``; ``python -m bench`` runs it with the others.
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
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default: %(default)s)")


def run(args: argparse.Namespace, limits: tuple[float, float]) -> None:
    n, d, k, iters = (200_000, 32, 64, 5) if args.quick else (int(args.rows), 32, 64, 20)
    X = blobs(n, d, k).astype(np.float32)
    init = X[np.random.default_rng(1).choice(n, k, replace=False)].astype(np.float64)

    def cases(X: np.ndarray) -> dict[str, Callable[[], Outcome]]:
        with dask.config.set(scheduler="threads"):
            Xd = da.from_array(X, chunks=(-(-len(X) // 8), d)).persist()
        return {
            "scikit-learn KMeans(lloyd)": sklearn_case(X, init, iters),
            "emdask, threads": threads(emdask_case(Xd, init, iters, X)),
            "faiss Kmeans, every point": faiss_case(X, init, iters),
        }

    for case in cases(X[:20_000]).values():  # untimed: compiled code loaded, thread pools started
        case()
    outcomes = interleaved(cases(X), args.rounds)
    floor = machine.floor_seconds(2.0 * n * k * d, X.nbytes, *limits)
    print_table(f"K-means, {n:,} x {d} features, K={k}, {iters} iterations from the same centres, "
                f"{args.rounds} round(s)", {name: ("float32", o) for name, o in outcomes.items()}, floor, "inertia")


if __name__ == "__main__":
    standalone(__doc__, add_arguments, run)
