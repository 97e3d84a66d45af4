"""The scripted expert of the box-reach task: damped least-squares IK along a detour, run in physics.

Each demo draws a start and a goal (tasks.box_reach), picks the near or the far detour with equal
probability, solves IK for every waypoint of the detour (warm-started from the previous one, so the
arm stays on one IK branch), times it, and plays the result through the emulated
JointTrajectoryController on the MuJoCo UR5e at 1 kHz.

Timing (ExpertConfig.corner_blend). > 0 (the default): the rectangle's two corners are rounded
(quadratic blends starting corner_blend before each corner) and the whole path runs on one speed
profile: a smooth ramp up from rest, a cruise, a ramp down into the goal; the arm never stops on
the way. 0: a minimum-jerk profile per side, stopping at each corner. A policy learns the first
far better: at a corner where the expert stops, the states say "at rest" both for arriving and for
leaving, their next 0.1 s is nearly nothing either way, and a cloned policy stalls there (measured
in benchmarks/results/box_reach.md). A demo is rejected (never handed out) if any
IK waypoint or any physics step has a contact, IK did not converge, the flange missed the goal, or
the path did not pass the box on the chosen side: with +-5 cm endpoints a few in ten touch the box.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import mujoco
import numpy as np

from ebgan_mdn_ros.config_base import require
from ebgan_mdn_ros.sim.controllers import ControllerSwitch
from ebgan_mdn_ros.sim.mujoco_arm import ArmSimConfig, BoxObstacle, MujocoArm, SceneConfig
from ebgan_mdn_ros.tasks.box_reach import (
    BOX_NAME, ROUTES, BoxReachConfig, route_corners, route_of, sample_endpoints, tool_rotation)


def box_reach_scene(task: BoxReachConfig = BoxReachConfig()) -> SceneConfig:
    return SceneConfig(obstacles=(BoxObstacle(BOX_NAME, task.box_center, task.box_half_size),))


def box_reach_arm(task: BoxReachConfig = BoxReachConfig(), robot_xml: str = "") -> MujocoArm:
    """The UR5e (or ``robot_xml``) with the task's table and box."""
    return MujocoArm(ArmSimConfig(robot_xml=robot_xml, scene=box_reach_scene(task)))


@dataclass(frozen=True)
class ExpertConfig:
    waypoints_per_side: int = 40
    mean_speed: float = 0.4            # m/s of the flange over the whole detour (or each side)
    corner_blend: float = 0.06         # m before and after each corner where the path turns; 0 = stop there
    ramp_s: float = 0.5                # s of smooth acceleration from rest (and deceleration into the goal)
    min_clearance: float = 0.01        # m between the arm and the box at every waypoint: a demo that grazes
                                       # it teaches a policy, a few mm less precise, to touch
    settle_s: float = 0.3              # s of physics after the last waypoint
    near_probability: float = 0.5
    ik_damping: float = 0.05           # DLS lambda (m, rad): bounds the step near singularities
    ik_tolerance: float = 1e-4         # m of flange position error
    ik_rotation_tolerance: float = 1e-3  # rad of flange orientation error
    ik_max_iterations: int = 200
    record_every_steps: int = 10       # the demo's samples: every 10 ms at 1 kHz

    def __post_init__(self):
        require(self.waypoints_per_side >= 2, "waypoints_per_side", self.waypoints_per_side, ">= 2")
        require(self.mean_speed > 0, "mean_speed", self.mean_speed, "> 0 m/s")
        require(0 <= self.corner_blend <= 0.15, "corner_blend", self.corner_blend, "in [0, 0.15] m")
        require(self.ramp_s > 0, "ramp_s", self.ramp_s, "> 0 s")
        require(self.min_clearance >= 0, "min_clearance", self.min_clearance, ">= 0 m")
        require(self.settle_s >= 0, "settle_s", self.settle_s, ">= 0 s")
        require(0 <= self.near_probability <= 1, "near_probability", self.near_probability, "in [0, 1]")
        require(self.ik_damping > 0, "ik_damping", self.ik_damping, "> 0")
        require(self.ik_tolerance > 0 and self.ik_rotation_tolerance > 0, "ik_tolerance",
                (self.ik_tolerance, self.ik_rotation_tolerance), "both > 0")
        require(self.ik_max_iterations >= 1, "ik_max_iterations", self.ik_max_iterations, ">= 1")
        require(self.record_every_steps >= 1, "record_every_steps", self.record_every_steps, ">= 1")


@dataclass
class IkResult:
    position: np.ndarray    # joints
    iterations: int
    position_error: float   # m
    rotation_error: float   # rad
    converged: bool


def rotation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """World-frame rotation vector taking ``current`` to ``target`` (both 3 x 3).

    Through the quaternion, which stays well defined at a half turn, where the matrix log does not.
    """
    quaternion, vector = np.empty(4), np.empty(3)
    mujoco.mju_mat2Quat(quaternion, np.ascontiguousarray(target @ current.T).reshape(9))
    mujoco.mju_quat2Vel(vector, quaternion, 1.0)
    return vector


def solve_ik(arm: MujocoArm, position, rotation, initial, config: ExpertConfig = ExpertConfig()) -> IkResult:
    """dq = J^T (J J^T + lambda^2 I)^-1 e, e = (position error, rotation vector), within the joint limits."""
    q = np.array(initial, dtype=np.float64)
    target_p, target_r = np.asarray(position, dtype=np.float64), np.asarray(rotation, dtype=np.float64)
    damping = config.ik_damping ** 2 * np.eye(6)
    for iteration in range(config.ik_max_iterations + 1):
        p, r, jacobian = arm.flange_jacobian(q)
        error = np.concatenate([target_p - p, rotation_error(target_r, r)])
        p_err, r_err = float(np.linalg.norm(error[:3])), float(np.linalg.norm(error[3:]))
        if p_err <= config.ik_tolerance and r_err <= config.ik_rotation_tolerance:
            return IkResult(q, iteration, p_err, r_err, True)
        if iteration == config.ik_max_iterations:
            break
        q = np.clip(q + jacobian.T @ np.linalg.solve(jacobian @ jacobian.T + damping, error), arm.lower, arm.upper)
    return IkResult(q, config.ik_max_iterations, p_err, r_err, False)


def draw_episode(arm: MujocoArm, rng: np.random.Generator, task: BoxReachConfig = BoxReachConfig(),
                 tries: int = 100) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start, goal, start joints) of one episode: endpoints drawn until the start's joints, by IK from
    home (as the expert's plans start), converge clear of the box. The goal source and the benchmarks
    draw their episodes here, so the same rng gives the same episodes everywhere."""
    for _ in range(tries):
        start, goal = sample_endpoints(rng, task)
        ik = solve_ik(arm, start, tool_rotation(), arm.home)
        if ik.converged and not arm.contacts_at(ik.position):
            return start, goal, ik.position
    raise RuntimeError(f"no reachable start in {tries} draws: the task's start region is outside the arm's reach")


def _minimum_jerk(tau: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """s(tau) = 10 tau^3 - 15 tau^4 + 6 tau^5 and ds/dtau: at rest at both ends."""
    return tau ** 3 * (10 - 15 * tau + 6 * tau * tau), 30 * tau * tau * (1 - tau) ** 2


def _per_side_timing(corners: np.ndarray, mean_speed: float, n: int):
    """Minimum jerk along each side: at rest at every corner."""
    times, flange, flange_velocity = [0.0], [corners[0]], [np.zeros(3)]
    t0 = 0.0
    for a, b in zip(corners[:-1], corners[1:]):
        duration = max(np.linalg.norm(b - a) / mean_speed, 0.05)
        tau = np.arange(1, n + 1) / n
        s, ds = _minimum_jerk(tau)
        times.extend(t0 + tau * duration)
        flange.extend(a + np.outer(s, b - a))
        flange_velocity.extend(np.outer(ds / duration, b - a))
        t0 += duration
    return np.array(times), np.array(flange), np.array(flange_velocity)


def rounded_path(corners: np.ndarray, blend: float, points_per_metre: int = 4000) -> np.ndarray:
    """[M, 3] dense points along the corner polyline with each inner corner replaced by a quadratic
    Bezier from ``blend`` before it to ``blend`` after it (tangent to both sides: no kink)."""
    corners = np.asarray(corners, dtype=np.float64)
    pieces, current = [], corners[0]
    for k in range(1, len(corners) - 1):
        before, corner, after = corners[k - 1], corners[k], corners[k + 1]
        d_in = min(blend, 0.45 * np.linalg.norm(corner - before))
        d_out = min(blend, 0.45 * np.linalg.norm(after - corner))
        enter = corner - d_in * (corner - before) / np.linalg.norm(corner - before)
        leave = corner + d_out * (after - corner) / np.linalg.norm(after - corner)
        count = max(int(np.linalg.norm(enter - current) * points_per_metre), 2)
        pieces.append(np.linspace(current, enter, count, endpoint=False))
        u = np.linspace(0.0, 1.0, max(int((d_in + d_out) * points_per_metre), 8), endpoint=False)[:, None]
        pieces.append((1 - u) ** 2 * enter + 2 * u * (1 - u) * corner + u ** 2 * leave)
        current = leave
    count = max(int(np.linalg.norm(corners[-1] - current) * points_per_metre), 2)
    pieces.append(np.linspace(current, corners[-1], count))
    return np.concatenate(pieces)


def _speed_profile(length: float, mean_speed: float, ramp_s: float, times: np.ndarray):
    """(arc length, speed) at ``times``: a quintic ramp from rest to the cruise speed over ramp_s, the
    cruise, the mirrored ramp down; total time length / mean_speed (at least 2 ramps)."""
    total = max(length / mean_speed, 2.0 * ramp_s + 1e-3)
    cruise = length / (total - ramp_s)  # each ramp covers half its duration at cruise speed

    def ramp_distance(t):  # distance covered t s into a ramp up (0 <= t <= ramp_s)
        tau = t / ramp_s
        return cruise * ramp_s * (2.5 * tau ** 4 - 3 * tau ** 5 + tau ** 6)

    def ramp_speed(t):
        tau = t / ramp_s
        return cruise * tau ** 3 * (10 - 15 * tau + 6 * tau * tau)

    t = np.clip(np.asarray(times, dtype=np.float64), 0.0, total)
    up, down = t < ramp_s, t > total - ramp_s
    s = np.where(up, ramp_distance(np.minimum(t, ramp_s)), cruise * (ramp_s / 2 + (t - ramp_s)))
    s = np.where(down, length - ramp_distance(np.clip(total - t, 0.0, ramp_s)), s)
    v = np.where(up, ramp_speed(np.minimum(t, ramp_s)), cruise)
    v = np.where(down, ramp_speed(np.clip(total - t, 0.0, ramp_s)), v)
    return s, v, total


def _blended_timing(corners: np.ndarray, blend: float, mean_speed: float, ramp_s: float, count: int):
    """Waypoints evenly in time along the rounded path, on one speed profile (never at rest on the way)."""
    dense = rounded_path(corners, blend)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=1))])
    total_time = max(arc[-1] / mean_speed, 2.0 * ramp_s + 1e-3)
    times = np.linspace(0.0, total_time, count + 1)
    s, v, _ = _speed_profile(arc[-1], mean_speed, ramp_s, times)
    flange = np.stack([np.interp(s, arc, dense[:, k]) for k in range(3)], axis=1)
    tangent = np.gradient(dense, arc, axis=0)
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-12)
    direction = np.stack([np.interp(s, arc, tangent[:, k]) for k in range(3)], axis=1)
    direction /= np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-12)
    flange[0], flange[-1] = corners[0], corners[-1]
    return times, flange, direction * v[:, None]


@dataclass
class Plan:
    route: str
    start: np.ndarray               # flange, m
    goal: np.ndarray
    corners: np.ndarray             # [4, 3]
    times: np.ndarray               # [N] s from the start
    flange: np.ndarray              # [N, 3] waypoints
    joint_positions: np.ndarray     # [N, J]
    joint_velocities: np.ndarray    # [N, J]
    ik_iterations: list[int]
    ik_converged: bool
    touching_waypoints: int         # waypoints whose IK pose has a contact
    clearance: float = math.inf     # m, the arm's smallest distance to the box over the waypoints


@dataclass
class Demo:
    plan: Plan
    accepted: bool
    reason: str                     # why rejected, "" when accepted
    times: np.ndarray               # [T] s, sampled every record_every_steps
    joint_positions: np.ndarray     # [T, J]
    joint_velocities: np.ndarray
    joint_efforts: np.ndarray
    flange: np.ndarray              # [T, 3]
    contact_steps: int              # physics steps with an arm contact
    contacts: list[str]             # "body-other" pairs seen
    goal_error: float               # m, flange to goal at the end
    route_taken: str
    physics_steps: int


@dataclass
class ExpertStats:
    attempts: int = 0
    accepted: int = 0
    rejected: Counter = field(default_factory=Counter)  # reason -> count
    routes: Counter = field(default_factory=Counter)    # accepted demos per route


class BoxReachExpert:
    def __init__(self, arm: MujocoArm | None = None, task: BoxReachConfig = BoxReachConfig(),
                 config: ExpertConfig = ExpertConfig(), seed: int = 0):
        self.task, self.config = task, config
        self.arm = arm or box_reach_arm(task)
        self.rng = np.random.default_rng(seed)
        self.stats = ExpertStats()
        self._rotation = tool_rotation()

    def plan(self, start, goal, route: str) -> Plan:
        corners = route_corners(start, goal, route, self.task)
        n, c = self.config.waypoints_per_side, self.config
        if c.corner_blend > 0:
            times, flange, flange_velocity = _blended_timing(corners, c.corner_blend, c.mean_speed, c.ramp_s, 3 * n)
        else:
            times, flange, flange_velocity = _per_side_timing(corners, c.mean_speed, n)
        q, positions, velocities, iterations, converged, touching = self.arm.home, [], [], [], True, 0
        clearance = math.inf
        times, flange, flange_velocity = list(times), list(flange), list(flange_velocity)
        for point, xdot in zip(flange, flange_velocity):
            result = solve_ik(self.arm, point, self._rotation, q, c)
            q = result.position
            converged &= result.converged
            iterations.append(result.iterations)
            _, _, jacobian = self.arm.flange_jacobian(q)
            # the joint rates that move the flange at xdot with the tool orientation held
            velocities.append(np.linalg.lstsq(jacobian, np.concatenate([xdot, np.zeros(3)]), rcond=None)[0])
            positions.append(q)
            touching += bool(self.arm.contacts_at(q))
            clearance = min(clearance, self.arm.clearance_at(q, BOX_NAME)[0])
        return Plan(route, np.asarray(start), np.asarray(goal), corners, np.array(times), np.array(flange),
                    np.array(positions), np.array(velocities), iterations, converged, touching, clearance)

    def rollout(self, plan: Plan) -> Demo:
        """Play ``plan`` through the emulated JTC at the physics rate, from rest at its first waypoint."""
        arm, every = self.arm, self.config.record_every_steps
        arm.reset(plan.joint_positions[0])
        switch = ControllerSwitch(arm.joint_names)
        reason = switch.trajectory_command(arm.joint_names, plan.times, plan.joint_positions, plan.joint_velocities,
                                           now=arm.time, measured_position=arm.position)
        if reason is not None:
            raise ValueError(f"the expert's own trajectory was refused: {reason}")
        steps = int(math.ceil((plan.times[-1] + self.config.settle_s) / arm.dt))
        record = {k: [] for k in ("t", "q", "v", "e", "x")}
        contact_steps, pairs = 0, set()
        for k in range(steps):
            position, velocity = switch.desired(arm.time)
            arm.set_target(position, velocity)
            arm.step()
            if arm.data.ncon:
                found = arm.contacts()
                contact_steps += bool(found)
                pairs.update(f"{c.arm_body}-{c.other}" for c in found)
            if k % every == every - 1 or k == steps - 1:
                record["t"].append(arm.time)
                record["q"].append(arm.position)
                record["v"].append(arm.velocity)
                record["e"].append(arm.effort)
                record["x"].append(arm.flange_pose()[0])
        flange = np.array(record["x"])
        goal_error = float(np.linalg.norm(flange[-1] - plan.goal))
        taken = route_of(flange, self.task)
        reason = self._rejection(plan, contact_steps, goal_error, taken)
        return Demo(plan, not reason, reason, np.array(record["t"]), np.array(record["q"]), np.array(record["v"]),
                    np.array(record["e"]), flange, contact_steps, sorted(pairs), goal_error, taken, steps)

    def _rejection(self, plan: Plan, contact_steps: int, goal_error: float, taken: str) -> str:
        if not plan.ik_converged:
            return "ik did not converge"
        if plan.touching_waypoints:
            return "a waypoint touches"
        if plan.clearance < self.config.min_clearance:
            return "closer than min_clearance to the box"
        if contact_steps:
            return "contact in physics"
        if goal_error > self.task.goal_tolerance:
            return "goal missed"
        if taken != plan.route:
            return "wrong side"
        return ""

    def draw_route(self) -> str:
        return ROUTES[0] if self.rng.random() < self.config.near_probability else ROUTES[1]

    def attempt(self, route: str | None = None) -> Demo:
        """One demo from fresh endpoints along ``route`` (default: drawn near/far); accepted or not."""
        start, goal = sample_endpoints(self.rng, self.task)
        route = route or self.draw_route()
        plan = self.plan(start, goal, route)
        # a plan that touches is not worth its physics
        playable = plan.ik_converged and not plan.touching_waypoints and plan.clearance >= self.config.min_clearance
        demo = self.rollout(plan) if playable else self._unplayed(plan)
        self.stats.attempts += 1
        if demo.accepted:
            self.stats.accepted += 1
            self.stats.routes[route] += 1
        else:
            self.stats.rejected[f"{route}: {demo.reason}"] += 1
        return demo

    def demos(self, count: int, max_attempts: int | None = None) -> list[Demo]:
        """``count`` accepted demos, each route drawn before its endpoints.

        A rejected demo is redrawn with the same route: only the far detour ever touches (the
        forearm over the box, ~1 in 5), and redrawing the route too would tilt the data to "near".
        """
        limit = max_attempts if max_attempts is not None else 3 * count + 10
        accepted = []
        while len(accepted) < count and self.stats.attempts < limit:
            route = self.draw_route()
            while self.stats.attempts < limit:
                demo = self.attempt(route)
                if demo.accepted:
                    accepted.append(demo)
                    break
        if len(accepted) < count:
            raise RuntimeError(f"only {len(accepted)} of {count} demos accepted in {limit} attempts: "
                               f"{dict(self.stats.rejected)}")
        return accepted

    def _unplayed(self, plan: Plan) -> Demo:
        empty = np.zeros((0, len(self.arm.joint_names)))
        reason = self._rejection(plan, 0, math.inf, "")
        return Demo(plan, False, reason, np.zeros(0), empty, empty, empty, np.zeros((0, 3)), 0, [], math.inf, "", 0)
