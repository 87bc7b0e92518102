"""Out of core: K-means over a Zarr dataset 4x the workers' total memory limit, against one plain read.

A LocalCluster of 2 single-threaded workers with ``--memory-limit`` each (default 1 GiB); the
dataset (float32, 8 features, zstd) is ``--factor`` times their total limit and is written to
disk by the cluster first.  Reported: one plain read of the store (a sum over it), each K-means
pass (K=8, fixed number of passes, re-read from disk since the data cannot be cached), and the
peak resident memory of every process, sampled every 0.2 s.
Usage: ``python -m bench.out_of_core [--factor 4] [--memory-limit 1GiB] [--dir /tmp] [--quick]``.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import dask.array as da
import numpy as np
from dask.utils import parse_bytes

from bench.image_set import PeakMemory
from bench.rounds import standalone


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--factor", type=float, default=4.0)
    parser.add_argument("--memory-limit", default="1GiB")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument("--rounds", type=int, default=1, help="unused: one run")


def run(args: argparse.Namespace, limits: tuple[float, float]) -> None:
    from distributed import Client, LocalCluster

    import emdask

    if args.quick:  # a smoke run: 0.25x the workers' limit, not 4x (8 GiB written)
        args.factor, args.passes = 0.25, 2
    limit = parse_bytes(args.memory_limit)
    d, chunk_rows = 8, 2_000_000
    rows = int(args.factor * 2 * limit / (4 * d)) // chunk_rows * chunk_rows
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp, LocalCluster(
        n_workers=2, threads_per_worker=1, memory_limit=limit, dashboard_address=":0"
    ) as cluster, Client(cluster):
        path = str(Path(tmp) / "big.zarr")
        centres = np.random.default_rng(0).normal(scale=4, size=(8, d)).astype(np.float32)
        rng = da.random.default_rng(0)  # drawn in float32: no float64 chunk on workers near their memory limit
        X = rng.standard_normal(size=(rows, d), dtype=np.float32, chunks=(chunk_rows, d))
        X = X + da.from_array(centres)[rng.integers(0, 8, size=rows, chunks=chunk_rows)]
        t0 = time.perf_counter()
        X.to_zarr(path)
        written = time.perf_counter() - t0
        X = da.from_zarr(path)
        t0 = time.perf_counter()
        X.sum().compute()
        read = time.perf_counter() - t0
        with PeakMemory() as peaks:
            km = emdask.KMeans(8, init=centres.astype(np.float64) + 0.5, max_iter=args.passes, tol=0).fit(X)
        per_pass = statistics.median(h["seconds"] for h in km.history_)
    gib = X.nbytes / 2**30
    print(f"\nout of core: {rows:,} x {d} float32 = {gib:.1f} GiB on disk (written in {written:.0f} s), "
          f"{args.factor:g}x the workers' total limit of 2 x {args.memory_limit}")
    print(f"{'one plain read of the store':44s} {read:8.2f} s")
    print(
        f"{'K-means pass (K=8), median of ' + str(km.n_iter_):44s} {per_pass:8.2f} s {per_pass / read:6.2f}x the read"
    )
    for pid, peak in sorted(peaks.peaks.items(), key=lambda kv: -kv[1]):
        print(f"  peak RSS {peak / 2**30:5.2f} GiB  {peaks.names.get(pid, pid)}")


if __name__ == "__main__":
    standalone(__doc__, add_arguments, run)
