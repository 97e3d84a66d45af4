import math

import numpy as np
import pytest

from ebgan_mdn_ros.tasks.routes import ARENA
from ebgan_mdn_ros.tasks.catalog import (CURVE_NOISE, GRID_CENTRES, MultiRouteEnvironment, forward_kinematics,
                                 get_task, inverse_kinematics, task_names)


@pytest.mark.parametrize("name", ["hyperbola", "lines", "circle", "parabola"])
def test_curve_labels_lie_on_a_true_mode(name):
    task = get_task(name)
    distance = np.abs(task.actions[:, None, 0] - task.true_modes(task.conditions)[..., 0]).min(1)
    assert task.conditions.shape == task.actions.shape == (500, 1)
    assert distance.max() < 5 * CURVE_NOISE
    assert 0.01 < distance.mean() < 0.03  # the 0.02 noise is really there


@pytest.mark.parametrize("name", ["hyperbola", "circle"])
def test_two_branch_curves_use_both_branches(name):
    task = get_task(name)
    upper = (task.actions[:, 0] > 0).mean()
    assert 0.4 < upper < 0.6


def test_curve_test_conditions_include_dense_band_near_zero():
    test = get_task("hyperbola").test_conditions[:, 0]
    assert (np.abs(test) < 0.1).sum() >= 50
    assert test.min() == -1.0 and test.max() == 1.0


def test_hyperbola_modes_are_closest_at_zero():
    modes = get_task("hyperbola").true_modes(np.array([[0.0], [0.5]]))
    assert modes[0, 0, 0] - modes[0, 1, 0] == pytest.approx(0.2)
    assert modes[1, 0, 0] == pytest.approx(math.sqrt(0.26))


def test_ik_labels_reach_their_targets_with_both_elbows():
    task = get_task("ik")
    assert np.abs(forward_kinematics(task.actions.astype(np.float64)) - task.conditions).max() < 1e-5
    assert task.conditions.shape == (4000, 2)
    elbow_up = task.actions[:, 1] > 0
    assert elbow_up.mean() == 0.5 and np.all(elbow_up[0::2] != elbow_up[1::2])  # both per target
    assert np.all(np.abs(task.actions) <= math.pi)
    assert task.spec.condition_names == ("goal.0", "goal.1")
    assert task.spec.action_names == ("shoulder", "elbow")


def test_inverse_kinematics_solutions_hit_targets_behind_the_base():
    targets = np.array([[-4.0, 0.01], [-4.0, -0.01], [0.0, 2.0]])
    solutions = inverse_kinematics(targets)
    assert np.allclose(forward_kinematics(solutions), targets[:, None, :], atol=1e-9)


def test_multiroute_demos_follow_three_routes_to_the_goal():
    task = get_task("multiroute")
    assert task.spec.action_kind == "delta"
    assert task.spec.condition_names == ("x_joint.position", "y_joint.position")
    assert task.spec.action_names == ("x_joint", "y_joint")
    assert np.abs(task.actions).max() <= 2.0
    starts = np.linalg.norm(task.conditions, axis=1) < 1.0
    assert 300 <= starts.sum() < 600  # every demo starts near the origin
    # Demos on the (10, 0) and (0, 10) routes both exist: points far along one axis only.
    assert ((task.conditions[:, 0] > 8) & (np.abs(task.conditions[:, 1]) < 1)).any()
    assert ((task.conditions[:, 1] > 8) & (np.abs(task.conditions[:, 0]) < 1)).any()


def test_multiroute_environment_success_failure_and_route():
    env = MultiRouteEnvironment(3, seed=0)
    env.positions[:] = [[0.0, 0.0], [0.0, -1.0], [18.5, 18.5]]
    env.trajectories = [env.positions.copy()]
    env.step(np.array([[5.0, 0.0], [0.0, -3.0], [1.0, 1.0]]))  # clipped to +-2
    assert np.allclose(env.positions[0], [2.0, 0.0])
    assert env.left_arena.tolist() == [False, True, False]  # y = -3 is outside [-2, 22]
    assert env.reached.tolist() == [False, False, True]
    frozen = env.positions.copy()
    env.step(np.ones((3, 2)))
    assert np.allclose(env.positions[1:], frozen[1:])  # finished rollouts do not move
    for _ in range(4):
        env.step(np.array([[2.0, 0.0], [0, 0], [0, 0]]))
    assert env.routes()[0] == 0  # passed (10, 0)
    assert ARENA == (-2.0, 22.0)


def test_grid_has_49_balanced_modes_and_a_constant_condition():
    task = get_task("grid")
    nearest = np.linalg.norm(task.actions[:, None] - GRID_CENTRES[None], axis=-1).argmin(1)
    assert np.all(np.bincount(nearest, minlength=49) > 150)
    assert np.all(task.conditions == 0)


def test_tasks_are_reproducible_and_read_only():
    task = get_task("hyperbola")
    assert task is get_task("hyperbola")
    with pytest.raises(ValueError):
        task.actions[0, 0] = 1.0


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown.*hyperbola.*ik.*multiroute"):
        get_task("hyperbole")
    assert set(task_names()) == {"hyperbola", "lines", "circle", "parabola", "ik", "multiroute", "grid"}
