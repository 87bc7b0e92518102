"""Run every benchmark case in one process on this machine: ``python -m bench [--quick]``.

The machine's limits are measured first; every case prints its ratios to its peers and to them.
"""
from bench import gmm, kmeans_features, kmeans_pixels, limits, out_of_core, zarr_grid

if __name__ == "__main__":
    measured = limits.measure()
    kmeans_pixels.main(measured)
    kmeans_features.main(measured)
    gmm.main(measured)
    zarr_grid.main(measured)
    out_of_core.main(measured)
