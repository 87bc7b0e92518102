"""Build a large image set of real photos: random crops, flips and rescales of the bundled photos.

``python data/make_image_set.py --gigapixels 2 --out DIR [--seed 0] [--max-side 4096]``

Files are PNG, JPEG (quality 92) and TIFF in turn, of mixed sizes, written one at a time.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).parent / "photos"


def photos() -> list[np.ndarray]:
    """The bundled photos as RGB uint8 arrays."""
    out = []
    for path in sorted(HERE.iterdir()):
        with Image.open(path) as im:
            out.append(np.asarray(im.convert("RGB")))
    return out


def variant(photo: np.ndarray, rng: np.random.Generator, max_side: int) -> np.ndarray:
    """A random crop (at least half of each side), maybe flipped, rescaled to a random size."""
    h, w, _ = photo.shape
    ch, cw = rng.integers(h // 2, h + 1), rng.integers(w // 2, w + 1)
    y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    crop = photo[y : y + ch, x : x + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    if rng.random() < 0.2:
        crop = crop[::-1]
    scale = rng.uniform(0.5, max_side / max(ch, cw))
    size = (max(8, int(cw * scale)), max(8, int(ch * scale)))
    return np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize(size, Image.Resampling.BILINEAR))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group(required=True)
    size.add_argument("--gigapixels", type=float)
    size.add_argument("--megapixels", type=float)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-side", type=int, default=4096)
    args = parser.parse_args(argv)
    target = int((args.gigapixels or 0) * 1e9 + (args.megapixels or 0) * 1e6)
    if target <= 0:
        parser.error("the size must be positive")
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    sources = photos()
    written, i = 0, 0
    while written < target:
        image = variant(sources[rng.integers(len(sources))], rng, args.max_side)
        suffix = (".png", ".jpg", ".tif")[i % 3]
        path = args.out / f"img_{i:06d}{suffix}"
        if suffix == ".jpg":
            Image.fromarray(image).save(path, quality=92)
        else:
            Image.fromarray(image).save(path)
        written += image.shape[0] * image.shape[1]
        i += 1
        if i % 50 == 0:
            print(f"{i} files, {written / 1e6:.0f} megapixels", file=sys.stderr)
    print(f"wrote {i} files, {written:,} pixels, to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
