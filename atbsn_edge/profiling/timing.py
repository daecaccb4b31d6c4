"""The one way of timing calls in atbsn-edge: :func:`time_calls`.

Warm up for ``warmup_s`` seconds (at least one call: the first call of a backend compiles,
allocates and tunes), then time ``iters`` calls or as many as fit in ``duration_s`` (at least
``min_iters``), each with :func:`time.perf_counter` around the call alone. The profiler, the
benchmark scripts and the comparison with OpenVINO's ``benchmark_app`` all use it.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np


@dataclass(frozen=True)
class Timing:
    """Seconds per call of the timed calls (warm-up excluded), with their statistics."""

    samples: tuple[float, ...]
    warmup_calls: int = 0
    marks: dict[str, float] = field(default_factory=dict)  # monotonic start/end of the timed calls

    def _pct(self, q: float) -> float:
        return float(np.percentile(self.samples, q)) if self.samples else math.nan

    @property
    def count(self) -> int:
        """How many calls were timed."""
        return len(self.samples)

    @property
    def median(self) -> float:
        """The median seconds per call (NaN without samples)."""
        return self._pct(50)

    @property
    def p90(self) -> float:
        """The 90th percentile of the seconds per call (NaN without samples)."""
        return self._pct(90)

    @property
    def p99(self) -> float:
        """The 99th percentile of the seconds per call (NaN without samples)."""
        return self._pct(99)

    @property
    def min(self) -> float:
        """The fastest call's seconds (NaN without samples)."""
        return float(min(self.samples)) if self.samples else math.nan

    @property
    def mean(self) -> float:
        """The mean seconds per call (NaN without samples)."""
        return float(np.mean(self.samples)) if self.samples else math.nan

    @property
    def std(self) -> float:
        """The sample standard deviation of the seconds per call (0 with fewer than two)."""
        return float(np.std(self.samples, ddof=1)) if len(self.samples) > 1 else 0.0

    @property
    def total(self) -> float:
        """The seconds of all timed calls together."""
        return float(sum(self.samples))

    def stats_ms(self) -> dict[str, Any]:
        """``{"count", "median", "p90", "p99", "min", "mean", "std"}`` in milliseconds."""
        return {"count": self.count, "warmup_calls": self.warmup_calls,
                **{k: getattr(self, k) * 1e3 for k in ("median", "p90", "p99", "min", "mean", "std")}}


def time_calls(fn: Callable[[], Any], warmup_s: float = 1.0, iters: int | None = None,
               duration_s: float | None = None, *, min_iters: int = 3,
               max_iters: int = 100_000, on_start: Callable[[], Any] | None = None,
               desc: str | None = None) -> Timing:
    """Time ``fn()``: warm up for ``warmup_s`` seconds (at least one call), then ``iters``
    calls, or calls until ``duration_s`` seconds of timed calls have passed (at least
    ``min_iters``); with neither, ``min_iters`` calls. ``on_start`` runs once between the
    warm-up and the first timed call (the power sampler marks the window there). ``desc``:
    a progress bar of that name over the timed calls (on a terminal only), in calls, or in
    seconds of the ``duration_s`` budget."""
    if iters is not None and duration_s is not None:
        raise ValueError("give iters or duration_s, not both")
    if iters is not None and iters < 1:
        raise ValueError("iters must be at least 1")
    warm = 0
    started = time.perf_counter()
    while True:
        fn()
        warm += 1
        if time.perf_counter() - started >= warmup_s:
            break
    if on_start is not None:
        on_start()
    samples: list[float] = []
    first = time.monotonic()
    budget = duration_s if duration_s is not None else 0.0
    target = iters if iters is not None else (min_iters if duration_s is None else max_iters)
    spent = 0.0
    by_clock = iters is None and duration_s is not None
    bar = None
    if desc is not None:
        from ..progress import progress_bar

        bar = (progress_bar(total=round(budget, 1), desc=desc, unit="s",
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total} s")
               if by_clock else progress_bar(total=target, desc=desc, unit="call"))
    try:
        while len(samples) < target:
            t0 = time.perf_counter()
            fn()
            dt = time.perf_counter() - t0
            samples.append(dt)
            spent += dt
            if bar is not None:
                bar.update(min(dt, max(budget - bar.n, 0.0)) if by_clock else 1)
            if by_clock and spent >= budget and len(samples) >= min_iters:
                break
    finally:
        if bar is not None:
            bar.close()
    return Timing(tuple(samples), warm, {"start": first, "end": time.monotonic()})
