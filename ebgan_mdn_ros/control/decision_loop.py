"""One decision, from a joint state to a command, and the episode it belongs to (numpy, no rclpy).

The node hands every joint state it answers to `DecisionLoop.step`; the loop owns the chain
state -> condition -> runtime -> target (absolute, or position + delta) -> safety filter -> command,
and the episode state that chain needs: whether the next command must be seeded from the measured
position, the previous action (the continuity reference for delta models) and the time of the last
command (the velocity cap's dt). The previous command and the seeding rule live in the safety
filter, which the loop owns: while it seeds, the runtime still decides but nothing is commanded.

A model swap (`adopt`) keeps the episode and the safety limits the loop started with: the next
command continues from the last one, and a model with a wider action box cannot widen the limits.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from ebgan_mdn_ros.control.safety_filter import SafetyConfig, SafetyFilter
from ebgan_mdn_ros.control.state_assembly import Rejected, StateAssembler


class StepResult(NamedTuple):
    """What one joint state led to.

    rejected: why the state (or goal) could not be used ("" when it could); then nothing else is set.
    decision: the runtime's Decision (None when rejected).
    command: what may go to the controller (None: publish nothing, e.g. stale state).
    held: the command repeats the previous one instead of following the policy.
    note: the safety filter's note ("" when the target passed unchanged).
    """
    rejected: str
    decision: object | None
    command: np.ndarray | None
    held: bool
    note: str


class DecisionLoop:
    """Not thread-safe: the node calls it from its one executor thread."""

    def __init__(self, runtime, joint_names: Sequence[str], safety: SafetyConfig):
        self.joint_names = tuple(joint_names)
        self._safety = SafetyFilter(safety, self.joint_names)
        self._safety.begin_seed()
        self._previous_action: np.ndarray | None = None
        self._last_command_time: float | None = None
        self.adopt(runtime)

    # -- model and episode -----------------------------------------------------------------------
    def adopt(self, runtime) -> None:
        """Serve ``runtime`` from the next step on (start-up or swap, never inside a step)."""
        self.runtime = runtime
        self.assembler = StateAssembler(runtime.manifest.condition_names, self.joint_names)
        self.delta = runtime.manifest.action_kind == "delta"
        self._previous_action = None

    def new_episode(self) -> None:
        """~/start: forget the kept mode; the next command starts at wherever the arm is (confirmed)."""
        self.runtime.reset()
        self._previous_action = None
        self._safety.begin_seed()

    def reset_episode(self) -> None:
        """~/reset: forget the kept mode mid-episode. The commands go on from the last one (re-seeding
        from a measured state here could jump by the tracking error, or follow one absurd state)."""
        self.runtime.reset()
        self._previous_action = None
        if not self._safety.seeded:
            self._safety.begin_seed()

    def reseed(self) -> None:
        """Arming (dry run off): the next command starts at the measured position; the mode is kept.
        Nothing reached the arm in dry run, so the seed is not held to the last computed command."""
        self._safety.begin_seed()

    @property
    def safety_counters(self) -> dict[str, int]:
        return self._safety.counters

    # -- one decision ----------------------------------------------------------------------------
    def step(self, names: Sequence[str], position: Sequence[float], velocity: Sequence[float] | None,
             goal: Sequence[float] | None, state_age_s: float, now: float) -> StepResult:
        """One joint state (in any joint order) and the latest goal -> what to command.

        state_age_s: signed age of the state (s); now: a monotonic time (s) for the velocity cap.
        """
        assembler = self.assembler
        reading = assembler.read_joints(names, position, velocity)
        if isinstance(reading, Rejected):
            return StepResult(reading.reason, None, None, False, "")
        goal_values = assembler.check_goal(goal)
        if isinstance(goal_values, Rejected):
            return StepResult(goal_values.reason, None, None, False, "")
        condition = assembler.condition(reading, goal_values)
        if self._safety.seeding:
            note = self._safety.offer_seed(reading.position, state_age_s)
            if note:  # decide (the telemetry shows what the model would do), command nothing
                decision = self.runtime.decide(condition, self._previous_action if self.delta else None)
                self._previous_action = decision.action
                return StepResult("", decision, None, False, note)
        # Continuity is measured against what the arm was last told: the previous command for joint
        # targets (the measured pose right after a seed), the previous action for deltas.
        previous = self._previous_action if self.delta else self._safety.previous_command
        decision = self.runtime.decide(condition, previous)
        self._previous_action = decision.action
        target = reading.position + decision.action if self.delta else decision.action
        dt = now - self._last_command_time if self._last_command_time is not None else 0.0
        result = self._safety.filter(target, reading.position, state_age_s, decision.trusted, dt)
        if result.command is not None:
            self._last_command_time = now
        return StepResult("", decision, result.command, result.held, result.note)
