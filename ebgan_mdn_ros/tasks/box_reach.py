"""The UR5e "reach around the box" task: the one home of its geometry (numpy only, no physics).

The flange moves from a start left of a box to a goal right of it, tool pointing down. The straight
line goes through the box; two rectangular detours do not: "near" (in front, between the robot base
and the box, at y = 0.25) and "far" (behind the box, at y = 0.78, its two corners raised by far_lift
= 5 cm: with the flange behind the box the forearm reaches over it, and at the start's height it
cleared the box by a median 2 cm and by under 3 mm in one demo in ten, a margin no cloned policy
keeps; raised, the 10th percentile is 1.7 cm). Both are equally good, which is
what makes the task multi-modal: an expert that picks either half the time teaches a policy two
modes, and their average (the straight line) collides.

World frame = the UR5e base frame (z up, base on z = 0), metres.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ebgan_mdn_ros.config_base import require

ROUTES = ("near", "far")
BOX_NAME = "box"
BOX_CENTER = (0.0, 0.5, 0.35)        # m
BOX_HALF_SIZE = (0.05, 0.05, 0.05)   # m
START = (-0.3, 0.5, 0.35)            # m, nominal flange start
GOAL = (0.3, 0.5, 0.35)              # m, nominal flange goal
ROUTE_Y = {"near": 0.25, "far": 0.78}  # m: the detour's y; both keep every link off the box
ENDPOINT_NOISE = 0.05                # m: start and goal are drawn within +- this, per axis
FAR_LIFT = 0.05                      # m: the far detour runs this much higher (the forearm's clearance)
# Tool pointing down (flange z = -world z, flange x = world x): the UR5e's home orientation.
TOOL_ROTATION = ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, -1.0))


@dataclass(frozen=True)
class BoxReachConfig:
    box_center: tuple[float, float, float] = BOX_CENTER
    box_half_size: tuple[float, float, float] = BOX_HALF_SIZE
    start: tuple[float, float, float] = START
    goal: tuple[float, float, float] = GOAL
    near_y: float = ROUTE_Y["near"]
    far_y: float = ROUTE_Y["far"]
    far_lift: float = FAR_LIFT           # m: the far detour's corners above the start's / goal's height
    endpoint_noise: float = ENDPOINT_NOISE
    goal_tolerance: float = 0.01         # m: flange distance from the goal that counts as reached

    def __post_init__(self):
        require(all(h > 0 for h in self.box_half_size), "box_half_size", self.box_half_size, "three numbers > 0")
        low = self.box_center[1] - self.box_half_size[1]
        high = self.box_center[1] + self.box_half_size[1]
        require(self.near_y < low, "near_y", self.near_y, f"below the box's near face y = {low:g}")
        require(self.far_y > high, "far_y", self.far_y, f"beyond the box's far face y = {high:g}")
        require(self.start[0] + self.endpoint_noise < self.box_center[0] - self.box_half_size[0], "start",
                self.start, "left of the box by more than endpoint_noise")
        require(self.goal[0] - self.endpoint_noise > self.box_center[0] + self.box_half_size[0], "goal",
                self.goal, "right of the box by more than endpoint_noise")
        require(0 <= self.endpoint_noise, "endpoint_noise", self.endpoint_noise, ">= 0")
        require(0 <= self.far_lift <= 0.2, "far_lift", self.far_lift, "in [0, 0.2] m")
        require(self.goal_tolerance > 0, "goal_tolerance", self.goal_tolerance, "> 0")

    def route_y(self, route: str) -> float:
        if route not in ROUTES:
            raise ValueError(f"route: {route!r} is unknown, expected one of {ROUTES}")
        return self.near_y if route == "near" else self.far_y


def tool_rotation() -> np.ndarray:
    return np.array(TOOL_ROTATION)


def sample_endpoints(rng: np.random.Generator, config: BoxReachConfig = BoxReachConfig()) -> tuple[np.ndarray, np.ndarray]:
    """(start, goal) flange positions, each within +- endpoint_noise of the nominal one per axis."""
    noise = config.endpoint_noise
    start = np.array(config.start) + rng.uniform(-noise, noise, 3)
    goal = np.array(config.goal) + rng.uniform(-noise, noise, 3)
    return start, goal


def route_corners(start, goal, route: str, config: BoxReachConfig = BoxReachConfig()) -> np.ndarray:
    """[4, 3]: start, the two corners of the rectangular detour at the route's y (the far one's raised
    by far_lift), goal."""
    start, goal = np.asarray(start, dtype=np.float64), np.asarray(goal, dtype=np.float64)
    y = config.route_y(route)
    lift = config.far_lift if route == "far" else 0.0
    return np.array([start, [start[0], y, start[2] + lift], [goal[0], y, goal[2] + lift], goal])


def straight_line(start, goal, points: int) -> np.ndarray:
    """[points, 3] evenly from start to goal: the colliding average of the two routes."""
    fractions = np.linspace(0.0, 1.0, points)[:, None]
    return (1.0 - fractions) * np.asarray(start, dtype=np.float64) + fractions * np.asarray(goal, dtype=np.float64)


def route_of(flange_path, config: BoxReachConfig = BoxReachConfig()) -> str:
    """The route a flange path [N, 3] took past the box: "near", "far" or "through" (neither side)."""
    path = np.asarray(flange_path, dtype=np.float64)
    x0, half_x = config.box_center[0], config.box_half_size[0]
    beside = path[np.abs(path[:, 0] - x0) <= half_x]  # where the path is level with the box in x
    if len(beside) == 0:
        return "through"  # jumped past the box between two samples: no side can be named
    if np.all(beside[:, 1] < config.box_center[1] - config.box_half_size[1]):
        return "near"
    if np.all(beside[:, 1] > config.box_center[1] + config.box_half_size[1]):
        return "far"
    return "through"


def goal_reached(flange_position, goal, config: BoxReachConfig = BoxReachConfig()) -> bool:
    return bool(np.linalg.norm(np.asarray(flange_position) - np.asarray(goal)) <= config.goal_tolerance)

