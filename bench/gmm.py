"""Per-EM-iteration Gaussian mixture on 1 M x 8 float64 points, K=8, full and diag: emdask vs scikit-learn.

Both start from the same parameters and run a fixed number of iterations (``tol=0``); the table
gives seconds per iteration (medians over interleaved rounds), the ratio and the final mean
log-likelihood of each.
"""
from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable

import dask
import dask.array as da
import numpy as np

from bench.rounds import interleaved
from emdask.gaussian import CovarianceType


def blobs(n: int, d: int, k: int, seed: int = 0) -> np.ndarray:
    """Points from K anisotropic Gaussian clusters."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=8, size=(k, d))
    z = rng.integers(k, size=n)
    mix = rng.normal(size=(k, d, d)) / np.sqrt(d) + np.eye(d)
    return centres[z] + np.einsum("nd,nde->ne", rng.normal(size=(n, d)), mix[z])


def run(n: int = 1_000_000, d: int = 8, k: int = 8, iters: int = 10, chunk_rows: int = 125_000,
        rounds: int = 2) -> list[tuple[str, float, float]]:
    """Seconds per iteration and final mean log-likelihood of each tool, over interleaved rounds (medians)."""
    from sklearn.mixture import GaussianMixture as SkGM

    import emdask

    X = blobs(n, d, k)
    Xd = da.from_array(X, chunks=(chunk_rows, d))
    lower_bounds: dict[str, float] = {}
    cases: dict[str, Callable[[], float]] = {}
    covariances: tuple[CovarianceType, ...] = ("full", "diag")
    for cov in covariances:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = SkGM(k, covariance_type=cov, max_iter=2, tol=0, random_state=0).fit(X[:50_000])
        init = {"weights_init": start.weights_, "means_init": start.means_, "precisions_init": start.precisions_}

        def sklearn(cov: str = cov, init: dict = init) -> float:
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tol=0: "did not converge" by design
                sk = SkGM(k, covariance_type=cov, max_iter=iters, tol=0, init_params="random_from_data", **init).fit(X)
            lower_bounds[f"GMM {cov}, scikit-learn"] = sk.lower_bound_
            return (time.perf_counter() - t0) / sk.n_iter_

        def ours(cov: CovarianceType = cov, init: dict = init) -> float:
            with dask.config.set(scheduler="threads"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                em = emdask.GaussianMixture(k, covariance_type=cov, max_iter=iters, tol=0, **init).fit(Xd.persist())
            lower_bounds[f"GMM {cov}, emdask threads"] = em.lower_bound_
            return statistics.median(h["seconds"] for h in em.history_)

        cases[f"GMM {cov}, scikit-learn"] = sklearn
        cases[f"GMM {cov}, emdask threads"] = ours
    return [(name, t, lower_bounds[name]) for name, t in interleaved(cases, rounds).items()]


def main(limits: tuple[float, float] | None = None) -> None:
    from bench import limits as machine

    gflops, gbps = limits or machine.measure()
    n, d, k = 1_000_000, 8, 8
    floors = {  # log-densities and second moments: about 4 K D^2 flops per row (full), 6 K D (diag)
        "full": machine.floor_seconds(4.0 * n * k * d * d, n * d * 8, gflops, gbps),
        "diag": machine.floor_seconds(6.0 * n * k * d, n * d * 8, gflops, gbps),
    }
    print(f"\n{'case (1M x 8, K=8)':38s} {'s/iter':>8s} {'ratio':>8s} {'vs floor':>9s} {'mean loglik':>14s}")
    rows = run(n, d, k)
    for i, (name, t, ll) in enumerate(rows):
        ref = rows[i - i % 2][1]
        floor = floors[name.split()[1].rstrip(",")]
        print(f"{name:38s} {t:8.3f} {t / ref:7.2f}x {t / floor:8.1f}x {ll:14.8f}")


if __name__ == "__main__":
    main()
