"""The 2-D tasks' arms in MuJoCo (sim/task_arms.py) and their goal schedule, with hand-computed values."""
import math

import numpy as np
import pytest

from ebgan_mdn_ros.sim.goal_schedule import GoalSchedule, TaskConfig
from ebgan_mdn_ros.sim.mujoco_arm import MujocoArm
from ebgan_mdn_ros.sim.task_arms import TASK_ARMS, task_arm_config
from ebgan_mdn_ros.tasks.planar_arm import elbow_mode, planar_forward_kinematics, planar_inverse_kinematics

@pytest.fixture(scope="module", params=sorted(TASK_ARMS))
def task_arm(request):
    return request.param, MujocoArm(task_arm_config(request.param))


def test_the_2link_model_is_the_tasks_geometry():
    """One home for the link lengths: the MuJoCo arm's tip is the IK task's forward kinematics."""
    arm = MujocoArm(task_arm_config("ik"))
    assert arm.joint_names == ("shoulder", "elbow")
    for q in ([0.0, 0.0], [0.3, 1.2], [-2.5, -1.0], [math.pi / 2, -math.pi / 2]):
        tip, _ = arm.forward_kinematics(q)
        np.testing.assert_allclose(tip[:2], planar_forward_kinematics(q), atol=1e-9)


def test_both_arms_start_at_their_preset_and_hold_it(task_arm):
    task, arm = task_arm
    arm.reset()
    np.testing.assert_allclose(arm.position, TASK_ARMS[task].initial_position)
    arm.step(500)
    np.testing.assert_allclose(arm.position, TASK_ARMS[task].initial_position, atol=1e-6)  # no command: it stays


@pytest.mark.parametrize("joint", [0, 1])
def test_a_small_step_rises_fast_without_overshoot(task_arm, joint):
    """Position servos, critically damped: 90 % of a 0.05 step of one joint within 60 ms (2-link) or
    25 ms (gantry). (Both 2-link joints at once overshoot ~5 %: the servos are tuned on the inertia's
    diagonal, and the links are coupled, as on a real arm.)"""
    task, arm = task_arm
    arm.reset()
    start = arm.position.copy()
    arm.set_target(start + 0.05 * np.eye(2)[joint])
    rise = []
    for _ in range(200):
        arm.step()
        rise.append((arm.position[joint] - start[joint]) / 0.05)
    rise = np.array(rise)
    first_90 = int(np.argmax(rise > 0.9))
    assert 5 < first_90 < (60 if task == "ik" else 25), first_90
    assert rise.max() < 1.01 and rise[-1] == pytest.approx(1.0, abs=1e-3)


def test_the_gantry_covers_a_multiroute_displacement_within_a_decision():
    """A multi-route decision (10 Hz) moves the gantry up to 2 m: it must be there before the next."""
    arm = MujocoArm(task_arm_config("multiroute"))
    arm.reset([0.0, 0.0])
    arm.set_target([2.0, -1.5])
    arm.step(100)
    np.testing.assert_allclose(arm.position, [2.0, -1.5], atol=0.02)


def test_joint_limits_hold_in_physics(task_arm):
    task, arm = task_arm
    arm.reset()
    beyond = np.array(TASK_ARMS[task].position_upper) + 1.0
    arm.set_target(beyond)
    arm.step(1000)
    assert np.all(arm.position <= np.array(TASK_ARMS[task].position_upper) + 0.02)


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
    with pytest.raises(ValueError, match="task: 'maze'"):
        task_arm_config("maze")


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
