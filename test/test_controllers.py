"""The emulated ForwardCommandController and JointTrajectoryController, with hand-computed values."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ebgan_mdn_ros.sim.controllers import (
    FORWARD, TRAJECTORY, ControllerSwitch, ForwardCommandController, JointTrajectoryController)

JOINTS = ("a", "b", "c")


def test_forward_commands_in_joint_order_and_refusals_change_nothing():
    forward = ForwardCommandController(JOINTS)
    assert forward.target is None
    assert forward.command([0.1, 0.2, 0.3]) is None
    for bad in ([0.1, 0.2], [0.1, 0.2, 0.3, 0.4], [0.1, math.nan, 0.3], [math.inf, 0.0, 0.0]):
        reason = forward.command(bad)
        assert reason, bad
        np.testing.assert_allclose(forward.target, [0.1, 0.2, 0.3])
    assert "2 values for 3 joints" in forward.command([1.0, 2.0])
    assert "non-finite" in forward.command([0.0, math.nan, 0.0])


def test_linear_trajectory_by_name_from_the_current_state():
    jtc = JointTrajectoryController(JOINTS)
    # joints given out of order: mapped by name
    assert jtc.submit(["c", "a", "b"], [1.0, 2.0], [[3.0, 1.0, 2.0], [3.0, 3.0, 2.0]], now=10.0,
                      current_position=[0.0, 0.0, 0.0]) is None
    position, velocity = jtc.sample(10.5)
    np.testing.assert_allclose(position, [0.5, 1.0, 1.5])
    np.testing.assert_allclose(velocity, [1.0, 2.0, 3.0])
    np.testing.assert_allclose(jtc.sample(11.5)[0], [2.0, 2.0, 3.0])
    position, velocity = jtc.sample(20.0)  # after the end: hold the last point at rest
    np.testing.assert_allclose(position, [3.0, 2.0, 3.0])
    np.testing.assert_allclose(velocity, 0.0)


def test_cubic_hermite_where_velocities_are_given():
    jtc = JointTrajectoryController(("a",))
    assert jtc.submit(["a"], [1.0], [[1.0]], [[0.0]], now=0.0, current_position=[0.0], current_velocity=[0.0]) is None
    # from rest to rest over 1 s: p = 3 s^2 - 2 s^3, v = 6 s - 6 s^2
    for s in (0.25, 0.5, 0.75):
        position, velocity = jtc.sample(s)
        assert position[0] == pytest.approx(3 * s * s - 2 * s ** 3)
        assert velocity[0] == pytest.approx(6 * s - 6 * s * s)
    # a point with velocities after one without: that segment is linear
    assert jtc.submit(["a"], [1.0, 2.0], [[1.0], [3.0]], [[], [5.0]], now=0.0, current_position=[0.0]) is None
    assert jtc.sample(1.5)[0][0] == pytest.approx(2.0)


def test_a_replacement_mid_trajectory_starts_from_the_current_desired_state():
    jtc = JointTrajectoryController(("a",))
    jtc.submit(["a"], [1.0], [[1.0]], [[0.0]], now=0.0, current_position=[0.0])
    before_p, before_v = jtc.sample(0.5)  # 0.5 and 1.5 rad/s
    assert jtc.submit(["a"], [1.0], [[-1.0]], [[0.0]], now=0.5) is None
    after_p, after_v = jtc.sample(0.5)
    np.testing.assert_allclose(after_p, before_p)
    np.testing.assert_allclose(after_v, before_v)  # no velocity jump either
    shortly = jtc.sample(0.51)[0][0]
    assert abs(shortly - before_p[0]) < 0.02  # continuous
    np.testing.assert_allclose(jtc.sample(1.5)[0], [-1.0])


def test_a_future_stamp_moves_from_the_current_state_to_the_first_point_meanwhile():
    jtc = JointTrajectoryController(("a",))
    assert jtc.submit(["a"], [0.0, 1.0], [[1.0], [2.0]], now=0.0, start_time=1.0, current_position=[0.0]) is None
    np.testing.assert_allclose(jtc.sample(0.5)[0], [0.5])
    np.testing.assert_allclose(jtc.sample(1.5)[0], [1.5])
    assert "in the past" in jtc.submit(["a"], [0.5], [[1.0]], now=10.0, start_time=5.0)


@pytest.mark.parametrize("names, times, positions, velocities, expected", [
    (["a", "b"], [1.0], [[0.0, 0.0]], None, "lacks joint(s) ['c']"),
    (["a", "b", "x"], [1.0], [[0.0, 0.0, 0.0]], None, "unknown joint(s) ['x']"),
    (["a", "a", "b", "c"], [1.0], [[0.0] * 4], None, "repeat"),
    (JOINTS, [1.0, 0.5], [[0.0] * 3, [1.0] * 3], None, "strictly increasing"),
    (JOINTS, [1.0, 1.0], [[0.0] * 3, [1.0] * 3], None, "strictly increasing"),
    (JOINTS, [1.0], [[0.0, math.nan, 0.0]], None, "non-finite"),
    (JOINTS, [1.0], [[0.0] * 3], [[0.0, math.inf, 0.0]], "non-finite"),
    (JOINTS, [1.0], [[0.0, 0.0]], None, "2 positions for 3 joints"),
    (JOINTS, [1.0], [[0.0] * 3], [[0.0]], "1 velocities"),
    (JOINTS, [], [], None, "no points"),
    (JOINTS, [1.0, 2.0], [[0.0] * 3], None, "2 times, 1 position"),
])
def test_refused_trajectories_have_a_reason_and_change_nothing(names, times, positions, velocities, expected):
    jtc = JointTrajectoryController(JOINTS)
    jtc.submit(JOINTS, [1.0], [[1.0, 1.0, 1.0]], now=0.0, current_position=[0.0, 0.0, 0.0])
    before = jtc.sample(0.5)
    reason = jtc.submit(names, times, positions, velocities, now=0.2)
    assert reason is not None and expected in reason, reason
    np.testing.assert_allclose(jtc.sample(0.5)[0], before[0])
    assert jtc.end_time == 1.0


def test_the_switch_follows_the_last_accepted_command_and_counts_refusals():
    switch = ControllerSwitch(JOINTS)
    assert switch.desired(0.0) is None
    assert switch.forward_command([1.0, 2.0, 3.0]) is None
    assert switch.active == FORWARD
    # a trajectory after forward commands starts from the forward target, not the measured position
    assert switch.trajectory_command(JOINTS, [1.0], [[3.0, 2.0, 1.0]], now=5.0, measured_position=[9.0, 9.0, 9.0]) is None
    assert switch.active == TRAJECTORY
    np.testing.assert_allclose(switch.desired(5.5)[0], [2.0, 2.0, 2.0])
    assert switch.forward_command([1.0]) is not None  # refused: the trajectory keeps driving
    assert switch.active == TRAJECTORY
    assert switch.trajectory_command(["a"], [1.0], [[0.0]], now=5.6) is not None
    np.testing.assert_allclose(switch.desired(5.5)[0], [2.0, 2.0, 2.0])
    assert switch.accepted == {FORWARD: 1, TRAJECTORY: 1} and switch.refused == {FORWARD: 1, TRAJECTORY: 1}
    # the first command ever, a trajectory: it starts from the measured position
    fresh = ControllerSwitch(JOINTS)
    fresh.trajectory_command(JOINTS, [2.0], [[2.0, 2.0, 2.0]], now=0.0, measured_position=[0.0, 0.0, 0.0])
    np.testing.assert_allclose(fresh.desired(1.0)[0], [1.0, 1.0, 1.0])
