"""What a pass costs besides the E-steps, as the chunk count grows: emdask's pass against the same map-reduce
written with one ``dask.delayed`` call per chunk and per sum (what emdask did until 2026-12-01).

Tiny chunks (100 rows x 3 float32, K=8), so the E-steps themselves are a small known part: each
row prints the graph's build time, the whole pass on the threaded scheduler, the E-steps alone
(the same calls, one after the other, no Dask) and the pass's inertia, equal in every row of a
chunk count.  The two ways alternate over ``--rounds`` rounds.
Usage: ``python -m bench.pass_overhead [--chunks 8 1000 10000] [--quick]``.
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import dask
import dask.array as da
import numpy as np

from bench.rounds import interleaved, standalone, timed

ROWS = 100


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--chunks", type=int, nargs="+", default=[8, 1_000, 10_000])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default: %(default)s)")


def delayed_pass(data: object, fn: Callable, *args: object) -> object:
    """The pass as ``dask.delayed`` calls: one a chunk, one a sum of eight."""
    from emdask.engine import SPLIT_EVERY, _run_chunk, _sum

    parts = [dask.delayed(_run_chunk)(fn, x, None, off, args)
             for x, off in zip(data._x, data.offsets)]  # type: ignore[attr-defined]
    while len(parts) > 1:
        parts = [dask.delayed(_sum)(parts[i: i + SPLIT_EVERY]) for i in range(0, len(parts), SPLIT_EVERY)]
    return parts[0]


def ways(data: object, model: object, centres: np.ndarray) -> dict[str, Callable[[], object]]:
    """The two ways to build one pass over ``data``'s chunks."""
    return {"emdask: one graph layer": lambda: data.pass_graph(model.e_step, centres),  # type: ignore[attr-defined]
            "a dask.delayed call a chunk": lambda: delayed_pass(data, model.e_step, centres)}  # type: ignore


def one_count(n: int, rounds: int) -> None:
    """Both ways over ``n`` chunks, interleaved; a row each."""
    from emdask.engine import ChunkedData
    from emdask.kmeans import KMeansModel

    model = KMeansModel(8)
    x = np.random.default_rng(n).normal(size=(n * ROWS, 3)).astype(np.float32)
    centres = x[:8].astype(np.float64) + 0.5
    builders = ways(ChunkedData(da.from_array(x, chunks=(ROWS, 3)), cache=False), model, centres)
    built: dict[str, object] = {}
    builds = interleaved({way: timed(built, way, build) for way, build in builders.items()}, rounds)
    totals: dict[str, object] = {}
    with dask.config.set(scheduler="threads"):
        passes = interleaved({way: timed(totals, way, lambda b=build: dask.compute(b())[0])  # type: ignore[misc]
                              for way, build in builders.items()}, rounds)
    t0 = time.perf_counter()
    for i in range(n):
        model.e_step(x[i * ROWS:(i + 1) * ROWS], None, i * ROWS, centres)
    alone = time.perf_counter() - t0
    for way in builders:
        overhead = (passes[way] - alone) / n
        print(f"{n:>7} {way:<34} {builds[way] * 1e3:>9.1f} {passes[way] * 1e3:>9.1f} {alone * 1e3:>11.1f} "
              f"{overhead * 1e6:>8.0f}us {totals[way].inertia:>14.6e}")  # type: ignore[attr-defined]


def run(args: argparse.Namespace, limits: tuple[float, float]) -> None:
    from emdask.engine import ChunkedData
    from emdask.kmeans import KMeansModel

    counts = [8, 200] if args.quick else args.chunks
    rounds = 1 if args.quick else args.rounds
    warm = ChunkedData(da.from_array(np.ones((2 * ROWS, 3), np.float32), chunks=(ROWS, 3)), cache=False)
    with dask.config.set(scheduler="threads"):  # untimed: compiled code loaded, the thread pool started
        dask.compute(*[build() for build in ways(warm, KMeansModel(8), np.zeros((8, 3))).values()])
    print(f"\nOne K-means pass over n chunks of {ROWS} x 3 float32 (K=8), threaded scheduler, medians of {rounds} "
          "interleaved round(s)")
    print(f"{'chunks':>7} {'way':<34} {'build ms':>9} {'pass ms':>9} {'E-steps ms':>11} {'per chunk':>10} "
          f"{'inertia':>14}")
    for n in counts:
        one_count(n, rounds)


if __name__ == "__main__":
    standalone(__doc__, add_arguments, run)
