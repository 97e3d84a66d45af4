"""What a policy reads and writes: the policy spec, the action kinds and the condition-name grammar.

Torch-free and ROS-free, so the data, task, runtime and control layers share it with the trainer.

Condition names, one per condition dimension, say where the node finds each value:
"<joint>.position" and "<joint>.velocity" from sensor_msgs/JointState, "goal.<i>" from the goal topic.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

ACTION_KINDS = ("absolute", "delta")  # absolute: action = joint target; delta: target = position + action
POSITION, VELOCITY, GOAL = "position", "velocity", "goal"


def joint_condition(joint: str, part: str) -> str:
    """The condition name of a joint reading: part is "position" or "velocity"."""
    if part not in (POSITION, VELOCITY):
        raise ValueError(f"joint condition part {part!r} is not {POSITION!r} or {VELOCITY!r}")
    return f"{joint}.{part}"


def goal_condition(index: int) -> str:
    return f"{GOAL}.{index}"


def parse_condition_name(name: str) -> tuple[str, str | int]:
    """(source, key): (GOAL, i) for "goal.<i>", (POSITION or VELOCITY, joint) for a joint reading."""
    head, _, tail = name.rpartition(".")
    if head == GOAL and tail.isdigit():
        return GOAL, int(tail)
    if head and tail in (POSITION, VELOCITY):
        return tail, head
    raise ValueError(f"condition {name!r} is not '<joint>.position', '<joint>.velocity' or 'goal.<i>'")


@dataclass(frozen=True)
class ChunkSpec:
    """An action chunk: the policy answers one condition with ``horizon`` actions, one per ``dt`` seconds
    (action i is the target for time_of_condition + (i + 1) * dt), and a robot executes ``n_exec`` of
    them before it asks again. Flattened step-major ([H, A] -> H*A) wherever a network sees it."""
    horizon: int
    n_exec: int
    dt: float

    def __post_init__(self):
        if not (isinstance(self.horizon, int) and not isinstance(self.horizon, bool) and self.horizon >= 1):
            raise ValueError(f"chunk.horizon: {self.horizon!r} must be an integer >= 1")
        if not (isinstance(self.n_exec, int) and not isinstance(self.n_exec, bool) and 1 <= self.n_exec):
            raise ValueError(f"chunk.n_exec: {self.n_exec!r} must be an integer >= 1")
        if self.n_exec > self.horizon:
            raise ValueError(f"chunk.n_exec: {self.n_exec} is more than the horizon {self.horizon} "
                             "(a robot cannot execute actions the chunk does not have)")
        if not (isinstance(self.dt, (int, float)) and not isinstance(self.dt, bool)
                and math.isfinite(self.dt) and self.dt > 0):
            raise ValueError(f"chunk.dt: {self.dt!r} must be a finite number of seconds > 0")


@dataclass(frozen=True)
class PolicySpec:
    """What a policy reads and writes, in raw units.

    condition_names: one per condition dimension (the grammar above).
    action_names: one per action dimension (joint names for a joint-space policy).
    action_low/high: the action box (uniform negatives are drawn in it; the runtime clamps to it).
    action_kind: "absolute" (action = joint target) or "delta" (joint target = position + action).
    chunk: None for one action per condition; else the chunk's horizon, n_exec and dt. The names and
      the box are per step either way; the networks see the flattened chunk (flat_action_*).
    """
    condition_names: tuple[str, ...]
    action_names: tuple[str, ...]
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]
    action_kind: str = "absolute"
    chunk: ChunkSpec | None = None

    def __post_init__(self):
        if len(self.action_low) != len(self.action_names) or len(self.action_high) != len(self.action_names):
            raise ValueError(f"action_low/high must have {len(self.action_names)} entries (one per action name)")
        if any(lo >= hi for lo, hi in zip(self.action_low, self.action_high)):
            raise ValueError(f"action_low {self.action_low} must be below action_high {self.action_high}")
        if self.action_kind not in ACTION_KINDS:
            raise ValueError(f"action_kind: {self.action_kind!r} is unknown, expected one of {ACTION_KINDS}")
        if len(set(self.condition_names)) != len(self.condition_names) or len(set(self.action_names)) != len(self.action_names):
            raise ValueError("condition_names and action_names must be unique")

    @property
    def condition_dim(self) -> int:
        return len(self.condition_names)

    @property
    def action_dim(self) -> int:
        return len(self.action_names)

    @property
    def horizon(self) -> int:
        return 1 if self.chunk is None else self.chunk.horizon

    @property
    def flat_action_dim(self) -> int:
        """What a network outputs and scores: horizon x action_dim (action_dim without a chunk)."""
        return self.horizon * self.action_dim

    @property
    def flat_action_low(self) -> tuple[float, ...]:
        return tuple(self.action_low) * self.horizon

    @property
    def flat_action_high(self) -> tuple[float, ...]:
        return tuple(self.action_high) * self.horizon

    def to_dict(self) -> dict:
        data = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}
        if data["chunk"] is None:
            del data["chunk"]  # a per-step spec reads exactly as before chunks existed
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "PolicySpec":
        data = dict(data)
        chunk = data.pop("chunk", None)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()},
                   chunk=None if chunk is None else ChunkSpec(**chunk))
