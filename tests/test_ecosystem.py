"""The ecosystem's own readers on emdask's stores: ome-zarr-py's Reader (what napari-ome-zarr uses) and the
ome-zarr-models validators on each image of a set, xarray on saved models."""
from __future__ import annotations

from pathlib import Path

import dask
import numpy as np
import pytest
import zarr
from PIL import Image

import emdask
from emdask import images
from emdask.kinds import BY_NAME

PHOTOS = Path(__file__).parents[1] / "data" / "photos"


def _photos() -> dict[str, np.ndarray]:
    return {name: np.asarray(Image.open(PHOTOS / f"{name}.png").convert("RGB")) for name in ("chelsea", "coffee")}


def _block_means(decoded: np.ndarray, f: int) -> np.ndarray:
    """(3, ceil(H/f), ceil(W/f)) means over f x f windows (fewer pixels at the edges), rounded half up."""
    h, w, _ = decoded.shape
    sums = np.add.reduceat(np.add.reduceat(decoded.astype(np.float64), np.arange(0, h, f), 0), np.arange(0, w, f), 1)
    counts = np.outer(np.diff([*range(0, h, f), h]), np.diff([*range(0, w, f), w]))
    return np.floor(sums / counts[..., None] + 0.5).astype(np.uint8).transpose(2, 0, 1)


@pytest.mark.parametrize("per_image", [False, True])
def test_each_image_is_an_ome_zarr_image_with_its_codes_as_labels(tmp_path, per_image):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Labels, Multiscales, Reader
    from ome_zarr_models.v05 import Image as OmeImage
    from ome_zarr_models.v05 import ImageLabel

    out = tmp_path / "set.zarr"
    with dask.config.set(scheduler="threads"):
        images.compress(_photos(), out, n_colours=8, per_image=per_image, random_state=0)
    for name, original in _photos().items():
        h, w, _ = original.shape
        nodes = list(Reader(parse_url(str(out / "images" / name)))())
        kinds = [{type(spec) for spec in node.specs} for node in nodes]
        assert Multiscales in kinds[0] and Labels in kinds[1] and Label in kinds[2]
        assert [d.shape for d in nodes[0].data] == [(3, -(-h // 8), -(-w // 8))]
        assert [d.shape for d in nodes[2].data] == [(h, w)]
        group = zarr.open_group(out / "images" / name, mode="r")
        OmeImage.from_zarr(group)  # raises on anything the specification forbids
        ImageLabel.from_zarr(group["labels/codes"])
        decoded = images.decompress(out, name).compute()
        np.testing.assert_array_equal(np.asarray(nodes[0].data[0]), _block_means(decoded, 8))
        np.testing.assert_array_equal(np.asarray(nodes[2].data[0]), group["labels/codes/0"][...])
        view_bytes = group["0"].nbytes_stored()
        assert view_bytes < 0.5 * group["labels/codes/0"].nbytes_stored()
        assert images.info(out)["images"][list(_photos()).index(name)]["accounting"]["bytes_views"] == view_bytes


def test_large_images_get_coarser_levels_for_viewers(tmp_path, monkeypatch):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader
    from ome_zarr_models.v05 import Image as OmeImage

    monkeypatch.setattr(images, "LABEL_SIDE", 128)  # coffee (600 x 400) is then "large": 4 levels
    out = tmp_path / "set.zarr"
    photo = _photos()["coffee"]
    with dask.config.set(scheduler="threads"):
        images.compress({"coffee": photo}, out, n_colours=8, random_state=0)
    group = zarr.open_group(out / "images" / "coffee", mode="r")
    OmeImage.from_zarr(group)
    nodes = list(Reader(parse_url(str(out / "images" / "coffee")))())
    codes = group["labels/codes/0"][...]
    assert [d.shape for d in nodes[2].data] == [codes[:: 2**i, :: 2**i].shape for i in range(4)]
    for i in range(1, 4):
        np.testing.assert_array_equal(group[f"labels/codes/{i}"][...], codes[:: 2**i, :: 2**i])
        previous = group[str(i - 1)][...].astype(np.float64).transpose(1, 2, 0)
        np.testing.assert_array_equal(group[str(i)][...], _block_means(previous, 2))
    scales = [d["coordinateTransformations"][0]["scale"] for d in group.attrs["ome"]["multiscales"][0]["datasets"]]
    assert scales == [[1.0, 8.0 * 2**i, 8.0 * 2**i] for i in range(4)]


@pytest.mark.parametrize("kind", sorted(BY_NAME))
def test_xarray_opens_every_saved_model(tmp_path, kind):
    import xarray as xr

    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(100, 3)), rng.normal(size=(100, 3)) + 4])
    X = (X > 2).astype(np.float64) if kind == "bernoulli" else X
    model = BY_NAME[kind].make(2, random_state=0).fit(X)
    model.save(tmp_path / "m.zarr")
    opened = xr.open_zarr(tmp_path / "m.zarr", consolidated=False)
    assert set(opened.data_vars) == set(model._fitted_arrays)
    for key in model._fitted_arrays:
        np.testing.assert_array_equal(opened[key].values, getattr(model, key))
    assert opened.sizes.get("feature") == 3
    assert emdask.load(tmp_path / "m.zarr").n_features_in_ == 3
