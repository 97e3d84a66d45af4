"""Benchmark tasks of docs/method.md sec. 6, regenerated in code with fixed seeds.

Each task carries its training pairs (float32 numpy), the PolicySpec a trained policy will publish
with, test conditions, and the ground truth the metrics need: the true modes at a condition and a
sampler of the true distribution (for KL and Wasserstein). The multi-route task also has a
closed-loop environment, because its modes are routes, not points.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ebgan_mdn_ros.tasks.planar_arm import GOAL_RADIUS_RANGE, LINK_LENGTHS, planar_forward_kinematics, planar_inverse_kinematics
from ebgan_mdn_ros.spec import PolicySpec
from ebgan_mdn_ros.tasks.routes import (ARENA, GOAL_BOX, MAX_STEP, ROUTE_GOAL, ROUTE_MERGE, ROUTE_RADIUS, ROUTE_VIA_POINTS,
                     nearest_routes)

CURVE_NOISE = 0.02
CURVE_SAMPLES = 500
CURVE_MODE_TOLERANCE = 0.075
IK_TARGETS = 2000
IK_SUCCESS_TOLERANCE = 0.1
GRID_STD = math.sqrt(0.03)
GRID_MODE_TOLERANCE = 0.5  # about 3 std: a true sample is farther than this 1.5 % of the time


@dataclass(frozen=True, eq=False)
class Task:
    """One benchmark. `kind` picks the metrics: "curve", "ik", "planning" or "grid" ("demos" for user data)."""
    name: str
    kind: str
    conditions: np.ndarray        # [N, C] float32
    actions: np.ndarray           # [N, A] float32
    spec: PolicySpec
    test_conditions: np.ndarray   # [T, C] float32
    mode_tolerance: float = CURVE_MODE_TOLERANCE
    true_modes: Callable[[np.ndarray], np.ndarray] | None = None                     # [T,C] -> [T,M,A]
    sample_true: Callable[[np.ndarray, int, np.random.Generator], np.ndarray] | None = None  # -> [T,S,A]
    description: str = ""

    def __post_init__(self):
        # get_task caches one instance per name: read-only arrays keep one caller from editing another's.
        for array in (self.conditions, self.actions, self.test_conditions):
            array.flags.writeable = False


# ---- 1-D conditional shapes ------------------------------------------------------------------

def _hyperbola(c):
    branch = np.sqrt(0.01 + c ** 2)
    return np.stack([branch, -branch], -1)


def _lines(c):
    return np.stack([c, np.zeros_like(c), -c], -1)


def _circle(c):
    branch = np.sqrt(np.clip(1.0 - c ** 2, 0.0, None))
    return np.stack([branch, -branch], -1)


def _parabola(c):
    return np.stack([c ** 2, -c ** 2], -1)


CURVES = {"hyperbola": (_hyperbola, 1), "lines": (_lines, 2), "circle": (_circle, 3), "parabola": (_parabola, 4)}


def _curve_task(name: str) -> Task:
    branches_of, seed = CURVES[name]
    rng = np.random.default_rng(seed)
    c = rng.uniform(-1.0, 1.0, CURVE_SAMPLES)
    modes = branches_of(c)
    y = modes[np.arange(CURVE_SAMPLES), rng.integers(0, modes.shape[1], CURVE_SAMPLES)]
    y = y + CURVE_NOISE * rng.standard_normal(CURVE_SAMPLES)
    # A uniform sweep plus a dense band at |c| < 0.1, where the hyperbola's branches are closest
    # (0.2 apart) and mixture components that cross each other leave samples in the gap.
    test = np.concatenate([np.linspace(-1.0, 1.0, 200), np.linspace(-0.1, 0.1, 50)])

    def true_modes(conditions):
        return branches_of(np.asarray(conditions)[:, 0])[..., None]

    def sample_true(conditions, count, rng):
        modes = true_modes(conditions)  # [T,M,1]
        pick = rng.integers(0, modes.shape[1], (len(conditions), count))
        chosen = np.take_along_axis(modes[..., 0], pick, 1)
        return (chosen + CURVE_NOISE * rng.standard_normal(chosen.shape))[..., None]

    # The box (where uniform negatives are drawn) reaches well past the data (|y| <= ~1.05): an energy
    # is unconstrained outside it, and the generator's energy term would chase samples out there.
    spec = PolicySpec(condition_names=("c",), action_names=("y",), action_low=(-1.5,), action_high=(1.5,))
    return Task(name, "curve", c[:, None].astype(np.float32), y[:, None].astype(np.float32), spec,
                test[:, None].astype(np.float32), CURVE_MODE_TOLERANCE, true_modes, sample_true,
                f"{name}: c ~ U(-1,1), y = branch(c) + {CURVE_NOISE} N(0,1), {CURVE_SAMPLES} samples")


# ---- planar 2-link inverse kinematics --------------------------------------------------------

def forward_kinematics(angles: np.ndarray) -> np.ndarray:
    """Joint angles [..., 2] (shoulder, elbow) -> end-effector position [..., 2] (equal links)."""
    return planar_forward_kinematics(angles, LINK_LENGTHS)


def inverse_kinematics(targets: np.ndarray) -> np.ndarray:
    """Targets [T, 2] -> both solutions [T, 2 (elbow +, elbow -), 2 (shoulder, elbow)].

    With equal links the elbow angle is +-2 acos(r / 2l) and the shoulder sits half of it off the
    target's bearing. The shoulder is wrapped into [-pi, pi): targets behind the base (bearing near
    +-pi) have their shoulder solution cut at the wrap, as a real joint-angle data set would.
    """
    return np.stack([planar_inverse_kinematics(targets, sign, LINK_LENGTHS) for sign in (1.0, -1.0)], 1)


def _ik_targets(count: int, rng: np.random.Generator) -> np.ndarray:
    low, high = GOAL_RADIUS_RANGE
    radius = np.sqrt(rng.uniform(low ** 2, high ** 2, count))  # uniform over the annulus' area
    bearing = rng.uniform(-math.pi, math.pi, count)
    return np.stack([radius * np.cos(bearing), radius * np.sin(bearing)], -1)


def _ik_task() -> Task:
    rng = np.random.default_rng(5)
    targets = _ik_targets(IK_TARGETS, rng)
    solutions = inverse_kinematics(targets)
    # Every target appears with both elbow solutions: the data set is exactly balanced between modes.
    conditions = np.repeat(targets, 2, axis=0)
    actions = solutions.reshape(-1, 2)
    test = _ik_targets(500, np.random.default_rng(6))

    def sample_true(conditions, count, rng):
        sols = inverse_kinematics(np.asarray(conditions, dtype=np.float64))
        pick = rng.integers(0, 2, (len(conditions), count))
        return np.take_along_axis(sols, pick[..., None], 1)

    spec = PolicySpec(condition_names=("goal.0", "goal.1"), action_names=("shoulder", "elbow"),
                      action_low=(-math.pi, -math.pi), action_high=(math.pi, math.pi))
    return Task("ik", "ik", conditions.astype(np.float32), actions.astype(np.float32), spec,
                test.astype(np.float32), IK_SUCCESS_TOLERANCE, inverse_kinematics, sample_true,
                f"2-link IK, links {LINK_LENGTHS}, {IK_TARGETS} targets x both elbow solutions")


# ---- multi-route planning (the BeT benchmark) ------------------------------------------------

PLANNING_STEPS = 50
PLANNING_MAX_STEP = MAX_STEP
DEMO_STEP_LENGTH = 1.0
DEMO_POINT_NOISE = 0.25
START_NOISE = 0.25


def _polyline_points(corners: np.ndarray, step: float) -> np.ndarray:
    """Points every `step` along the polyline through `corners`, ending exactly at the last corner."""
    segments = np.diff(corners, axis=0)
    lengths = np.linalg.norm(segments, axis=1)
    cumulative = np.concatenate([[0.0], np.cumsum(lengths)])
    arc = np.append(np.arange(0.0, cumulative[-1], step), cumulative[-1])
    index = np.clip(np.searchsorted(cumulative, arc, side="right") - 1, 0, len(segments) - 1)
    fraction = (arc - cumulative[index]) / lengths[index]
    return corners[index] + fraction[:, None] * segments[index]


def planning_paths() -> list[np.ndarray]:
    """The multi-route task's 300 demonstrations, one [T, 2] array of visited points each (route =
    index % 3); the task's pairs are their points and steps (chunked pairs: benchmarks/multiroute_chunks.py)."""
    rng = np.random.default_rng(7)
    paths = []
    for demo in range(300):
        route = demo % 3
        start = START_NOISE * rng.standard_normal(2)
        clean = _polyline_points(np.stack([start, ROUTE_VIA_POINTS[route], ROUTE_MERGE, ROUTE_GOAL]),
                                 DEMO_STEP_LENGTH)
        # Noise on every point (not on every step) makes each action point back toward the clean
        # path, so the demonstrations teach a policy that corrects its own drift.
        noisy = clean + DEMO_POINT_NOISE * rng.standard_normal(clean.shape)
        noisy[0] = start
        paths.append(noisy)
    return paths


def _planning_task() -> Task:
    observations, displacements = [], []
    for noisy in planning_paths():
        observations.append(noisy[:-1])
        displacements.append(np.clip(np.diff(noisy, axis=0), -PLANNING_MAX_STEP, PLANNING_MAX_STEP))
    starts = START_NOISE * np.random.default_rng(8).standard_normal((50, 2))
    spec = PolicySpec(condition_names=("x_joint.position", "y_joint.position"),
                      action_names=("x_joint", "y_joint"), action_low=(-PLANNING_MAX_STEP,) * 2,
                      action_high=(PLANNING_MAX_STEP,) * 2, action_kind="delta")
    return Task("multiroute", "planning", np.concatenate(observations).astype(np.float32),
                np.concatenate(displacements).astype(np.float32), spec, starts.astype(np.float32),
                description="multi-route planning: 300 noisy demos, 3 routes to the goal box [19,21]^2")


class MultiRouteEnvironment:
    """Batched closed-loop point environment: position += clip(action, +-2); numpy only."""

    def __init__(self, count: int, seed: int = 0):
        self.positions = START_NOISE * np.random.default_rng(seed).standard_normal((count, 2))
        self.reached = np.zeros(count, bool)
        self.left_arena = np.zeros(count, bool)
        self.trajectories = [self.positions.copy()]

    @property
    def active(self) -> np.ndarray:
        return ~(self.reached | self.left_arena)

    def step(self, actions: np.ndarray) -> None:
        """Moves only rollouts still running; finished ones keep their final position."""
        moving = self.active
        step = np.clip(np.asarray(actions, dtype=np.float64), -PLANNING_MAX_STEP, PLANNING_MAX_STEP)
        self.positions = np.where(moving[:, None], self.positions + step, self.positions)
        inside_goal = np.all((self.positions >= GOAL_BOX[0]) & (self.positions <= GOAL_BOX[1]), axis=1)
        outside = np.any((self.positions < ARENA[0]) | (self.positions > ARENA[1]), axis=1)
        self.left_arena |= moving & outside
        self.reached |= moving & inside_goal & ~outside
        self.trajectories.append(self.positions.copy())

    def routes(self, radius: float = ROUTE_RADIUS) -> np.ndarray:
        """Per rollout: index of the via point it passed within `radius` of (nearest), or -1."""
        return nearest_routes(np.stack(self.trajectories, 1), radius)


# ---- unconditional 7 x 7 Gaussian grid -------------------------------------------------------

GRID_CENTRES = np.array([[(i - 3) * 1.2, (j - 3) * 1.2] for i in range(7) for j in range(7)])


def _grid_task() -> Task:
    rng = np.random.default_rng(9)
    actions = np.repeat(GRID_CENTRES, 200, axis=0) + GRID_STD * rng.standard_normal((49 * 200, 2))

    def true_modes(conditions):
        return np.broadcast_to(GRID_CENTRES, (len(conditions),) + GRID_CENTRES.shape)

    def sample_true(conditions, count, rng):
        pick = rng.integers(0, len(GRID_CENTRES), (len(conditions), count))
        return GRID_CENTRES[pick] + GRID_STD * rng.standard_normal((len(conditions), count, 2))

    spec = PolicySpec(condition_names=("constant",), action_names=("x", "y"),
                      action_low=(-5.0, -5.0), action_high=(5.0, 5.0))
    # Unconditional: every sample gets the same constant condition 0.
    return Task("grid", "grid", np.zeros((len(actions), 1), np.float32), actions.astype(np.float32), spec,
                np.zeros((1, 1), np.float32), GRID_MODE_TOLERANCE, true_modes, sample_true,
                "7x7 Gaussian grid, spacing 1.2, covariance 0.03 I, 200 points each")


TASK_BUILDERS: dict[str, Callable[[], Task]] = {
    **{name: functools.partial(_curve_task, name) for name in CURVES},
    "ik": _ik_task,
    "multiroute": _planning_task,
    "grid": _grid_task,
}


def task_names() -> list[str]:
    return list(TASK_BUILDERS)


@functools.lru_cache(maxsize=None)
def get_task(name: str) -> Task:
    """The benchmark task called `name`; an unknown name is a ValueError listing the known ones."""
    if name not in TASK_BUILDERS:
        raise ValueError(f"task {name!r} is unknown, expected one of {', '.join(TASK_BUILDERS)}")
    return TASK_BUILDERS[name]()
