"""The main job: a bundled photo quantised on a real LocalCluster, with its outputs read back."""
from __future__ import annotations

import json

import numpy as np
import pytest
from skimage import data, io

from emdask.demo import main


@pytest.mark.slow
def test_demo_writes_quantised_photo_and_accounting(tmp_path, capsys):
    assert main(["--photo", "coffee", "-k", "6", "--out", str(tmp_path), "--workers", "2"]) == 0
    summary = json.loads((tmp_path / "coffee_k6.json").read_text())
    written = io.imread(tmp_path / "coffee_k6.png")
    original = data.coffee()
    n = original.shape[0] * original.shape[1]
    codebook = np.array(summary["codebook"], dtype=np.uint8)
    # each pixel became a codebook colour nearest to it: rounding moves a centre by at most sqrt(3)/2, so by the
    # triangle inequality the written colour is at most sqrt(3) farther than the nearest rounded one
    pixels, colours = original.reshape(-1, 3).astype(float), written.reshape(-1, 3).astype(float)
    to_codebook = np.sqrt(((pixels[:, None, :] - codebook[None].astype(float)) ** 2).sum(-1))
    to_written = np.sqrt(((pixels - colours) ** 2).sum(-1))
    assert (colours[:, None, :] == codebook[None]).all(-1).any(-1).all()
    assert (to_written <= to_codebook.min(axis=1) + np.sqrt(3) + 1e-9).all()
    assert (to_written == to_codebook.min(axis=1)).mean() > 0.99
    assert len(np.unique(written.reshape(-1, 3), axis=0)) == 6
    mse = np.mean((original.astype(float) - written.astype(float)) ** 2)
    assert summary["psnr_db"] == pytest.approx(10 * np.log10(255**2 / mse), rel=1e-9)
    assert summary["bits"]["raw_bits"] == 24 * n
    assert summary["bits"]["coded_bits"] == 24 * 6 + n * 3
    assert "written:" in capsys.readouterr().out
