"""rosbag2 MCAP recordings -> aligned (condition, action) demonstration pairs (numpy, no rclpy).

Input: rosbag2 directories (metadata.yaml + .mcap files) or bare .mcap files holding
sensor_msgs/JointState (the robot's state), std_msgs/Float64MultiArray goals and, optionally, the
commands a demonstrator sent (std_msgs/Float64MultiArray, a forward command controller's input),
read by bag_reader.py.

Alignment (docs/demonstrations.md has the reasoning):
- One clock: every message is placed at its MCAP log time, the time the recorder received it.
  Header stamps are not used: goals and commands have no header, and stamps written by different
  nodes need not share a clock, whereas the recorder's receive times always do.
- "Latest at or before": a value at time t is the newest message with log time <= t.
- With a command topic (the behaviour-cloning label): one pair per command message at time t.
  condition = latest goal / joint state at or before t (what the demonstrator could have seen);
  action = the command (``action="target"``) or the command minus the joint positions of that
  condition (``action="delta"``).
- Without a command topic (hindsight relabelling, e.g. kinesthetic teaching): one pair per joint
  state at time t. condition as above; action = the joint positions at t + horizon
  (``"target"``) or their change over the horizon (``"delta"``). A pair whose t + horizon falls
  outside its episode is dropped.
- Action chunks (``chunk_horizon`` H > 1, hindsight only): the action is the H joint positions
  at t + k * horizon for k = 1..H (or their changes from the positions at t), flattened
  step-major, so ``horizon`` is the chunk's dt. The first step must lie inside the episode, as for
  one step. At the episode's end, ``chunk_end="hold"`` (the default) fills the later steps with the
  episode's last joint state: the demonstrator stopped there, and "stay where the demonstration
  ended" is what it would have done; ``"drop"`` leaves such a pair out instead (which removes the
  last H * horizon seconds of every episode, the arrival at the goal included).
- Episodes: a goal of a different value starts a new episode (goal sources republish the current
  goal periodically, so a repeated value continues it); every message on ``episode_topic`` (e.g.
  the simulator's reset topic, where one goal repeats across episodes) starts one; a gap of more
  than ``max_gap`` s between joint states starts one; and so does a new bag.
  Pairs never mix episodes: a command received before its episode's goal, or a joint state older
  than ``max_gap`` s, leaves that pair out.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ebgan_mdn_ros.spec import GOAL, goal_condition, joint_condition
from ebgan_mdn_ros.data.bag_reader import (ARRAY_TYPE, JOINT_STATE_TYPE, BagDatasetError, JointStates, TopicStream, arrays_from,
                         joint_states_from, qualified, read_topics)

CONDITION_PARTS = ("goal", "position", "velocity")
ACTION_MODES = ("target", "delta")
CHUNK_ENDS = ("hold", "drop")
NPZ_FORMAT = "ebgan-mdn-demos/1"


@dataclass(frozen=True)
class ExtractionConfig:
    """How topics become pairs. Times in seconds, topic names as recorded ("goal" means "/goal")."""
    joint_state_topic: str = "/joint_states"
    goal_topic: str = "/goal"
    command_topic: str | None = None          # None: hindsight labels from the joint states
    joints: tuple[str, ...] | None = None     # action joints in this order; None: the first JointState's order
    command_joints: tuple[str, ...] | None = None  # the command array's joint order; None: same as joints
    condition: tuple[str, ...] = ("goal",)    # parts of the condition, in this order
    action: str = "target"                    # "target" (absolute joint targets) or "delta"
    horizon: float = 0.5                      # s, hindsight look-ahead (no command topic)
    max_gap: float = 0.5                      # s without joint states that splits an episode
    sample_period: float = 0.0                # s, keep at most one pair per period within an episode
    episode_topic: str | None = None          # every message on it starts an episode (any type)
    chunk_horizon: int = 1                    # steps per action chunk (1: one action per pair)
    chunk_n_exec: int = 0                     # steps a robot executes before replanning (0: half the horizon)
    chunk_end: str = "hold"                   # steps past the episode's end: "hold" its last state, or "drop"

    def __post_init__(self):
        for name in ("joint_state_topic", "goal_topic", "command_topic", "episode_topic"):
            value = getattr(self, name)
            if value is not None:
                if not isinstance(value, str) or not value.strip():
                    raise BagDatasetError(f"{name}: {value!r} is not a topic name")
                object.__setattr__(self, name, qualified(value))
        for name in ("joints", "command_joints"):
            value = getattr(self, name)
            if value is not None:
                value = tuple(value)
                if not value or len(set(value)) != len(value) or not all(isinstance(v, str) and v for v in value):
                    raise BagDatasetError(f"{name}: {list(value)} must be non-empty, unique joint names")
                object.__setattr__(self, name, value)
        condition = tuple(self.condition)
        unknown = [part for part in condition if part not in CONDITION_PARTS]
        if not condition or unknown or len(set(condition)) != len(condition):
            raise BagDatasetError(f"condition: {list(condition)} must be unique parts of {list(CONDITION_PARTS)}")
        object.__setattr__(self, "condition", condition)
        if self.action not in ACTION_MODES:
            raise BagDatasetError(f"action: {self.action!r} is unknown, expected one of {list(ACTION_MODES)}")
        if self.command_joints is not None and self.joints is not None and \
                set(self.joints) - set(self.command_joints):
            raise BagDatasetError(f"joints {sorted(set(self.joints) - set(self.command_joints))} are not in "
                                  f"command_joints {list(self.command_joints)}")
        if self.command_joints is not None and self.command_topic is None:
            raise BagDatasetError("command_joints is given but command_topic is not")
        for name in ("horizon", "max_gap"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise BagDatasetError(f"{name}: {value!r} must be a positive number of seconds")
        if not (math.isfinite(self.sample_period) and self.sample_period >= 0):
            raise BagDatasetError(f"sample_period: {self.sample_period!r} must be >= 0 seconds")
        if not (isinstance(self.chunk_horizon, int) and self.chunk_horizon >= 1):
            raise BagDatasetError(f"chunk_horizon: {self.chunk_horizon!r} must be an integer >= 1")
        if not (isinstance(self.chunk_n_exec, int) and 0 <= self.chunk_n_exec <= self.chunk_horizon):
            raise BagDatasetError(f"chunk_n_exec: {self.chunk_n_exec!r} must be in 0..chunk_horizon "
                                  f"({self.chunk_horizon}; 0: half of it)")
        if self.chunk_end not in CHUNK_ENDS:
            raise BagDatasetError(f"chunk_end: {self.chunk_end!r} is unknown, expected one of {list(CHUNK_ENDS)}")
        if self.chunk_horizon > 1 and self.command_topic is not None:
            raise BagDatasetError("chunk_horizon > 1 labels chunks in hindsight from the joint states; "
                                  "it cannot be combined with command_topic")

    @property
    def chunk(self) -> tuple[int, int, float] | None:
        """(horizon, n_exec, dt) of the chunks, None for one action per pair."""
        if self.chunk_horizon == 1:
            return None
        return self.chunk_horizon, self.chunk_n_exec or max(self.chunk_horizon // 2, 1), float(self.horizon)


@dataclass
class Demonstrations:
    """Aligned pairs; row i of every array belongs to pair i. Times in s since the first message read from its bag."""
    conditions: np.ndarray        # [N, C] float64
    actions: np.ndarray           # [N, A] float64
    condition_names: tuple[str, ...]
    action_names: tuple[str, ...]
    episode_ids: np.ndarray       # [N] int64, 0 .. E-1 over all bags, in time order
    times: np.ndarray             # [N] float64
    action_kind: str              # PolicySpec.action_kind: "absolute" or "delta"
    sources: list[str] = field(default_factory=list)   # one per bag, in order
    bag_index: np.ndarray | None = None                # [N] int64, index into sources
    dropped: dict[str, int] = field(default_factory=dict)  # why candidate pairs were left out
    chunk: tuple[int, int, float] | None = None        # (horizon, n_exec, dt); actions are [N, H*A]

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def episode_count(self) -> int:
        return int(len(np.unique(self.episode_ids)))

    def save(self, path: str | Path) -> Path:
        """Write the .npz the trainer's demos loader reads (plus episode ids and provenance)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = dict(
            conditions=self.conditions, actions=self.actions,
            condition_names=np.array(self.condition_names), action_names=np.array(self.action_names),
            episode_ids=self.episode_ids, times=self.times, action_kind=np.array(self.action_kind),
            sources=np.array(self.sources), format=np.array(NPZ_FORMAT))
        if self.bag_index is not None:
            arrays["bag_index"] = self.bag_index
        if self.chunk is not None:
            horizon, n_exec, dt = self.chunk
            arrays.update(chunk_horizon=np.array(horizon), chunk_n_exec=np.array(n_exec), chunk_dt=np.array(dt))
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)
        return path


def _latest_at_or_before(times: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Index of the newest time <= t, -1 where there is none (times ascending)."""
    return np.searchsorted(times, t, side="right") - 1


@dataclass
class AlignedPairs:
    conditions: np.ndarray   # [N, C]
    actions: np.ndarray      # [N, A]
    episodes: np.ndarray     # [N] episode keys, increasing with time (renumbered by the caller)
    times: np.ndarray        # [N] int64 ns
    dropped: dict[str, int]  # reason -> how many candidate pairs were left out


def align(states: JointStates, goals: tuple[np.ndarray, np.ndarray] | None,
          commands: tuple[np.ndarray, np.ndarray] | None, config: ExtractionConfig,
          episode_starts: np.ndarray | None = None) -> AlignedPairs:
    """The alignment rule of this module's docstring, on arrays (the tested core).

    ``goals`` and ``commands`` are (times, values) or None; ``commands`` values are already in
    ``states.names`` order; ``episode_starts`` are the times of episode-topic messages. Episodes
    are intervals of time, with a boundary at every goal change, every episode-topic message and
    the first joint state after a gap longer than max_gap.
    """
    state_t = states.times
    max_gap, horizon, period = (int(round(s * 1e9)) for s in (config.max_gap, config.horizon, config.sample_period))
    gap_boundaries = state_t[1:][np.diff(state_t) > max_gap]
    if episode_starts is not None:
        gap_boundaries = np.sort(np.concatenate([gap_boundaries, np.asarray(episode_starts, np.int64)]))
    if goals is not None:
        goal_t, goal_v = goals
        opens = np.ones(len(goal_t), bool)
        opens[1:] = np.any(goal_v[1:] != goal_v[:-1], axis=1)
        goal_boundaries = goal_t[opens]
    blocks = len(gap_boundaries) + 1

    def episode_at(t: np.ndarray) -> np.ndarray:
        """Episode key of time(s) t; negative before the first goal."""
        block = np.searchsorted(gap_boundaries, t, side="right")
        if goals is None:
            return block
        segment = np.searchsorted(goal_boundaries, t, side="right") - 1
        return np.where(segment < 0, -1, segment * blocks + block)

    if commands is not None:
        sample_t, target = commands
        state_index = _latest_at_or_before(state_t, sample_t)
    else:
        sample_t, state_index = state_t, np.arange(len(state_t))
    episode = episode_at(sample_t)
    keep = np.ones(len(sample_t), bool)
    dropped: dict[str, int] = {}

    def drop(mask: np.ndarray, reason: str) -> None:
        count = int(np.sum(keep & mask))
        if count:
            dropped[reason] = dropped.get(reason, 0) + count
        keep[mask] = False

    if goals is not None:
        drop(episode < 0, "before the first goal")
    state_needed = commands is None or config.action == "delta" or \
        any(part in ("position", "velocity") for part in config.condition)
    safe_state = np.clip(state_index, 0, None)
    if state_needed:
        drop(state_index < 0, "no joint state yet")
        drop(episode_at(state_t[safe_state]) != episode, "joint state from another episode")
        drop(sample_t - state_t[safe_state] > max_gap, f"joint state older than max_gap ({config.max_gap} s)")
    position = states.position[safe_state]

    if commands is None:
        # The look-ahead state is the newest at or before t + horizon; the recording must go on
        # in the same episode until at least t + horizon, or the arm's state there is unknown.
        future = _latest_at_or_before(state_t, sample_t + horizon)
        after = np.searchsorted(state_t, sample_t + horizon, side="left")
        beyond = after >= len(state_t)
        drop(beyond | (episode_at(state_t[np.clip(after, 0, len(state_t) - 1)]) != episode),
             f"episode ends within the horizon ({config.horizon} s)")
        target = states.position[future]
        if config.chunk_horizon > 1:
            target = _chunk_targets(states, sample_t, episode, episode_at, horizon, config, target, drop)
    action = target - np.tile(position, config.chunk_horizon) if config.action == "delta" else target

    parts = []
    for part in config.condition:
        if part == "goal":
            parts.append(goal_v[np.clip(_latest_at_or_before(goal_t, sample_t), 0, None)])
        elif part == "position":
            parts.append(position)
        else:
            parts.append(states.velocity[safe_state])
    conditions = np.concatenate(parts, axis=1)

    if period > 0:
        last_kept: dict[int, int] = {}
        for i in np.flatnonzero(keep):
            key = int(episode[i])
            if key in last_kept and sample_t[i] - last_kept[key] < period:
                keep[i] = False
                dropped["sample_period"] = dropped.get("sample_period", 0) + 1
            else:
                last_kept[key] = int(sample_t[i])
    return AlignedPairs(conditions[keep], action[keep], episode[keep], sample_t[keep], dropped)


def _chunk_targets(states: JointStates, sample_t: np.ndarray, episode: np.ndarray, episode_at, horizon: int,
                   config: ExtractionConfig, first: np.ndarray, drop) -> np.ndarray:
    """[N, H*A]: the positions at t + k * horizon, k = 1..H; past the episode's end, its last state
    (chunk_end "hold") or the pair dropped ("drop")."""
    state_t = states.times
    state_episode = episode_at(state_t)  # non-decreasing in time, like the episode keys
    last_of_episode = np.clip(np.searchsorted(state_episode, episode, side="right") - 1, 0, None)
    steps = [first]
    for k in range(2, config.chunk_horizon + 1):
        at = sample_t + k * horizon
        future = _latest_at_or_before(state_t, at)
        after = np.searchsorted(state_t, at, side="left")
        beyond = (after >= len(state_t)) | (episode_at(state_t[np.clip(after, 0, len(state_t) - 1)]) != episode)
        if config.chunk_end == "drop":
            drop(beyond, f"episode ends within the chunk ({config.chunk_horizon} x {config.horizon} s)")
        steps.append(states.position[np.where(beyond, last_of_episode, future)])
    return np.concatenate(steps, axis=1)


# ---- the whole pipeline ---------------------------------------------------------------------------

def condition_names(config: ExtractionConfig, joints: Sequence[str], goal_size: int) -> tuple[str, ...]:
    """PolicySpec names (ebgan_mdn_ros.spec's grammar), in config.condition order."""
    names: list[str] = []
    for part in config.condition:
        if part == GOAL:
            names += [goal_condition(i) for i in range(goal_size)]
        else:
            names += [joint_condition(joint, part) for joint in joints]
    return tuple(names)


def _require_topic(bag, topic: str, expected_type: str, role: str, all_topics: dict[str, str],
                   streams: dict[str, TopicStream]) -> TopicStream:
    if topic not in all_topics:
        listing = ", ".join(f"{name} ({kind})" for name, kind in sorted(all_topics.items())) or "none"
        raise BagDatasetError(f"{bag}: {role} topic {topic} is not in the bag (topics: {listing})")
    if all_topics[topic] != expected_type:
        raise BagDatasetError(f"{bag}: {role} topic {topic} has type {all_topics[topic]}, expected {expected_type}")
    stream = streams.get(topic)
    if stream is None or not stream.messages:
        raise BagDatasetError(f"{bag}: {role} topic {topic} has no messages")
    return stream


def extract_bag(bag: str | Path, config: ExtractionConfig) -> tuple[AlignedPairs, tuple[str, ...], tuple[str, ...]]:
    """Pairs of one recording, with (condition_names, action_names)."""
    topics = [config.joint_state_topic, config.goal_topic]
    topics += [t for t in (config.command_topic, config.episode_topic) if t]
    streams, all_topics = read_topics(bag, topics)
    if not all_topics:
        raise BagDatasetError(f"{bag}: the bag is empty (no topics)")
    joint_stream = _require_topic(bag, config.joint_state_topic, JOINT_STATE_TYPE, "joint state", all_topics, streams)
    try:
        states = joint_states_from(joint_stream, config.joint_state_topic, config.joints,
                                   need_velocity="velocity" in config.condition)
    except BagDatasetError as exc:
        raise BagDatasetError(f"{bag}: {exc}") from None
    goals = None
    if "goal" in config.condition or config.goal_topic in all_topics:
        goal_stream = _require_topic(bag, config.goal_topic, ARRAY_TYPE, "goal", all_topics, streams)
        goals = _arrays(bag, goal_stream, config.goal_topic, "goal")
    commands = None
    if config.command_topic:
        command_stream = _require_topic(bag, config.command_topic, ARRAY_TYPE, "command", all_topics, streams)
        command_joints = config.command_joints or states.names
        missing = [j for j in states.names if j not in command_joints]
        if missing:
            raise BagDatasetError(f"{bag}: joints {missing} are not in the command's joints {list(command_joints)}")
        times, values = _arrays(bag, command_stream, config.command_topic, "command", len(command_joints))
        order = [list(command_joints).index(j) for j in states.names]
        commands = (times, values[:, order])
    episode_starts = None
    if config.episode_topic:
        if config.episode_topic not in all_topics:
            listing = ", ".join(sorted(all_topics))
            raise BagDatasetError(f"{bag}: episode topic {config.episode_topic} is not in the bag (topics: {listing})")
        stream = streams.get(config.episode_topic)
        episode_starts = np.asarray(stream.times if stream else [], dtype=np.int64)
    pairs = align(states, goals, commands, config, episode_starts)
    goal_size = goals[1].shape[1] if goals is not None else 0
    return pairs, condition_names(config, states.names, goal_size), states.names


def _arrays(bag, stream: TopicStream, topic: str, what: str, size: int | None = None):
    try:
        return arrays_from(stream, topic, what, size)
    except BagDatasetError as exc:
        raise BagDatasetError(f"{bag}: {exc}") from None


def extract(bags: Sequence[str | Path], config: ExtractionConfig) -> Demonstrations:
    """Pairs of every bag, episodes numbered 0.. across bags in order; errors name the bag."""
    if not bags:
        raise BagDatasetError("no bags given")
    conditions, actions, episodes, times, bag_index = [], [], [], [], []
    names: tuple[tuple[str, ...], tuple[str, ...]] | None = None
    next_episode = 0
    report = []
    for index, bag in enumerate(bags):
        pairs, cond_names, act_names = extract_bag(bag, config)
        if names is None:
            names = (cond_names, act_names)
        elif names != (cond_names, act_names):
            raise BagDatasetError(f"{bag}: its pairs have conditions {list(cond_names)} and actions "
                                  f"{list(act_names)}, but the first bag's have {list(names[0])} and "
                                  f"{list(names[1])}; pass --joints to fix the joint order")
        _, renumbered = np.unique(pairs.episodes, return_inverse=True)
        conditions.append(pairs.conditions)
        actions.append(pairs.actions)
        episodes.append(renumbered.reshape(-1).astype(np.int64) + next_episode)
        next_episode += int(renumbered.max()) + 1 if len(renumbered) else 0
        times.append(pairs.times * 1e-9)
        bag_index.append(np.full(len(pairs.times), index, np.int64))
        report.append((bag, len(pairs.times), pairs.dropped))
    total = sum(n for _, n, _ in report)
    if total == 0:
        reasons = "; ".join(f"{bag}: {', '.join(f'{k}: {v}' for k, v in dropped.items()) or 'no candidates'}"
                            for bag, _, dropped in report)
        raise BagDatasetError(f"no (condition, action) pairs could be aligned ({reasons})")
    return Demonstrations(
        conditions=np.concatenate(conditions), actions=np.concatenate(actions),
        condition_names=names[0], action_names=names[1],
        episode_ids=np.concatenate(episodes), times=np.concatenate(times),
        action_kind="delta" if config.action == "delta" else "absolute",
        sources=[str(b) for b in bags], bag_index=np.concatenate(bag_index), dropped=_sum_dropped(report),
        chunk=config.chunk)


def _sum_dropped(report) -> dict[str, int]:
    total: dict[str, int] = {}
    for _, _, dropped in report:
        for reason, count in dropped.items():
            total[reason] = total.get(reason, 0) + count
    return total
