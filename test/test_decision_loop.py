"""The decision loop without ROS: state -> condition -> runtime -> target -> safety filter -> command."""
import dataclasses

import numpy as np
import pytest

from model_factory import build_model_dir

from ebgan_mdn_ros.control.decision_loop import DecisionLoop
from ebgan_mdn_ros.control.safety_filter import SafetyConfig
from ebgan_mdn_ros.runtime.policy_runtime import PolicyRuntime
from ebgan_mdn_ros.runtime.runtime_config import RuntimeConfig

JOINTS = ("j1", "j2")
# Seeding trusts one state here, so the first state is the seed; the seeding tests use the default (3).
SAFETY = SafetyConfig(position_lower=(-3.0, -3.0), position_upper=(3.0, 3.0), max_step=0.05, max_velocity=100.0,
                      state_timeout_s=0.5, seed_confirmations=1)
SEEDING = dataclasses.replace(SAFETY, seed_confirmations=3)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("loop_models")
    return {
        "absolute": build_model_dir(root / "absolute", ("j1.position", "j2.position", "goal.0"), JOINTS,
                                    hidden_sizes=(8,)),
        "delta": build_model_dir(root / "delta", ("j1.position", "j2.position"), JOINTS, hidden_sizes=(8,),
                                 action_kind="delta"),
    }


def runtime_for(model_dir, seed=0):
    return PolicyRuntime(model_dir, RuntimeConfig(num_candidates=16, seed=seed))


def test_commands_equal_runtime_then_filter_and_start_at_the_measured_position(models):
    loop = DecisionLoop(runtime_for(models["absolute"]), JOINTS, SAFETY)
    reference = runtime_for(models["absolute"])
    position, previous = np.array([0.2, -0.1]), np.array([0.2, -0.1])
    for tick in range(5):
        # joint order reversed on the wire: the loop reorders by name
        result = loop.step(["j2", "j1"], position[::-1], None, [0.5], 0.0, now=0.01 * tick)
        expected = reference.decide(np.array([position[0], position[1], 0.5]), previous).action
        assert result.rejected == "" and np.array_equal(result.decision.action, expected)
        step = np.clip(expected, -3.0, 3.0) - previous
        allowed = 0.0 if tick == 0 else 0.05
        np.testing.assert_allclose(result.command, previous + np.clip(step, -allowed, allowed))
        previous = result.command


def test_a_missing_goal_or_joint_is_rejected_and_commands_nothing(models):
    loop = DecisionLoop(runtime_for(models["absolute"]), JOINTS, SAFETY)
    assert loop.step(list(JOINTS), [0.0, 0.0], None, None, 0.0, 0.0).rejected == "no goal received yet"
    missing = loop.step(["j1"], [0.0], None, [0.5], 0.0, 0.0)
    assert "missing joint" in missing.rejected and missing.command is None and missing.decision is None


def test_delta_targets_are_position_plus_action(models):
    loop = DecisionLoop(runtime_for(models["delta"]), JOINTS, dataclasses.replace(SAFETY, max_step=10.0,
                                                                                  max_velocity=1e6))
    loop.step(list(JOINTS), [0.1, 0.1], None, None, 0.0, 0.0)            # seed
    result = loop.step(list(JOINTS), [0.1, 0.1], None, None, 0.0, 1.0)
    np.testing.assert_allclose(result.command, np.clip(np.array([0.1, 0.1]) + result.decision.action, -3, 3))


def test_new_episode_reseeds_at_the_measured_position_and_a_swap_continues(models):
    loop = DecisionLoop(runtime_for(models["absolute"]), JOINTS, SAFETY)
    first = loop.step(list(JOINTS), [0.0, 0.0], None, [0.5], 0.0, 0.0)
    np.testing.assert_allclose(first.command, [0.0, 0.0])              # seeded: no motion on tick 0
    loop.new_episode()
    again = loop.step(list(JOINTS), [1.0, 1.0], None, [0.5], 0.0, 0.01)
    assert np.all(np.abs(again.command - [1.0, 1.0]) <= 0.05 + 1e-12)   # from the new measured position
    loop.adopt(runtime_for(models["absolute"], seed=1))
    swapped = loop.step(list(JOINTS), [1.0, 1.0], None, [0.5], 0.0, 0.02)
    assert np.all(np.abs(swapped.command - again.command) <= 0.05 + 1e-12)  # no re-seed on a swap


def _commands_after_reset(loop, states):
    """Feed states (each [j1, j2]) after a new episode; return the commands sent."""
    loop.new_episode()
    commands = []
    for tick, position in enumerate(states):
        result = loop.step(list(JOINTS), position, None, [0.5], 0.0, now=1.0 + 0.01 * tick)
        if result.command is not None:
            commands.append(result.command)
    return commands


@pytest.mark.parametrize("absurd", [[2.5, -2.5], [5.0, 5.0]], ids=["far_inside_limits", "outside_limits"])
def test_one_absurd_state_after_a_reset_never_becomes_the_seed(models, absurd):
    loop = DecisionLoop(runtime_for(models["absolute"]), JOINTS, SEEDING)
    for tick in range(5):
        before = loop.step(list(JOINTS), [0.2, 0.2], None, [0.5], 0.0, now=0.01 * tick)
    commands = [before.command] + _commands_after_reset(loop, [absurd] + [[0.2, 0.2]] * 6)
    steps = np.abs(np.diff(np.array(commands), axis=0))
    assert len(commands) > 1 and steps.max() <= 0.05 + 1e-9, steps       # never more than max_step per tick
    assert np.all(np.abs(np.array(commands)) <= 3.0)                      # never outside the limits


def test_a_reset_keeps_the_command_reference_so_a_far_state_moves_nothing(models):
    loop = DecisionLoop(runtime_for(models["absolute"]), JOINTS, SEEDING)
    for tick in range(4):
        last = loop.step(list(JOINTS), [0.2, 0.2], None, [0.5], 0.0, now=0.01 * tick).command
    loop.reset_episode()  # ~/reset: the arm is still where it was told to be
    after = [loop.step(list(JOINTS), [1.5, 1.5], None, [0.5], 0.0, now=1.0 + 0.01 * i).command for i in range(3)]
    steps = np.abs(np.diff(np.array([last] + after), axis=0))
    assert steps.max() <= 0.05 + 1e-9


def test_a_swap_keeps_the_limits_the_loop_started_with(models, tmp_path):
    wide = build_model_dir(tmp_path / "wide", ("j1.position", "j2.position", "goal.0"), JOINTS, hidden_sizes=(8,),
                           action_low=(3.0, 3.0), action_high=(5.0, 5.0))
    loop = DecisionLoop(runtime_for(models["absolute"]), JOINTS, dataclasses.replace(
        SAFETY, position_lower=(-0.5, -0.5), position_upper=(0.5, 0.5), max_step=10.0, max_velocity=1e6))
    loop.adopt(runtime_for(wide))
    commands = [loop.step(list(JOINTS), [0.0, 0.0], None, [0.5], 0.0, now=0.1 * i).command for i in range(1, 6)]
    assert np.all(np.abs(np.array(commands[1:])) <= 0.5)
