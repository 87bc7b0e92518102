"""A large image set on a memory-limited local cluster: ``emdask compress`` against the sampling script.

``python -m bench.image_set DIR [--k 16] [--psnr 30] [--memory-limit 0.75GiB] [--sample 10000] [--new 0.1]``

Every case reads the same files and prints its time beside its result:

- a plain decode pass of the set on a LocalCluster of 2 single-threaded workers, one task per
  file as emdask reads them (the floor of any exact method: every pixel read once);
- ``emdask compress DIR -k K`` through the CLI, to convergence (its own cluster of the same size);
- the scikit-learn way, as its colour-quantisation example does it: ``KMeans`` on a random
  sample of pixels, then every image predicted in RAM;
- (these three interleaved over ``--rounds`` rounds, the best of each kept)
- ``emdask compress DIR --psnr DB`` through the CLI, and ``-k`` at the K it found;
- ``emdask compress DIR -o SET --append`` adding the last ``--new`` fraction of the files to a set
  of the others.

A thread samples the resident memory of every process of the tree (the CLI and its workers)
every 0.2 s.  Build DIR with ``data/make_image_set.py --gigapixels 1.5 --out DIR``.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import psutil

EMDASK = [sys.executable, "-m", "emdask.cli"]


class PeakMemory:
    """Peak resident set size per process of this process tree, sampled in a thread."""

    def __init__(self, interval: float = 0.2):
        self.interval, self._stop = interval, threading.Event()
        self.peaks: defaultdict[int, int] = defaultdict(int)
        self.names: dict[int, str] = {}

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            for p in [me, *me.children(recursive=True)]:
                try:
                    self.peaks[p.pid] = max(self.peaks[p.pid], p.memory_info().rss)
                    self.names.setdefault(p.pid, " ".join(p.cmdline()) if p.pid != me.pid else "this process")
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

    def workers(self) -> float:
        """The largest peak of a Dask worker process, GiB."""
        peaks = [v for pid, v in self.peaks.items() if "spawn_main" in self.names.get(pid, "")]
        return max(peaks, default=0) / 2**30


def decode_pass(files: list[str], memory_limit: str) -> dict[str, Any]:
    """Every file decoded once, tile by tile as emdask reads it, on a cluster like the CLI's."""
    import dask
    from distributed import Client, LocalCluster

    from emdask.readers import read_images

    sources, _ = read_images(files)
    with LocalCluster(n_workers=2, threads_per_worker=1, memory_limit=memory_limit, dashboard_address=":0") as lc, \
            Client(lc), PeakMemory() as mem:
        t0 = time.perf_counter()
        shapes = dask.compute(*[dask.delayed(np.shape)(b) for s in sources for b in s.pixels.to_delayed().ravel()])
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "pixels": sum(a * b for a, b, _ in shapes), "worker_peak": mem.workers()}


def cli(args: list[str], memory_limit: str) -> dict[str, Any]:
    """One ``emdask`` command with a local cluster of 2 workers; its time, summary and peak memory."""
    from emdask import images

    with PeakMemory() as mem:
        t0 = time.perf_counter()
        run = subprocess.run([*EMDASK, *args, "--workers", "2", "--memory-limit", memory_limit],
                             capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        seconds = time.perf_counter() - t0
    if run.returncode != 0:
        raise RuntimeError(run.stderr[-3000:])
    out = args[args.index("-o") + 1]
    return {"seconds": seconds, "info": images.info(out), "worker_peak": mem.workers(), "stdout": run.stdout}


def sampled_sklearn(files: list[str], k: int, sample: int) -> dict[str, Any]:
    """scikit-learn's colour-quantisation example at scale: fit on sampled pixels, predict image by image."""
    from sklearn.cluster import KMeans

    from emdask.readers import read_whole

    rng = np.random.default_rng(0)
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        per_file = max(1, sample // len(files))
        picks = [rng.choice(read_whole(f)[..., :3].reshape(-1, 3), per_file) for f in files]
        km = KMeans(k, random_state=0, n_init=1).fit(np.concatenate(picks).astype(np.float64) / 255)
        codebook = np.clip(np.rint(km.cluster_centers_ * 255), 0, 255)
        sse, n = 0.0, 0
        for f in files:
            img = read_whole(f)[..., :3].reshape(-1, 3).astype(np.float64) / 255  # as the example does
            sse += float(((codebook[km.predict(img)] - img * 255) ** 2).sum())
            n += img.size
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "psnr": 10 * np.log10(255**2 * n / sse), "peak": max(mem.peaks.values()) / 2**30}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory")
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--psnr", type=float, default=30.0)
    parser.add_argument("--memory-limit", default="0.75GiB", help="per worker (2 workers)")
    parser.add_argument("--sample", type=int, default=10_000)
    parser.add_argument("--new", type=float, default=0.1, help="fraction of the files appended to a set of the others")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the decode pass, emdask -k and scikit-learn")
    args = parser.parse_args(argv)
    from emdask.readers import list_files

    files = list_files([args.directory])
    work = Path(tempfile.mkdtemp(prefix="bench-images-"))
    try:
        rows = []
        plains, fixeds, sks = [], [], []
        for _ in range(args.rounds):  # the three tools interleaved, so a slow spell of the machine hits them all
            plains.append(decode_pass(files, args.memory_limit))
            fixeds.append(cli(["compress", args.directory, "-o", str(work / "k.zarr"), "-k", str(args.k),
                               "--overwrite"], args.memory_limit))
            sks.append(sampled_sklearn(files, args.k, args.sample))
        plain, fixed, sk = (min(runs, key=lambda r: r["seconds"]) for runs in (plains, fixeds, sks))
        gib = 3 * plain["pixels"] / 2**30
        budget = 2 * float(args.memory_limit.removesuffix("GiB"))
        print(f"{len(files)} files, {plain['pixels']:,} pixels = {gib:.2f} GiB of RGB, {gib / budget:.1f}x the "
              f"workers' {budget:.2f} GiB; best of {args.rounds} interleaved rounds: decode "
              f"{[round(r['seconds'], 1) for r in plains]}, emdask {[round(r['seconds'], 1) for r in fixeds]}, "
              f"scikit-learn {[round(r['seconds'], 1) for r in sks]}", flush=True)
        rows.append(("plain decode pass, one task per file (floor)", plain["seconds"], "", plain["worker_peak"]))
        acc = fixed["info"]["accounting"]
        rows.append((f"emdask compress -k {args.k} (CLI)", fixed["seconds"],
                     f"{acc['psnr_db_overall']:.2f} dB, {fixed['info']['fit']['n_iter'][0]} iterations",
                     fixed["worker_peak"]))
        rows.append((f"scikit-learn, {args.sample} sampled pixels", sk["seconds"], f"{sk['psnr']:.2f} dB", sk["peak"]))
        target = cli(
            ["compress", args.directory, "-o", str(work / "p.zarr"), "--psnr", str(args.psnr)], args.memory_limit
        )
        acc_p = target["info"]["accounting"]
        chosen = target["info"]["k"]
        rows.append((f"emdask compress --psnr {args.psnr:g} (CLI)", target["seconds"],
                     f"K={chosen}, {acc_p['psnr_db_overall']:.2f} dB", target["worker_peak"]))
        known = cli(["compress", args.directory, "-o", str(work / "c.zarr"), "-k", str(chosen)], args.memory_limit)
        rows.append((f"emdask compress -k {chosen} (the K found, given)", known["seconds"],
                     f"{known['info']['accounting']['psnr_db_overall']:.2f} dB", known["worker_peak"]))
        cut = len(files) - max(1, int(round(args.new * len(files))))
        old_dir, new_dir = work / "old", work / "new"
        for d, part in ((old_dir, files[:cut]), (new_dir, files)):
            d.mkdir()
            for f in part:
                os.symlink(os.path.abspath(f), d / Path(f).name)
        cli(["compress", str(old_dir), "-o", str(work / "a.zarr"), "-k", str(args.k)], args.memory_limit)
        # the same paths: the new folder links the old files too, so they are recognised and skipped
        shutil.rmtree(old_dir)
        os.rename(new_dir, old_dir)
        added = cli(["compress", str(old_dir), "-o", str(work / "a.zarr"), "--append"], args.memory_limit)
        rows.append((f"emdask --append {len(files) - cut} new files (CLI)", added["seconds"],
                     f"{added['info']['accounting']['psnr_db_overall']:.2f} dB", added["worker_peak"]))
        print(f"\n| case | seconds | vs sampling script | vs decode pass | result | peak worker GiB (limit "
              f"{args.memory_limit}) |\n|---|---|---|---|---|---|")
        for name, seconds, result, peak in rows:
            print(f"| {name} | {seconds:.1f} | {seconds / sk['seconds']:.2f}x | {seconds / plain['seconds']:.2f}x | "
                  f"{result} | {peak:.2f} |")
        print(f"\n--psnr {args.psnr:g} / -k {chosen}: {target['seconds'] / known['seconds']:.2f}x; "
              f"--psnr {args.psnr:g} / -k {args.k}: {target['seconds'] / fixed['seconds']:.2f}x; "
              f"append / full run: {added['seconds'] / fixed['seconds']:.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
