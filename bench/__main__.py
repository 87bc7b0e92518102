"""Run every benchmark case: ``python -m bench [--quick]``."""
from bench.kmeans_pixels import main

if __name__ == "__main__":
    main()
