"""Interleaved timing: every case once per round, several rounds, the median per case.

This machine's speed drifts (up to 1.9x over an hour), so timing one tool after the other
biases their ratio by whatever the drift did in between; alternating them spreads it evenly.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any


def interleaved(cases: Mapping[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Run each case's timing function once per round, in turn; return each case's median."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, case in cases.items():
            times[name].append(case())
    return {name: statistics.median(values) for name, values in times.items()}


def timed(results: dict[str, Any], name: str, run: Callable[[], Any]) -> Callable[[], float]:
    """A case for :func:`interleaved`: runs ``run``, keeps what it returns in ``results[name]``, returns its seconds."""
    def case() -> float:
        t0 = time.perf_counter()
        results[name] = run()
        return time.perf_counter() - t0
    return case
