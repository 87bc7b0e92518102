"""The main job on its embedded default: K-means colour quantisation of a bundled photo on a local Dask cluster.

``python -m emdask.demo [--photo astronaut] [-k 16] [--out out/demo] [--workers 2]``

Starts a LocalCluster of worker processes, fits ``emdask.KMeans`` to the photo's pixels as a
chunked Dask array, and writes the K-colour image (PNG) and a JSON summary with the course
notes' bit accounting (24 N raw bits against 24 K + N ceil(log2 K)) and the PSNR.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path

import dask.array as da
import numpy as np

import emdask


def bit_accounting(n_pixels: int, k: int) -> dict[str, float]:
    """The notes' figures: raw 24 bits per pixel against a 24-bit codebook plus ceil(log2 K) bits per pixel."""
    raw = 24 * n_pixels
    coded = 24 * k + n_pixels * max(1, math.ceil(math.log2(k)))
    return {"raw_bits": raw, "coded_bits": coded, "ratio": coded / raw}


def psnr(original: np.ndarray, reconstructed: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB for 8-bit images."""
    mse = np.mean((original.astype(np.float64) - reconstructed.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def run(photo: str, k: int, out: Path, workers: int, seed: int) -> dict[str, object]:
    """Fit, quantise and write; returns the summary that is also written as JSON."""
    from distributed import Client, LocalCluster
    from skimage import data, io

    image = getattr(data, photo)()[..., :3]
    pixels = da.from_array(image.reshape(-1, 3), chunks=(65536, 3))
    with LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=":0") as cluster, Client(cluster):
        km = emdask.KMeans(k, random_state=seed).fit(pixels)
        labels = np.asarray(km.predict(pixels))
    codebook = np.clip(np.rint(km.cluster_centers_), 0, 255).astype(np.uint8)
    quantised = codebook[labels].reshape(image.shape)
    out.mkdir(parents=True, exist_ok=True)
    png = out / f"{photo}_k{k}.png"
    io.imsave(png, quantised, check_contrast=False)
    summary = {
        "photo": photo,
        "shape": list(image.shape),
        "k": k,
        "n_iter": km.n_iter_,
        "converged": km.converged_,
        "inertia": km.inertia_,
        "psnr_db": psnr(image, quantised),
        "bits": bit_accounting(labels.size, k),
        "codebook": codebook.tolist(),
        "image": str(png),
    }
    (out / f"{photo}_k{k}.json").write_text(json.dumps(summary, indent=2))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emdask.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--photo", default="astronaut", help="a colour photo bundled with scikit-image (default astronaut)")
    parser.add_argument("-k", type=int, default=16, help="number of colours (default 16)")
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="output directory (default out/demo)")
    parser.add_argument("--workers", type=int, default=2, help="local Dask worker processes (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("emdask").setLevel(logging.INFO)
    summary = run(args.photo, args.k, args.out, args.workers, args.seed)
    bits = summary["bits"]
    assert isinstance(bits, dict)
    print(
        f"\n{summary['photo']} {summary['shape'][0]}x{summary['shape'][1]}: K={summary['k']} colours "  # type: ignore[index]
        f"after {summary['n_iter']} iterations, inertia {summary['inertia']:.6g}, PSNR {summary['psnr_db']:.2f} dB\n"
        f"bits (course notes): raw {bits['raw_bits']:,} -> {bits['coded_bits']:,} ({100 * bits['ratio']:.1f}%)\n"
        f"written: {summary['image']} and {Path(str(summary['image'])).with_suffix('.json')}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
