"""emdask: exact out-of-core Expectation-Maximization (K-means, Gaussian and Bernoulli mixtures) on Dask."""
from emdask._base import ConvergenceWarning, NotFittedError
from emdask.cluster import KMeans

__version__ = "0.1.0"
__all__ = ["ConvergenceWarning", "KMeans", "NotFittedError", "__version__"]
