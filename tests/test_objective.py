"""The inertia never increases, and the initialisers are as good as scikit-learn's k-means++."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import photo_pixels
from sklearn.cluster import KMeans as SkKMeans

import emdask


@pytest.mark.parametrize("init", ["k-means||", "k-means++", "random"])
def test_inertia_never_increases(init, digits):
    w = np.random.default_rng(1).uniform(0.5, 2, len(digits))
    for seed in range(3):
        em = emdask.KMeans(12, init=init, random_state=seed, tol=0).fit(digits, sample_weight=w)
        inertia = np.array([h["objective"] for h in em.history_])
        assert len(inertia) == em.n_iter_ >= 2
        assert np.all(np.diff(inertia) <= 1e-12 * inertia[:-1]), inertia
        assert em.inertia_ <= inertia[-1] * (1 + 1e-12)
        assert em.converged_


@pytest.mark.parametrize("name,k", [("digits", 10), ("coffee", 8)])
def test_initialisers_no_worse_than_sklearn_kmeanspp(name, k, digits):
    """Mean final inertia over 16 seeds: emdask's k-means++ and k-means|| against scikit-learn's k-means++.

    The spread of single runs is several percent; 1% of slack on the mean covers the seed noise."""
    X = digits if name == "digits" else photo_pixels(name, step=3)
    seeds = range(16)
    sk = np.mean([SkKMeans(k, n_init=1, random_state=s).fit(X).inertia_ for s in seeds])
    for init in ("k-means++", "k-means||"):
        ours = np.mean([emdask.KMeans(k, init=init, random_state=s).fit(X).inertia_ for s in seeds])
        assert ours <= sk * 1.01, (init, ours, sk)


def test_n_init_keeps_the_best_restart(digits):
    single = [emdask.KMeans(10, init="random", random_state=s).fit(digits).inertia_ for s in range(4)]
    best = emdask.KMeans(10, init="random", n_init=4, random_state=0).fit(digits)
    assert best.inertia_ <= min(single) * (1 + 0.05)
    assert best.inertia_ <= np.median(single)
