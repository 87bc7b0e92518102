"""scikit-learn's own dense tests of KMeans and GaussianMixture, run against emdask's estimators.

The installed scikit-learn's test modules run in a pytest of their own, with the plugin
``sklearn_suite/emdask_in_place.py`` putting emdask's estimators in place of scikit-learn's.  What is left out, and
why, is listed there (``LEFT_OUT``, and every test of sparse input); everything else must pass.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

MODULES = ("sklearn.cluster.tests.test_k_means", "sklearn.mixture.tests.test_gaussian_mixture")


@pytest.mark.slow
def test_scikit_learn_own_tests_pass_against_emdask():
    here = Path(__file__).parent
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "emdask_in_place", "-p", "no:cacheprovider", "-o", "addopts=",
         "--pyargs", *MODULES],
        capture_output=True, text=True, cwd=here.parent, env={**_env(), "PYTHONPATH": str(here / "sklearn_suite")},
    )
    counts = dict((k, int(n)) for n, k in re.findall(r"(\d+) (passed|failed|skipped|deselected|errors?)", run.stdout))
    assert run.returncode == 0 and counts.get("failed", 0) == 0, run.stdout[-3000:]
    assert counts["passed"] >= 150, counts  # README: the counts of the last run


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)
