"""K-means over a Zarr array on an S3 server: a grid K in {4, 8, 16, 32} in shared passes against K=32 alone,
and one pass against a plain read of the same array from the same endpoint.

The server is moto's, run as its own process (``moto_server``) so that serving objects does not share
this process's interpreter lock; the array (default 4 M x 8 float32, 128 MiB, zstd, 500k-row chunks)
is re-read from the server on every pass (``cache=False``).  Every fit starts from k-means++ and
makes ``--iters`` passes (``tol=0``).  The cases alternate over ``--rounds`` rounds and the medians
are compared.  Usage: ``python -m bench.s3_grid [--rows 4e6] [--iters 5] [--rounds 2]``.
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import warnings
from typing import Any

import dask
import dask.array as da
import numpy as np

from bench.gmm import blobs
from bench.rounds import interleaved, timed

KS = (4, 8, 16, 32)


def s3_server() -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """A moto S3 server process on a free port, with a bucket ``bench``; returns it and its storage options."""
    import s3fs

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-c", "from moto.server import main; main()", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    options = {"endpoint_url": f"http://127.0.0.1:{port}", "key": "bench", "secret": "bench"}
    for _ in range(100):
        try:
            s3fs.S3FileSystem(**options, skip_instance_cache=True).mkdir("bench")
            return server, options
        except Exception:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("the moto server did not start")


def main() -> None:
    import emdask
    from emdask.tables import read_zarr

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=float, default=4e6)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    rows, chunk = int(args.rows), 500_000
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    server, options = s3_server()
    try:
        url = "s3://bench/grid.zarr"
        parts = [da.from_array(blobs(chunk, 8, 16, seed=i).astype(np.float32), chunks=(chunk, 8))
                 for i in range(rows // chunk)]
        da.concatenate(parts).to_zarr(url, storage_options=options, overwrite=True)
        X = read_zarr(url, storage_options=options)
        centres = np.asarray(X[: 10 * KS[-1] : 10]).astype(np.float64)
        kmeans = dict(init="k-means++", tol=0.0, max_iter=args.iters, random_state=0, cache=False)
        fitted: dict[str, Any] = {}


        cases = {
            "read": timed(fitted, "read", lambda: X.sum().compute()),
            "pass": timed(fitted, "pass", lambda: emdask.KMeans(KS[-1], init=centres, n_init=1, max_iter=1, tol=0.0,
                                                        cache=False).fit(X)),
            "alone": timed(fitted, "alone", lambda: emdask.KMeans(KS[-1], **kmeans).fit(X)),
            "grid": timed(fitted, "grid", lambda: emdask.fit_together([emdask.KMeans(k, **kmeans) for k in KS], X)),
        }
        with dask.config.set(scheduler="threads"), warnings.catch_warnings():
            warnings.simplefilter("ignore", emdask.ConvergenceWarning)  # tol=0: a fixed number of passes
            t = interleaved(cases, args.rounds)
    finally:
        server.kill()
    print(f"\nZarr on a moto S3 server, {rows:,} x 8 float32 ({rows * 32 / 2**20:.0f} MiB), re-read each pass; "
          f"medians of {args.rounds} interleaved rounds")
    print(f"{'one plain read of the array from the server':52s} {t['read']:8.2f} s")
    print(f"{f'KMeans(K={KS[-1]}) alone, {args.iters} iterations':52s} {t['alone']:8.2f} s  1.00x   "
          f"inertia {fitted['alone'].inertia_:.6g}")
    print(f"{f'fit_together KMeans K in {KS}':52s} {t['grid']:8.2f} s  {t['grid'] / t['alone']:.2f}x   "
          f"inertia K=32 {fitted['grid'][-1].inertia_:.6g}")
    print(f"{'KMeans(K=32) from given centres, one iteration':52s} {t['pass']:8.2f} s  "
          f"{t['pass'] / t['read']:.2f}x the read")


if __name__ == "__main__":
    main()
