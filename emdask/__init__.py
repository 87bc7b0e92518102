"""emdask: exact out-of-core Expectation-Maximization (K-means, Gaussian and Bernoulli mixtures) on Dask."""
from emdask._base import ConvergenceWarning, NotFittedError, fit_together
from emdask.cluster import KMeans
from emdask.errors import InputError
from emdask.kinds import load
from emdask.mixture import BernoulliMixture, GaussianMixture, bic_of, select_by_bic
from emdask.store import StoreError

__version__ = "0.1.0"
__all__ = [
    "BernoulliMixture", "ConvergenceWarning", "GaussianMixture", "InputError", "KMeans", "NotFittedError", "StoreError",
    "__version__", "bic_of", "fit_together", "load", "select_by_bic",
]
