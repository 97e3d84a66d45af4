"""Scripted multi-modal demonstrators for the simulated arm (numpy, no rclpy).

Both are what a human demonstrator would be in the real workflow: they see the goal and the joint
state and send forward-controller commands, and they are deliberately multi-modal, so a policy
trained on their recordings has to keep every mode.

- IKExpert (task ik): for each new goal, elbow up or elbow down at random (probability
  1/2 each), the analytic inverse kinematics of the planar 2-link arm (links 3 and 3). It answers
  a goal once, when its value is new (goal sources republish it; a forward controller holds the
  last command): then every command is caused by the goal before it and cannot be mistaken for
  an answer to the next one, which an answer to a republished old goal could (docs/demonstrations.md).
- RouteExpert (task multiroute): per episode one of three routes at random, via (10, 0), (5, 5)
  or (0, 10), then (10, 10), then the goal (20, 20) (docs/method.md section 6; the geometry is
  ebgan_mdn_ros/tasks/routes.py). Each decision is a displacement of at most step_length towards the
  next waypoint, optionally with Gaussian noise, clipped to the action box +-2.
"""
from __future__ import annotations

import numpy as np

from ebgan_mdn_ros.tasks.planar_arm import ELBOW_MODES, LINK_LENGTHS, planar_inverse_kinematics
from ebgan_mdn_ros.tasks.routes import MAX_STEP as MAX_DISPLACEMENT
from ebgan_mdn_ros.tasks.routes import ROUTE_GOAL, ROUTE_MERGE, ROUTE_NAMES, ROUTE_VIA_POINTS



def inverse_kinematics(goal, mode: str, link_lengths=LINK_LENGTHS) -> np.ndarray:
    """Joint angles (shoulder, elbow) that put the end effector on ``goal`` in elbow ``mode``."""
    if mode not in ELBOW_MODES:
        raise ValueError(f"mode: {mode!r} is unknown, expected one of {ELBOW_MODES}")
    return planar_inverse_kinematics(np.asarray(goal, dtype=np.float64)[:2],
                                     1.0 if mode == "elbow_up" else -1.0, link_lengths)


class IKExpert:
    """A goal of a new value -> a random elbow mode and its IK solution; a repeated goal -> no new command."""

    def __init__(self, rng: np.random.Generator, link_lengths=LINK_LENGTHS):
        self.rng = rng
        self.link_lengths = tuple(link_lengths)
        self.goal: np.ndarray | None = None
        self.mode: str | None = None
        self.target: np.ndarray | None = None
        self.mode_counts = {mode: 0 for mode in ELBOW_MODES}

    def on_goal(self, goal) -> np.ndarray | None:
        """The joint target to command when ``goal`` is new; None when it repeats the current goal."""
        goal = np.asarray(goal, dtype=np.float64)
        if goal.shape != (2,) or not np.all(np.isfinite(goal)):
            raise ValueError(f"an IK goal is a finite (x, y), got {goal.tolist()}")
        if self.goal is None or not np.array_equal(goal, self.goal):
            self.goal = goal.copy()
            self.mode = ELBOW_MODES[int(self.rng.integers(0, 2))]
            self.mode_counts[self.mode] += 1
            self.target = inverse_kinematics(goal, self.mode, self.link_lengths)
            return self.target.copy()
        return None


class RouteExpert:
    """Per episode a random route; per decision a bounded displacement along it."""

    def __init__(self, rng: np.random.Generator, step_length: float = 1.0, noise: float = 0.0,
                 switch_radius: float = 0.5):
        if not 0.0 < step_length <= MAX_DISPLACEMENT:
            raise ValueError(f"step_length: {step_length} must be in (0, {MAX_DISPLACEMENT}] m")
        if noise < 0.0 or switch_radius <= 0.0:
            raise ValueError("noise must be >= 0 and switch_radius > 0")
        self.rng = rng
        self.step_length = step_length
        self.noise = noise
        self.switch_radius = switch_radius
        self.route: int | None = None
        self.route_counts = {name: 0 for name in ROUTE_NAMES}
        self._waypoints: np.ndarray | None = None
        self._next = 0

    def reset(self) -> str:
        """Start an episode: choose a route uniformly; returns its name."""
        self.route = int(self.rng.integers(0, len(ROUTE_VIA_POINTS)))
        self.route_counts[ROUTE_NAMES[self.route]] += 1
        self._waypoints = np.array([ROUTE_VIA_POINTS[self.route], ROUTE_MERGE, ROUTE_GOAL])
        self._next = 0
        return ROUTE_NAMES[self.route]

    def on_state(self, position) -> np.ndarray:
        """Displacement (dx, dy) in m to command from ``position``."""
        if self._waypoints is None:
            self.reset()
        position = np.asarray(position, dtype=np.float64)[:2]
        while self._next < len(self._waypoints) - 1 and \
                np.linalg.norm(self._waypoints[self._next] - position) <= self.switch_radius:
            self._next += 1
        offset = self._waypoints[self._next] - position
        distance = float(np.linalg.norm(offset))
        step = offset if distance <= self.step_length else offset * (self.step_length / distance)
        if self.noise > 0:
            step = step + self.noise * self.rng.standard_normal(2)
        return np.clip(step, -MAX_DISPLACEMENT, MAX_DISPLACEMENT)
