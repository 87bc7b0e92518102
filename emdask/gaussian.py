"""The Gaussian mixture model: E-step statistics of a chunk and the M-step, for four covariance types.

Course notes: r_nk = pi_k N(x_n | mu_k, Sigma_k) / sum_j pi_j N(x_n | mu_j, Sigma_j);
mu_k = sum_n r_nk x_n / N_k; Sigma_k = sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T / N_k; pi_k = N_k / N.

Numerics as scikit-learn does them: log-densities from the Cholesky factor of each precision
(never an inverse or a determinant), responsibilities by log-sum-exp, ``reg_covar`` on the
diagonal, ``10 eps`` added to N_k against empty components.  One difference makes the
statistics safe far from the origin: each chunk sums ``x - mu_k`` for the *current* means
(first and second moments about mu_k), so no large raw moments are subtracted in the M-step.

Covariance types keep the shapes scikit-learn uses: full (K, D, D), tied (D, D), diag (K, D),
spherical (K,).  Statistics are full second moments (K, D, D) for full and tied, diagonal ones
(K, D) for diag and spherical.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from scipy import linalg

from emdask._kernels import MAX_FEATURES, gaussian_diag_chunk, gaussian_full_chunk
from emdask._linalg import log_responsibilities, nearest, row_blocks
from emdask._random import row_uniforms
from emdask._stats import Stats
from emdask.engine import StopOn
from emdask.errors import InputError

CovarianceType = Literal["full", "tied", "diag", "spherical"]
COVARIANCE_TYPES: tuple[CovarianceType, ...] = ("full", "tied", "diag", "spherical")
_EPS10 = 10 * np.finfo(np.float64).eps
#: E-steps use the fused kernels (tests switch them off to compare with the plain path).
FUSED = True


@dataclass(frozen=True)
class GaussianParams:
    """Mixture parameters; ``precisions_cholesky`` has the shape of ``covariances``."""

    weights: np.ndarray  # (K,)
    means: np.ndarray  # (K, D)
    covariances: np.ndarray
    precisions_cholesky: np.ndarray
    covariance_type: CovarianceType

    def full_factors(self) -> np.ndarray:
        """Cholesky factors of the precisions as (K, D, D) (full, tied) or (K, D) (diag, spherical)."""
        k, d = self.means.shape
        pc = self.precisions_cholesky
        if self.covariance_type == "tied":
            return np.broadcast_to(pc, (k, d, d))
        if self.covariance_type == "spherical":
            return np.repeat(pc[:, None], d, axis=1)
        return pc

    def log_det(self) -> np.ndarray:
        """log det of each precision's Cholesky factor, (K,)."""
        pc = self.full_factors()
        diag = np.diagonal(pc, axis1=1, axis2=2) if pc.ndim == 3 else pc
        return np.log(diag).sum(axis=1)


@dataclass(frozen=True)
class GaussianStats(Stats):
    """Partial sums of one chunk about the current means mu_k (float64)."""

    nk: np.ndarray  # (K,) sum of w r
    sx: np.ndarray  # (K, D) sum of w r (x - mu_k)
    sxx: np.ndarray  # (K, D, D) or (K, D): sum of w r (x - mu_k)(x - mu_k)^T, or its diagonal
    loglik: float  # sum of w log p(x)
    weight: float  # sum of w


def precision_cholesky(covariances: np.ndarray, covariance_type: CovarianceType) -> np.ndarray:
    """Cholesky factors of the precisions from covariances; a clear error when a covariance is not positive definite."""
    message = (
        "fitting the Gaussian mixture failed: a component's covariance is not positive definite "
        "(a collapsed or singleton component); increase reg_covar, use fewer components, or scale the data"
    )
    if covariance_type in ("full", "tied"):
        covs = covariances if covariance_type == "full" else covariances[None]
        out = np.empty_like(covs)
        d = covs.shape[-1]
        for k, cov in enumerate(covs):
            try:
                chol = linalg.cholesky(cov, lower=True)
            except linalg.LinAlgError:
                raise InputError(message) from None
            out[k] = linalg.solve_triangular(chol, np.eye(d), lower=True).T
        return out if covariance_type == "full" else out[0]
    if np.any(covariances <= 0):
        raise InputError(message)
    return 1.0 / np.sqrt(covariances)


def covariances_from_precisions(
    precisions: np.ndarray, covariance_type: CovarianceType
) -> tuple[np.ndarray, np.ndarray]:
    """(covariances, precision Cholesky factors) from user-given precisions, as scikit-learn's ``precisions_init``."""
    if covariance_type in ("full", "tied"):
        precs = precisions if covariance_type == "full" else precisions[None]
        chol = np.array([linalg.cholesky(p, lower=True) for p in precs])
        covs = np.array([linalg.inv(p) for p in precs])
        return (covs, chol) if covariance_type == "full" else (covs[0], chol[0])
    return 1.0 / precisions, np.sqrt(precisions)


@dataclass(frozen=True)
class GaussianModel:
    """EM for a Gaussian mixture; ``tol`` is on the change of the mean log-likelihood per sample."""

    n_components: int
    covariance_type: CovarianceType = "full"
    reg_covar: float = 1e-6
    tol: float = 1e-3
    stop_on: StopOn = "objective"  # converged when the bound changed by less than tol (scikit-learn)
    #: A warm start's previous bound: its first iteration converges if the bound moved by less than tol
    previous_objective: float | None = None
    objective_name = "mean log-likelihood"

    @property
    def full_moments(self) -> bool:
        return self.covariance_type in ("full", "tied")

    def log_prob(self, x: np.ndarray, params: GaussianParams) -> np.ndarray:
        """log(pi_k N(x | mu_k, Sigma_k)) for each row and component, (n, K) float64."""
        n, d = x.shape
        pcs = params.full_factors()
        out = np.empty((n, self.n_components))
        xf = x.astype(np.float64, copy=False)
        for k in range(self.n_components):
            y = (xf - params.means[k]) @ pcs[k] if self.full_moments else (xf - params.means[k]) * pcs[k]
            out[:, k] = np.einsum("ij,ij->i", y, y)
        return -0.5 * (d * np.log(2 * np.pi) + out) + params.log_det() + np.log(params.weights)

    def _accumulate(self, x: np.ndarray, wr: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sums of ``wr`` times (x - centre_k) and its outer product (or square), per component."""
        k, d = centres.shape
        sx = np.empty((k, d))
        sxx = np.empty((k, d, d)) if self.full_moments else np.empty((k, d))
        for j in range(k):
            diff = x - centres[j]
            weighted = diff * wr[:, j : j + 1]
            sx[j] = weighted.sum(axis=0)
            sxx[j] = weighted.T @ diff if self.full_moments else np.einsum("ij,ij->j", weighted, diff)
        return sx, sxx

    def e_step(self, x: np.ndarray, w: np.ndarray | None, offset: int, params: GaussianParams) -> GaussianStats:
        """Responsibilities by log-sum-exp, block by block, and the weighted moments about the current means.

        Diagonal and spherical covariances take one fused compiled pass over the rows (``_kernels``),
        and so do full and tied ones with up to ``MAX_FEATURES`` features; with more, matrix
        products per component and block of rows are faster (1M x 8, K=8: fused 1.5x faster than
        the blocked path; D=32: 1.9x slower).  The blocked path is the tests' reference.
        """
        k, d = params.means.shape
        if FUSED and (not self.full_moments or d <= MAX_FEATURES):
            stats = self.zero_stats(d)
            weights = np.empty(0) if w is None else np.asarray(w, dtype=np.float64)  # empty: unit weights
            log_const = -0.5 * d * np.log(2 * np.pi) + params.log_det() + np.log(params.weights)
            factors = np.ascontiguousarray(params.full_factors())
            kernel = gaussian_full_chunk if self.full_moments else gaussian_diag_chunk
            loglik = kernel(x, weights, params.means, factors, log_const, stats.nk, stats.sx, stats.sxx)
            return replace(stats, loglik=float(loglik), weight=float(weights.sum() if w is not None else len(x)))
        stats = self.zero_stats(d)
        for rows in row_blocks(len(x), k * max(1, d)):
            xb = x[rows].astype(np.float64)
            wb = np.ones(len(xb)) if w is None else w[rows]
            logp = self.log_prob(xb, params)
            norm, wr = log_responsibilities(logp)
            wr *= wb[:, None]
            sx, sxx = self._accumulate(xb, wr, params.means)
            stats = stats + GaussianStats(wr.sum(axis=0), sx, sxx, float(wb @ norm), float(wb.sum()))
        return stats

    def zero_stats(self, d: int) -> GaussianStats:
        k = self.n_components
        sxx = np.zeros((k, d, d)) if self.full_moments else np.zeros((k, d))
        return GaussianStats(np.zeros(k), np.zeros((k, d)), sxx, 0.0, 0.0)

    def hard_stats(self, x: np.ndarray, w: np.ndarray | None, offset: int, centres: np.ndarray) -> GaussianStats:
        """Statistics with each row given wholly to its nearest centre (initialisation from K-means)."""
        labels, _ = nearest(x, centres)
        wr = np.zeros((len(x), len(centres)))
        wr[np.arange(len(x)), labels] = 1.0 if w is None else w
        return self._stats_for(x, wr, centres)

    def random_stats(
        self, x: np.ndarray, w: np.ndarray | None, offset: int, centres: np.ndarray, seed: int, stream: int
    ) -> GaussianStats:
        """Statistics with random responsibilities drawn per row (initialisation ``"random"``)."""
        r = np.stack([row_uniforms(seed, stream + j, offset, len(x)) for j in range(self.n_components)], axis=1)
        r /= r.sum(axis=1, keepdims=True)
        return self._stats_for(x, r if w is None else r * w[:, None], centres)

    def _stats_for(self, x: np.ndarray, wr: np.ndarray, centres: np.ndarray) -> GaussianStats:
        xf = x.astype(np.float64)
        sx, sxx = self._accumulate(xf, wr, centres)
        return GaussianStats(wr.sum(axis=0), sx, sxx, 0.0, float(wr.sum()))

    def m_step(self, stats: GaussianStats, params: GaussianParams) -> GaussianParams:
        """Weights, means and covariances (with ``reg_covar`` on the diagonal) from summed statistics."""
        return self.parameters(stats, params.means)

    def parameters(self, stats: GaussianStats, centres: np.ndarray) -> GaussianParams:
        """The M-step about the centres the statistics were taken around."""
        nk = stats.nk + _EPS10
        step = stats.sx / nk[:, None]
        means = centres + step
        d = means.shape[1]
        if self.full_moments:
            cov = stats.sxx / nk[:, None, None] - step[:, :, None] * step[:, None, :]
            if self.covariance_type == "tied":
                cov = np.tensordot(nk, cov, axes=1) / nk.sum()
            cov = cov + self.reg_covar * np.eye(d)
        else:
            cov = stats.sxx / nk[:, None] - step**2 + self.reg_covar
            if self.covariance_type == "spherical":
                cov = cov.mean(axis=1)
        weights = nk / nk.sum()
        return GaussianParams(weights, means, cov, precision_cholesky(cov, self.covariance_type), self.covariance_type)

    def objective(self, stats: GaussianStats, params: GaussianParams) -> float:
        """Mean log-likelihood per (weighted) sample: scikit-learn's lower bound."""
        return stats.loglik / stats.weight

    def shift(self, old: GaussianParams, new: GaussianParams) -> float:
        return float(((new.means - old.means) ** 2).sum())

    def n_parameters(self, n_features: int) -> int:
        """Free parameters, for BIC and AIC."""
        k, d = self.n_components, n_features
        cov = {"full": k * d * (d + 1) // 2, "tied": d * (d + 1) // 2, "diag": k * d, "spherical": k}
        return cov[self.covariance_type] + k * d + k - 1
