"""Run every benchmark case in one process on this machine: ``python -m bench [--quick]``."""
from bench import gmm, kmeans_features, kmeans_pixels, limits

if __name__ == "__main__":
    measured = limits.measure()
    kmeans_pixels.main(measured)
    kmeans_features.main(measured)
    gmm.main(measured)
