"""A grid of K read from Zarr on disk: K in {4, 8, 16, 32} in one fit against K=32 alone.

Two models: diagonal GMMs (``select_by_bic``), whose passes are arithmetic-bound here, and
K-means (``fit_together``), whose passes are bound by reading and decoding the store.

The data (default 8 M x 8 float32, 256 MiB, zstd) is re-read from disk on every pass
(``cache=False``); every model starts from k-means++ and makes a fixed number of passes
(``tol=0``), so a grid and its single fit make the same number of passes.  The four fits
alternate over ``--rounds`` rounds (``bench.rounds``) and the medians are compared.
Usage: ``python -m bench.zarr_grid [--rows 8e6] [--dir /tmp] [--quick]`` (``--quick``: 1 M rows).
"""
from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np

from bench.gmm import blobs
from bench.rounds import interleaved, standalone, timed

KS = (4, 8, 16, 32)


def write_store(path: Path, rows: int, d: int = 8, chunk_rows: int = 500_000) -> da.Array:
    parts = [da.from_array(blobs(chunk_rows, d, 16, seed=i).astype(np.float32), chunks=(chunk_rows, d))
             for i in range(rows // chunk_rows)]
    da.concatenate(parts).to_zarr(str(path), overwrite=True)
    return da.from_zarr(str(path))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=float, default=8e6)
    parser.add_argument("--iters", type=int, default=8)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default: %(default)s)")


def run(args: argparse.Namespace, limits: tuple[float, float]) -> None:
    import emdask

    rows = int(1e6 if args.quick else args.rows)
    params = dict(covariance_type="diag", init_params="k-means++", tol=0.0, max_iter=args.iters, random_state=0,
                  cache=False)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp, dask.config.set(scheduler="threads"):
        X = write_store(Path(tmp) / "grid.zarr", rows)
        t0 = time.perf_counter()
        X.sum().compute()
        read = time.perf_counter() - t0
        fitted: dict[str, Any] = {}


        def gmm_alone() -> Any:
            model = emdask.GaussianMixture(KS[-1], **params).fit(X)
            model.bic(X)
            return model

        kmeans = dict(init="k-means++", tol=0.0, max_iter=args.iters, random_state=0, cache=False)
        cases = {
            "gmm alone": timed(fitted, "gmm alone", gmm_alone),
            "gmm grid": timed(fitted, "gmm grid", lambda: emdask.select_by_bic(X, KS, **params)[0]),
            "kmeans alone": timed(fitted, "kmeans alone", lambda: emdask.KMeans(KS[-1], **kmeans).fit(X)),
            "kmeans grid": timed(
                fitted, "kmeans grid", lambda: emdask.fit_together([emdask.KMeans(k, **kmeans) for k in KS], X)
            ),
        }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", emdask.ConvergenceWarning)  # tol=0: a fixed number of passes
            t = interleaved(cases, args.rounds)
    print(f"\n{f'Zarr on disk, {rows:,} x 8 float32, re-read each pass':54s} {'s':>8s} {'ratio':>8s}")
    print(f"{'one plain read of the store':54s} {read:8.2f}")
    print(f"{f'GaussianMixture(K={KS[-1]}, diag) alone: fit + bic':54s} {t['gmm alone']:8.2f} {1.0:7.2f}x")
    print(f"{f'select_by_bic K in {KS}, one grid':54s} {t['gmm grid']:8.2f} {t['gmm grid'] / t['gmm alone']:7.2f}x")
    print(f"{f'KMeans(K={KS[-1]}) alone':54s} {t['kmeans alone']:8.2f} {1.0:7.2f}x")
    print(
        f"{f'fit_together KMeans K in {KS}':54s} {t['kmeans grid']:8.2f} {t['kmeans grid'] / t['kmeans alone']:7.2f}x"
    )
    print(f"chosen K={len(fitted['gmm grid'].weights_)}; GMM passes per fit: {fitted['gmm alone'].n_iter_} EM + first "
          f"pass + scoring; medians of {args.rounds} interleaved rounds")


if __name__ == "__main__":
    standalone(__doc__, add_arguments, run)
