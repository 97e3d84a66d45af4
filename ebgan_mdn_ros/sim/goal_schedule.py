"""The goals of the 2-D tasks the simulated arms are scored on, one at a time (numpy, no rclpy).

The arms themselves are MuJoCo models (sim/task_arms.py). Tasks (docs/method.md section 6): "ik"
(planar arm, links 3 and 3, a Cartesian goal in the reachable annulus, two modes: elbow up / elbow
down) and "multiroute" (a 2-axis gantry from near (0, 0) to the box [19, 21]^2; reached means
inside the box).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ebgan_mdn_ros.tasks.planar_arm import (
    GOAL_BEARING_RANGE, GOAL_RADIUS_RANGE, LINK_LENGTHS, elbow_mode, planar_forward_kinematics)

TASKS = ("ik", "multiroute")  # the task names of tasks/catalog.py


@dataclass(frozen=True)
class TaskConfig:
    task: str = "ik"
    link_lengths: tuple[float, float] = LINK_LENGTHS  # m (ik)
    # Goals where the shipped model was trained: elsewhere a goal would test extrapolation, not the node.
    goal_radius_min: float = GOAL_RADIUS_RANGE[0]     # m, annulus of goals (ik)
    goal_radius_max: float = GOAL_RADIUS_RANGE[1]
    goal_bearing_min: float = GOAL_BEARING_RANGE[0]   # rad
    goal_bearing_max: float = GOAL_BEARING_RANGE[1]
    tolerance: float = 0.1                           # m: end-effector error that counts as reached (ik)
    goal_box_lower: tuple[float, float] = (19.0, 19.0)  # m (multiroute)
    goal_box_upper: tuple[float, float] = (21.0, 21.0)
    start_noise: float = 0.25                        # m, spread of the start around (0, 0) (multiroute)
    timeout_s: float = 5.0                           # s before a goal counts as missed and a new one starts
    seed: int = 0

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task: {self.task!r} is unknown, expected one of {TASKS}")
        if not 0 <= self.goal_radius_min < self.goal_radius_max <= sum(self.link_lengths):
            raise ValueError(f"goal radii [{self.goal_radius_min}, {self.goal_radius_max}] must lie in the reach "
                             f"[0, {sum(self.link_lengths)}]")
        if not self.goal_bearing_min < self.goal_bearing_max:
            raise ValueError(f"goal_bearing_min {self.goal_bearing_min} must be below goal_bearing_max")
        if self.tolerance <= 0 or self.timeout_s <= 0:
            raise ValueError("tolerance and timeout_s must be > 0")


@dataclass
class GoalEvent:
    outcome: str                  # "reached" or "timeout"
    goal: np.ndarray
    seconds: float
    error: float
    mode: str                     # elbow mode at the end (ik), "" otherwise


@dataclass
class GoalTally:
    reached: int = 0
    timed_out: int = 0
    modes: dict[str, int] = field(default_factory=dict)
    seconds_to_reach: list[float] = field(default_factory=list)

    @property
    def attempted(self) -> int:
        return self.reached + self.timed_out

    @property
    def success_rate(self) -> float:
        return self.reached / self.attempted if self.attempted else float("nan")


class GoalSchedule:
    """One goal at a time: a new one when the arm reaches it or after the timeout."""

    def __init__(self, config: TaskConfig):
        self.config = config
        self._rng = np.random.default_rng(config.seed)
        self.tally = GoalTally()
        self.goal: np.ndarray | None = None
        self.start_position: np.ndarray | None = None  # multiroute: where the arm restarts each episode
        self._started_at = 0.0

    def new_goal(self, now: float) -> np.ndarray:
        c = self.config
        if c.task == "ik":
            radius = math.sqrt(self._rng.uniform(c.goal_radius_min ** 2, c.goal_radius_max ** 2))
            angle = self._rng.uniform(c.goal_bearing_min, c.goal_bearing_max)
            self.goal = np.array([radius * math.cos(angle), radius * math.sin(angle)])
        else:
            self.goal = (np.array(c.goal_box_lower) + np.array(c.goal_box_upper)) / 2.0
            self.start_position = self._rng.normal(0.0, c.start_noise, size=2)
        self._started_at = now
        return self.goal

    def restart_clock(self, now: float) -> None:
        """Time the current goal from ``now`` (an episode whose arm had to be moved to its start first)."""
        self._started_at = now

    def error(self, joint_position) -> float:
        if self.config.task == "ik":
            return float(np.linalg.norm(planar_forward_kinematics(joint_position, self.config.link_lengths) - self.goal))
        outside = np.maximum(np.array(self.config.goal_box_lower) - joint_position[:2], 0.0) + \
            np.maximum(np.asarray(joint_position[:2]) - np.array(self.config.goal_box_upper), 0.0)
        return float(np.linalg.norm(outside))

    def update(self, now: float, joint_position) -> GoalEvent | None:
        """Score the current goal against the arm's position; an event when it ends (then call new_goal)."""
        if self.goal is None:
            return None
        error = self.error(joint_position)
        elapsed = now - self._started_at
        reached = error <= (self.config.tolerance if self.config.task == "ik" else 0.0)
        if not reached and elapsed < self.config.timeout_s:
            return None
        mode = elbow_mode(joint_position) if self.config.task == "ik" else ""
        if reached:
            self.tally.reached += 1
            self.tally.seconds_to_reach.append(elapsed)
            if mode:
                self.tally.modes[mode] = self.tally.modes.get(mode, 0) + 1
        else:
            self.tally.timed_out += 1
        event = GoalEvent("reached" if reached else "timeout", self.goal.copy(), elapsed, error, mode)
        self.goal = None
        return event
