"""Pictures of an image set: a contact sheet (originals beside their compressed versions) and the convergence plot."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from emdask import images
from emdask.store import Target

THUMB = 256


def _thumb(image: Any) -> np.ndarray:
    """Every n-th pixel of a (lazy) image, so that its longer side is about THUMB; reads tile by tile."""
    step = max(1, int(np.ceil(max(image.shape[:2]) / THUMB)))
    return np.asarray(image[::step, ::step])


def default_folder(store: str) -> Path:
    """Where the pictures of ``store`` go by default: ``<store>.plots`` beside a local store, ``<name>.plots`` in the
    current folder for a store at a URL."""
    name = str(store).rstrip("/")
    return Path(f"{name.rpartition('/')[2]}.plots" if "://" in name else f"{name}.plots")


def contact_sheet(store: Target, path: str | os.PathLike[str], max_images: int = 12) -> Path:
    """A PNG grid: each row an original (when its source file is still readable) and its compressed version."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from emdask.readers import read_images

    meta = images.info(store)
    rows = meta["images"][:max_images]
    fig, axes = plt.subplots(len(rows), 2, figsize=(6, 3 * len(rows)), squeeze=False)
    for ax_row, entry in zip(axes, rows):
        compressed = _thumb(images.decompress(store, entry["name"]))
        try:
            original = (
                _thumb(read_images([entry["source"]], colour="convert")[0][0].pixels) if entry.get("source") else None
            )
        except Exception:  # the source moved or is gone: show the compressed image alone
            original = None
        ax_row[0].imshow(original if original is not None else np.zeros_like(compressed))
        ax_row[0].set_title(
            f"{entry['name']} (original)" if original is not None else f"{entry['name']}: source not found", fontsize=8
        )
        ax_row[1].imshow(compressed)
        ax_row[1].set_title(f"K={entry['k']}, PSNR {entry['psnr_db']:.1f} dB", fontsize=8)
        for ax in ax_row:
            ax.axis("off")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def convergence_plot(store: Target, path: str | os.PathLike[str]) -> Path:
    """A PNG of the K-means inertia per pass for each fitted codebook of the set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta: dict[str, Any] = images.info(store)
    histories = meta.get("fit", {}).get("history", [])
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, history in enumerate(histories):
        ax.plot(
            range(1, len(history) + 1), history, marker=".", label=f"codebook {i + 1}" if len(histories) > 1 else None
        )
    ax.set_xlabel("pass (Lloyd iteration)")
    ax.set_ylabel("inertia (sum of squared colour errors)")
    ax.set_yscale("log")
    ax.set_title(f"K-means convergence, K={meta['k']}")
    if len(histories) > 1:
        ax.legend(fontsize=7)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
