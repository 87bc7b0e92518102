"""K-means on ~20 M RGB pixels of real photos: emdask vs scikit-learn, dask-ml and faiss, whole fits.

The pixels are random crops of the bundled photos, rescaled (``data/make_image_set.py``'s
variants): real colour statistics, never one photo tiled, so counting colours gains nothing from
repetition.  Every tool starts from the same centres (sampled pixels plus a random offset, so no
pixel is equidistant from two of them) and runs ``--iters`` iterations with ``tol=0``.  Each
row times the whole ``fit()`` (first pass, iterations and final assignment, as the tool does
them) and gives its input type; emdask's median pass is a second column.  The inertia of every
tool's final centres is computed afterwards by one exact float64 function, so the tools are seen
to reach the same point.  The cases alternate over ``--rounds`` rounds.
Usage: ``python -m bench.kmeans_pixels [--pixels 20e6] [--k 16] [--iters 20] [--quick]``.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import dask
import dask.array as da
import numpy as np

from bench import limits as machine
from bench.rounds import Outcome, interleaved, print_table, standalone

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


def starting_centres(X: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """``k`` sampled rows plus a uniform offset in [0, 1): off the data's lattice, so no exact ties."""
    rng = np.random.default_rng(seed)
    return X[rng.choice(len(X), k, replace=False)].astype(np.float64) + rng.random((k, X.shape[1]))


def inertia(X: np.ndarray, centres: np.ndarray) -> float:
    """The exact float64 inertia of ``X`` at ``centres`` (one emdask E-step): every tool's result, measured alike."""
    from emdask.kmeans import KMeansModel

    return float(KMeansModel(len(centres)).e_step(X, None, 0, np.asarray(centres, dtype=np.float64)).inertia)


def emdask_case(X: da.Array, init: np.ndarray, iters: int, pixels: np.ndarray) -> Callable[[], Outcome]:
    """A timed ``emdask.KMeans.fit`` on the Dask array ``X`` on the active scheduler."""
    def case() -> Outcome:
        import emdask

        t0 = time.perf_counter()
        km = emdask.KMeans(len(init), init=init, max_iter=iters, tol=0).fit(X)
        seconds = time.perf_counter() - t0
        per_pass = statistics.median(h["seconds"] for h in km.history_)
        return Outcome(seconds, per_pass, inertia(pixels, km.cluster_centers_))
    return case


def threads(case: Callable[[], Outcome]) -> Callable[[], Outcome]:
    """``case`` on Dask's threaded scheduler, whatever client is the default."""
    def run() -> Outcome:
        with dask.config.set(scheduler="threads"):
            return case()
    return run


def counted_case(pixels: np.ndarray, init: np.ndarray, iters: int, chunk_rows: int) -> Callable[[], Outcome]:
    """emdask's image path: count the distinct colours (one pass), then Lloyd on the weighted colours."""
    def case() -> Outcome:
        from emdask import codebooks

        Xd = da.from_array(pixels.reshape(-1, 1, 3), chunks=(chunk_rows, 1, 3))
        t0 = time.perf_counter()
        (histogram,) = dask.compute(codebooks.histogram_of([Xd]), scheduler="threads")
        fit = codebooks.fit(histogram, len(init), codebooks.Settings(init=init, tol=0.0, max_iter=iters))
        seconds = time.perf_counter() - t0
        return Outcome(seconds, None, inertia(pixels, fit.centres))
    return case


def sklearn_case(X: np.ndarray, init: np.ndarray, iters: int) -> Callable[[], Outcome]:
    def case() -> Outcome:
        from sklearn.cluster import KMeans

        t0 = time.perf_counter()
        km = KMeans(len(init), init=init, n_init=1, max_iter=iters, tol=0, algorithm="lloyd").fit(X)
        return Outcome(time.perf_counter() - t0, None, inertia(X, km.cluster_centers_))
    return case


def faiss_case(X: np.ndarray, init: np.ndarray, iters: int) -> Callable[[], Outcome]:
    """faiss's Kmeans on every point (no subsampling), all cores, from the same centres."""
    def case() -> Outcome:
        import faiss

        faiss.omp_set_num_threads(os.cpu_count() or 1)
        km = faiss.Kmeans(X.shape[1], len(init), niter=iters, verbose=False, seed=0,
                          max_points_per_centroid=len(X), min_points_per_centroid=1)
        t0 = time.perf_counter()
        km.train(np.ascontiguousarray(X, dtype=np.float32), init_centroids=init.astype(np.float32))
        return Outcome(time.perf_counter() - t0, None, inertia(X, np.asarray(km.centroids)))
    return case


def daskml_case(X: da.Array, init: np.ndarray, iters: int, reference: np.ndarray) -> Callable[[], Outcome]:
    def case() -> Outcome:
        from dask_ml.cluster import KMeans

        t0 = time.perf_counter()
        with warnings.catch_warnings(), dask.config.set(scheduler="threads"):
            warnings.simplefilter("ignore")
            km = KMeans(n_clusters=len(init), init=init, max_iter=iters, tol=0).fit(X)
        return Outcome(time.perf_counter() - t0, None, inertia(reference, km.cluster_centers_))
    return case


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pixels", type=float, default=20e6)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--chunk-rows", type=int, default=2_500_000)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default: %(default)s)")


def run(args: argparse.Namespace, limits: tuple[float, float]) -> None:
    from distributed import Client, LocalCluster

    from emdask.runtime import persist_spread

    if args.quick:
        args.pixels, args.iters = 1e6, 5
    pixels = photo_pixels(int(args.pixels))
    X = pixels.astype(np.float32)
    init = starting_centres(X, args.k)
    chunk_rows = min(args.chunk_rows, -(-len(X) // 8))  # at least 8 chunks: every core busy
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster, Client(cluster), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Sending large graph": the pixels go to the workers once

        def cases(pixels: np.ndarray, X: np.ndarray) -> dict[str, tuple[str, Callable[[], Outcome]]]:
            chunks = (chunk_rows, 3)
            # placed as a fit places the rows it caches itself (it leaves an array persisted by its caller as it is)
            (X32_cluster,) = persist_spread(da.from_array(X, chunks=chunks))
            with dask.config.set(scheduler="threads"):
                X32, X8 = da.from_array(X, chunks=chunks).persist(), da.from_array(pixels, chunks=chunks).persist()
            return {
                "scikit-learn KMeans(lloyd)": ("float32", sklearn_case(X, init, args.iters)),
                "emdask, threads": ("float32", threads(emdask_case(X32, init, args.iters, X))),
                "emdask, threads, the pixels as they are": ("uint8", threads(emdask_case(X8, init, args.iters, X))),
                "emdask, LocalCluster 2 workers x 1 thread": ("float32", emdask_case(X32_cluster, init, args.iters, X)),
                "emdask, colours counted, then Lloyd on them": ("uint8", counted_case(pixels, init, args.iters,
                                                                                      chunk_rows)),
                "dask-ml KMeans, threads": ("float32", daskml_case(X32, init, args.iters, X)),
                "faiss Kmeans, every point": ("float32", faiss_case(X, init, args.iters)),
            }

        for _, case in cases(pixels[:20_000], X[:20_000]).values():  # untimed: compiled code loaded, pools started
            case()
        timed_cases = cases(pixels, X)
        outcomes = interleaved({name: case for name, (_, case) in timed_cases.items()}, args.rounds)
    floor = machine.floor_seconds(2.0 * len(X) * args.k * 3, len(X) * 3, *limits)
    print_table(f"K-means, {len(X):,} RGB pixels of real photos, K={args.k}, {args.iters} iterations from the same "
                f"centres, {args.rounds} round(s)",
                {name: (dtype, outcomes[name]) for name, (dtype, _) in timed_cases.items()}, floor, "inertia")


if __name__ == "__main__":
    standalone(__doc__, add_arguments, run)
