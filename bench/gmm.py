"""Gaussian mixture on 1 M x 8 float64 points, K=8, full and diag: emdask vs scikit-learn, whole fits.

Both start from the same parameters and run a fixed number of iterations (``tol=0``); the table
gives each whole ``fit()``, emdask's median pass, the ratio and the final mean log-likelihood of
each, over interleaved rounds.  Usage: ``python -m bench.gmm [--rows 1e6] [--quick]``.
"""
from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

import dask
import dask.array as da
import numpy as np

from bench import limits as machine
from bench.rounds import Outcome, interleaved, print_table, standalone
from emdask.gaussian import CovarianceType


def blobs(n: int, d: int, k: int, seed: int = 0) -> np.ndarray:
    """Points from K anisotropic Gaussian clusters."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=8, size=(k, d))
    z = rng.integers(k, size=n)
    mix = rng.normal(size=(k, d, d)) / np.sqrt(d) + np.eye(d)
    return centres[z] + np.einsum("nd,nde->ne", rng.normal(size=(n, d)), mix[z])


def run(n: int = 1_000_000, d: int = 8, k: int = 8, iters: int = 10, chunk_rows: int = 125_000,
        rounds: int = 2) -> dict[str, Outcome]:
    """Whole fits of each tool from the same parameters, with emdask's median pass and each final mean
    log-likelihood, over interleaved rounds (the round with the median time)."""
    from sklearn.mixture import GaussianMixture as SkGM

    import emdask

    X = blobs(n, d, k)
    cases: dict[str, Callable[[], Outcome]] = {}
    covariances: tuple[CovarianceType, ...] = ("full", "diag")
    for cov in covariances:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = SkGM(k, covariance_type=cov, max_iter=2, tol=0, random_state=0).fit(X[:50_000])
        init = {"weights_init": start.weights_, "means_init": start.means_, "precisions_init": start.precisions_}

        def sklearn(cov: str = cov, init: dict = init) -> Outcome:
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tol=0: "did not converge" by design
                sk = SkGM(k, covariance_type=cov, max_iter=iters, tol=0, init_params="random_from_data", **init).fit(X)
            return Outcome(time.perf_counter() - t0, None, sk.lower_bound_)

        def ours(cov: CovarianceType = cov, init: dict = init) -> Outcome:
            with dask.config.set(scheduler="threads"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                Xd = da.from_array(X, chunks=(chunk_rows, d)).persist()
                t0 = time.perf_counter()
                em = emdask.GaussianMixture(k, covariance_type=cov, max_iter=iters, tol=0, **init).fit(Xd)
                seconds = time.perf_counter() - t0
            return Outcome(seconds, statistics.median(h["seconds"] for h in em.history_), em.lower_bound_)

        cases[f"GMM {cov}, scikit-learn"] = sklearn
        cases[f"GMM {cov}, emdask threads"] = ours
    return interleaved(cases, rounds)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=float, default=1e6)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default: %(default)s)")


def run_case(args: argparse.Namespace, limits: tuple[float, float]) -> None:
    n, d, k = (100_000 if args.quick else int(args.rows)), 8, 8
    floors = {  # log-densities and second moments: about 4 K D^2 flops per row (full), 6 K D (diag)
        "full": machine.floor_seconds(4.0 * n * k * d * d, n * d * 8, *limits),
        "diag": machine.floor_seconds(6.0 * n * k * d, n * d * 8, *limits),
    }
    run(20_000, d, k, 2, 2_500, 1)  # untimed: compiled code loaded
    outcomes = run(n, d, k, rounds=args.rounds, chunk_rows=-(-n // 8))
    for cov, floor in floors.items():
        print_table(f"Gaussian mixture, {n:,} x {d} float64, K={k}, covariance {cov}, 10 iterations from the same "
                    f"parameters, {args.rounds} round(s)",
                    {name: ("float64", o) for name, o in outcomes.items() if f" {cov}," in name}, floor,
                    "mean loglik")


if __name__ == "__main__":
    standalone(__doc__, add_arguments, run_case)
