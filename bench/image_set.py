"""Out-of-core compression of a large image set: emdask on a memory-limited local cluster vs the scikit-learn way.

``python -m bench.image_set DIR [--k 16] [--max-iter 10] [--memory-limit 1.5GiB] [--sample 10000]``

emdask: ``images.compress`` over every pixel on a LocalCluster of 2 single-threaded workers with
the given memory limit; a thread samples the resident memory of this process and of every
worker process every 0.2 s.  scikit-learn, as its colour-quantisation example does it: fit
``KMeans`` on a random sample of pixels, then predict every pixel in RAM (here image by image,
since the whole set as float64 would need 8 bytes x 3 x N).  Both report time, peak memory and
the PSNR of the set.  Build DIR with ``data/make_image_set.py --gigapixels 2 --out DIR``.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from collections import defaultdict

import numpy as np
import psutil


class PeakMemory:
    """Peak resident set size per process of this process tree, sampled in a thread."""

    def __init__(self, interval: float = 0.2):
        self.interval, self.peaks, self._stop = interval, defaultdict(int), threading.Event()
        self.names: dict[int, str] = {}

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            for p in [me, *me.children(recursive=True)]:
                try:
                    self.peaks[p.pid] = max(self.peaks[p.pid], p.memory_info().rss)
                    self.names.setdefault(p.pid, " ".join(p.cmdline()[-2:])[-40:] if p.pid != me.pid else "client")
                except psutil.Error:
                    pass
            time.sleep(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_emdask(directory: str, k: int, max_iter: int, memory_limit: str) -> dict:
    from distributed import Client, LocalCluster

    from emdask import images
    from emdask.readers import read_images

    out = os.path.join(tempfile.mkdtemp(), "set.zarr")
    sources, _ = read_images([directory])
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        with LocalCluster(n_workers=2, threads_per_worker=1, memory_limit=memory_limit, dashboard_address=":0") as lc, Client(lc):
            summary = images.compress(sources, out, n_colours=k, random_state=0, max_iter=max_iter)
        seconds = time.perf_counter() - t0
    info = images.info(out)
    history = info["fit"]["history"][0]
    shutil.rmtree(os.path.dirname(out))
    return {"seconds": seconds, "summary": summary, "history": history, "peaks": dict(mem.peaks), "names": mem.names}


def run_sklearn(directory: str, k: int, sample: int) -> dict:
    from sklearn.cluster import KMeans

    from emdask.readers import list_files, read_whole

    files = list_files([directory])
    rng = np.random.default_rng(0)
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        sizes = []
        picks = []
        per_file = max(1, sample // len(files))
        for f in files:
            img = read_whole(f)[..., :3].reshape(-1, 3)
            sizes.append(len(img))
            picks.append(img[rng.choice(len(img), per_file)])
        km = KMeans(k, random_state=0, n_init=1).fit(np.concatenate(picks).astype(np.float64) / 255)
        t_fit = time.perf_counter() - t0
        sse, n = 0.0, 0
        for f in files:
            img = read_whole(f)[..., :3].reshape(-1, 3).astype(np.float64) / 255  # as the example does
            labels = km.predict(img)
            codebook = np.clip(np.rint(km.cluster_centers_ * 255), 0, 255)
            sse += float(((codebook[labels] - img * 255) ** 2).sum())
            n += img.size
        seconds = time.perf_counter() - t0
    psnr = 10 * np.log10(255**2 * n / sse)
    return {"seconds": seconds, "fit_seconds": t_fit, "psnr": psnr, "peak": max(mem.peaks.values()), "pixels": sum(sizes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory")
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--max-iter", type=int, default=10)
    parser.add_argument("--memory-limit", default="1.5GiB")
    parser.add_argument("--sample", type=int, default=10_000)
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("emdask").setLevel(logging.INFO)  # one line per pass, with its seconds
    em = run_emdask(args.directory, args.k, args.max_iter, args.memory_limit)
    acc = em["summary"]["accounting"]
    print(f"emdask: {acc['n_images']} images, {acc['n_pixels']:,} pixels, K={args.k}, {len(em['history'])} Lloyd passes "
          f"(max_iter={args.max_iter}), total {em['seconds']:.0f} s, PSNR {acc['psnr_db_overall']:.2f} dB, "
          f"{acc['bytes_on_disk']:,} bytes on disk")
    for pid, peak in sorted(em["peaks"].items(), key=lambda kv: -kv[1]):
        print(f"  peak RSS {peak / 2**30:6.2f} GiB  pid {pid} {em['names'].get(pid, '')}")
    sk = run_sklearn(args.directory, args.k, args.sample)
    print(f"scikit-learn way (fit on {args.sample} sampled pixels, predict image by image in float64): "
          f"{sk['seconds']:.0f} s (fit {sk['fit_seconds']:.0f} s incl. reading), peak RSS {sk['peak'] / 2**30:.2f} GiB, "
          f"PSNR {sk['psnr']:.2f} dB; the whole set as float64 in RAM would need {sk['pixels'] * 24 / 2**30:.0f} GiB")


if __name__ == "__main__":
    main()
