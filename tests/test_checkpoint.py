"""Checkpoints: a fit killed with SIGKILL resumes from its last iteration and ends with the same model."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import emdask
from emdask.checkpoint import Checkpoint

_FIT = """
import logging, sys, numpy as np, emdask
logging.basicConfig(level=logging.WARNING)
logging.getLogger("emdask").setLevel(logging.INFO)
from skimage import data
X = np.tile(data.astronaut().reshape(-1, 3).astype(np.float64), (4, 1))
init = X[:: len(X) // 12][:12] + 0.5
km = emdask.KMeans(12, init=init, tol=0, max_iter=60, checkpoint=sys.argv[1]).fit(X)
km.save(sys.argv[2], overwrite=True)
print(km.n_iter_)
"""


@pytest.mark.slow
def test_killed_fit_resumes_from_its_checkpoint(tmp_path):
    ckpt, out = tmp_path / "fit.ckpt.zarr", tmp_path / "model.zarr"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen([sys.executable, "-c", _FIT, str(ckpt), str(out)], env=env)
    done = 0
    deadline = time.monotonic() + 240
    while done < 8 and proc.poll() is None and time.monotonic() < deadline:
        try:
            import zarr

            done = len(zarr.open_group(str(ckpt), mode="r").attrs["emdask"]["history"])
        except Exception:
            pass
        time.sleep(0.05)
    assert proc.poll() is None, "the fit ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt.exists()  # the checkpoint survives the kill
    resumed = subprocess.run([sys.executable, "-c", _FIT, str(ckpt), str(out)], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert not ckpt.exists()  # removed once the fit ended
    model = emdask.load(out)
    passes = [line for line in resumed.stderr.splitlines() if "emdask:X: pass " in line]
    assert "resuming from checkpoint: restart 0 after" in resumed.stderr
    assert 0 < len(passes) <= model.n_iter_ - 8  # only the iterations the killed run had not done
    from skimage import data

    X = np.tile(data.astronaut().reshape(-1, 3).astype(np.float64), (4, 1))
    init = X[:: len(X) // 12][:12] + 0.5
    reference = emdask.KMeans(12, init=init, tol=0, max_iter=60).fit(X)
    np.testing.assert_allclose(model.cluster_centers_, reference.cluster_centers_, rtol=1e-12)
    assert model.n_iter_ == reference.n_iter_
    iterations = [h["iteration"] for h in model.history_]
    assert iterations == list(range(1, model.n_iter_ + 1))  # no iteration repeated or lost
    assert np.allclose([h["objective"] for h in model.history_], [h["objective"] for h in reference.history_])


def test_resume_and_refuse_another_fit(tmp_path, digits):
    """A checkpoint written after 3 iterations is resumed by the same fit, and refused by any other."""
    from emdask._validation import as_rows
    from emdask.checkpoint import fingerprint
    from emdask.engine import Iteration, State

    ckpt = tmp_path / "c.zarr"
    init = digits[:5] + 0.5
    fit = emdask.KMeans(5, init=init, tol=0, checkpoint=str(ckpt))
    partial = emdask.KMeans(5, init=init, tol=0, max_iter=3).fit(digits)
    state = State(0, partial.cluster_centers_, [Iteration(**h) for h in partial.history_])
    Checkpoint(ckpt, fingerprint(fit, as_rows(digits)[0], None)).save(state)
    with pytest.raises(ValueError, match=r"was written by a different fit \(other data or parameters\)"):
        emdask.KMeans(5, init=init, tol=1e-3, checkpoint=str(ckpt)).fit(digits)
    with pytest.raises(ValueError, match=r"was written by a different fit"):
        emdask.KMeans(5, init=init, tol=0, checkpoint=str(ckpt)).fit(digits[:-1])
    resumed = fit.fit(digits)
    fresh = emdask.KMeans(5, init=init, tol=0).fit(digits)
    np.testing.assert_allclose(resumed.cluster_centers_, fresh.cluster_centers_, rtol=1e-12)
    assert [h["iteration"] for h in resumed.history_] == list(range(1, fresh.n_iter_ + 1))
    assert resumed.history_[:3] == partial.history_  # the first three came from the checkpoint
    assert not ckpt.exists()


@pytest.mark.parametrize("make", [
    lambda: emdask.GaussianMixture(3, covariance_type="diag", random_state=0, n_init=2),
    lambda: emdask.BernoulliMixture(3, random_state=0, n_init=2),
])
def test_mixtures_with_checkpoint_equal_without(make, tmp_path, digits):
    X = (digits > 8).astype(np.uint8) if isinstance(make(), emdask.BernoulliMixture) else digits[:, :10]
    a = make().set_params(checkpoint=str(tmp_path / "c.zarr")).fit(X)
    b = make().fit(X)
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-12)
    assert not (tmp_path / "c.zarr").exists()
