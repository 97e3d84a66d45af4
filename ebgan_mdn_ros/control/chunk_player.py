"""The plan being executed: the points of the chunks sent so far, splicing and playback (numpy).

One plan, in absolute monotonic seconds: (time, joint target) points, played by linear
interpolation. A new chunk is spliced at the point being executed: the plan keeps where it is now
and continues with the new chunk's points after now; nothing of the old chunk after now remains,
and nothing is averaged. The same plan serves both outputs: forward_command samples it at the
control rate, joint_trajectory sends its future points, and either reads the tail for the next
splice choice.

`TemporalEnsemble` is the averaging that deployed chunked policies use (ACT's temporal
ensembling): every chunk that covers a time votes, weighted exp(-decay * age). It exists only to
be compared with the splice; averaging two chunks of different modes gives a target in neither.
"""
from __future__ import annotations

import numpy as np


class ChunkPlayer:
    """Not thread-safe: the node's executor thread owns it."""

    def __init__(self, joints: int, capacity: int):
        self._times = np.zeros(capacity + 1)
        self._points = np.zeros((capacity + 1, joints))
        self._count = 0
        self._sample = np.zeros(joints)

    @property
    def empty(self) -> bool:
        return self._count == 0

    @property
    def end_time(self) -> float:
        return float(self._times[self._count - 1]) if self._count else -np.inf

    def clear(self) -> None:
        self._count = 0

    def start(self, now: float, position: np.ndarray) -> None:
        """A plan that holds ``position`` from now (the seed of an episode)."""
        self._times[0], self._points[0] = now, position
        self._count = 1

    def sample(self, now: float) -> np.ndarray:
        """The target at ``now`` (a view, overwritten by the next call): interpolated between points,
        the first point before the plan, the last after it."""
        times, count = self._times[:self._count], self._count
        k = int(np.searchsorted(times, now, side="right"))
        if k == 0 or count == 1:
            self._sample[:] = self._points[0]
        elif k >= count:
            self._sample[:] = self._points[count - 1]
        else:
            t0, t1 = times[k - 1], times[k]
            share = (now - t0) / (t1 - t0)
            np.subtract(self._points[k], self._points[k - 1], out=self._sample)
            self._sample *= share
            self._sample += self._points[k - 1]
        return self._sample

    def at(self, times: np.ndarray) -> np.ndarray:
        """[T, A] the plan at ``times`` up to its end (times after the end are left out)."""
        inside = times[times <= self.end_time] if self._count else times[:0]
        return np.stack([self.sample(t).copy() for t in inside]) if len(inside) else np.zeros((0, self._points.shape[1]))

    def splice(self, now: float, times: np.ndarray, points: np.ndarray) -> None:
        """Keep the target at ``now``, then ``points`` (at ``times`` > now, increasing)."""
        here = self.sample(now).copy() if self._count else points[0]
        count = len(times)
        self._times[0], self._points[0] = now, here
        self._times[1:count + 1], self._points[1:count + 1] = times, points
        self._count = count + 1

    def future(self, now: float) -> tuple[np.ndarray, np.ndarray]:
        """(times, points) of the plan after ``now`` (views)."""
        k = int(np.searchsorted(self._times[:self._count], now, side="right"))
        return self._times[k:self._count], self._points[k:self._count]


class TemporalEnsemble(ChunkPlayer):
    """For comparison only: each time's target is the exp(-decay * age)-weighted mean of every
    recent chunk that covers it (age 0: the oldest, as ACT weights them)."""

    def __init__(self, joints: int, capacity: int, decay: float, keep: int):
        super().__init__(joints, capacity)
        self._decay, self._keep = decay, keep
        self._chunks: list[tuple[np.ndarray, np.ndarray]] = []

    def clear(self) -> None:
        super().clear()
        self._chunks = []

    def splice(self, now: float, times: np.ndarray, points: np.ndarray) -> None:
        self._chunks = (self._chunks + [(times.copy(), points.copy())])[-self._keep:]
        union = np.unique(np.concatenate([t for t, _ in self._chunks]))
        union = union[union > now]
        averaged = np.zeros((len(union), points.shape[1]))
        weights = np.zeros(len(union))
        for age, (chunk_times, chunk_points) in enumerate(self._chunks):
            covered = (union >= chunk_times[0]) & (union <= chunk_times[-1])
            weight = np.exp(-self._decay * age)
            for j in range(points.shape[1]):
                averaged[covered, j] += weight * np.interp(union[covered], chunk_times, chunk_points[:, j])
            weights[covered] += weight
        keep = weights > 0
        count = min(int(keep.sum()), len(self._times) - 1)
        super().splice(now, union[keep][:count], (averaged[keep] / weights[keep, None])[:count])
