"""This machine's own limits, measured in the benchmark's process: float32 GEMM GFLOP/s and memory read GB/s.

A case's floor is ``max(flops / GEMM rate, bytes / read rate)``: the time the machine needs for
the arithmetic of one iteration (distances as a matrix product) or to read its data once.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits


def _best(fn: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def gemm_gflops(n: int = 4096) -> float:
    """float32 matrix product, all cores (BLAS threads): GFLOP/s."""
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    with threadpool_limits(None):
        seconds = _best(lambda: a @ a, 3)
    return 2 * n**3 / seconds / 1e9


def read_gbps(n_bytes: int = 2**30) -> float:
    """Reading a large float32 array once (a sum): GB/s."""
    a = np.ones(n_bytes // 4, dtype=np.float32)
    seconds = _best(lambda: np.add.reduce(a))
    return n_bytes / seconds / 1e9


def floor_seconds(flops: float, n_bytes: float, gflops: float, gbps: float) -> float:
    return max(flops / (gflops * 1e9), n_bytes / (gbps * 1e9))


def blas_kernels() -> str:
    """NumPy's BLAS and the kernels it runs (OpenBLAS picks them by CPU, or as ``OPENBLAS_CORETYPE`` says)."""
    libraries = [f"{i['internal_api']} {i.get('architecture') or ''}".strip() for i in threadpool_info()
                 if i["user_api"] == "blas" and "numpy" in i["filepath"]]
    return ", ".join(libraries) or "unknown"


def measure() -> tuple[float, float]:
    gflops, gbps = gemm_gflops(), read_gbps()
    print(f"machine limits: float32 GEMM {gflops:.0f} GFLOP/s ({blas_kernels()} kernels), memory read {gbps:.1f} GB/s")
    return gflops, gbps
