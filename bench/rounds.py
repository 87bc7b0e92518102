"""Interleaved timing, the cases' shared options, and the table every K-means and GMM case prints.

This machine's speed drifts (up to 1.9x over an hour), so timing one tool after the other
biases their ratio by whatever the drift did in between; alternating them spreads it evenly.
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T", float, "Outcome")


@dataclass(frozen=True)
class Outcome:
    """One timed fit: its seconds (the whole ``fit()``), its median pass where the tool reports passes,
    and what it reached (final inertia, or mean log-likelihood), so equal times mean equal work."""

    seconds: float
    per_pass: float | None
    objective: float


def interleaved(cases: Mapping[str, Callable[[], T]], rounds: int) -> dict[str, T]:
    """Run each case once per round, in turn; per case, the round with the median seconds."""
    results: dict[str, list[T]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, case in cases.items():
            results[name].append(case())
    return {name: _median(values) for name, values in results.items()}


def _median(values: list[Any]) -> Any:
    if isinstance(values[0], float):
        return statistics.median(values)
    return sorted(values, key=lambda o: o.seconds)[(len(values) - 1) // 2]


def timed(results: dict[str, Any], name: str, run: Callable[[], Any]) -> Callable[[], float]:
    """A case for :func:`interleaved`: runs ``run``, keeps what it returns in ``results[name]``, returns its seconds."""
    def case() -> float:
        t0 = time.perf_counter()
        results[name] = run()
        return time.perf_counter() - t0
    return case


def standalone(doc: str | None, add: Callable[[argparse.ArgumentParser], None],
               run: Callable[[argparse.Namespace, tuple[float, float]], None]) -> None:
    """``python -m bench.<case>``: the case's own options and ``--quick``, strictly parsed, then the case."""
    from bench import limits

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    add(parser)
    parser.add_argument("--quick", action="store_true", help="small sizes and one round: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.rounds = 1
    run(args, limits.measure())


def case_arguments(add: Callable[[argparse.ArgumentParser], None], common: argparse.Namespace) -> argparse.Namespace:
    """A case's own options at their defaults, with the suite's ``--quick`` and ``--rounds``: no other flag
    reaches a case."""
    parser = argparse.ArgumentParser()
    add(parser)
    args = parser.parse_args([])
    args.quick = common.quick
    if common.rounds is not None:
        args.rounds = common.rounds
    if args.quick:
        args.rounds = 1
    return args


def print_table(title: str, rows: Mapping[str, tuple[str, Outcome]], floor: float, objective: str) -> None:
    """Per case: its input type, fit seconds, median pass, fit ratio to the first row, per pass to the
    machine's floor, and the objective it reached."""
    first = next(iter(rows.values()))[1].seconds
    print(f"\n{title}")
    print(f"{'case':46s} {'input':>8s} {'fit s':>8s} {'pass s':>8s} {'fit ratio':>10s} {'pass/floor':>10s} "
          f"{objective:>16s}")
    for name, (dtype, o) in rows.items():
        per_pass = f"{o.per_pass:8.3f}" if o.per_pass is not None else f"{'-':>8s}"
        vs_floor = f"{o.per_pass / floor:9.1f}x" if o.per_pass is not None else f"{'-':>10s}"
        print(f"{name:46s} {dtype:>8s} {o.seconds:8.2f} {per_pass} {o.seconds / first:9.2f}x {vs_floor} "
              f"{o.objective:16.10g}")
    print(f"machine floor of one pass: {floor:.4f} s; fit ratio against the first row; rounds interleaved, medians")
