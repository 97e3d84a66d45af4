"""The policy's condition vector from robot state and goal (numpy, no rclpy).

A model names its inputs (PolicySpec.condition_names, in the grammar of ebgan_mdn_ros.spec). A JointState's joint order is not guaranteed, so readings are reordered by name into the
configured order. Anything that is not a complete, finite reading is rejected with a reason: a
missing joint never becomes a zero, and a rejected state never becomes a command.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ebgan_mdn_ros.spec import GOAL, POSITION, VELOCITY, parse_condition_name



@dataclass(frozen=True)
class Rejected:
    """Why a reading cannot be used this tick (counted and logged by the node, never commanded)."""
    reason: str

    def __bool__(self) -> bool:  # `if not result:` reads as "was rejected"
        return False


@dataclass(frozen=True)
class JointReading:
    """Positions and velocities in the configured joint order (velocity None when not sent)."""
    position: np.ndarray
    velocity: np.ndarray | None


def parse_condition_names(condition_names: Sequence[str], joint_names: Sequence[str]) -> list[tuple[str, int]]:
    """(source, index) per condition entry; raises ValueError naming any entry it cannot serve.

    Checked once at start-up (and on a model swap), so a model that reads a joint this node does
    not know about fails there, not on the first tick.
    """
    joint_index = {name: i for i, name in enumerate(joint_names)}
    sources = []
    for name in condition_names:
        source, key = parse_condition_name(name)
        if source == GOAL:
            sources.append((GOAL, key))
        elif key in joint_index:
            sources.append((source, joint_index[key]))
        else:
            raise ValueError(f"condition {name!r} reads joint {key!r}, which is not in joint_names {list(joint_names)}")
    goal_indices = sorted(i for source, i in sources if source == GOAL)
    if goal_indices != list(range(len(goal_indices))):
        raise ValueError(f"goal conditions must be goal.0 .. goal.{len(goal_indices) - 1}, got {goal_indices}")
    return sources


class StateAssembler:
    """Reorders JointState arrays by name and builds the condition vector into a reused buffer."""

    def __init__(self, condition_names: Sequence[str], joint_names: Sequence[str]):
        self.joint_names = tuple(joint_names)
        if len(set(self.joint_names)) != len(self.joint_names) or not self.joint_names:
            raise ValueError(f"joint_names must be non-empty and unique, got {list(self.joint_names)}")
        self.condition_names = tuple(condition_names)
        sources = parse_condition_names(self.condition_names, self.joint_names)
        self.goal_size = sum(1 for source, _ in sources if source == GOAL)
        self.needs_velocity = any(source == VELOCITY for source, _ in sources)
        kinds = {POSITION: 0, VELOCITY: 1, GOAL: 2}
        self._kind = np.array([kinds[s] for s, _ in sources], dtype=np.int64)
        self._index = np.array([i for _, i in sources], dtype=np.int64)
        self._condition = np.zeros(len(sources), dtype=np.float64)
        # JointState names rarely change between messages: cache the permutation of the last order.
        self._cached_names: tuple[str, ...] | None = None
        self._cached_order: np.ndarray | Rejected | None = None

    def _order(self, names: Sequence[str]) -> np.ndarray | Rejected:
        names = tuple(names)
        if names == self._cached_names:
            return self._cached_order
        if len(set(names)) != len(names):
            order: np.ndarray | Rejected = Rejected(f"duplicate joint names in joint state: {list(names)}")
        else:
            where = {name: i for i, name in enumerate(names)}
            missing = [j for j in self.joint_names if j not in where]
            if len(missing) == len(self.joint_names):
                order = Rejected(f"joint state names {list(names)} contain none of joint_names {list(self.joint_names)}")
            elif missing:
                order = Rejected(f"joint state is missing joint(s) {missing}")
            else:
                order = np.array([where[j] for j in self.joint_names], dtype=np.int64)
        self._cached_names, self._cached_order = names, order
        return order

    def read_joints(self, names: Sequence[str], position: Sequence[float],
                    velocity: Sequence[float] | None = None) -> JointReading | Rejected:
        """Reorder one JointState into joint_names order; extra (unconfigured) joints are ignored."""
        order = self._order(names)
        if isinstance(order, Rejected):
            return order
        if len(position) != len(names):
            return Rejected(f"joint state has {len(position)} positions for {len(names)} names")
        pos = np.asarray(position, dtype=np.float64)[order]
        if not np.all(np.isfinite(pos)):
            return Rejected(f"non-finite position for {self._non_finite(pos)}")
        vel = None
        if velocity is not None and len(velocity) > 0:
            if len(velocity) != len(names):
                return Rejected(f"joint state has {len(velocity)} velocities for {len(names)} names")
            vel = np.asarray(velocity, dtype=np.float64)[order]
            if not np.all(np.isfinite(vel)) and self.needs_velocity:
                return Rejected(f"non-finite velocity for {self._non_finite(vel)}")
        if vel is None and self.needs_velocity:
            return Rejected("the model reads joint velocities but the joint state has none")
        return JointReading(pos, vel)

    def _non_finite(self, values: np.ndarray) -> list[str]:
        return [self.joint_names[i] for i in np.flatnonzero(~np.isfinite(values))]

    def check_goal(self, goal: Sequence[float] | None) -> np.ndarray | Rejected:
        """A goal as a float64 array, or why it is unusable."""
        if self.goal_size == 0:
            return np.zeros(0)
        if goal is None:
            return Rejected("no goal received yet")
        goal = np.asarray(goal, dtype=np.float64)
        if goal.shape != (self.goal_size,):
            return Rejected(f"goal has {goal.size} values, the model reads {self.goal_size}")
        if not np.all(np.isfinite(goal)):
            return Rejected(f"non-finite goal {goal.tolist()}")
        return goal

    def condition(self, reading: JointReading, goal: np.ndarray) -> np.ndarray:
        """The condition vector (a buffer reused every tick: copy it to keep it)."""
        # velocity is only None when no condition reads it (read_joints rejects otherwise)
        stacked = (reading.position, reading.velocity if reading.velocity is not None else reading.position, goal)
        for slot, (kind, index) in enumerate(zip(self._kind, self._index)):
            self._condition[slot] = stacked[kind][index]
        return self._condition
