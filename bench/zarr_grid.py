"""A grid of K read from Zarr on disk: K in {4, 8, 16, 32} in one ``select_by_bic`` against K=32 alone.

The data (default 8 M x 8 float32, 256 MiB, zstd) is re-read from disk on every pass
(``cache=False``); diagonal GMMs from a k-means++ start, a fixed number of EM passes
(``tol=0``), so the grid and the single fit make the same number of passes.  The two alternate
over ``--rounds`` rounds (``bench.rounds``) and the medians are compared.
Usage: ``python -m bench.zarr_grid [--rows 8e6] [--dir /tmp]``.
"""
from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import dask
import dask.array as da
import numpy as np

from bench.gmm import blobs
from bench.rounds import interleaved

KS = (4, 8, 16, 32)


def write_store(path: Path, rows: int, d: int = 8, chunk_rows: int = 500_000) -> da.Array:
    parts = [da.from_array(blobs(chunk_rows, d, 16, seed=i).astype(np.float32), chunks=(chunk_rows, d))
             for i in range(rows // chunk_rows)]
    da.concatenate(parts).to_zarr(str(path), overwrite=True)
    return da.from_zarr(str(path))


def main(limits: tuple[float, float] | None = None) -> None:
    import emdask

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=float, default=8e6)
    parser.add_argument("--iters", type=int, default=8)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument("--quick", action="store_true", help="1 M rows")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of (K=32 alone, the grid)")
    args, _ = parser.parse_known_args()
    rows = int(1e6 if args.quick else args.rows)
    params = dict(covariance_type="diag", init_params="k-means++", tol=0.0, max_iter=args.iters, random_state=0,
                  cache=False)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp, dask.config.set(scheduler="threads"):
        X = write_store(Path(tmp) / "grid.zarr", rows)
        t0 = time.perf_counter()
        X.sum().compute()
        read = time.perf_counter() - t0
        fitted = {}

        def alone() -> float:
            t0 = time.perf_counter()
            fitted["alone"] = emdask.GaussianMixture(KS[-1], **params).fit(X)
            fitted["alone"].bic(X)
            return time.perf_counter() - t0

        def grid() -> float:
            t0 = time.perf_counter()
            fitted["best"], _ = emdask.select_by_bic(X, KS, **params)
            return time.perf_counter() - t0

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", emdask.ConvergenceWarning)  # tol=0: a fixed number of passes
            medians = interleaved({"alone": alone, "grid": grid}, args.rounds)
        t_alone, t_grid, best = medians["alone"], medians["grid"], fitted["best"]
    print(f"\n{f'Zarr on disk, {rows:,} x 8 float32, re-read each pass':54s} {'s':>8s} {'ratio':>8s}")
    print(f"{'one plain read of the store':54s} {read:8.2f}")
    print(f"{f'GaussianMixture(K={KS[-1]}) alone: fit + bic':54s} {t_alone:8.2f} {1.0:7.2f}x")
    print(f"{f'select_by_bic K in {KS}, one grid':54s} {t_grid:8.2f} {t_grid / t_alone:7.2f}x")
    print(f"chosen K={len(best.weights_)}; passes per fit: {fitted['alone'].n_iter_} EM + first pass + scoring; "
          f"medians of {args.rounds} interleaved rounds")


if __name__ == "__main__":
    main()
