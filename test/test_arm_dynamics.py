"""The simulated arm's dynamics and goal tasks, with hand-computed values."""
import math

import numpy as np
import pytest

from ebgan_mdn_ros.sim.arm_dynamics import ArmConfig, FirstOrderArm, GoalSchedule, TaskConfig, TrajectoryTarget
from ebgan_mdn_ros.tasks.planar_arm import elbow_mode, planar_forward_kinematics, planar_inverse_kinematics

ARM = ArmConfig(("a", "b"), (-1.0, -1.0), (1.0, 1.0), (0.0, 0.0), time_constant_s=0.1, max_velocity=100.0)


def test_first_order_step_closes_the_exponential_fraction():
    arm = FirstOrderArm(ARM)
    arm.step(np.array([0.5, -0.5]), 0.1)
    expected = 0.5 * (1 - math.exp(-1))
    np.testing.assert_allclose(arm.position, [expected, -expected])
    np.testing.assert_allclose(arm.velocity, [expected / 0.1, -expected / 0.1])


def test_velocity_cap_and_limits():
    arm = FirstOrderArm(ArmConfig(("a",), (-1.0,), (1.0,), (0.0,), time_constant_s=0.001, max_velocity=2.0))
    arm.step(np.array([5.0]), 0.1)
    assert arm.position[0] == pytest.approx(0.2)
    for _ in range(20):
        arm.step(np.array([5.0]), 0.1)
    assert arm.position[0] == 1.0


def test_no_command_means_no_motion():
    arm = FirstOrderArm(ARM)
    arm.step(None, 0.1)
    assert arm.position.tolist() == [0.0, 0.0]


def test_trajectory_interpolates_from_the_start_and_holds_the_last_point():
    target = TrajectoryTarget()
    assert target.target(0.0) is None
    target.set(10.0, np.array([0.0, 0.0]), [1.0, 2.0], [[1.0, 2.0], [3.0, 2.0]])
    np.testing.assert_allclose(target.target(10.5), [0.5, 1.0])
    np.testing.assert_allclose(target.target(11.5), [2.0, 2.0])
    np.testing.assert_allclose(target.target(99.0), [3.0, 2.0])
    with pytest.raises(ValueError, match="strictly increasing"):
        target.set(0.0, np.zeros(2), [1.0, 1.0], [[0, 0], [1, 1]])


def test_forward_kinematics_and_elbow_mode():
    np.testing.assert_allclose(planar_forward_kinematics([0.0, 0.0]), [6.0, 0.0])
    np.testing.assert_allclose(planar_forward_kinematics([math.pi / 2, -math.pi / 2]), [3.0, 3.0], atol=1e-12)
    assert elbow_mode([0.0, 0.4]) == "elbow_up" and elbow_mode([0.0, -0.4]) == "elbow_down"


def test_ik_goals_lie_in_the_annulus_and_are_scored_by_end_effector_error():
    schedule = GoalSchedule(TaskConfig(seed=3))
    for _ in range(200):
        goal = schedule.new_goal(0.0)
        assert 1.0 <= np.linalg.norm(goal) <= 5.5 and goal[0] >= 0
    schedule.goal = np.array([6.0, 0.0])
    assert schedule.update(0.1, [0.0, 0.3]) is None  # far away, not timed out
    event = schedule.update(0.2, [0.0, 0.0])
    assert event.outcome == "reached" and event.mode == "elbow_down" and schedule.tally.reached == 1
    assert schedule.goal is None


def test_a_goal_times_out():
    schedule = GoalSchedule(TaskConfig(timeout_s=1.0))
    schedule.new_goal(0.0)
    assert schedule.update(0.5, [3.0, 3.0]) is None
    assert schedule.update(1.0, [3.0, 3.0]).outcome == "timeout"
    assert schedule.tally.success_rate == 0.0


def test_multiroute_restarts_near_the_origin_and_counts_the_box():
    schedule = GoalSchedule(TaskConfig(task="multiroute"))
    goal = schedule.new_goal(0.0)
    assert goal.tolist() == [20.0, 20.0] and np.linalg.norm(schedule.start_position) < 2.0
    assert schedule.update(1.0, [18.0, 20.0]) is None
    assert schedule.update(2.0, [19.5, 20.5]).outcome == "reached"


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="task"):
        TaskConfig(task="maze")
    with pytest.raises(ValueError, match="reach"):
        TaskConfig(goal_radius_max=7.0)
    with pytest.raises(ValueError, match="one per joint"):
        ArmConfig(("a",), (0.0, 0.0), (1.0,), (0.0,))


def test_inverse_kinematics_reaches_targets_in_both_elbow_modes_with_unequal_links():
    rng = np.random.default_rng(0)
    radius, bearing = rng.uniform(1.2, 2.8, 200), rng.uniform(-np.pi, np.pi, 200)
    targets = np.stack([radius * np.cos(bearing), radius * np.sin(bearing)], -1)
    for sign in (1.0, -1.0):
        angles = planar_inverse_kinematics(targets, sign, (2.0, 1.0))
        np.testing.assert_allclose(planar_forward_kinematics(angles, (2.0, 1.0)), targets, atol=1e-9)
        assert np.all(np.sign(angles[:, 1]) == sign) and np.all(np.abs(angles[:, 0]) <= np.pi)
    # out of reach: the arm stretches towards the target
    np.testing.assert_allclose(planar_inverse_kinematics([10.0, 0.0], 1.0, (2.0, 1.0)), [0.0, 0.0], atol=1e-12)
