"""The main job on its embedded default: K-means colour compression of bundled photos on a local Dask cluster.

``python -m emdask.demo [--photos astronaut coffee] [-k 16] [--out out/demo] [--workers 2]``

Starts a LocalCluster of worker processes, fits one K-colour codebook over all the photos'
pixels with exact out-of-core K-means, writes the Zarr image set (codes + codebook) and the
decoded PNGs, and prints the course notes' bit accounting next to the bytes stored and the PSNR.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from emdask import images


def run(photos: list[str], k: int, out: Path, workers: int, seed: int) -> dict[str, Any]:
    """Compress the photos into ``out/photos.zarr`` and decode them to PNGs; returns the set's summary."""
    from distributed import Client, LocalCluster
    from skimage import data

    sources = {name: getattr(data, name)()[..., :3] for name in photos}
    store = out / "photos.zarr"
    with LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=":0") as cluster, Client(cluster):
        summary = images.compress(sources, store, n_colours=k, random_state=seed, overwrite=True)
    summary["store"] = str(store)
    summary["pngs"] = [str(p) for p in images.write_pngs(store, out / "png")]
    return summary


def report(summary: dict[str, Any]) -> str:
    """A short human-readable table of the result."""
    acc = summary["accounting"]
    lines = [f"{'image':12s} {'pixels':>9s} {'PSNR dB':>8s} {'notes bits':>11s} {'bytes stored':>13s}"]
    for im in summary["images"]:
        a = im["accounting"]
        n = im["shape"][0] * im["shape"][1]
        lines.append(f"{im['name']:12s} {n:9,d} {im['psnr_db']:8.2f} {a['notes_bits']:11,d} {a['bytes_codes']:13,d}")
    lines += [
        f"K={summary['k']} shared colours; raw {acc['raw_bits']:,} bits -> notes' formula {acc['notes_bits']:,} bits "
        f"({100 * acc['notes_ratio']:.1f}%), {acc['bytes_on_disk']:,} bytes on disk ({100 * acc['disk_ratio']:.1f}% of raw)",
        f"written: {summary['store']} (Zarr image set) and {', '.join(summary['pngs'])}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emdask.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", nargs="+", default=["astronaut", "coffee", "chelsea"],
                        help="colour photos bundled with scikit-image (default: astronaut coffee chelsea)")
    parser.add_argument("-k", type=int, default=16, help="number of colours (default 16)")
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="output directory (default out/demo)")
    parser.add_argument("--workers", type=int, default=2, help="local Dask worker processes (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("emdask").setLevel(logging.INFO)
    print(report(run(args.photos, args.k, args.out, args.workers, args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
