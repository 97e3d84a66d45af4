"""Action chunks from joint states to commands, and the episode they belong to (numpy, no rclpy).

The chunk counterpart of decision_loop.py, in three calls so that inference runs elsewhere:
  request(...)  executor thread: state -> condition, plus the previous plan's tail at the new
                chunk's step times (the splice reference), or a reason why not;
  decide(...)   any one thread (the node's worker): PolicyRuntime.decide on it;
  accept(...)   executor thread: the chunk -> absolute targets at their due times, the steps
                already too close dropped, spliced into the plan at the point being executed.
In joint_trajectory mode every point sent passes the safety filter in order, from the point being
executed, with the time between points as its dt (the accepted points are returned). In
forward_command mode `tick` samples the plan at the control rate and every command passes the
filter as a per-step command does. A splice whose first step the filter had to clamp is counted
(splice_clamped): with max_step that is a jump the latency or the chunk choice caused.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np

from ebgan_mdn_ros.control import chunk_schedule as schedule
from ebgan_mdn_ros.control.chunk_player import ChunkPlayer, TemporalEnsemble
from ebgan_mdn_ros.control.safety_filter import NOTE_CLAMPED_BOTH, NOTE_CLAMPED_STEP, SafetyConfig, SafetyFilter
from ebgan_mdn_ros.control.state_assembly import Rejected, StateAssembler


class ChunkRequest(NamedTuple):
    condition: np.ndarray
    tail: np.ndarray | None       # [T, A] in the model's action units, or None (no plan to continue)
    position: np.ndarray          # measured joint positions of the answered state
    observed_ns: int              # monotonic time the state was observed (receipt minus its age)
    state_age_s: float


class TrajectoryPoints(NamedTuple):
    """What a JointTrajectory carries: exact times from now, targets and velocities per point."""
    time_from_start_ns: np.ndarray   # [N] int64, strictly increasing, > 0
    positions: np.ndarray            # [N, A]
    velocities: np.ndarray           # [N, A]


class ChunkTiming(NamedTuple):
    """Checked at start-up and at a swap (ChunkTiming.of raises ValueError naming the setting)."""
    horizon: int
    n_exec: int
    dt_ns: int
    control_period_ns: int
    min_lead_ns: int

    @classmethod
    def of(cls, chunk, n_exec: int, control_rate_hz: float, min_lead_s: float) -> "ChunkTiming":
        if not control_rate_hz > 0:
            raise ValueError(f"control_rate_hz: {control_rate_hz!r}; a chunk model is played out at a fixed "
                             "control rate, not event-driven (0)")
        n_exec = n_exec or chunk.n_exec
        if not 1 <= n_exec <= chunk.horizon:
            raise ValueError(f"chunk_n_exec: {n_exec} is outside 1..{chunk.horizon} (the model's chunk horizon)")
        period = 1.0 / control_rate_hz
        ticks = chunk.dt / period
        if round(ticks) < 1 or abs(ticks - round(ticks)) > 1e-6:
            raise ValueError(f"chunk.dt: the model's {chunk.dt:g} s steps do not fit control_rate_hz "
                             f"{control_rate_hz:g} (a period of {period:g} s): dt must be a whole number of periods")
        if chunk.horizon * chunk.dt <= min_lead_s + period:
            raise ValueError(f"chunk.horizon: {chunk.horizon} steps of {chunk.dt:g} s end before the first "
                             f"could be sent (chunk_min_lead_s {min_lead_s:g} s + one period)")
        return cls(chunk.horizon, n_exec, schedule.seconds_to_ns(chunk.dt), schedule.seconds_to_ns(period),
                   schedule.seconds_to_ns(min_lead_s))


class ChunkLoop:
    """Not thread-safe, except `decide`, which touches only the runtime (one caller at a time)."""

    def __init__(self, runtime, joint_names: Sequence[str], safety: SafetyConfig, timing: ChunkTiming,
                 trajectory: bool, ensemble_decay: float | None = None):
        """trajectory: joint_trajectory output (the points are filtered at accept) or forward_command
        (each tick's command is). ensemble_decay: temporal ensembling instead of the splice (compared only)."""
        self.joint_names = tuple(joint_names)
        self.timing = timing
        self.trajectory = trajectory
        self._safety = SafetyFilter(safety, self.joint_names)
        self._safety.begin_seed()
        joints = len(self.joint_names)
        self._player = (ChunkPlayer(joints, timing.horizon) if ensemble_decay is None else
                        TemporalEnsemble(joints, timing.horizon * timing.horizon, ensemble_decay, timing.horizon))
        self._last_observed_ns: int | None = None
        self._last_tick: float | None = None
        self._trusted = True
        self.counters = {"chunks": 0, "points_sent": 0, "points_stale": 0, "splice_clamped": 0,
                         "untrusted_chunks": 0, "idle_ticks": 0}
        self.idle_s = 0.0            # time the arm had no future point before a chunk arrived
        self._episode_chunks = 0     # before an episode's first chunk the arm rests at its seed: not idle
        self._first_tick_after_splice = False
        self._velocities = np.zeros((timing.horizon, joints))
        self.adopt(runtime)

    # -- model and episode -----------------------------------------------------------------------
    def adopt(self, runtime) -> None:
        self.runtime = runtime
        self.assembler = StateAssembler(runtime.manifest.condition_names, self.joint_names)
        self.delta = runtime.manifest.action_kind == "delta"

    def new_episode(self) -> None:
        self.runtime.reset()
        self._player.clear()
        self._last_observed_ns = None
        self._episode_chunks = 0
        self._safety.begin_seed()

    reseed = new_episode  # arming after a dry run: start from the measured position

    def reset_episode(self) -> None:
        """~/reset: forget the kept mode; the running plan goes on and the next chunk splices into it."""
        self.runtime.reset()

    @property
    def safety_counters(self) -> dict[str, int]:
        return self._safety.counters

    def due(self, now_ns: int, latency_ns: int) -> bool:
        """Whether to ask for the next chunk now: none yet, or the running one's n_exec-th step is
        less than the expected latency (plus a period) away, so the next arrives before it is reached."""
        if self._last_observed_ns is None:
            return True
        t = self.timing
        replan_at = self._last_observed_ns + t.n_exec * t.dt_ns
        return now_ns >= replan_at - latency_ns - t.control_period_ns

    # -- the three steps -------------------------------------------------------------------------
    def request(self, names, position, velocity, goal, state_age_s: float, now_ns: int) -> ChunkRequest | str:
        """A request for the worker, or why there is none (a rejected state, or seeding)."""
        reading = self.assembler.read_joints(names, position, velocity)
        if isinstance(reading, Rejected):
            return reading.reason
        goal_values = self.assembler.check_goal(goal)
        if isinstance(goal_values, Rejected):
            return goal_values.reason
        if self._safety.seeding or not self._safety.seeded:
            note = self._safety.offer_seed(reading.position, state_age_s)
            if note:
                return note
            self._player.start(now_ns * 1e-9, self._safety.previous_command)
        observed_ns = now_ns - schedule.seconds_to_ns(max(state_age_s, 0.0))
        due = schedule.due_times_ns(observed_ns, self.timing.dt_ns, self.timing.horizon) * 1e-9
        tail = None
        if self._last_observed_ns is not None:  # continue the running chunk's plan where it goes
            tail = self._player.at(due)
            if self.delta:
                tail = tail - reading.position
        return ChunkRequest(self.assembler.condition(reading, goal_values), tail, reading.position.copy(),
                            observed_ns, state_age_s)

    def decide(self, request: ChunkRequest):
        return self.runtime.decide(request.condition, request.tail)

    def accept(self, request: ChunkRequest, decision, now_ns: int, measured: np.ndarray,
               state_age_s: float) -> TrajectoryPoints | None:
        """Splice the decided chunk in at now; the points to send (joint_trajectory), None if none."""
        timing = self.timing
        self._last_observed_ns = request.observed_ns
        if not decision.trusted and self._safety.config.hold_on_untrusted:
            self.counters["untrusted_chunks"] += 1  # the running plan goes on (and ends at rest)
            return None
        steps = decision.action.reshape(timing.horizon, -1)
        targets = steps + request.position if self.delta else steps
        due_ns = schedule.due_times_ns(request.observed_ns, timing.dt_ns, timing.horizon)
        first = schedule.first_live_step(due_ns, now_ns, timing.min_lead_ns)
        self.counters["points_stale"] += first
        if first >= timing.horizon:
            return None
        now = now_ns * 1e-9
        if self._episode_chunks and now > self._player.end_time:
            self.idle_s += now - self._player.end_time
        here = self._player.sample(now).copy()
        times = due_ns[first:] * 1e-9
        if not self.trajectory:  # forward_command: the tick filters every command it sends
            self._player.splice(now, times, targets[first:])
            self.counters["chunks"] += 1
            self._episode_chunks += 1
            self._first_tick_after_splice = True
            return None
        points = self._filtered(targets[first:], times, here, now, measured, state_age_s)
        if points is None:
            return None
        self._player.splice(now, times, points)
        self.counters["chunks"] += 1
        self._episode_chunks += 1
        self.counters["points_sent"] += len(points)
        velocities = schedule.finite_difference_velocities(times, points, now, here,
                                                           out=self._velocities[:len(times)])
        return TrajectoryPoints(due_ns[first:] - now_ns, points, velocities)

    def _filtered(self, targets, times, here, now, measured, state_age_s) -> np.ndarray | None:
        """Each point through the safety filter in order, from the point being executed (None: the
        state is stale or bad, send nothing and let the running trajectory go on)."""
        self._safety.reset(here)
        out = np.empty_like(targets)
        previous_t = now
        for row in range(len(targets)):
            result = self._safety.filter(targets[row], measured, state_age_s, True, times[row] - previous_t)
            if result.command is None:
                return None
            if row == 0 and result.note in (NOTE_CLAMPED_STEP, NOTE_CLAMPED_BOTH):
                self.counters["splice_clamped"] += 1
            out[row] = result.command
            previous_t = times[row]
        return out

    def hold(self, now_ns: int) -> TrajectoryPoints | None:
        """~/stop in joint_trajectory mode: one point, the plan's target now, reached after the
        minimum lead at rest; the plan ends there (None: nothing was planned yet)."""
        if self._player.empty:
            return None
        here = self._player.sample(now_ns * 1e-9).copy()
        lead_ns = max(self.timing.min_lead_ns, self.timing.control_period_ns)
        self._player.start((now_ns + lead_ns) * 1e-9, here)
        return TrajectoryPoints(np.array([lead_ns], np.int64), here[None, :], np.zeros((1, here.size)))

    def tick(self, now: float, measured: np.ndarray, state_age_s: float) -> np.ndarray | None:
        """forward_command: the plan's target now, through the safety filter (None: send nothing)."""
        if self._player.empty:
            return None
        if self._episode_chunks and now > self._player.end_time:
            self.counters["idle_ticks"] += 1  # past the last chunk's end: the arm holds, waiting for the next
        target = self._player.sample(now)
        dt = now - self._last_tick if self._last_tick is not None else 0.0
        result = self._safety.filter(target, measured, state_age_s, True, dt if math.isfinite(dt) else 0.0)
        if result.command is not None:
            self._last_tick = now
            if self._first_tick_after_splice and result.note in (NOTE_CLAMPED_STEP, NOTE_CLAMPED_BOTH):
                self.counters["splice_clamped"] += 1
            self._first_tick_after_splice = False
        return result.command
