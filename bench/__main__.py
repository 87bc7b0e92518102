"""Run every benchmark case in one process on this machine: ``python -m bench [--quick] [--rounds N]``.

The machine's limits are measured first; every case prints its tools' whole fits, their results
and ratios to their peers and to the machine's floor.  Each case runs with its own defaults:
only ``--quick`` and ``--rounds`` reach them (``python -m bench.<case> --help`` for a case's own).
"""
import argparse
import time

from bench import gmm, kmeans_features, kmeans_pixels, limits, out_of_core, pass_overhead, zarr_grid
from bench.rounds import case_arguments

CASES = (
    (kmeans_pixels.add_arguments, kmeans_pixels.run),
    (kmeans_features.add_arguments, kmeans_features.run),
    (gmm.add_arguments, gmm.run_case),
    (zarr_grid.add_arguments, zarr_grid.run),
    (out_of_core.add_arguments, out_of_core.run),
    (pass_overhead.add_arguments, pass_overhead.run),
)

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, one round: a smoke run of every case")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds of every case (default: its own)")
    common = parser.parse_args()
    t0 = time.perf_counter()
    measured = limits.measure()
    for add, run in CASES:
        run(case_arguments(add, common), measured)
    print(f"\nall cases: {time.perf_counter() - t0:.0f} s")
