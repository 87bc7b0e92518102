"""Run every benchmark case in one process on this machine: ``python -m bench [--quick]``."""
from bench import gmm, kmeans_pixels

if __name__ == "__main__":
    kmeans_pixels.main()
    gmm.main()
