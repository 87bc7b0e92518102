"""K-means colour compression of images, stored in Zarr as per-pixel codes plus a codebook.

Layout of an image set (a Zarr v3 group; readable with plain ``zarr`` or ``xarray``)::

    out.zarr/                            attrs["emdask"]: kind "image-set", codebook "shared" | "per-image",
                                         images, k, accounting of the whole set, complete
      codebook                           (K, 3) uint8 RGB colours       (shared codebook)
      images/<name>/                     attrs["emdask"]: source path, shape, dtype, mode, accounting, psnr_db
        codebook                         (K, 3) uint8                   (per-image codebooks)
        labels/                          attrs["ome"]: {"version": "0.5", "labels": ["codes"]}
          codes/                         attrs["ome"]: multiscales + "image-label" whose colors map code -> RGBA
            0                            (H, W) uint8 codes (uint16 when K > 256), 2-D tiles, zstd

An image is restored exactly as ``codebook[codes]``.  The codes follow the OME-Zarr (NGFF 0.5)
labels convention, so viewers that read OME-Zarr show the compressed image in its colours.
The accounting is the course notes': raw ``24 N`` bits against ``24 K + N ceil(log2 K)``
bits, next to the real bytes stored and the PSNR of the reconstruction.
"""
from __future__ import annotations

import logging
import math
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from emdask._linalg import nearest
from emdask._validation import check_int, describe
from emdask.cluster import KMeans
from emdask.engine import memory_budget
from emdask.store import Target, check_writable, mark_complete, read_array, read_group, read_snapshot, write_group

logger = logging.getLogger("emdask")

TILE = 1024
_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ImageSource:
    """One image to compress: its name in the set, its pixels (H, W, 3) uint8 and where it came from."""

    name: str
    pixels: da.Array
    source: str = ""


def bit_accounting(n_pixels: int, k: int, channels: int = 3) -> dict[str, float]:
    """The notes' figures: ``8 C N`` raw bits against ``8 C K + N ceil(log2 K)`` bits, and their ratio."""
    raw = 8 * channels * n_pixels
    coded = 8 * channels * k + n_pixels * math.ceil(math.log2(k))
    return {"raw_bits": raw, "notes_bits": coded, "notes_ratio": coded / raw}


def psnr_from_sse(sse: float, n_values: int) -> float:
    """PSNR in dB of 8-bit data from the sum of squared errors over ``n_values`` samples."""
    return float("inf") if sse == 0 else float(10 * np.log10(255.0**2 * n_values / sse))


def _as_sources(images: Mapping[str, Any] | Iterable[ImageSource]) -> list[ImageSource]:
    items = (
        [ImageSource(name, arr, "") for name, arr in images.items()] if isinstance(images, Mapping) else list(images)
    )
    if not items:
        raise ValueError("images must hold at least one image; got none")
    out, seen = [], set()
    for item in items:
        pixels = item.pixels if isinstance(item.pixels, da.Array) else da.from_array(np.asarray(item.pixels))
        if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
            raise ValueError(
                f"image {item.name!r} must be RGB of shape (height, width, 3) and dtype uint8; got {describe(pixels)}"
            )
        name = _NAME.sub("_", item.name).strip("._") or "image"
        stem, n = name, 1
        while name in seen:
            n += 1
            name = f"{stem}_{n}"
        seen.add(name)
        out.append(ImageSource(name, pixels.rechunk((TILE, TILE, 3)), item.source))
    return out


def _encode_tile(tile: np.ndarray, codebook: np.ndarray, dtype: type) -> np.ndarray:
    labels, _ = nearest(tile.reshape(-1, 3), codebook.astype(np.float64))
    return labels.astype(dtype).reshape(tile.shape[:2])


def _tile_sse(tile: np.ndarray, codes: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """Sum of squared errors of one tile's reconstruction; ``codes`` is (h, w, 1) to align with the tile's axes."""
    diff = codebook[codes[..., 0]].astype(np.float64) - tile
    return np.array([[np.einsum("ijk,ijk->", diff, diff)]])


#: The numbers of colours that a PSNR target chooses from.
K_CANDIDATES = (2, 4, 8, 16, 32, 64, 128, 256)


def fit_codebook(
    pixels: da.Array,
    k: int,
    random_state: Any = None,
    max_iter: int = 300,
    init: Any = "k-means++",
    checkpoint: str | None = None,
) -> tuple[np.ndarray, KMeans]:
    """A K-colour uint8 codebook by exact K-means over all the given pixels (n, 3).

    When the cluster's memory allows, each chunk is first reduced to its distinct colours and
    their counts (:func:`count_colours`) and Lloyd runs on those, weighted: the same assignments,
    counts and sums as over every pixel, so the same centres, at a fraction of the work per pass.
    The default initialisation is k-means++ on a weighted random sample of the pixels drawn in the
    first pass (``KMeans``'s ``init_sample_size``, at least 20 000): for colours a sample starts
    Lloyd as well as k-means|| does, which costs about 30 passes' work on a large set.
    """
    km = KMeans(k, init=init, random_state=random_state, max_iter=max_iter, checkpoint=checkpoint)
    counted = None
    if pixels.dtype == np.uint8 and _COUNTED_BYTES_PER_PIXEL * pixels.shape[0] <= memory_budget():
        counted = count_colours(pixels)
    if counted is not None and counted[0].shape[0] >= k:
        colours, counts = counted
        # tol is relative to the rows' variance: rescaled, the fit stops where the fit over every pixel stops
        km.set_params(tol=km.tol * _pixel_to_colour_variance(colours, counts)).fit(colours, sample_weight=counts)
    else:  # too large to hold counted, or fewer colours than K (the fit warns about it)
        km.fit(pixels)
    return np.clip(np.rint(km.cluster_centers_), 0, 255).astype(np.uint8), km


#: Cluster memory that counted colours may need per pixel: 3 bytes of colour and 4 of count when all differ.
_COUNTED_BYTES_PER_PIXEL = 7


def count_colours(pixels: da.Array) -> tuple[da.Array, da.Array]:
    """Each chunk of uint8 pixels (n, 3) reduced to its distinct colours (m, 3) uint8 and their counts (m,) uint32.

    Held in the cluster's memory (``persist``) with their chunk sizes known: one read of the
    pixels, after which every K-means pass touches m rows per chunk instead of n (Celebi's
    weighted sort-means idea; real photos have several pixels per distinct colour).
    """
    pixels = pixels.rechunk({1: 3})
    packed = da.map_blocks(_distinct_colours, pixels, dtype=np.uint32, chunks=((np.nan,) * pixels.numblocks[0], (2,)))
    packed = packed.persist()
    packed.compute_chunk_sizes()
    colours = da.map_blocks(_unpack_colours, packed, dtype=np.uint8, chunks=(packed.chunks[0], (3,)))
    n_colours, n_pixels = int(packed.shape[0]), int(pixels.shape[0])
    logger.info("%d pixels hold %d distinct colours per chunk in all (%.1f pixels per colour)",
                n_pixels, n_colours, n_pixels / max(1, n_colours))
    return colours, packed[:, 1]


def _pixel_to_colour_variance(colours: da.Array, counts: da.Array) -> float:
    """Mean variance of the pixels over that of the distinct colours.

    ``KMeans``'s ``tol`` is relative to the unweighted variance of its rows (as scikit-learn's);
    scaled by this ratio, the counted fit stops where the fit over every pixel stops.
    """
    x, c = colours.astype(np.float64), counts.astype(np.float64)[:, None]
    n = c.sum()
    mean = (c * x).sum(axis=0) / n
    pixel_var, colour_var = dask.compute((c * (x - mean) ** 2).sum(axis=0) / n, x.var(axis=0))
    return float(np.mean(pixel_var) / np.mean(colour_var)) if np.mean(colour_var) > 0 else 1.0


def _distinct_colours(block: np.ndarray) -> np.ndarray:
    """(m, 2) uint32: each distinct colour packed as 0xRRGGBB, and its number of pixels."""
    rgb = block.astype(np.uint32)
    packed = (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
    values, counts = np.unique(packed, return_counts=True)
    return np.stack([values, counts.astype(np.uint32)], axis=1)


def _unpack_colours(block: np.ndarray) -> np.ndarray:
    values = block[:, 0]
    return np.stack([(values >> 16) & 255, (values >> 8) & 255, values & 255], axis=1).astype(np.uint8)


@dataclass(frozen=True)
class CodebookFit:
    """Fitted uint8 codebooks by image name (the same array for all when shared) and how the fit went.

    Small: it is what a flow passes from its fitting task to its encoding task (``to_dict``).
    """

    k: int
    per_image: bool
    codebooks: dict[str, np.ndarray]
    n_iter: list[int]
    inertia: list[float]
    history: list[list[float]]
    psnr_target: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "codebooks": {n: c.tolist() for n, c in self.codebooks.items()}}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> CodebookFit:
        return cls(**{**doc, "codebooks": {n: np.asarray(c, dtype=np.uint8) for n, c in doc["codebooks"].items()}})


def _codes_and_sse(pixels: da.Array, codebook: np.ndarray, code_dtype: type) -> tuple[da.Array, da.Array]:
    """Lazy codes (H, W) of an image and the lazy sum of squared errors of ``codebook[codes]``, from one read."""
    codes = da.map_blocks(_encode_tile, pixels, codebook, code_dtype, drop_axis=2, dtype=code_dtype)
    sse = da.map_blocks(_tile_sse, pixels, codes[..., None], codebook, chunks=(1, 1), drop_axis=2, dtype=np.float64)
    return codes, sse.sum()


def _fit(
    sources: list[ImageSource],
    k: int,
    per_image: bool,
    random_state: Any,
    max_iter: int,
    init: Any,
    checkpoint: str | None,
) -> CodebookFit:
    """Codebooks by K-means over all pixels of all images, or of each image."""
    groups = [[s] for s in sources] if per_image else [sources]
    books: dict[str, np.ndarray] = {}
    fits = []
    for group in groups:
        pixels = da.concatenate([s.pixels.reshape(-1, 3) for s in group])
        where = None if checkpoint is None else f"{checkpoint}.k{k}" + (f".{group[0].name}" if per_image else "")
        book, km = fit_codebook(pixels, k, random_state, max_iter, init, where)
        books.update({s.name: book for s in group})
        fits.append(km)
    return CodebookFit(
        k, per_image, books, [km.n_iter_ for km in fits], [km.inertia_ for km in fits],
        [[h["objective"] for h in km.history_] for km in fits],
    )


def set_psnr(sources: list[ImageSource], codebooks: dict[str, np.ndarray]) -> float:
    """PSNR of the whole set's reconstruction, in one pass and without writing anything."""
    parts = [_codes_and_sse(s.pixels, codebooks[s.name], np.uint16)[1] for s in sources]
    n = sum(3 * s.pixels.shape[0] * s.pixels.shape[1] for s in sources)
    return psnr_from_sse(float(da.stack(parts).sum().compute()), n)


def fit_codebooks(
    images: Mapping[str, Any] | Iterable[ImageSource],
    *,
    n_colours: int = 16,
    psnr: float | None = None,
    candidates: tuple[int, ...] = K_CANDIDATES,
    per_image: bool = False,
    init: Any = "k-means++",
    random_state: Any = None,
    max_iter: int = 300,
    checkpoint: str | None = None,
) -> CodebookFit:
    """Fit the codebooks of :func:`compress` (its parameters) without writing anything.

    ``checkpoint``: a path prefix for per-fit checkpoints, so a killed or retried fit resumes.
    """
    sources = _as_sources(images)
    n_total = sum(s.pixels.shape[0] * s.pixels.shape[1] for s in sources)
    if psnr is None:
        check_int(n_colours, "n_colours", 1, min(65536, n_total), f"min(65536, number of pixels={n_total})")
        return _fit(sources, n_colours, per_image, random_state, max_iter, init, checkpoint)
    if not (isinstance(psnr, (int, float)) and psnr > 0):
        raise ValueError(f"psnr must be a positive number of dB; got {psnr!r}")
    usable = tuple(k for k in sorted(candidates) if 1 <= k <= min(65536, n_total))
    if not usable:
        raise ValueError(f"candidates must hold at least one K in [1, {n_total}]; got {candidates!r}")
    tried: dict[int, tuple[float, CodebookFit]] = {}

    def quality(k: int) -> float:
        if k not in tried:
            fit = _fit(sources, k, per_image, random_state, max_iter, init, checkpoint)
            tried[k] = (set_psnr(sources, fit.codebooks), fit)
            logger.info("K=%d reaches PSNR %.2f dB (target %.2f)", k, tried[k][0], psnr)
        return tried[k][0]

    lo, hi = 0, len(usable) - 1  # bisection: PSNR grows with K
    if quality(usable[hi]) < psnr:
        logger.warning("no candidate K reaches PSNR %.2f dB; using the largest, K=%d", psnr, usable[hi])
        lo = hi
    while lo < hi:
        mid = (lo + hi) // 2
        if quality(usable[mid]) >= psnr:
            hi = mid
        else:
            lo = mid + 1
    quality(usable[lo])
    return replace(tried[usable[lo]][1], psnr_target=float(psnr))


def compress(
    images: Mapping[str, Any] | Iterable[ImageSource],
    store: Target,
    *,
    overwrite: bool = False,
    skipped: Iterable[str] = (),
    **fit: Any,
) -> dict[str, Any]:
    """Compress images to K colours by exact K-means over all their pixels and write one image set at ``store``.

    ``images``: a mapping of name to (H, W, 3) uint8 arrays (NumPy or Dask) or :class:`ImageSource`
    items.  ``fit`` are :func:`fit_codebooks`' parameters: ``n_colours`` (K, default 16) or ``psnr``
    (dB: the smallest of ``candidates`` whose reconstruction of the set reaches it, as pngquant's
    ``--quality``), ``per_image`` (one codebook per image instead of one over all pixels of all
    images), ``init``, ``random_state``, ``max_iter``.  K larger than the number of distinct
    colours gives a :class:`emdask.ConvergenceWarning` and a codebook with repeated colours.
    ``skipped`` (files left out by the reader) is recorded.  Returns the set's summary (also
    stored in its attributes).
    """
    sources = _as_sources(images)
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
    """Encode every image with its fitted codebook (one more pass) and write the image set atomically."""
    from emdask import __version__

    sources = _as_sources(images)
    code_dtype = np.uint8 if fit.k <= 256 else np.uint16
    meta: dict[str, Any] = {
        "kind": "image-set",
        "schema_version": 1,
        "emdask_version": __version__,
        "codebook": "per-image" if fit.per_image else "shared",
        "k": fit.k,
        "images": [s.name for s in sources],
        "skipped": list(skipped),
        "psnr_target": fit.psnr_target,
    }
    fit_summary: dict[str, Any] = {"n_iter": fit.n_iter, "inertia": fit.inertia, "history": fit.history}
    n_iter = dict(zip([s.name for s in sources], fit.n_iter * len(sources) if not fit.per_image else fit.n_iter))
    with write_group(store, overwrite=overwrite, meta=meta) as root:
        if not fit.per_image:
            root.create_array("codebook", data=fit.codebooks[sources[0].name], dimension_names=["code", "channel"])
        pending = [
            _prepare_image(root, s, fit.codebooks[s.name], n_iter[s.name], code_dtype, fit.per_image) for s in sources
        ]
        # one graph for every image: Dask encodes and writes them all in parallel, each pixel read once
        done = dask.compute(*(lazy for *_, lazy in pending))
        summaries = [_finish_image(g, summary, target, sse) for (g, summary, target, _), (_, sse) in zip(pending, done)]
        total = _set_accounting(root, summaries, fit.k, fit.per_image)
        root.attrs["emdask"] = {**meta, "complete": False, "accounting": total, "fit": fit_summary}
        mark_complete(root)
    return {**meta, "accounting": total, "images": summaries, "fit": fit_summary}


def _prepare_image(
    root: zarr.Group, source: ImageSource, codebook: np.ndarray, n_iter: int, code_dtype: type, per_image: bool
) -> tuple[zarr.Group, dict[str, Any], Any, Any]:
    """The image's group, attributes and codes array, its partial summary, and the lazy (write, SSE) of its codes."""
    h, w, _ = source.pixels.shape
    group = root.require_group(f"images/{source.name}")
    if per_image:
        group.create_array("codebook", data=codebook, dimension_names=["code", "channel"])
    labels = group.require_group("labels")
    labels.attrs["ome"] = {"version": "0.5", "labels": ["codes"]}
    codes_group = labels.require_group("codes")
    codes_group.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [
            {
                "name": "codes",
                "axes": [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
                "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0]}]}],
            }
        ],
        "image-label": {
            "colors": [{"label-value": i, "rgba": [*map(int, c), 255]} for i, c in enumerate(codebook)],
        },
    }
    target = codes_group.create_array(
        "0",
        shape=(h, w),
        dtype=code_dtype,
        chunks=(min(TILE, h), min(TILE, w)),
        compressors=[ZstdCodec(level=3)],
        dimension_names=["y", "x"],
    )
    codes, sse = _codes_and_sse(source.pixels, codebook, code_dtype)
    # the codes' Dask chunks are the Zarr tiles (both TILE-aligned from the origin): each task writes whole tiles
    writes = da.store(codes, target, lock=False, compute=False)  # type: ignore[arg-type]
    n = h * w
    summary: dict[str, Any] = {
        "name": source.name,
        "source": source.source,
        "shape": [h, w, 3],
        "dtype": "uint8",
        "mode": "RGB",
        "k": len(codebook),
        "codebook": "codebook" if per_image else "../../codebook",
        "n_iter": n_iter,
        "psnr_db": None,
        "accounting": {
            **bit_accounting(n, len(codebook)),
            "bytes_codebook": int(group["codebook"].nbytes_stored()) if per_image else 0,  # type: ignore[union-attr]
        },
    }
    return group, summary, target, (writes, sse)


def _finish_image(group: zarr.Group, summary: dict[str, Any], target: Any, sse: float) -> dict[str, Any]:
    """Once the codes are written: the PSNR and the bytes stored, in the image's attributes."""
    n = summary["shape"][0] * summary["shape"][1]
    summary = {**summary, "psnr_db": psnr_from_sse(float(sse), 3 * n)}
    summary["accounting"] = {**summary["accounting"], "bytes_codes": int(target.nbytes_stored())}
    logger.info("encoded %s: PSNR %.2f dB", summary["name"], summary["psnr_db"], extra={"emdask_encoding": summary["name"]})
    group.attrs["emdask"] = summary
    return summary


def _set_accounting(root: zarr.Group, images: list[dict[str, Any]], k: int, per_image: bool) -> dict[str, Any]:
    n = sum(s["shape"][0] * s["shape"][1] for s in images)
    raw = 24 * n
    codebooks = len(images) if per_image else 1
    notes = 24 * k * codebooks + n * math.ceil(math.log2(k))
    stored = sum(s["accounting"]["bytes_codes"] + s["accounting"]["bytes_codebook"] for s in images)
    if not per_image:
        stored += int(root["codebook"].nbytes_stored())  # type: ignore[union-attr]
    sse = sum(3 * s["shape"][0] * s["shape"][1] * 255.0**2 / 10 ** (s["psnr_db"] / 10) for s in images if np.isfinite(s["psnr_db"]))
    return {
        "n_images": len(images),
        "n_pixels": n,
        "raw_bits": raw,
        "notes_bits": notes,
        "notes_ratio": notes / raw,
        "bytes_on_disk": stored,
        "disk_ratio": 8 * stored / raw,
        "psnr_db_min": min(s["psnr_db"] for s in images),
        "psnr_db_overall": psnr_from_sse(sse, 3 * n),
    }


def info(store: Target) -> dict[str, Any]:
    """The stored summary of an image set: the set's accounting and each image's."""

    def read(root: zarr.Group, meta: dict[str, Any]) -> dict[str, Any]:
        images = [dict(root[f"images/{name}"].attrs["emdask"]) for name in meta["images"]]  # type: ignore[arg-type]
        return {**meta, "images": images}

    return read_snapshot(store, "image-set", read)


def decompress(store: Target, name: str | None = None) -> da.Array:
    """One stored image as a lazy (H, W, 3) uint8 Dask array: ``codebook[codes]`` tile by tile.

    ``name`` may be left out when the set holds one image.
    """
    root, meta = read_group(store, "image-set")
    names = meta["images"]
    if name is None:
        if len(names) != 1:
            raise ValueError(f"the image set {store!s} holds {len(names)} images; name one of {names}")
        name = names[0]
    if name not in names:
        raise ValueError(f"the image set {store!s} has no image {name!r}; it holds {names}")
    group = root[f"images/{name}"]
    codebook_key = f"images/{name}/codebook" if meta["codebook"] == "per-image" else "codebook"
    codebook = read_array(root, codebook_key, store)
    codes = da.from_zarr(group["labels/codes/0"])  # type: ignore[index]
    return da.map_blocks(lambda c: codebook[c], codes, new_axis=2, chunks=codes.chunks + ((3,),), dtype=np.uint8)


def write_pngs(store: Target, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Decompress every image of a set to ``out_dir/<name>.png`` (each written whole, then renamed into place)."""
    from skimage import io

    root, meta = read_group(store, "image-set")
    out = Path(out_dir)
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
