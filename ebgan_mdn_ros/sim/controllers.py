"""ros2_control's two position controllers, emulated in numpy for the simulated arm.

- ForwardCommandController (forward_position_controller/commands): one position per joint, in the
  controller's joint order; a command of the wrong length is refused.
- JointTrajectoryController (joint_trajectory_controller/joint_trajectory): joints by name, all of
  them required; time_from_start strictly increasing; a segment is a cubic Hermite spline where both
  of its ends give velocities, else linear. A new trajectory replaces the running one, starting from
  the current desired state (position and velocity), as JTC does on Humble and Jazzy; a header
  stamp of 0 means "start now", a later stamp delays the first point (the arm moves from the current
  state to it meanwhile), a trajectory that ends in the past is refused.

A refused input changes nothing and comes back as a reason string (None = accepted), so the node
logs why. Times are seconds on the caller's clock (the simulation's).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

FORWARD, TRAJECTORY = "forward", "trajectory"


def _finite(values: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(values)))


class ForwardCommandController:
    def __init__(self, joint_names: Sequence[str]):
        self.joint_names = tuple(joint_names)
        self.target: np.ndarray | None = None

    def command(self, values) -> str | None:
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if values.shape != (len(self.joint_names),):
            return f"{values.size} values for {len(self.joint_names)} joints {list(self.joint_names)}"
        if not _finite(values):
            return f"non-finite value in {values.tolist()}"
        self.target = values.copy()
        return None

    def reset(self) -> None:
        self.target = None


class JointTrajectoryController:
    def __init__(self, joint_names: Sequence[str]):
        self.joint_names = tuple(joint_names)
        self._times: np.ndarray | None = None       # [K] absolute knot times
        self._positions: np.ndarray | None = None   # [K, J]
        self._velocities: np.ndarray | None = None  # [K, J], NaN where a knot gave none

    @property
    def has_trajectory(self) -> bool:
        return self._times is not None

    @property
    def end_time(self) -> float | None:
        return None if self._times is None else float(self._times[-1])

    def reset(self) -> None:
        self._times = self._positions = self._velocities = None

    def submit(self, joint_names: Sequence[str], times_from_start, positions, velocities=None, *,
               now: float, start_time: float | None = None, current_position=None,
               current_velocity=None) -> str | None:
        """Replace the trajectory; the current desired state (or ``current_*`` when none runs) is its start.

        ``positions`` [N][len(joint_names)]; ``velocities`` None or per point an empty sequence or
        one value per joint. ``start_time`` None (stamp 0) means ``now``.
        """
        names = list(joint_names)
        problem = self._check_names(names)
        if problem:
            return problem
        try:
            times = np.asarray(times_from_start, dtype=np.float64).reshape(-1)
            points = [np.asarray(p, dtype=np.float64).reshape(-1) for p in positions]
            rates = [np.asarray(v, dtype=np.float64).reshape(-1) for v in velocities] if velocities is not None \
                else [np.empty(0)] * len(points)
        except (TypeError, ValueError) as exc:
            return f"not numbers: {exc}"
        if len(points) == 0:
            return "no points"
        if len(times) != len(points) or len(rates) != len(points):
            return f"{len(times)} times, {len(points)} position and {len(rates)} velocity entries for the points"
        for i, (p, v) in enumerate(zip(points, rates)):
            if p.size != len(names):
                return f"point {i} has {p.size} positions for {len(names)} joints"
            if v.size not in (0, len(names)):
                return f"point {i} has {v.size} velocities for {len(names)} joints"
            if not (_finite(p) and _finite(v)):
                return f"point {i} has a non-finite position or velocity"
        if not _finite(times) or times[0] < 0 or np.any(np.diff(times) <= 0):
            return f"time_from_start must be finite, >= 0 and strictly increasing, got {times.tolist()}"
        start = now if start_time is None else float(start_time)
        if start + times[-1] < now:
            return f"ends {now - start - times[-1]:.3f} s in the past (header stamp too old)"
        order = [names.index(j) for j in self.joint_names]
        knot_times = start + times
        knot_positions = np.array([p[order] for p in points])
        knot_velocities = np.array([v[order] if v.size else np.full(len(order), np.nan) for v in rates])
        if knot_times[0] > now:
            begin = self.sample(now)
            if begin is None:
                if current_position is None:
                    return "no current state to start from"
                velocity = np.zeros(len(order)) if current_velocity is None else current_velocity
                begin = (np.asarray(current_position, dtype=np.float64), np.asarray(velocity, dtype=np.float64))
            knot_times = np.concatenate([[now], knot_times])
            knot_positions = np.vstack([begin[0], knot_positions])
            knot_velocities = np.vstack([begin[1], knot_velocities])
        # else: the trajectory is already under way at ``now``; JTC samples it there (a jump).
        self._times, self._positions, self._velocities = knot_times, knot_positions, knot_velocities
        return None

    def _check_names(self, names: list[str]) -> str | None:
        if len(set(names)) != len(names):
            return f"joint names repeat: {names}"
        unknown = [n for n in names if n not in self.joint_names]
        if unknown:
            return f"unknown joint(s) {unknown}, the controller has {list(self.joint_names)}"
        missing = [n for n in self.joint_names if n not in names]
        if missing:
            return f"lacks joint(s) {missing} (all joints are required)"
        return None

    def sample(self, now: float) -> tuple[np.ndarray, np.ndarray] | None:
        """(desired position, desired velocity) at ``now``; the last point held after the end."""
        if self._times is None:
            return None
        t, p, v = self._times, self._positions, self._velocities
        if now >= t[-1]:
            return p[-1].copy(), np.zeros(p.shape[1])
        if now <= t[0]:
            return p[0].copy(), np.nan_to_num(v[0])
        k = int(np.searchsorted(t, now, side="right")) - 1
        h = t[k + 1] - t[k]
        s = (now - t[k]) / h
        p0, p1, v0, v1 = p[k], p[k + 1], v[k], v[k + 1]
        if np.isnan(v0).any() or np.isnan(v1).any():
            return p0 + (p1 - p0) * s, (p1 - p0) / h
        s2, s3 = s * s, s * s * s
        position = ((2 * s3 - 3 * s2 + 1) * p0 + (s3 - 2 * s2 + s) * h * v0
                    + (-2 * s3 + 3 * s2) * p1 + (s3 - s2) * h * v1)
        velocity = ((6 * s2 - 6 * s) * p0 + (3 * s2 - 4 * s + 1) * h * v0
                    + (-6 * s2 + 6 * s) * p1 + (3 * s2 - 2 * s) * h * v1) / h
        return position, velocity


class ControllerSwitch:
    """Both controllers on one arm: the last accepted command decides which one drives it.

    ros2_control would let only one of them claim the joints; switching by the last command lets a
    client use either without a controller_manager service. A trajectory that follows forward
    commands starts from the last forward target (the current desired state).
    """

    def __init__(self, joint_names: Sequence[str]):
        self.forward = ForwardCommandController(joint_names)
        self.trajectory = JointTrajectoryController(joint_names)
        self.active: str | None = None
        self.accepted = {FORWARD: 0, TRAJECTORY: 0}
        self.refused = {FORWARD: 0, TRAJECTORY: 0}

    @property
    def joint_names(self) -> tuple[str, ...]:
        return self.forward.joint_names

    def forward_command(self, values) -> str | None:
        reason = self.forward.command(values)
        if reason is None:
            self.active = FORWARD
            self.trajectory.reset()
        self._count(FORWARD, reason)
        return reason

    def trajectory_command(self, joint_names, times_from_start, positions, velocities=None, *, now: float,
                           start_time: float | None = None, measured_position=None) -> str | None:
        current = self.desired(now)
        if current is None and measured_position is not None:
            current = (np.asarray(measured_position, dtype=np.float64), None)
        reason = self.trajectory.submit(joint_names, times_from_start, positions, velocities, now=now,
                                        start_time=start_time, current_position=None if current is None else current[0],
                                        current_velocity=None if current is None else current[1])
        if reason is None:
            self.active = TRAJECTORY
        self._count(TRAJECTORY, reason)
        return reason

    def desired(self, now: float) -> tuple[np.ndarray, np.ndarray | None] | None:
        """(position, velocity or None) to servo to, None before any command."""
        if self.active == FORWARD:
            return self.forward.target.copy(), None
        if self.active == TRAJECTORY:
            return self.trajectory.sample(now)
        return None

    def reset(self) -> None:
        self.forward.reset()
        self.trajectory.reset()
        self.active = None

    def _count(self, kind: str, reason: str | None) -> None:
        (self.accepted if reason is None else self.refused)[kind] += 1
