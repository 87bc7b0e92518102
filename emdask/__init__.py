"""emdask: exact out-of-core Expectation-Maximization (K-means, Gaussian and Bernoulli mixtures) on Dask."""
from emdask._base import ConvergenceWarning, NotFittedError, fit_together
from emdask.cluster import KMeans
from emdask.mixture import BernoulliMixture, GaussianMixture, select_by_bic
from emdask.store import StoreError, load

__version__ = "0.1.0"
__all__ = ["BernoulliMixture", "ConvergenceWarning", "GaussianMixture", "KMeans", "NotFittedError", "StoreError", "__version__", "fit_together", "load", "select_by_bic"]
