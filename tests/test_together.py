"""Many models per pass: restarts and a grid of K advance together, each exactly as when fitted alone."""
from __future__ import annotations

from contextlib import contextmanager

import dask.array as da
import numpy as np
import pytest

import emdask


@contextmanager
def counted_passes():
    """Counts the passes over the data: each pass is one ``dask.compute`` (a Dask callback counts them)."""
    from dask.callbacks import Callback

    seen: list[int] = []
    with Callback(start=lambda dsk: seen.append(len(seen) + 1)):
        yield seen


def _fitted(est: object) -> dict[str, np.ndarray]:
    return {k: getattr(est, k) for k in type(est)._fitted_arrays}


def _assert_same(a: object, b: object) -> None:
    for key, value in _fitted(a).items():
        np.testing.assert_array_equal(value, _fitted(b)[key], err_msg=key)
    assert [h["objective"] for h in a.history_] == [h["objective"] for h in b.history_]


@pytest.fixture(scope="module")
def X(digits) -> da.Array:
    return da.from_array(digits[:, ::4] / 16.0, chunks=(400, 16))


@pytest.mark.parametrize("make", [
    lambda **kw: emdask.KMeans(6, init="k-means++", **kw),
    lambda **kw: emdask.GaussianMixture(4, covariance_type="diag", **kw),
    lambda **kw: emdask.BernoulliMixture(4, **kw),
], ids=["kmeans", "gmm-diag", "bernoulli"])
def test_restarts_share_passes_and_give_the_one_after_another_result(make, X, tmp_path):
    data = (X > 0.5).astype(np.float64) if "Bernoulli" in type(make()).__name__ else X
    with counted_passes() as together_passes:
        together = make(n_init=3, random_state=0).fit(data)
    with counted_passes() as sequential_passes:  # a checkpoint runs the restarts one after another
        sequential = make(n_init=3, random_state=0, checkpoint=str(tmp_path / "ck.zarr")).fit(data)
    _assert_same(together, sequential)
    assert len(together_passes) < len(sequential_passes)


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++"])
def test_bic_grid_advances_together_and_each_model_is_the_solo_fit(X, init_params):
    ks = [1, 2, 4, 6]
    params = dict(covariance_type="diag", init_params=init_params, random_state=0, max_iter=60)
    with counted_passes() as passes:
        best, table = emdask.select_by_bic(X, ks, **params)
    solo_passes = []
    solos = []
    for k in ks:
        with counted_passes() as counted:
            solos.append(emdask.GaussianMixture(k, **params).fit(X))
            solos[-1].bic(X)
        solo_passes.append(len(counted))
    for row, solo in zip(table, solos):
        assert row["n_iter"] == solo.n_iter_
        assert row["lower_bound"] == solo.lower_bound_
        per_row = np.asarray(solo.score_samples(X))  # an independent path: the per-row log-likelihoods
        assert row["bic"] == pytest.approx(-2 * per_row.sum() + solo._n_parameters() * np.log(len(per_row)), rel=1e-12)
    _assert_same(best, solos[int(np.argmin([r["bic"] for r in table]))])
    # the grid costs about its longest member: one first pass, the longest initialisation and EM, one scoring pass
    assert len(passes) <= max(solo_passes) + 1 < sum(solo_passes)


def test_bernoulli_bic_grid_matches_solo_fits(X):
    B = (X > 0.5).astype(np.float64)
    best, table = emdask.select_by_bic(B, [2, 3], estimator=emdask.BernoulliMixture, random_state=1)
    for row in table:
        solo = emdask.BernoulliMixture(row["n_components"], random_state=1).fit(B)
        assert row["lower_bound"] == solo.lower_bound_ and row["bic"] == pytest.approx(solo.bic(B), rel=1e-12)


def test_fit_together_mixes_kinds_and_checkpoints(X, tmp_path):
    """Different estimators share the passes: one with a checkpoint (its restarts one after another), one whose
    restarts share passes among themselves inside the shared passes, one stopped by max_iter (its final
    inertia pass shared too)."""
    def make():
        return [
            emdask.KMeans(5, init="k-means++", random_state=2),
            emdask.GaussianMixture(3, covariance_type="full", init_params="k-means++", random_state=2),
            emdask.KMeans(8, init="k-means++", n_init=2, random_state=2, checkpoint=str(tmp_path / "k8.zarr")),
            emdask.KMeans(4, init="k-means||", n_init=3, random_state=2, max_iter=4),  # restarts shared within
        ]

    with counted_passes() as passes:
        together = emdask.fit_together(make(), X)
    solo_passes = []
    for joint, solo in zip(together, make()):
        with counted_passes() as counted:
            solo.fit(X)
        solo_passes.append(len(counted))
        _assert_same(joint, solo)
    assert len(passes) <= max(solo_passes) + 1 < sum(solo_passes)
    assert not (tmp_path / "k8.zarr").exists()  # the checkpoint is removed once its fit ended
