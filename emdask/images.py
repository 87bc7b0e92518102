"""Image sets: images stored as per-pixel codes plus K-colour codebooks, in one Zarr group.

Layout (a Zarr v3 group; readable with plain ``zarr`` or ``xarray``)::

    out.zarr/                       attrs["emdask"]: kind "image-set", codebook "shared" | "per-image", k, images,
                                    codebooks (paths, oldest first), histogram (path), accounting, fit
      codebooks/<v>                 (K, 3) uint8 RGB colours, version v       (shared codebooks)
      histogram/<id>/colours        (m,) uint32 0xRRGGBB, increasing          (every pixel of the set)
      histogram/<id>/counts         (m,) uint64 pixels of each colour
      images/<name>/                an OME-Zarr 0.5 image (multiscales, omero), attrs["emdask"]: source (with its
                                    size and mtime), shape, codebook (its path from the root), codebook_version,
                                    sse, psnr_db, accounting
        0, 1, ...                   (3, H/8, W/8) uint8 RGB view averaged from the codes, then halved per level
        codebook                    (K, 3) uint8                              (per-image codebooks)
        labels/codes/0, 1, ...      (H, W) uint8 codes (uint16 when K > 256), 2-D tiles, zstd: the image's OME-Zarr
                                    label image, coloured by the codebook; more levels only beyond 4096 pixels

An image is restored exactly as ``root[codebook][codes]``.  Compressing a set reads its pixels
twice, whatever K and however many iterations: once to count the colours (the fit then runs in
memory on the histogram, :mod:`emdask.codebooks`), once to encode.  The set keeps its histogram,
so :func:`append` adds new images (read once, or twice when they call for a new codebook) and
refits from the merged histogram without reading an old image again.  The accounting is the
course notes': raw ``24 N`` bits against ``24 K + N ceil(log2 K)`` bits per codebook, next to the
real bytes stored and the PSNR of the reconstruction.
"""
from __future__ import annotations

import logging
import math
import os
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from emdask import codebooks as cb
from emdask._validation import check_choice, check_int, describe
from emdask.codebooks import K_CANDIDATES, Histogram, psnr_from_sse
from emdask.engine import tree_sum
from emdask.errors import InputError
from emdask.store import (
    StoreError,
    Target,
    at,
    check_writable,
    mark_complete,
    read_array,
    read_group,
    read_snapshot,
    update_group,
    write_group,
)

logger = logging.getLogger("emdask")

__all__ = ["K_CANDIDATES", "ImageSource", "append", "compress", "decompress", "fit_codebooks", "info", "write_pngs"]

#: Codes are stored in TILE x TILE chunks; sources read in pieces (tiled TIFF, Zarr) are read in such tiles.
TILE = 1024
#: A source held in one block up to this many pixels is read whole, one task per read (a PNG or JPEG is decoded
#: whole anyway); larger blocks are split into tiles, so no task holds more.
BLOCK_PIXELS = 1 << 25
#: Each image's RGB view for viewers is 1/PREVIEW of its resolution (1/64 of its pixels, beside 1 byte of code each).
PREVIEW = 8
#: Codes larger than this on a side get coarser levels too (what viewers of large scans need).
LABEL_SIDE = 4096
SCHEMA = 2
_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ImageSource:
    """One image to compress: its name in the set, its pixels (H, W, 3) uint8 and where it came from.

    ``size`` and ``mtime_ns`` identify a source file's version: :func:`append` skips a file whose
    path, size and modification time are already in the set.
    """

    name: str
    pixels: da.Array
    source: str = ""
    size: int | None = None
    mtime_ns: int | None = None


def bit_accounting(n_pixels: int, k: int, channels: int = 3) -> dict[str, float]:
    """The notes' figures: ``8 C N`` raw bits against ``8 C K + N ceil(log2 K)`` bits, and their ratio."""
    raw = 8 * channels * n_pixels
    coded = 8 * channels * k + n_pixels * math.ceil(math.log2(k))
    return {"raw_bits": raw, "notes_bits": coded, "notes_ratio": coded / raw}


def _as_sources(images: Mapping[str, Any] | Iterable[ImageSource], taken: Iterable[str] = ()) -> list[ImageSource]:
    """Checked (H, W, 3) uint8 images in read blocks, with names unique and safe as Zarr keys (none of ``taken``)."""
    items = _items(images)
    if not items:
        raise InputError("images must hold at least one image; got none")
    out, seen = [], set(taken)
    for item in items:
        pixels = item.pixels if isinstance(item.pixels, da.Array) else da.from_array(np.asarray(item.pixels))
        if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
            raise InputError(
                f"image {item.name!r} must be RGB of shape (height, width, 3) and dtype uint8; got {describe(pixels)}"
            )
        name = _NAME.sub("_", item.name).strip("._") or "image"
        stem, n = name, 1
        while name in seen:
            n += 1
            name = f"{stem}_{n}"
        seen.add(name)
        out.append(replace(item, name=name, pixels=_read_blocks(pixels)))
    return out


def _read_blocks(pixels: da.Array) -> da.Array:
    """The image as it is read: one block when it is one of at most :data:`BLOCK_PIXELS` (splitting a decoded
    file into tiles only adds tasks and copies), else tiles aligned with the codes' chunks."""
    h, w, _ = pixels.shape
    if pixels.npartitions == 1 and h * w <= BLOCK_PIXELS:
        return pixels
    return pixels.rechunk((TILE, TILE, 3))


def _items(images: Mapping[str, Any] | Iterable[ImageSource]) -> list[ImageSource]:
    return [ImageSource(name, arr) for name, arr in images.items()] if isinstance(images, Mapping) else list(images)


def _n_pixels(sources: Sequence[ImageSource]) -> int:
    return sum(s.pixels.shape[0] * s.pixels.shape[1] for s in sources)


@dataclass(frozen=True)
class CodebookFit:
    """Fitted uint8 codebooks by image name (the same array for all when shared), the histogram of every
    pixel, and how the fits went: what a flow's fitting task hands to its encoding task."""

    k: int
    per_image: bool
    codebooks: dict[str, np.ndarray]
    fits: list[cb.Fit]
    histogram: Histogram
    psnr_target: float | None = None
    psnr_tried: dict[int, float] = field(default_factory=dict)  # exact, of each K fitted to every pixel
    psnr_estimated: dict[int, float] = field(default_factory=dict)  # of each K fitted to a sample in the search
    psnr_over: str = "set"  # what the target was measured on: all the pixels ("set") or the worst image

    def summary(self) -> dict[str, Any]:
        return {**cb.fit_summary(self.fits), "psnr_tried": {str(k): v for k, v in self.psnr_tried.items()},
                "psnr_estimated": {str(k): v for k, v in self.psnr_estimated.items()}}


def _counted(message: str, *values: Any) -> None:
    """Log one finished read of the images (the CLI counts these records for its progress bar)."""
    logger.info(message, *values, extra={"emdask_pass": 1})


def fit_codebooks(
    images: Mapping[str, Any] | Iterable[ImageSource],
    *,
    n_colours: int = 16,
    psnr: float | None = None,
    psnr_over: str = "set",
    candidates: Sequence[int] = K_CANDIDATES,
    per_image: bool = False,
    init: Any = "k-means++",
    n_init: int = cb.N_INIT,
    random_state: Any = None,
    max_iter: int = 300,
    tol: float = 1e-4,
) -> CodebookFit:
    """Fit the codebooks of :func:`compress` (its parameters) from one read of the pixels, writing nothing.

    The read counts the colours; K-means then runs in memory on the histogram: on the client for
    a shared codebook, in one task per image on the cluster for per-image codebooks.  A ``psnr``
    target over the worst image (``psnr_over="worst"``) with a shared codebook keeps each image's
    histogram in the cluster's memory, where each candidate codebook is measured on every image.
    """
    sources = _as_sources(images)
    settings = cb.Settings(init, n_init, max_iter, tol, random_state).checked()
    check_choice(psnr_over, "psnr_over", cb.PSNR_OVER)
    worst_image = psnr is not None and psnr_over == "worst"
    n_total = _n_pixels(sources)
    if psnr is None:
        check_int(n_colours, "n_colours", 1, min(65536, n_total), f"min(65536, number of pixels={n_total})")
    else:
        if not (isinstance(psnr, (int, float)) and psnr > 0):
            raise InputError(f"psnr must be a positive number of dB; got {psnr!r}")
        candidates = tuple(k for k in candidates if isinstance(k, int) and 1 <= k <= min(65536, n_total))
        if not candidates:
            raise InputError(f"candidates must hold at least one K in [1, {min(65536, n_total)}]; got {candidates!r}")
    if not isinstance(init, str) and psnr is not None:
        raise InputError("init must be 'k-means++' or 'random' with a psnr target (each K needs its own start)")
    groups = [[s] for s in sources] if per_image else [sources]
    histograms = [cb.histogram_of([s.pixels for s in group]) for group in groups]
    logger.info("counting the colours of %d images (%d pixels)", len(sources), n_total)
    measure: Callable[[Sequence[cb.Fit]], float] | None = cb.worst if worst_image else None
    if not per_image:
        if worst_image:  # each image's histogram stays on the cluster, to measure each image's PSNR
            each = list(dask.persist(*[cb.histogram_of([s.pixels]) for s in sources]))
            histogram = tree_sum(each).compute()

            def worst_of_images(fits: Sequence[cb.Fit]) -> float:
                sse = dask.compute(*[dask.delayed(cb.coded_sse)(h, fits[0].codebook) for h in each])
                return min(psnr_from_sse(e, 3 * s.pixels.shape[0] * s.pixels.shape[1]) for e, s in zip(sse, sources))

            measure = worst_of_images
        else:
            (histogram,) = dask.compute(histograms[0])
        _counted("counted %d distinct colours in %d pixels", len(histogram.colours), histogram.n_pixels)

        def fit_all(k: int, restarts: int, sample: int | None = None) -> list[cb.Fit]:
            return [cb.fit(histogram, k, replace(settings, n_init=restarts), sample)]
    else:
        total = tree_sum(histograms)
        if psnr is None:  # one read: each image's histogram and its fit stay on the cluster
            *fits, histogram = dask.compute(*[dask.delayed(cb.fit)(h, n_colours, settings) for h in histograms], total)
        else:  # the search fits each K to the same histograms, held in the cluster's memory
            *histograms, histogram = dask.persist(*histograms, total)
            histogram = histogram.compute()
        _counted("counted %d distinct colours in %d pixels", len(histogram.colours), histogram.n_pixels)

        def fit_all(k: int, restarts: int, sample: int | None = None) -> list[cb.Fit]:
            restarted = replace(settings, n_init=restarts)
            return list(dask.compute(*[dask.delayed(cb.fit)(h, k, restarted, sample) for h in histograms]))

    tried: dict[int, float] = {}
    estimated: dict[int, float] = {}
    if psnr is None:
        k = n_colours
        if not per_image:
            fits = fit_all(k, settings.n_init)
    else:
        k, fits, tried, estimated = cb.search(fit_all, psnr, candidates, settings.n_init, measure, psnr_over)
    books = {s.name: f.codebook for group, f in zip(groups, fits) for s in group}
    return CodebookFit(k, per_image, books, list(fits), histogram, None if psnr is None else float(psnr), tried,
                       estimated, psnr_over)


def compress(
    images: Mapping[str, Any] | Iterable[ImageSource],
    store: Target,
    *,
    overwrite: bool = False,
    skipped: Iterable[str] = (),
    storage_options: Mapping[str, Any] | None = None,
    **fit: Any,
) -> dict[str, Any]:
    """Compress images to K colours by exact K-means over all their pixels and write one image set at ``store``.

    ``images``: a mapping of name to (H, W, 3) uint8 arrays (NumPy or Dask) or :class:`ImageSource`
    items.  ``fit`` are :func:`fit_codebooks`' parameters: ``n_colours`` (K, default 16) or ``psnr``
    (dB: the smallest of ``candidates`` whose reconstruction of the whole set reaches it, as
    pngquant's ``--quality``; ``psnr_over="worst"``: of its worst image), ``per_image`` (one codebook
    per image instead of one over all pixels
    of all images), ``init``, ``n_init``, ``random_state``, ``max_iter``, ``tol``.  Two reads of the
    pixels in all.  K larger than the number of distinct colours gives a
    :class:`emdask.ConvergenceWarning` and a codebook with repeated colours.  ``skipped`` (files left
    out by the reader) is recorded.  ``storage_options`` (endpoint, credentials) are for an fsspec URL
    ``store``.  Returns the set's summary (also stored in its attributes).
    """
    sources = _as_sources(images)
    store = at(store, storage_options)
    check_writable(store, overwrite=overwrite)  # before the fit, not after hours of it
    return write_set(sources, store, fit_codebooks(sources, **fit), overwrite=overwrite, skipped=skipped)


def write_set(
    images: Mapping[str, Any] | Iterable[ImageSource],
    store: Target,
    fit: CodebookFit,
    *,
    overwrite: bool = False,
    skipped: Iterable[str] = (),
) -> dict[str, Any]:
    """Encode every image with its fitted codebook (the second read) and write the image set atomically."""
    from emdask import __version__

    sources = _as_sources(images)
    meta: dict[str, Any] = {
        "kind": "image-set",
        "schema_version": SCHEMA,
        "emdask_version": __version__,
        "codebook": "per-image" if fit.per_image else "shared",
        "k": fit.k,
        "images": [s.name for s in sources],
        "skipped": list(skipped),
        "psnr_target": fit.psnr_target,
        "psnr_over": fit.psnr_over,
        "codebooks": [] if fit.per_image else ["codebooks/0"],
        "fit": fit.summary(),
    }
    with write_group(store, overwrite=overwrite, meta=meta) as root:
        summaries = _encode_into(root, sources, *_write_codebooks(root, sources, fit, "codebooks/0"), count=False)[0]
        meta = _commit(root, meta, summaries, fit.histogram, previous=None)
        mark_complete(root)
    return {**meta, "images": summaries}


def _write_codebooks(
    root: zarr.Group, sources: Sequence[ImageSource], fit: CodebookFit, shared: str
) -> tuple[dict[str, str], dict[str, int]]:
    """Write the fitted codebooks (one per image, or one at ``shared``); returns each image's codebook path and
    the iterations of the fit that made it."""
    if fit.per_image:
        paths = {s.name: f"images/{s.name}/codebook" for s in sources}
        n_iter = {s.name: f.n_iter for s, f in zip(sources, fit.fits)}
    else:
        paths = {s.name: shared for s in sources}
        n_iter = {s.name: fit.fits[0].n_iter for s in sources}
    for path, name in {paths[s.name]: s.name for s in sources}.items():
        _write_codebook(root, path, fit.codebooks[name])
    return paths, n_iter


def _write_codebook(root: zarr.Group, path: str, codebook: np.ndarray) -> None:
    root.create_array(path, data=np.ascontiguousarray(codebook, dtype=np.uint8), dimension_names=["code", "channel"],
                      overwrite=True)


def _levels(h: int, w: int) -> int:
    """Resolution levels of an image's views: one, unless the codes are larger than :data:`LABEL_SIDE` on a side
    (then halved until they are not), so viewers never load a huge level whole."""
    n = 1
    while max(h, w) > LABEL_SIDE * 2 ** (n - 1):
        n += 1
    return n


def _multiscale(name: str, axes: list[dict[str, str]], factors: list[int]) -> dict[str, Any]:
    """OME-Zarr 0.5 multiscale metadata: level ``i`` at path ``"i"``, ``factors[i]`` pixels per pixel in y and x."""
    channel = [1.0] if axes[0]["type"] == "channel" else []
    return {
        "name": name,
        "axes": axes,
        "datasets": [{"path": str(i), "coordinateTransformations": [{"type": "scale", "scale": [*channel, f, f]}]}
                     for i, f in enumerate(map(float, factors))],
    }


def _image_arrays(
    root: zarr.Group, name: str, shape: tuple[int, ...], codebook: np.ndarray
) -> tuple[zarr.Array, zarr.Array]:
    """One image of the set as an OME-Zarr 0.5 image that viewers show: a small RGB view (1 / :data:`PREVIEW` of
    the resolution, averaged from the codes) with its own levels, and beneath it the full-resolution codes as its
    label image, coloured by the codebook.  Returns the empty codes and view arrays of the first level; the
    encoding read fills them, and :func:`_fill_levels` the other levels, if any."""
    h, w = shape[:2]
    n = _levels(h, w)
    space = [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    image = root.require_group(f"images/{name}")  # it may hold the image's own codebook already
    image.attrs.update({"ome": {
        "version": "0.5",
        "multiscales": [_multiscale(name, [{"name": "c", "type": "channel"}, *space],
                                    [PREVIEW * 2**i for i in range(n)])],
        "omero": {"rdefs": {"model": "color"}, "channels": [
            {"label": label, "color": colour, "active": True, "window": {"start": 0, "end": 255, "min": 0, "max": 255}}
            for label, colour in (("red", "FF0000"), ("green", "00FF00"), ("blue", "0000FF"))]},
    }})
    views = [
        image.create_array(str(i), shape=(3, -(-h // f), -(-w // f)), dtype=np.uint8,
                           chunks=(3, TILE // PREVIEW, TILE // PREVIEW),  # one tile of codes makes one chunk
                           compressors=[ZstdCodec(level=3)], dimension_names=["c", "y", "x"], overwrite=True)
        for i, f in enumerate(PREVIEW * 2**i for i in range(n))
    ]
    labels = image.create_group("labels", attributes={"ome": {"version": "0.5", "labels": ["codes"]}},
                                overwrite=True)
    codes_group = labels.create_group("codes", attributes={"ome": {
        "version": "0.5",
        "multiscales": [_multiscale("codes", space, [2**i for i in range(n)])],
        "image-label": {
            "version": "0.5",
            "colors": [{"label-value": i, "rgba": [*map(int, c), 255]} for i, c in enumerate(codebook)],
            "source": {"image": "../../"},
        },
    }})
    codes = [
        codes_group.create_array(
            str(i), shape=(-(-h // f), -(-w // f)), dtype=np.uint8 if len(codebook) <= 256 else np.uint16,
            chunks=(TILE, TILE), compressors=[ZstdCodec(level=3)], dimension_names=["y", "x"],
            config={"write_empty_chunks": True},  # codes are rarely all 0, and the check cost half of each write
        )
        for i, f in enumerate(2**i for i in range(n))
    ]
    return codes[0], views[0]


def _fill_levels(root: zarr.Group, name: str) -> None:
    """The coarser levels of a large image, each from the one before: codes by taking every other pixel, the
    view by averaging 2 x 2 pixels (in Dask tasks, so no level is held whole)."""
    image = root[f"images/{name}"]
    assert isinstance(image, zarr.Group)
    n = _levels(*_array(image, "labels/codes/0").shape)
    for i in range(1, n):
        codes = da.from_zarr(_array(image, f"labels/codes/{i - 1}"))
        da.store(codes[::2, ::2].rechunk(TILE), _array(image, f"labels/codes/{i}"), lock=False)  # type: ignore[arg-type]
        view = da.from_zarr(_array(image, str(i - 1))).astype(np.float64)
        view = da.pad(view, ((0, 0), (0, view.shape[1] % 2), (0, view.shape[2] % 2)), mode="edge")
        halved = da.coarsen(np.mean, view, {1: 2, 2: 2})
        target = _array(image, str(i))
        da.store(da.floor(halved + 0.5).astype(np.uint8).rechunk(target.chunks), target,  # type: ignore[arg-type]
                 lock=False)


def _array(group: zarr.Group, key: str) -> zarr.Array:
    node = group[key]
    assert isinstance(node, zarr.Array), key
    return node


def _encode_block(
    block: np.ndarray, codebook: np.ndarray, table: np.ndarray, targets: tuple[zarr.Array, zarr.Array],
    region: tuple[slice, slice], count: bool,
) -> tuple[float, Histogram | None]:
    """Code one tile of pixels, write its codes and its part of the small view, and return its sum of squared
    errors (and its histogram)."""
    from emdask._kernels import decoded_means, encode_pixels

    codes_array, view_array = targets
    pixels = np.ascontiguousarray(block).reshape(-1, 3)
    codes = np.empty(len(pixels), codes_array.dtype)
    sse = encode_pixels(pixels, codebook.astype(np.float64), table, codes)
    h, w = block.shape[:2]
    grid = codes.reshape(h, w)
    codes_array[region] = grid
    ys, xs = region
    vh, vw = -(-h // PREVIEW), -(-w // PREVIEW)
    view = np.empty((3, vh, vw), np.uint8)
    decoded_means(grid, codebook, PREVIEW, view)
    view_array[:, ys.start // PREVIEW: ys.start // PREVIEW + vh, xs.start // PREVIEW: xs.start // PREVIEW + vw] = view
    return float(sse), Histogram.of(pixels) if count else None


def _encode_into(
    root: zarr.Group, sources: Sequence[ImageSource], paths: Mapping[str, str], n_iter: Mapping[str, int], count: bool
) -> tuple[list[dict[str, Any]], Histogram | None]:
    """The second read: every image coded with the codebook at ``paths[name]`` (fitted in ``n_iter[name]``
    iterations) and its codes written, all in one Dask graph (one task per tile).  Returns each image's
    summary and, if ``count``, their histogram."""
    books = {path: read_array(root, path, str(root.store_path)) for path in set(paths.values())}
    pixels_per_book = {path: _n_pixels([s for s in sources if paths[s.name] == path]) for path in books}
    # one colour table per codebook, built in one task and moved to each worker that needs it
    tables = {path: dask.delayed(cb.table_for)(book, pixels_per_book[path]) for path, book in books.items()}
    root.require_group("images")
    image_sse, histograms, targets = [], [], []
    # traverse=False: the arguments hold no collections to look for, and 1000s of tiles make that costly
    encode = dask.delayed(_encode_block, nout=2, pure=True, traverse=False)
    for s in sources:
        book = books[paths[s.name]]
        # each image's metadata is written by a task of its own, so the workers write it side by side
        target = dask.delayed(_image_arrays, pure=True, traverse=False, nout=2)(root, s.name, s.pixels.shape, book)
        targets.append(target)
        ys, xs = np.cumsum((0,) + s.pixels.chunks[0]), np.cumsum((0,) + s.pixels.chunks[1])
        sses = []
        for (i, j, _), block in np.ndenumerate(s.pixels.to_delayed()):
            region = (slice(ys[i], ys[i + 1]), slice(xs[j], xs[j + 1]))
            sse, hist = encode(block, book, tables[paths[s.name]], target, region, count)
            sses.append(sse)
            histograms.append(hist)
        image_sse.append(dask.delayed(sum)(sses))
    sse_values, targets, histogram = dask.compute(image_sse, targets, tree_sum(histograms) if count else None)
    for s in sources:
        if _levels(*s.pixels.shape[:2]) > 1:
            _fill_levels(root, s.name)
    _counted("encoded %d images", len(sources))
    summaries = []
    for s, (target, _), sse in zip(sources, targets, sse_values):
        h, w, _ = s.pixels.shape
        book = books[paths[s.name]]
        summary = {
            "name": s.name,
            "source": s.source,
            "source_size": s.size,
            "source_mtime_ns": s.mtime_ns,
            "shape": [h, w, 3],
            "dtype": "uint8",
            "mode": "RGB",
            "k": len(book),
            "codebook": paths[s.name],
            "codebook_version": _version(paths[s.name]),
            "n_iter": n_iter[s.name],
            "sse": float(sse),
            "psnr_db": psnr_from_sse(float(sse), 3 * h * w),
            "accounting": {
                **bit_accounting(h * w, len(book)),
                "bytes_codes": int(target.nbytes_stored()),
                "bytes_views": sum(_stored(root, f"images/{s.name}/{i}") for i in range(_levels(h, w))),
                "bytes_codebook": _stored(root, paths[s.name]) if paths[s.name].startswith("images/") else 0,
            },
        }
        root[f"images/{s.name}"].attrs["emdask"] = summary
        logger.info("encoded %s: PSNR %.2f dB", s.name, summary["psnr_db"], extra={"emdask_encoding": s.name})
        summaries.append(summary)
    return summaries, histogram


def _stored(root: zarr.Group, path: str) -> int:
    """Bytes that the array at ``path`` takes in the store (its chunks and metadata)."""
    return int(_array(root, path).nbytes_stored())


def _version(path: str) -> int | None:
    return int(path.rsplit("/", 1)[1]) if path.startswith("codebooks/") else None


def _commit(
    root: zarr.Group, meta: dict[str, Any], images: list[dict[str, Any]], histogram: Histogram, previous: str | None
) -> dict[str, Any]:
    """Write the histogram under a new key and then the root's attributes: the one write that makes the set."""
    key = f"histogram/{uuid.uuid4().hex[:12]}"
    for name, values in (("colours", histogram.colours), ("counts", histogram.counts)):
        root.create_array(f"{key}/{name}", data=values, compressors=[ZstdCodec(level=5)], dimension_names=["colour"])
    bytes_codebooks = sum(_stored(root, p) for p in meta["codebooks"])
    meta = {**meta, "histogram": key, "accounting": accounting(images, meta["k"], meta["codebooks"], bytes_codebooks)}
    old = dict(root.attrs.get("emdask", {}))  # type: ignore[arg-type]
    root.attrs["emdask"] = {**meta, "write_id": uuid.uuid4().hex, "complete": old.get("complete", False)}
    if previous is not None and previous in root:
        del root[previous]
    return meta


def accounting(
    images: Sequence[dict[str, Any]], k: int, codebooks: Sequence[str], bytes_codebooks: int
) -> dict[str, Any]:
    """The set's figures from its images' own: pixels, the notes' bits (one 24 K term per stored codebook),
    bytes stored (codes and codebooks; apart, the small RGB views kept for viewers), the worst image's PSNR and the
    PSNR over every pixel."""
    n = sum(s["shape"][0] * s["shape"][1] for s in images)
    per_image = not codebooks
    stored_books = len(images) if per_image else len(codebooks)
    raw = 24 * n
    notes = 24 * k * stored_books + n * math.ceil(math.log2(k))
    stored = sum(s["accounting"]["bytes_codes"] + s["accounting"]["bytes_codebook"] for s in images) + bytes_codebooks
    return {
        "n_images": len(images),
        "n_pixels": n,
        "raw_bits": raw,
        "notes_bits": notes,
        "notes_ratio": notes / raw,
        "bytes_on_disk": stored,
        "disk_ratio": 8 * stored / raw,
        "bytes_views": sum(s["accounting"].get("bytes_views", 0) for s in images),
        "psnr_db_min": min(s["psnr_db"] for s in images),
        "psnr_db_overall": psnr_from_sse(sum(s["sse"] for s in images), 3 * n),
    }


def append(
    images: Iterable[ImageSource] | Mapping[str, Any],
    store: Target,
    *,
    refit_below: float | None = None,
    n_colours: int | None = None,
    skipped: Iterable[str] = (),
    init: Any = "k-means++",
    n_init: int = cb.N_INIT,
    random_state: Any = None,
    max_iter: int = 300,
    tol: float = 1e-4,
    storage_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Add the images not yet in the image set ``store``; returns the set's summary with ``appended`` (new names).

    A source already in the set (same path, size and modification time) is skipped, so appending
    the same files twice adds nothing; a file at a path already in the set that has changed since
    is an error.  New images are read once and coded with the set's current codebook; their
    colours join the set's histogram.  With ``refit_below`` (dB), if a new image's PSNR is below
    it, a new codebook is fitted to the merged histogram (no old image is read) and stored as the
    next codebook version, and the new images are read once more and coded with it; old images
    keep the version that codes them.  A set of per-image codebooks fits each new image its own.
    Nothing is visible until the set's attributes are rewritten last, so an append that fails or
    is killed leaves the set as it was.  ``n_colours``, if given, must be the set's K.
    """
    settings = cb.Settings(init, n_init, max_iter, tol, random_state).checked()
    store = at(store, storage_options)
    if refit_below is not None and not (isinstance(refit_below, (int, float)) and refit_below > 0):
        raise InputError(f"refit_below must be a positive number of dB; got {refit_below!r}")
    with update_group(store) as root:
        meta = _meta_of(root, store)
        if n_colours is not None and n_colours != meta["k"]:
            raise InputError(f"the image set {store!s} has K={meta['k']} colours; cannot append with K={n_colours}")
        _drop_unlisted(root, meta)
        old = [dict(root[f"images/{name}"].attrs["emdask"]) for name in meta["images"]]  # type: ignore[arg-type]
        new = _not_yet_in(_items(images), old, store)
        if not new:
            logger.info("nothing to append: every image is already in %s", store)
            return {**meta, "images": old, "appended": []}
        new = _as_sources(new, taken=meta["images"])
        histogram = _stored_histogram(root, meta, store)
        k, fits = meta["k"], []
        if meta["codebook"] == "per-image":
            fit = fit_codebooks(new, n_colours=k, per_image=True, init=init, n_init=n_init,
                                random_state=settings.random_state, max_iter=max_iter, tol=tol)
            added, _ = _encode_into(root, new, *_write_codebooks(root, new, fit, ""), count=False)
            histogram = histogram + fit.histogram
            fits = fit.fits
        else:
            current = meta["codebooks"][-1]
            unfitted = {s.name: 0 for s in new}
            added, new_histogram = _encode_into(root, new, {s.name: current for s in new}, unfitted, count=True)
            assert new_histogram is not None
            histogram = histogram + new_histogram
            worst = min(a["psnr_db"] for a in added)
            if refit_below is not None and worst < refit_below:
                logger.info("new images reach %.2f dB, below %.2f dB: fitting codebook version %d to the merged "
                            "histogram", worst, refit_below, len(meta["codebooks"]))
                refit = cb.fit(histogram, k, settings)
                path = f"codebooks/{len(meta['codebooks'])}"
                _write_codebook(root, path, refit.codebook)
                meta = {**meta, "codebooks": [*meta["codebooks"], path]}
                added, _ = _encode_into(root, new, {s.name: path for s in new}, {s.name: refit.n_iter for s in new},
                                        count=False)
                fits = [refit]
        summaries = old + added
        if fits:
            history = meta.get("fit", {})
            meta["fit"] = {**history, **{key: [*history.get(key, []), *v] for key, v in cb.fit_summary(fits).items()}}
        meta = {**meta, "images": [s["name"] for s in summaries], "skipped": [*meta.get("skipped", []), *skipped]}
        meta = _commit(root, meta, summaries, histogram, previous=meta.get("histogram"))
    logger.info("appended %d images to %s", len(added), store)
    return {**meta, "images": summaries, "appended": [a["name"] for a in added]}


def _meta_of(root: zarr.Group, store: Target) -> dict[str, Any]:
    meta = root.attrs.get("emdask")
    if not isinstance(meta, dict) or meta.get("kind") != "image-set" or meta.get("complete") is not True:
        raise StoreError(f"{store!s} is not a complete emdask image set; cannot append to it")
    if meta.get("schema_version", 1) < SCHEMA:
        raise StoreError(f"{store!s} is an image set of emdask schema {meta.get('schema_version')}, which keeps no "
                         "colour histogram; compress its images again to append to it")
    return dict(meta)


def _drop_unlisted(root: zarr.Group, meta: dict[str, Any]) -> None:
    """Remove what an append that was killed left behind: nodes that the set's attributes do not list."""
    listed = {f"images/{n}" for n in meta["images"]} | set(meta["codebooks"]) | {meta.get("histogram")}
    for parent in ("images", "codebooks", "histogram"):
        if parent in root:
            for key in list(root[parent].keys()):  # type: ignore[union-attr]
                if f"{parent}/{key}" not in listed:
                    del root[f"{parent}/{key}"]


def _not_yet_in(sources: list[ImageSource], old: list[dict[str, Any]], store: Target) -> list[ImageSource]:
    held = {im["source"]: im for im in old if im.get("source")}
    new = []
    for s in sources:
        if not s.source or s.source not in held:
            new.append(s)
            continue
        was = held[s.source]
        if (was.get("source_size"), was.get("source_mtime_ns")) != (s.size, s.mtime_ns):
            raise InputError(
                f"{s.source} is already in the image set {store!s} (as {was['name']!r}) but has changed since "
                "(size or modification time); give the new version another name or compress the set again"
            )
    return new


def _stored_histogram(root: zarr.Group, meta: dict[str, Any], store: Target) -> Histogram:
    key = meta.get("histogram", "")
    histogram = Histogram(
        read_array(root, f"{key}/colours", store).astype(np.uint32),
        read_array(root, f"{key}/counts", store).astype(np.uint64),
    )
    where = f"the colour histogram {key!r} of the image set {store!s}"
    try:
        histogram.check(where)
    except ValueError as exc:
        raise StoreError(str(exc)) from None
    if histogram.n_pixels != meta["accounting"]["n_pixels"]:
        raise StoreError(f"{where} is damaged: it counts {histogram.n_pixels} pixels, the set holds "
                         f"{meta['accounting']['n_pixels']}")
    return histogram


def is_image_set(store: Target, storage_options: Mapping[str, Any] | None = None) -> bool:
    """Whether ``store`` holds a complete image set (True) or nothing yet (False); anything else is an error."""
    store = at(store, storage_options)
    try:
        info(store)
    except StoreError as exc:
        try:
            check_writable(store, overwrite=False)
        except FileExistsError:
            raise exc from None  # something else is there: say what
        return False
    return True


def histogram(store: Target, storage_options: Mapping[str, Any] | None = None) -> Histogram:
    """The colour histogram of every pixel of an image set (what its codebooks are fitted to)."""
    store = at(store, storage_options)
    return read_snapshot(store, "image-set", lambda root, meta: _stored_histogram(root, meta, store))


def info(store: Target, storage_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The stored summary of an image set: the set's accounting and each image's."""
    store = at(store, storage_options)

    def read(root: zarr.Group, meta: dict[str, Any]) -> dict[str, Any]:
        images = [dict(root[f"images/{name}"].attrs["emdask"]) for name in meta["images"]]  # type: ignore[arg-type]
        return {**meta, "images": images}

    return read_snapshot(store, "image-set", read)


def decompress(
    store: Target, name: str | None = None, storage_options: Mapping[str, Any] | None = None
) -> da.Array:
    """One stored image as a lazy (H, W, 3) uint8 Dask array: ``codebook[codes]`` tile by tile.

    ``name`` may be left out when the set holds one image.
    """
    store = at(store, storage_options)
    root, meta = read_group(store, "image-set")
    names = meta["images"]
    if name is None:
        if len(names) != 1:
            raise InputError(f"the image set {store!s} holds {len(names)} images; name one of {names}")
        name = names[0]
    if name not in names:
        raise InputError(f"the image set {store!s} has no image {name!r}; it holds {names}")
    group = root[f"images/{name}"]
    codebook = read_array(root, _codebook_key(group.attrs["emdask"], name, meta), store)  # type: ignore[arg-type]
    codes = da.from_zarr(group["labels/codes/0"])  # type: ignore[index]
    return da.map_blocks(lambda c: codebook[c], codes, new_axis=2, chunks=codes.chunks + ((3,),), dtype=np.uint8)


def write_pngs(
    store: Target, out_dir: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Decompress every image of a set to ``out_dir/<name>.png`` (each written whole, then renamed into place);
    PNG files already there are an error, before any is written, unless ``overwrite``."""
    store = at(store, storage_options)
    from skimage import io

    root, meta = read_group(store, "image-set")
    out = Path(out_dir)
    there = [out / f"{name}.png" for name in meta["images"] if (out / f"{name}.png").exists()]
    if there and not overwrite:
        raise FileExistsError(f"{there[0]} already exists ({len(there)} of the {len(meta['images'])} PNG files are "
                              "there); pass overwrite=True (CLI: --overwrite) to replace them")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in meta["images"]:
        path = out / f"{name}.png"
        tmp = path.with_name(f".{path.name}.partial-{uuid.uuid4().hex[:8]}.png")
        try:
            io.imsave(tmp, decompress(store, name).compute(), check_contrast=False)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        written.append(path)
    return written


def _codebook_key(image: dict[str, Any], name: str, meta: dict[str, Any]) -> str:
    """Where an image's codebook is, from the root: recorded per image since schema 2; before, one place per set."""
    if meta.get("schema_version", 1) >= 2:
        return str(image["codebook"])
    return f"images/{name}/codebook" if meta["codebook"] == "per-image" else "codebook"
