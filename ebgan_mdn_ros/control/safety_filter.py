"""The last step before a command leaves the node: limits, rate limits and holds.

ROS-free. The node calls `SafetyFilter.filter` once per control tick with the policy's target and the
measured joint positions; what comes back is what may be published (or None: publish nothing).

Rules, in order of precedence (the first that applies decides; the `note` says which):
  1. state older than `state_timeout_s`, stamped more than `state_timeout_s` in the future (a clock
     that disagrees: the watchdog could not be trusted), or an age that is not a number -> None, "stale_state"
  2. measured position of the wrong size or not finite                           -> None, "bad_state"
  3. target of the wrong size or with NaN/inf                                     -> hold, "non_finite"
  4. untrusted decision (energy above threshold) and `hold_on_untrusted`          -> hold, "untrusted"
  5. otherwise the target, clamped into [position_lower, position_upper] ("clamped_limits"), then its
     change from the previous command clamped to min(max_step, max_velocity * dt) per joint
     ("clamped_step"; both: "clamped_limits,clamped_step").
"hold" = publish the previous command again. Stale state publishes nothing: with a position interface the
controller keeps the last command anyway, and a command computed from an old pose is never sent.

Invariants: a returned command is always finite, lies within the limits, and differs from the
previous command by at most the per-tick limit.

Seeding: the first command of an episode starts from a measured position (the seed), so activation
never jumps. One joint state is never trusted as a seed: after `begin_seed`, `offer_seed` accepts a
seed only once `seed_confirmations` consecutive states inside the limits agree within max_step of each
other. A seed outside the limits is always refused. `reset(measured_position)` seeds at once (it still
refuses a position outside the limits). A filter that was never seeded seeds itself from the first
good measured position inside the limits.
"""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np

from ebgan_mdn_ros.config_base import ConfigError, require

NOTE_OK = ""
NOTE_STALE = "stale_state"
NOTE_BAD_STATE = "bad_state"
NOTE_NON_FINITE = "non_finite"
NOTE_UNTRUSTED = "untrusted"
NOTE_CLAMPED_LIMITS = "clamped_limits"
NOTE_CLAMPED_STEP = "clamped_step"
NOTE_CLAMPED_BOTH = "clamped_limits,clamped_step"
NOTE_SEEDING = "seeding"                       # waiting for consecutive agreeing states
NOTE_SEED_OUT_OF_LIMITS = "seed_out_of_limits"
SEED_NOTES = (NOTE_SEEDING, NOTE_SEED_OUT_OF_LIMITS)  # a stale state while seeding is noted as stale

COUNTER_NAMES = ("commands", "held", "clamped_limits", "clamped_step", "non_finite", "untrusted",
                 "stale", "bad_state", "seeds_refused")


def _per_joint_or_scalar(value: float | tuple[float, ...], key: str) -> None:
    values = value if isinstance(value, tuple) else (value,)
    require(len(values) > 0, key, value, "a number or a non-empty list")
    for v in values:
        require(math.isfinite(v) and v > 0, key, value, "finite and > 0 (per joint or one for all)")


@dataclass(frozen=True)
class SafetyConfig:
    """Safety limits for one joint group, in raw units (rad for revolute joints, m for prismatic ones).

    position_lower/upper: per joint, in the filter's joint order; -inf/+inf allowed (continuous joints).
    max_step: largest change of the command per tick (rad or m), one for all joints or one per joint.
    max_velocity: largest command velocity (rad/s or m/s); the per-tick change is also capped by
      max_velocity * dt. One for all joints or one per joint.
    state_timeout_s: a joint state older than this publishes nothing.
    hold_on_untrusted: repeat the previous command when the policy marks its decision untrusted.
    seed_confirmations: consecutive agreeing joint states needed before one becomes the seed (1 = trust one).
    Defaults for max_step/max_velocity follow a deployed UR10e reference (0.05 rad per step, 1 rad/s).
    """
    position_lower: tuple[float, ...]
    position_upper: tuple[float, ...]
    max_step: float | tuple[float, ...] = 0.05
    max_velocity: float | tuple[float, ...] = 1.0
    state_timeout_s: float = 0.1
    hold_on_untrusted: bool = True
    seed_confirmations: int = 3

    def __post_init__(self):
        lower, upper = tuple(map(float, self.position_lower)), tuple(map(float, self.position_upper))
        object.__setattr__(self, "position_lower", lower)
        object.__setattr__(self, "position_upper", upper)
        for name in ("max_step", "max_velocity"):
            value = getattr(self, name)
            if isinstance(value, (list, tuple)):
                object.__setattr__(self, name, tuple(map(float, value)))
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                object.__setattr__(self, name, float(value))
            else:
                raise ConfigError(f"{name}: {value!r} is invalid, expected a number or a list of numbers")
        require(len(lower) > 0 and len(lower) == len(upper), "position_lower/position_upper",
                (lower, upper), "non-empty lists of equal length (one per joint)")
        for i, (lo, hi) in enumerate(zip(lower, upper)):
            require(not (math.isnan(lo) or math.isnan(hi)) and lo < hi and lo != math.inf and hi != -math.inf,
                    f"position_lower/position_upper[{i}]", (lo, hi), "lower < upper, not NaN")
        _per_joint_or_scalar(self.max_step, "max_step")
        _per_joint_or_scalar(self.max_velocity, "max_velocity")
        for name in ("max_step", "max_velocity"):
            value = getattr(self, name)
            require(not isinstance(value, tuple) or len(value) == len(lower), name, value,
                    f"one number, or {len(lower)} (one per joint)")
        require(math.isfinite(self.state_timeout_s) and self.state_timeout_s > 0, "state_timeout_s",
                self.state_timeout_s, "finite and > 0 (seconds)")
        require(isinstance(self.hold_on_untrusted, bool), "hold_on_untrusted", self.hold_on_untrusted,
                "true or false")
        require(isinstance(self.seed_confirmations, int) and 1 <= self.seed_confirmations <= 100,
                "seed_confirmations", self.seed_confirmations, "an integer in 1..100")

    @property
    def num_joints(self) -> int:
        return len(self.position_lower)


class SafetyResult(NamedTuple):
    """command: what to publish (a new array, finite), or None to publish nothing (stale or bad state).
    held: True when command repeats the previous one instead of following the policy.
    note: why the target was not passed through unchanged ("" when it was); see the NOTE_* constants."""
    command: np.ndarray | None
    held: bool
    note: str


class SafetyFilter:
    """Per-tick guard between the policy's target and the controller. Not thread-safe: call from one thread."""

    def __init__(self, config: SafetyConfig, joint_names: Sequence[str]):
        joint_names = tuple(joint_names)
        if len(joint_names) != config.num_joints:
            raise ConfigError(f"safety limits are given for {config.num_joints} joints, "
                              f"but the joint names are {list(joint_names)} ({len(joint_names)})")
        if len(set(joint_names)) != len(joint_names):
            raise ConfigError(f"joint names must be unique, got {list(joint_names)}")
        self.config = config
        self.joint_names = joint_names
        size = len(joint_names)
        self._lower = np.array(config.position_lower, dtype=np.float64)
        self._upper = np.array(config.position_upper, dtype=np.float64)
        self._max_step = np.broadcast_to(np.asarray(config.max_step, dtype=np.float64), (size,)).copy()
        self._max_velocity = np.broadcast_to(np.asarray(config.max_velocity, dtype=np.float64), (size,)).copy()
        self._previous = np.zeros(size)
        self._seeded = False
        self.seeding = False               # between begin_seed and an accepted seed
        self._seed_candidate = np.zeros(size)
        self._seed_agreeing = 0
        self._clamped = np.empty(size)     # target after the limit clamp
        self._step = np.empty(size)        # per-joint allowed change this tick
        self._scratch = np.empty(size)
        self._mask = np.empty(size, dtype=bool)
        self.counters: dict[str, int] = dict.fromkeys(COUNTER_NAMES, 0)

    @property
    def previous_command(self) -> np.ndarray | None:
        """A copy of the last command (or the seed), None before the first seed."""
        return self._previous.copy() if self._seeded else None

    def _inside_limits(self, position: np.ndarray) -> bool:
        return bool(np.all(position >= self._lower) and np.all(position <= self._upper))

    def reset(self, measured_position: Sequence[float] | np.ndarray) -> None:
        """Seed the previous command with the measured position at once (no confirmation)."""
        measured = np.asarray(measured_position, dtype=np.float64)
        if measured.shape != self._previous.shape or not np.all(np.isfinite(measured)):
            raise ValueError(f"reset needs {self._previous.size} finite joint positions "
                             f"({list(self.joint_names)}), got {measured_position!r}")
        if not self._inside_limits(measured):
            raise ValueError(f"seed {measured.tolist()} is outside the position limits "
                             f"[{self._lower.tolist()}, {self._upper.tolist()}]")
        self._previous[:] = measured
        self._seeded = True
        self.seeding = False

    @property
    def seeded(self) -> bool:
        return self._seeded

    def begin_seed(self) -> None:
        """The next command needs a new seed (a new episode, or arming after a dry run)."""
        self.seeding = True
        self._seed_agreeing = 0

    def offer_seed(self, measured_position: np.ndarray, state_age_s: float) -> str:
        """One measured position (finite, filter order) towards the seed: "" once seeded, else why not yet."""
        measured = measured_position
        timeout = self.config.state_timeout_s
        if not (-timeout <= state_age_s <= timeout):  # a stale state seeds nothing (also catches NaN)
            self._seed_agreeing = 0
            self.counters["stale"] += 1
            return NOTE_STALE
        if not self._inside_limits(measured):
            self._seed_agreeing = 0
            self.counters["seeds_refused"] += 1
            return NOTE_SEED_OUT_OF_LIMITS
        if self._seed_agreeing and np.any(np.abs(measured - self._seed_candidate) > self._max_step):
            self._seed_agreeing = 0  # a jump: this state starts a new run of agreeing ones
        self._seed_candidate[:] = measured
        self._seed_agreeing += 1
        if self._seed_agreeing < self.config.seed_confirmations:
            return NOTE_SEEDING
        self._previous[:] = measured
        self._seeded, self.seeding = True, False
        return NOTE_OK

    def reset_counters(self) -> None:
        for key in self.counters:
            self.counters[key] = 0

    def _hold(self, note: str, counter: str) -> SafetyResult:
        self.counters[counter] += 1
        self.counters["held"] += 1
        self.counters["commands"] += 1
        return SafetyResult(self._previous.copy(), True, note)

    def filter(self, target: np.ndarray, measured_position: np.ndarray, state_age_s: float,
               trusted: bool, dt: float) -> SafetyResult:
        """One tick. target and measured_position: [A] in the filter's joint order (raw units);
        state_age_s: age of the joint state the target answers (s, receipt clock minus header stamp; pass it
        signed, not clamped at 0: a stamp from the future beyond the timeout is refused); trusted: the policy's verdict;
        dt: time since the previous command (s; non-finite or <= 0 allows no motion this tick)."""
        timeout = self.config.state_timeout_s
        if not (-timeout <= state_age_s <= timeout):  # also catches NaN
            self.counters["stale"] += 1
            return SafetyResult(None, False, NOTE_STALE)
        measured = np.asarray(measured_position, dtype=np.float64)
        if measured.shape != self._previous.shape or not np.isfinite(measured).all():
            self.counters["bad_state"] += 1
            return SafetyResult(None, False, NOTE_BAD_STATE)
        if not self._seeded:
            if not self._inside_limits(measured):
                self.counters["seeds_refused"] += 1
                return SafetyResult(None, False, NOTE_SEED_OUT_OF_LIMITS)
            self._previous[:] = measured
            self._seeded = True
        target = np.asarray(target, dtype=np.float64)
        if target.shape != self._previous.shape or not np.isfinite(target).all():
            return self._hold(NOTE_NON_FINITE, "non_finite")
        if not trusted and self.config.hold_on_untrusted:
            return self._hold(NOTE_UNTRUSTED, "untrusted")

        # ufuncs with out= (np.clip costs ~4x as much per call on 7 joints)
        clamped, step, scratch, mask = self._clamped, self._step, self._scratch, self._mask
        np.minimum(target, self._upper, out=clamped)
        np.maximum(clamped, self._lower, out=clamped)
        limited = bool(np.not_equal(clamped, target, out=mask).any())

        dt = float(dt)
        if not (dt > 0.0 and math.isfinite(dt)):
            dt = 0.0
        np.multiply(self._max_velocity, dt, out=step)
        np.minimum(step, self._max_step, out=step)
        np.add(self._previous, step, out=scratch)           # highest command allowed this tick
        np.minimum(clamped, scratch, out=scratch)
        np.subtract(self._previous, step, out=step)         # lowest command allowed this tick
        np.maximum(scratch, step, out=scratch)
        stepped = bool(np.not_equal(scratch, clamped, out=mask).any())
        self._previous[:] = scratch

        if limited:
            self.counters["clamped_limits"] += 1
        if stepped:
            self.counters["clamped_step"] += 1
        self.counters["commands"] += 1
        note = NOTE_CLAMPED_BOTH if limited and stepped else (
            NOTE_CLAMPED_LIMITS if limited else NOTE_CLAMPED_STEP if stepped else NOTE_OK)
        return SafetyResult(self._previous.copy(), False, note)


class UrdfLimits(NamedTuple):
    """Per-joint limits read from a URDF, in the order of the requested joint names."""
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    velocity: tuple[float, ...]   # rad/s or m/s; inf where the URDF gives none


def limits_from_urdf(urdf_text: str, joint_names: Sequence[str], use_soft_limits: bool = True) -> UrdfLimits:
    """Position and velocity limits of ``joint_names`` from a URDF string.

    revolute/prismatic joints need a <limit lower upper velocity>; continuous joints get -inf/+inf.
    With ``use_soft_limits`` a <safety_controller soft_lower_limit soft_upper_limit> narrows the range.
    A joint that is missing, fixed/floating/planar, or without limits is a ValueError naming it.
    """
    try:
        root = ET.fromstring(urdf_text)
    except ET.ParseError as exc:
        raise ValueError(f"URDF does not parse: {exc}") from None
    joints = {j.get("name"): j for j in root.iter("joint")}
    lower, upper, velocity = [], [], []
    for name in joint_names:
        joint = joints.get(name)
        if joint is None:
            raise ValueError(f"joint {name!r} is not in the URDF (joints: {sorted(n for n in joints if n)})")
        kind = joint.get("type")
        limit = joint.find("limit")
        if kind == "continuous":
            lo, hi = -math.inf, math.inf
        elif kind in ("revolute", "prismatic"):
            if limit is None or limit.get("lower") is None or limit.get("upper") is None:
                raise ValueError(f"joint {name!r} ({kind}) has no <limit lower=... upper=...> in the URDF")
            lo, hi = float(limit.get("lower")), float(limit.get("upper"))
        else:
            raise ValueError(f"joint {name!r} is of type {kind!r}; only revolute, prismatic and continuous "
                             "joints can be commanded")
        safety = joint.find("safety_controller")
        if use_soft_limits and safety is not None:
            if safety.get("soft_lower_limit") is not None:
                lo = max(lo, float(safety.get("soft_lower_limit")))
            if safety.get("soft_upper_limit") is not None:
                hi = min(hi, float(safety.get("soft_upper_limit")))
        if not lo < hi:
            raise ValueError(f"joint {name!r}: URDF limits lower={lo} upper={hi} leave no range")
        vel = float(limit.get("velocity")) if limit is not None and limit.get("velocity") is not None else math.inf
        if not vel > 0:
            raise ValueError(f"joint {name!r}: URDF velocity limit {vel} must be > 0")
        lower.append(lo)
        upper.append(hi)
        velocity.append(vel)
    return UrdfLimits(tuple(lower), tuple(upper), tuple(velocity))
