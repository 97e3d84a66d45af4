"""Fixed-memory latency and rate statistics for a control loop (ROS-free).

`add` and `tick` are O(1) and allocate nothing, so they can run on every control tick; `percentile`,
`summary` and `rate_hz` sort or scan the window and belong in a diagnostics timer (about 1 Hz).
"""
from __future__ import annotations

import math

import numpy as np


class _Ring:
    """The last ``size`` floats pushed, in a preallocated buffer; ``count`` covers the whole run."""

    def __init__(self, size: int):
        self.values = np.zeros(size)
        self.next = 0      # where the next value goes; also the oldest value once the ring is full
        self.filled = 0
        self.count = 0

    def push(self, value: float) -> None:
        self.values[self.next] = value
        self.next += 1
        if self.next == len(self.values):
            self.next = 0
        if self.filled < len(self.values):
            self.filled += 1
        self.count += 1

    def stored(self) -> np.ndarray:
        """A view of the stored values (ring order, not time order)."""
        return self.values[:self.filled]

    def clear(self) -> None:
        self.next = self.filled = self.count = 0


class LatencyStats:
    """The last ``capacity`` latencies (seconds) in a ring, plus whole-run count, worst and overruns.

    Percentiles and ``max_us`` describe the window (the last ``capacity`` samples); ``count``,
    ``worst_us`` and ``overruns`` (samples above ``budget_s``, when one is given) cover the whole run.
    Non-finite or negative samples are not stored; they are counted in ``rejected``.
    """

    def __init__(self, capacity: int = 2048, budget_s: float | None = None):
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity: {capacity!r} must be a positive integer")
        if budget_s is not None and not (budget_s > 0 and math.isfinite(budget_s)):
            raise ValueError(f"budget_s: {budget_s!r} must be finite and > 0, or None")
        self.capacity = capacity
        self.budget_s = budget_s
        self._ring = _Ring(capacity)
        self.worst_s = 0.0
        self.overrun_count = 0
        self.rejected = 0

    def add(self, seconds: float) -> None:
        if not (0.0 <= seconds < math.inf):  # NaN fails too
            self.rejected += 1
            return
        self._ring.push(seconds)
        if seconds > self.worst_s:
            self.worst_s = seconds
        if self.budget_s is not None and seconds > self.budget_s:
            self.overrun_count += 1

    @property
    def count(self) -> int:
        """Samples added over the whole run (rejected ones not counted)."""
        return self._ring.count

    def __len__(self) -> int:
        """Samples in the window."""
        return self._ring.filled

    def window(self) -> np.ndarray:
        """A copy of the window's samples, oldest first (seconds)."""
        ring = self._ring
        if ring.filled < self.capacity:
            return ring.stored().copy()
        return np.concatenate((ring.values[ring.next:], ring.values[:ring.next]))

    def percentile(self, q: float) -> float:
        """The q-th percentile (0..100, linear interpolation) of the window in seconds; NaN when empty."""
        if not 0.0 <= q <= 100.0:
            raise ValueError(f"percentile q: {q!r} must be in [0, 100]")
        if self._ring.filled == 0:
            return math.nan
        return float(np.percentile(self._ring.stored(), q))

    def overruns(self, budget_s: float) -> int:
        """Samples in the window above ``budget_s``."""
        return int(np.count_nonzero(self._ring.stored() > budget_s))

    def summary(self) -> dict:
        """p50_us, p99_us, max_us (window), count, worst_us, overruns (whole run), window (samples)."""
        stored = self._ring.stored()
        if stored.size:
            p50, p99 = np.percentile(stored, (50.0, 99.0))
            peak = float(stored.max())
        else:
            p50 = p99 = peak = math.nan
        return {"p50_us": float(p50) * 1e6, "p99_us": float(p99) * 1e6, "max_us": peak * 1e6,
                "count": self.count, "worst_us": self.worst_s * 1e6, "overruns": self.overrun_count,
                "window": self._ring.filled}

    def clear(self) -> None:
        self._ring.clear()
        self.overrun_count = self.rejected = 0
        self.worst_s = 0.0


class RateMeter:
    """Event rate over the last ``window`` ticks (timestamps in seconds, any monotonic clock).

    ``rate_hz()`` = (ticks in window - 1) / (newest - oldest). ``rate_hz(now_s)`` measures up to now
    instead of the newest tick, so the rate falls towards 0 when ticks stop. NaN with fewer than 2 ticks.
    """

    def __init__(self, window: int = 1000):
        if isinstance(window, bool) or not isinstance(window, int) or window < 2:
            raise ValueError(f"window: {window!r} must be an integer >= 2")
        self.window = window
        self._times = _Ring(window)

    @property
    def count(self) -> int:
        """Ticks over the whole run."""
        return self._times.count

    def tick(self, now_s: float) -> None:
        self._times.push(now_s)

    def rate_hz(self, now_s: float | None = None) -> float:
        ring = self._times
        if ring.filled < 2:
            return math.nan
        oldest = ring.values[ring.next] if ring.filled == self.window else ring.values[0]
        newest = ring.values[ring.next - 1]
        end = newest if now_s is None else max(float(newest), float(now_s))
        span = end - oldest
        if not span > 0:
            return math.nan
        return (ring.filled - 1) / float(span)

    def clear(self) -> None:
        self._times.clear()
