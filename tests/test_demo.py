"""The main job: bundled photos compressed on a real LocalCluster, with its outputs read back."""
from __future__ import annotations

import numpy as np
import pytest
import zarr
from skimage import data, io

from emdask import images
from emdask.demo import main


@pytest.mark.slow
def test_demo_writes_image_set_and_pngs(tmp_path, capsys):
    assert main(["--photos", "coffee", "chelsea", "-k", "6", "--out", str(tmp_path), "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "written:" in out and "photos.zarr" in out
    root = zarr.open_group(str(tmp_path / "photos.zarr"), mode="r")
    codebook = root["codebook"][...]
    assert codebook.shape == (6, 3)
    for name in ("coffee", "chelsea"):
        png = io.imread(tmp_path / "png" / f"{name}.png")
        codes = root[f"images/{name}/labels/codes/0"][...]
        np.testing.assert_array_equal(png, codebook[codes])
        original = getattr(data, name)()
        mse = np.mean((original.astype(float) - png.astype(float)) ** 2)
        assert images.info(tmp_path / "photos.zarr")["images"][["coffee", "chelsea"].index(name)]["psnr_db"] == (
            pytest.approx(10 * np.log10(255**2 / mse), rel=1e-9)
        )
