"""goal_pose_relay over real rclpy: a PoseStamped in the base frame becomes the policy's goal array;
another frame, a NaN or a goal outside the box is refused (logged, counted) and changes nothing.

Its own rclpy Context on ROS_DOMAIN_ID (76 unless set), loopback discovery only; the EventsExecutor
with a timeout on every spin. Waits are generous; assertions are about behaviour, never timing.
"""
from __future__ import annotations

import math
import os
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from geometry_msgs.msg import PoseStamped  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402

from ebgan_mdn_ros.config_base import ConfigError  # noqa: E402
from ebgan_mdn_ros.node.executors import make_executor  # noqa: E402
from ebgan_mdn_ros.node.goal_pose_relay import GoalPoseRelay, RelayConfig, goal_from_pose  # noqa: E402

pytestmark = pytest.mark.ros
DISCOVERY_S = 10.0


def pose(x, y, z, frame="base_link") -> PoseStamped:
    msg = PoseStamped()
    msg.header.frame_id = frame
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = float(x), float(y), float(z)
    msg.pose.orientation.w = 1.0
    return msg


@pytest.fixture
def ros():
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(os.environ.get("ROS_DOMAIN_ID", "76")))
    executor = make_executor("events", context)
    relay = GoalPoseRelay(context=context, parameter_overrides=[
        Parameter("goal_lower", value=[0.2, 0.4, 0.2]), Parameter("goal_upper", value=[0.4, 0.6, 0.5]),
        Parameter("republish_period_s", value=0.0)])
    probe = rclpy.create_node("relay_probe", context=context)
    goals: list[np.ndarray] = []
    probe.create_subscription(Float64MultiArray, "goal", lambda m: goals.append(np.asarray(m.data)), QoSProfile(depth=50))
    publisher = probe.create_publisher(PoseStamped, "goal_pose", QoSProfile(depth=10))
    for node in (relay, probe):
        executor.add_node(node)

    def spin_until(predicate, timeout_s):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not predicate():
            executor.spin_once(timeout_sec=0.02)
        return predicate()

    assert spin_until(lambda: publisher.get_subscription_count() >= 1 and relay._pub.get_subscription_count() >= 1,
                      DISCOVERY_S), "the relay and the probe did not discover each other"
    yield relay, publisher, goals, spin_until
    executor.shutdown(timeout_sec=1.0)
    for node in (probe, relay):
        node.destroy_node()
    rclpy.try_shutdown(context=context)


def test_a_base_frame_pose_becomes_the_goal_and_refusals_change_nothing(ros):
    relay, publisher, goals, spin_until = ros
    publisher.publish(pose(0.3, 0.5, 0.35))
    assert spin_until(lambda: goals, 5.0)
    np.testing.assert_allclose(goals[-1], [0.3, 0.5, 0.35])
    publisher.publish(pose(0.31, 0.52, 0.33, frame="world"))  # the sim's base frame is accepted too
    assert spin_until(lambda: len(goals) == 2, 5.0)
    np.testing.assert_allclose(goals[-1], [0.31, 0.52, 0.33])

    publisher.publish(pose(0.3, 0.5, 0.35, frame="tool0"))       # a frame that is not the base
    publisher.publish(pose(0.3, 0.5, 0.35, frame=""))            # no frame at all
    publisher.publish(pose(0.3, math.nan, 0.35))                 # NaN
    publisher.publish(pose(0.3, 0.5, math.inf, frame="world"))   # inf
    publisher.publish(pose(0.9, 0.5, 0.35))                      # outside the trained goals
    assert spin_until(lambda: relay.refused == 5, 5.0), (relay.refused, relay.last_refusal)
    assert "outside the goal box" in relay.last_refusal
    spin_until(lambda: False, 0.3)
    assert len(goals) == 2 and relay.accepted == 2  # nothing refused reached the policy's topic
    np.testing.assert_allclose(relay.goal, [0.31, 0.52, 0.33])


def test_the_rule_names_why():
    config = RelayConfig()
    assert goal_from_pose(pose(1, 2, 3, frame="map"), config)[1].startswith("frame_id 'map' is not one of")
    assert "not finite" in goal_from_pose(pose(1, math.nan, 3), config)[1]
    goal, reason = goal_from_pose(pose(1, 2, 3), config)  # no box configured: any finite goal
    assert reason == "" and goal.tolist() == [1.0, 2.0, 3.0]


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="accepted_frames"):
        RelayConfig(accepted_frames=())
    with pytest.raises(ConfigError, match="goal_lower"):
        RelayConfig(goal_lower=(0.0, 0.0), goal_upper=(1.0, 1.0))
    with pytest.raises(ConfigError, match="goal_lower"):
        RelayConfig(goal_lower=(0.5, 0.0, 0.0), goal_upper=(0.4, 1.0, 1.0))
    with pytest.raises(ConfigError, match="republish_period_s"):
        RelayConfig(republish_period_s=-1.0)
