"""Interleaved timing: warm-up, then A, B, A, B, ... and the median (with quartiles) of each.

Ratios of medians measured side by side in one process are the claims; absolute seconds are context
(shared, noisy machines). Repeats alternate so that slow drift in machine load hits every function alike,
and each round also gives a *paired* ratio (A and B run back to back), whose median is reported too.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Timing:
    """Seconds of the timed repeats of one function (warm-up excluded)."""

    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def q1(self) -> float:
        return quartiles(self.samples)[0]

    @property
    def q3(self) -> float:
        return quartiles(self.samples)[1]

    def describe(self, unit: str = "s") -> str:
        """`1.234 s [1.200–1.300]`: median and interquartile range."""
        return f"{fmt(self.median)} {unit} [{fmt(self.q1)}–{fmt(self.q3)}]"


def quartiles(values: tuple[float, ...] | list[float]) -> tuple[float, float]:
    """First and third quartiles (inclusive method; a single value is its own quartiles)."""
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def fmt(value: float) -> str:
    """Three significant figures, without scientific notation for everyday magnitudes."""
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def timed(fn: Callable[[], object], sync: Callable[[], object] | None = None) -> float:
    """Seconds of one call; `sync` (e.g. `torch.cuda.synchronize`) runs before the clock stops."""
    start = time.perf_counter()
    fn()
    if sync is not None:
        sync()
    return time.perf_counter() - start


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1,
                warmups: dict[str, Callable[[], object]] | None = None,
                sync: Callable[[], object] | None = None) -> dict[str, Timing]:
    """Time each function `repeats` times, in alternation (A, B, A, B, ...), after `warmup` untimed calls each.

    warmups: a cheaper stand-in for a function's warm-up calls (same code path, smaller input), for
    baselines too slow to run untimed at full size.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be ≥ 1, got {repeats}")
    for name, fn in fns.items():
        for _ in range(warmup):
            (warmups or {}).get(name, fn)()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            samples[name].append(timed(fn, sync))
    return {name: Timing(tuple(ts)) for name, ts in samples.items()}


def paired_ratio(a: Timing, b: Timing) -> Timing:
    """Per-round ratios a/b (as a `Timing`, for its median and quartiles)."""
    return Timing(tuple(x / y for x, y in zip(a.samples, b.samples)))
