"""When each point of an action chunk is due, and what a trajectory controller is told (pure numpy).

Times are integer nanoseconds on one monotonic clock, so a point's time_from_start is exact
(Duration sec + nanosec, no float rounding) and the points are strictly increasing by construction.

A chunk decided from the state observed at t_obs has step i (0-based) due at t_obs + (i + 1) * dt.
Published at `now`, a step's time_from_start is that time minus now; the decision latency
(now - t_obs) is therefore covered by the schedule itself, and the steps whose time is closer than
`min_lead` (already past, or too close for the controller to reach) are dropped.
"""
from __future__ import annotations

import numpy as np

NANOSECONDS = 1_000_000_000


def seconds_to_ns(seconds: float) -> int:
    return int(round(seconds * NANOSECONDS))


def duration_parts(nanoseconds: int) -> tuple[int, int]:
    """(sec, nanosec) of a builtin_interfaces Duration, exactly: 0 <= nanosec < 1e9."""
    if nanoseconds < 0:
        raise ValueError(f"a time_from_start of {nanoseconds} ns is in the past")
    return divmod(int(nanoseconds), NANOSECONDS)


def due_times_ns(observed_ns: int, dt_ns: int, horizon: int) -> np.ndarray:
    """[H] int64: when each step of a chunk observed at observed_ns is due."""
    return observed_ns + dt_ns * np.arange(1, horizon + 1, dtype=np.int64)


def first_live_step(due_ns: np.ndarray, now_ns: int, min_lead_ns: int) -> int:
    """Index of the first step at least min_lead_ns in the future (len(due_ns) if none is)."""
    return int(np.searchsorted(due_ns, now_ns + min_lead_ns, side="left"))


def finite_difference_velocities(times_s: np.ndarray, positions: np.ndarray, start_time_s: float,
                                 start_position: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """[N, A] velocities at the points: central differences inside, from the start point (where the
    arm is told to be now) to the second point for the first one, and 0 at the last point, so a
    trajectory that is not replaced in time comes to rest at its end instead of overshooting it."""
    count = len(times_s)
    out = np.empty_like(positions) if out is None else out
    if count == 0:
        return out
    before_t = np.concatenate(([start_time_s], times_s[:-1]))
    before_p = np.concatenate((start_position[None, :], positions[:-1]), axis=0)
    after_t = np.concatenate((times_s[1:], times_s[-1:]))
    after_p = np.concatenate((positions[1:], positions[-1:]), axis=0)
    np.divide(after_p - before_p, (after_t - before_t)[:, None], out=out)
    out[-1] = 0.0
    return out
