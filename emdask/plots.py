"""Pictures of an image set: a contact sheet (originals beside their compressed versions) and the convergence plot."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from emdask import images
from emdask.store import Target

#: Longer side of the whole-image thumbnails, and side of the 1:1 crops (full resolution: the artefacts show).
THUMB = 400
CROP = 200


def _thumb(image: Any) -> np.ndarray:
    """Every n-th pixel of a (lazy) image, so that its longer side is about THUMB; reads tile by tile."""
    step = max(1, int(np.ceil(max(image.shape[:2]) / THUMB)))
    return np.asarray(image[::step, ::step])


def _crop(image: Any) -> np.ndarray:
    """The CROP x CROP pixels at the image's centre, at full resolution."""
    h, w = image.shape[:2]
    y, x = max(0, (h - CROP) // 2), max(0, (w - CROP) // 2)
    return np.asarray(image[y: y + CROP, x: x + CROP])


def default_folder(store: str) -> Path:
    """Where the pictures of ``store`` go by default: ``<store>.plots`` beside a local store, ``<name>.plots`` in the
    current folder for a store at a URL."""
    name = str(store).rstrip("/")
    return Path(f"{name.rpartition('/')[2]}.plots" if "://" in name else f"{name}.plots")


def _palette(ax: Any, codebook: np.ndarray, label: str) -> None:
    """The codebook's colours as a row of swatches."""
    ax.imshow(np.asarray(codebook, np.uint8)[None, :, :], aspect="auto")
    ax.set_yticks([])
    ax.set_xticks([])
    ax.set_title(label, fontsize=8, loc="left")


def contact_sheet(store: Target, path: str | os.PathLike[str], max_images: int = 8) -> Path:
    """A PNG titled with the store, K and the PSNR: the codebook's colours as swatches, then per image its original
    (when its source file is still readable) and compressed versions whole, and a 1:1 crop of each at full
    resolution."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from emdask.readers import read_images
    from emdask.store import read_array, read_group

    meta = images.info(store)
    root, _ = read_group(store, "image-set")
    rows = meta["images"][:max_images]
    shared = meta["codebook"] == "shared"
    heights = [0.35] + [2.2] * len(rows)
    fig, axes = plt.subplots(len(rows) + 1, 4, figsize=(13, sum(heights) + 0.9), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax in axes[0][1:]:
        ax.axis("off")
    if shared:
        book = read_array(root, meta["codebooks"][-1], store)
        _palette(axes[0][0], book, f"codebook (version {len(meta['codebooks']) - 1}): {len(book)} colours")
    else:
        axes[0][0].axis("off")
        axes[0][0].set_title("one codebook per image (its colours in each row's title)", fontsize=8, loc="left")
    for ax_row, entry in zip(axes[1:], rows):
        decoded = images.decompress(store, entry["name"])
        try:
            source = read_images([entry["source"]], colour="convert")[0][0].pixels if entry.get("source") else None
        except Exception:  # the source moved or is gone: show the compressed image alone
            source = None
        pictures = [
            (_thumb(source) if source is not None else None, f"{entry['name']}: original"
             if source is not None else f"{entry['name']}: source not found"),
            (_thumb(decoded), f"compressed: K={entry['k']}, PSNR {entry['psnr_db']:.2f} dB"),
            (_crop(source) if source is not None else None, f"original, centre 1:1 ({CROP} px)"),
            (_crop(decoded), f"compressed, centre 1:1 ({CROP} px)"),
        ]
        for ax, (picture, title) in zip(ax_row, pictures):
            if picture is not None:
                ax.imshow(picture, interpolation="nearest")
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    where = "shared codebook" if shared else "one codebook per image"
    more = f", first {len(rows)} of {len(meta['images'])} images" if len(meta["images"]) > len(rows) else ""
    fig.suptitle(f"{store!s}: K={meta['k']}, {where}, PSNR {meta['accounting']['psnr_db_overall']:.2f} dB over all "
                 f"pixels{more}", fontsize=10)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def convergence_plot(store: Target, path: str | os.PathLike[str], max_lines: int = 12) -> Path:
    """A PNG of each fitted codebook's K-means convergence: the relative decrease of the inertia at each pass
    (``(previous - current) / previous``, log scale), so that the last passes' tiny steps stay visible."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    meta: dict[str, Any] = images.info(store)
    histories = meta.get("fit", {}).get("history", [])
    if meta["codebook"] == "per-image":
        names = [im["name"] for im in meta["images"]]
    else:
        names = [f"codebook version {v}" for v in range(len(histories))]
    fig, ax = plt.subplots(figsize=(7, 4))
    for history, name in list(zip(histories, names))[:max_lines]:
        inertia = np.asarray(history, dtype=np.float64)
        step = -np.diff(inertia) / np.maximum(inertia[:-1], np.finfo(float).tiny)
        passes = np.arange(2, len(inertia) + 1)
        shown = step > 0
        ax.plot(passes[shown], step[shown], marker=".", label=name)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("pass over the colour histogram (Lloyd iteration)")
    ax.set_ylabel("relative decrease of the inertia")
    ax.set_yscale("log")
    more = f" (first {max_lines} of {len(histories)})" if len(histories) > max_lines else ""
    ax.set_title(f"K-means convergence, K={meta['k']}{more}")
    if len(histories) > 1:
        ax.legend(fontsize=7)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
