"""goal_pose (geometry_msgs/PoseStamped, as RViz's goal tool sends it) -> goal (std_msgs/Float64MultiArray).

    python -m ebgan_mdn_ros.node.goal_pose_relay --ros-args -p accepted_frames:="[base_link, world]"

The policy node reads its goal as a Float64MultiArray of the model's goal.<i> conditions; a box-reach
model's goal is the flange position (x, y, z) in the robot base frame. This relay turns a pose into
that array and refuses, with the reason logged and counted, what the model must never see:
- a frame it cannot interpret (no tf here: only frames that *are* the robot base frame are accepted;
  on the UR5e sim `world` and `base_link` coincide, so both are accepted by default);
- NaN or inf in the position;
- a position outside the configured goal box (goal_lower/goal_upper, empty = no box): a goal the
  model never trained on is extrapolation, not a request it can serve.
A refused pose changes nothing: the last accepted goal stays (and is re-sent every
republish_period_s, so a policy node that starts late still learns it). The orientation is not part
of the goal (the box-reach tool always points down) and is ignored.

in:  goal_pose (geometry_msgs/PoseStamped)      out: goal (std_msgs/Float64MultiArray, reliable, depth 1)
"""
from __future__ import annotations

import sys
import math
from dataclasses import dataclass

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from std_msgs.msg import Float64MultiArray

from ebgan_mdn_ros.config_base import ConfigError, require
from ebgan_mdn_ros.node import conversions

NODE_NAME = "goal_pose_relay"


@dataclass(frozen=True)
class RelayConfig:
    input_topic: str = "goal_pose"
    output_topic: str = "goal"
    accepted_frames: tuple[str, ...] = ("base_link", "world")  # frames equal to the robot base frame
    goal_lower: tuple[float, ...] = ()     # m, x y z; empty = no box
    goal_upper: tuple[float, ...] = ()
    republish_period_s: float = 1.0        # s; 0 = send each accepted goal once

    def __post_init__(self):
        require(bool(self.input_topic) and bool(self.output_topic), "input_topic",
                (self.input_topic, self.output_topic), "two topic names")
        require(len(self.accepted_frames) > 0 and all(self.accepted_frames), "accepted_frames",
                list(self.accepted_frames), "a non-empty list of frame ids")
        for key in ("goal_lower", "goal_upper"):
            value = getattr(self, key)
            require(len(value) in (0, 3) and all(map(math.isfinite, value)), key, list(value),
                    "empty or three finite numbers (x, y, z in m)")
        require(len(self.goal_lower) == len(self.goal_upper), "goal_upper", list(self.goal_upper),
                "as many values as goal_lower")
        require(all(lo < hi for lo, hi in zip(self.goal_lower, self.goal_upper)), "goal_lower",
                list(self.goal_lower), f"below goal_upper {list(self.goal_upper)}")
        require(math.isfinite(self.republish_period_s) and self.republish_period_s >= 0, "republish_period_s",
                self.republish_period_s, ">= 0 s (0 = no republishing)")


def goal_from_pose(msg: PoseStamped, config: RelayConfig) -> tuple[np.ndarray | None, str]:
    """(goal [3], "") or (None, why it is refused): the relay's whole rule, testable without a graph."""
    frame = msg.header.frame_id
    if frame not in config.accepted_frames:
        return None, (f"frame_id {frame!r} is not one of {list(config.accepted_frames)} (no tf here: "
                      "send the goal in the robot base frame)")
    p = msg.pose.position
    goal = np.array([p.x, p.y, p.z], dtype=np.float64)
    if not np.all(np.isfinite(goal)):
        return None, f"position {goal.tolist()} is not finite"
    if config.goal_lower:
        low, high = np.array(config.goal_lower), np.array(config.goal_upper)
        if np.any(goal < low) or np.any(goal > high):
            return None, (f"position {np.round(goal, 4).tolist()} is outside the goal box "
                          f"{list(config.goal_lower)}..{list(config.goal_upper)} (the model never trained there)")
    return goal, ""


class GoalPoseRelay(Node):
    def __init__(self, node_name: str = NODE_NAME, **kwargs):
        super().__init__(node_name, **kwargs)
        d = RelayConfig()
        declare = self.declare_parameter
        self.config = c = RelayConfig(
            input_topic=declare("input_topic", d.input_topic).value,
            output_topic=declare("output_topic", d.output_topic).value,
            accepted_frames=tuple(declare("accepted_frames", list(d.accepted_frames)).value),
            # empty lists have no ROS type: declare them as double arrays
            goal_lower=tuple(declare("goal_lower", Parameter.Type.DOUBLE_ARRAY).value or ()),
            goal_upper=tuple(declare("goal_upper", Parameter.Type.DOUBLE_ARRAY).value or ()),
            republish_period_s=declare("republish_period_s", d.republish_period_s).value)
        self.accepted = 0
        self.refused = 0
        self.last_refusal = ""
        self.goal: np.ndarray | None = None
        self._msg = Float64MultiArray()
        self._pub = self.create_publisher(Float64MultiArray, c.output_topic, QoSProfile(depth=1))
        # RViz publishes goal_pose reliable, volatile, depth 10: a matching profile.
        self.create_subscription(PoseStamped, c.input_topic, self._on_pose, QoSProfile(depth=10))
        if c.republish_period_s > 0:
            self.create_timer(c.republish_period_s, self._republish)

    def _on_pose(self, msg: PoseStamped) -> None:
        goal, reason = goal_from_pose(msg, self.config)
        if goal is None:
            self.refused += 1
            self.last_refusal = reason
            self.get_logger().warning(f"goal refused: {reason}", throttle_duration_sec=1.0)
            return
        self.accepted += 1
        self.goal = goal
        self._msg.data = conversions.float64s(goal)
        self._pub.publish(self._msg)

    def _republish(self) -> None:
        if self.goal is not None:
            self._pub.publish(self._msg)


def main(argv: list[str] | None = None) -> int:
    from ebgan_mdn_ros.node.process import run_nodes
    return run_nodes("goal_pose_relay", GoalPoseRelay, argv, startup_errors=(ConfigError, ValueError))

if __name__ == "__main__":
    sys.exit(main())
