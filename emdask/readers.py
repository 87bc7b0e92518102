"""Image sources as lazy Dask arrays: no pixel is read before its task runs.

- a directory (recursive, with a glob pattern) or a list of PNG, JPEG and TIFF files of any sizes;
- a single image larger than memory: a tiled TIFF (read tile by tile through tifffile's Zarr
  view) or a Zarr (H, W, C) array;
- an existing emdask Zarr image set (its images decoded lazily).

Only headers are read up front (Pillow for PNG/JPEG, tifffile for TIFF).  Colours are handled
explicitly: ``colour="strict"`` (default) accepts only 8-bit RGB and names any other file;
``colour="convert"`` turns grayscale (with or without alpha) into RGB (the gray value in all three
channels), drops an alpha channel and expands palettes.  Images that are not 8 bits per channel are an error either
way.  A file that cannot be decoded is an error naming it when its task runs, or, with
``on_error="skip"``, is decoded once up front and left out (and listed as skipped).
"""
from __future__ import annotations

import glob
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import dask.array as da
import numpy as np

from emdask.errors import InputError
from emdask.images import TILE, ImageSource
from emdask.tables import read_zarr

logger = logging.getLogger("emdask")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
Colour = Literal["strict", "convert"]


class ImageReadError(InputError):
    """An image source that cannot be used; the message names the file and why."""


@dataclass(frozen=True)
class _LazyFile:
    """An array-like over one image file: slicing decodes it (a tiled TIFF only the tiles asked for)."""

    path: str
    shape: tuple[int, int, int]
    channels_in: int  # channels in the file: 1 (gray), 3, 4 (RGBA) or 0 for a palette
    tiled: bool
    dtype: np.dtype = field(default_factory=lambda: np.dtype(np.uint8))

    @property
    def ndim(self) -> int:
        return 3

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        ys, xs = key[0], key[1]
        try:
            region = self._read(ys, xs)
        except Exception as exc:
            raise ImageReadError(f"cannot read image {self.path}: {type(exc).__name__}: {exc}") from None
        return _to_rgb(region)[..., key[2]] if len(key) > 2 else _to_rgb(region)

    def _read(self, ys: slice, xs: slice) -> np.ndarray:
        if self.tiled:
            import tifffile
            import zarr

            with tifffile.imread(self.path, aszarr=True) as store:
                return np.asarray(zarr.open_array(store, mode="r")[ys, xs])
        return read_whole(self.path)[ys, xs]


def read_whole(path: str) -> np.ndarray:
    """Decode a whole PNG, JPEG or untiled TIFF file."""
    if path.lower().endswith((".tif", ".tiff")):
        import tifffile

        return np.asarray(tifffile.imread(path))
    from PIL import Image

    with Image.open(path) as im:
        if im.mode == "P":
            return np.asarray(im.convert("RGBA" if "transparency" in im.info else "RGB"))
        return np.asarray(im)


def _to_rgb(region: np.ndarray) -> np.ndarray:
    """Grayscale (with or without alpha) to three equal channels; alpha dropped."""
    if region.ndim == 2:
        region = region[..., None]
    if region.shape[2] <= 2:  # gray, or gray and alpha
        return np.repeat(region[..., :1], 3, axis=2)
    return region[..., :3]


def probe(path: str, colour: Colour = "strict") -> _LazyFile:
    """Read an image file's header: its size and colours, checked against the colour policy."""
    if not os.path.isfile(path):
        raise ImageReadError(f"image file not found: {path}")
    suffix = Path(path).suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ImageReadError(
            f"unknown image type {suffix or '(none)'!r} for {path}; expected one of {', '.join(IMAGE_SUFFIXES)}"
        )
    try:
        if suffix in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                page = tif.pages[0]
                shape, dtype, tiled = tuple(page.shape), np.dtype(page.dtype), bool(getattr(page, "is_tiled", False))
            channels = 1 if len(shape) == 2 else int(shape[2])
            mode = {1: "L", 3: "RGB", 4: "RGBA"}.get(channels, f"{channels} channels")
            height, width = int(shape[0]), int(shape[1])
        else:
            from PIL import Image

            with Image.open(path) as im:
                width, height, mode, tiled = im.width, im.height, im.mode, False
            channels = {"L": 1, "RGB": 3, "RGBA": 4, "P": 0, "LA": 2}.get(mode, -1)
            dtype = np.dtype(np.uint8) if channels >= 0 else np.dtype(np.uint16)
    except ImageReadError:
        raise
    except Exception as exc:
        raise ImageReadError(f"cannot read image {path}: {type(exc).__name__}: {exc}") from None
    if dtype != np.uint8 or channels < 0:
        raise ImageReadError(f"image {path} has {mode} {dtype} pixels; only 8-bit images are supported")
    if channels in (2, 1, 4) and colour == "strict":
        what = {1: "grayscale", 2: "grayscale with alpha", 4: "RGBA"}[channels]
        raise ImageReadError(
            f"image {path} is {what}, not RGB; pass colour='convert' (CLI: --colour convert) to convert it to RGB"
        )
    return _LazyFile(path, (height, width, 3), channels, tiled)


def _lazy(file: _LazyFile) -> da.Array:
    chunks = (TILE, TILE, 3) if file.tiled else file.shape  # a file that is not tiled is decoded whole
    return da.from_array(file, chunks=chunks, meta=np.empty((0, 0, 0), np.uint8), name=f"read-{file.path}-{file.shape}")


def list_files(sources: Iterable[str | os.PathLike[str]], pattern: str = "**/*") -> list[str]:
    """Expand directories (recursively, ``pattern``) and keep files; a missing path or empty directory is an error."""
    files: list[str] = []
    for source in sources:
        path = str(source)
        if os.path.isdir(path):
            found = sorted(
                f for f in glob.glob(os.path.join(path, pattern), recursive=True)
                if os.path.isfile(f) and f.lower().endswith(IMAGE_SUFFIXES)
            )
            if not found:
                raise ImageReadError(f"no PNG, JPEG or TIFF files in directory {path} (pattern {pattern!r})")
            files.extend(found)
        elif os.path.exists(path):
            files.append(path)
        else:
            raise ImageReadError(f"no such file or directory: {path}")
    return files


def _zarr_sources(path: str, storage_options: dict[str, Any] | None = None) -> list[ImageSource]:
    """An emdask image set (its images decoded lazily) or a Zarr (H, W, C) uint8 array."""
    import zarr

    from emdask import images

    node = zarr.open(path, mode="r", storage_options=storage_options or None)
    if isinstance(node, zarr.Group) and isinstance(node.attrs.get("emdask"), dict):
        meta = images.info(path, storage_options)
        return [
            ImageSource(m["name"], images.decompress(path, m["name"], storage_options), m.get("source") or path)
            for m in meta["images"]
        ]
    if not isinstance(node, zarr.Array) or node.ndim != 3 or node.shape[2] not in (3, 4) or node.dtype != np.uint8:
        raise ImageReadError(f"Zarr store {path} is neither an emdask image set nor a (height, width, 3) uint8 array")
    arr = read_zarr(path, storage_options=storage_options)[..., :3]
    return [ImageSource(Path(path.rstrip("/")).stem, arr.rechunk((TILE, TILE, 3)), path)]


def read_images(
    sources: Iterable[str | os.PathLike[str]],
    *,
    pattern: str = "**/*",
    colour: Colour = "strict",
    on_error: Literal["raise", "skip"] = "raise",
    storage_options: dict[str, Any] | None = None,
) -> tuple[list[ImageSource], list[str]]:
    """Lazy images from files, directories and Zarr stores; returns (images, skipped files with reasons).

    ``storage_options`` (endpoint, credentials) are for Zarr stores at fsspec URLs.
    """
    items: list[ImageSource] = []
    skipped: list[str] = []
    plain: list[str] = []
    for source in sources:
        path = str(source)
        if path.rstrip("/").endswith(".zarr") or "://" in path:
            items.extend(_zarr_sources(path, storage_options))
        else:
            plain.append(path)
    for path in list_files(plain, pattern) if plain else []:
        try:
            file = probe(path, colour)
            if on_error == "skip":
                read_whole(path)  # decode once up front so a broken file is left out, not hit mid-run
        except Exception as exc:
            if on_error != "skip":
                raise
            skipped.append(f"{path}: {exc}")
            logger.warning("skipped %s: %s", path, exc)
            continue
        stat = os.stat(path)
        items.append(ImageSource(Path(path).stem, _lazy(file), os.path.abspath(path), stat.st_size, stat.st_mtime_ns))
    if not items:
        raise ImageReadError("no readable images among the sources" + (f" ({len(skipped)} skipped)" if skipped else ""))
    return items, skipped
