"""The Bernoulli mixture model for binary data: E-step statistics of a chunk and the M-step.

Course notes: r_nk = pi_k prod_d p_kd^x_nd (1 - p_kd)^(1 - x_nd) / sum_j (...),
p_k = sum_n r_nk x_n / N_k, pi_k = N_k / N.

Responsibilities by log-sum-exp of ``x . log p + (1 - x) . log(1 - p)`` (a matrix product).
The probabilities are the posterior mode under a symmetric Beta(1 + alpha, 1 + alpha) prior,
``p_k = (sum_n r_nk x_n + alpha) / (N_k + 2 alpha)``: strictly inside (0, 1) for ``alpha > 0``,
so no log(0) appears; ``alpha = 1`` is Laplace's add-one rule (scikit-learn's BernoulliNB default).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emdask._linalg import log_responsibilities, nearest, row_blocks
from emdask._random import row_uniforms
from emdask._stats import Stats
from emdask.engine import StopOn
from emdask.errors import InputError

_EPS10 = 10 * np.finfo(np.float64).eps


@dataclass(frozen=True)
class BernoulliParams:
    weights: np.ndarray  # (K,)
    means: np.ndarray  # (K, D) probabilities of a 1


@dataclass(frozen=True)
class BernoulliStats(Stats):
    nk: np.ndarray  # (K,) sum of w r
    sx: np.ndarray  # (K, D) sum of w r x
    loglik: float
    weight: float


def check_binary(x: np.ndarray, offset: int, name: str) -> None:
    """Raise unless every value is 0 or 1 (bool, integer or float)."""
    if x.dtype == bool:
        return
    bad = (x != 0) & (x != 1)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise InputError(
            f"{name} must be binary (0/1 or bool) for a BernoulliMixture; "
            f"got {x[r, c].item()!r} at row {offset + r}, column {c}"
        )


#: The log of a probability of exactly 0: finite, so 0 * log 0 is 0, and far below any real log-likelihood.
LOG_ZERO = -1e300


@dataclass(frozen=True)
class BernoulliModel:
    """EM for a mixture of independent Bernoulli variables; ``tol`` on the change of mean log-likelihood."""

    n_components: int
    alpha: float = 1.0
    tol: float = 1e-3
    stop_on: StopOn = "objective"  # converged when the bound changed by less than tol (scikit-learn)
    #: A warm start's previous bound: its first iteration converges if the bound moved by less than tol
    previous_objective: float | None = None
    objective_name = "mean log-posterior"

    def log_prob(self, x: np.ndarray, params: BernoulliParams) -> np.ndarray:
        """log(pi_k p(x | p_k)) for each row and component, (n, K) float64.

        Probabilities of exactly 0 or 1 (maximum likelihood, ``alpha=0``) have log -inf; it is taken as
        :data:`LOG_ZERO` (about -1e300), so a value a component cannot produce makes the row impossible
        under it, not NaN, and a row impossible under every component has a log-likelihood near -1e300.
        """
        with np.errstate(divide="ignore"):
            log_p, log_q = np.log(params.means), np.log1p(-params.means)
        xf = x.astype(np.float64)
        if np.isfinite(log_p).all() and np.isfinite(log_q).all():
            return xf @ (log_p - log_q).T + log_q.sum(axis=1) + np.log(params.weights)
        log_p, log_q = np.maximum(log_p, LOG_ZERO), np.maximum(log_q, LOG_ZERO)  # x log p + (1 - x) log q, no 0 * inf
        return xf @ log_p.T + (1.0 - xf) @ log_q.T + np.log(params.weights)

    def _stats(self, x: np.ndarray, wr: np.ndarray, loglik: float, weight: float) -> BernoulliStats:
        return BernoulliStats(wr.sum(axis=0), wr.T @ x.astype(np.float64), loglik, weight)

    def e_step(self, x: np.ndarray, w: np.ndarray | None, offset: int, params: BernoulliParams) -> BernoulliStats:
        k, d = params.means.shape
        stats = BernoulliStats(np.zeros(k), np.zeros((k, d)), 0.0, 0.0)
        for rows in row_blocks(len(x), k):
            xb = x[rows]
            wb = np.ones(len(xb)) if w is None else w[rows]
            logp = self.log_prob(xb, params)
            norm, wr = log_responsibilities(logp)
            wr *= wb[:, None]
            stats = stats + self._stats(xb, wr, float(wb @ norm), float(wb.sum()))
        return stats

    def hard_stats(self, x: np.ndarray, w: np.ndarray | None, offset: int, centres: np.ndarray) -> BernoulliStats:
        """Statistics with each row given wholly to its nearest centre (initialisation from k-means++)."""
        labels, _ = nearest(x, centres)
        wr = np.zeros((len(x), len(centres)))
        wr[np.arange(len(x)), labels] = 1.0 if w is None else w
        return self._stats(x, wr, 0.0, float(wr.sum()))

    def random_stats(self, x: np.ndarray, w: np.ndarray | None, offset: int, seed: int, stream: int) -> BernoulliStats:
        """Statistics with random responsibilities drawn per row (initialisation ``"random"``)."""
        r = np.stack([row_uniforms(seed, stream + j, offset, len(x)) for j in range(self.n_components)], axis=1)
        r /= r.sum(axis=1, keepdims=True)
        wr = r if w is None else r * w[:, None]
        return self._stats(x, wr, 0.0, float(wr.sum()))

    def m_step(self, stats: BernoulliStats, params: BernoulliParams | None = None) -> BernoulliParams:
        """Mixing weights N_k / N and Beta-smoothed probabilities."""
        nk = stats.nk + _EPS10
        means = (stats.sx + self.alpha) / (nk[:, None] + 2 * self.alpha)
        return BernoulliParams(nk / nk.sum(), means)

    def objective(self, stats: BernoulliStats, params: BernoulliParams) -> float:
        """Mean log posterior per sample: log-likelihood plus the Beta prior's log density (the quantity EM raises)."""
        if self.alpha == 0:  # plain maximum likelihood: no prior (and no 0 * log 0)
            return stats.loglik / stats.weight
        log_prior = self.alpha * (np.log(params.means) + np.log1p(-params.means)).sum()
        return (stats.loglik + log_prior) / stats.weight

    def shift(self, old: BernoulliParams, new: BernoulliParams) -> float:
        return float(((new.means - old.means) ** 2).sum())

    def n_parameters(self, n_features: int) -> int:
        return self.n_components * n_features + self.n_components - 1
