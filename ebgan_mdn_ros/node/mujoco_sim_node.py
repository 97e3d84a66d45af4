"""The MuJoCo UR5e as a ROS 2 arm: the topics of ros2_control's controllers, 1 kHz physics in real time.

    python -m ebgan_mdn_ros.node.mujoco_sim_node --ros-args -p publish_rate_hz:=500.0

in:  <forward_controller>/commands (std_msgs/Float64MultiArray, one position per joint in joint order)
     <trajectory_controller>/joint_trajectory (trajectory_msgs/JointTrajectory, joints by name)
     mujoco_sim/reset_position (std_msgs/Float64MultiArray: put the arm there at rest; empty = home)
out: joint_states (sensor_msgs/JointState: position, velocity, effort), flange_pose
     (geometry_msgs/PoseStamped), contacts (std_msgs/String, JSON, whenever the set of touching
     pairs changes), /diagnostics (counts of contacts and of accepted / refused commands)

The rules for commands are sim/controllers.py's; a refused one is logged with its reason and never
applied. Physics runs on the publish timer: each tick steps as many 1 ms steps as wall time has
advanced since the last, so the arm moves in real time at any publish rate up to 1 kHz; a tick
later than max_catch_up_steps drops the excess instead of running faster than real time after it.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String
from trajectory_msgs.msg import JointTrajectory

from ebgan_mdn_ros.config_base import require
from ebgan_mdn_ros.node import conversions
from ebgan_mdn_ros.node.executors import make_executor, spin
from ebgan_mdn_ros.sim.box_reach_expert import box_reach_scene
from ebgan_mdn_ros.sim.controllers import FORWARD, TRAJECTORY, ControllerSwitch
from ebgan_mdn_ros.sim.mujoco_arm import ArmSimConfig, MujocoArm, SceneConfig

SCENES = ("box_reach", "table")
RESET_TOPIC = "mujoco_sim/reset_position"


@dataclass(frozen=True)
class SimNodeConfig:
    robot_xml: str = ""                     # "" = the Menagerie UR5e
    scene: str = "box_reach"                # box_reach (table and box) | table
    publish_rate_hz: float = 500.0          # Hz, joint_states and flange_pose (the UR driver's rate)
    forward_controller: str = "forward_position_controller"
    trajectory_controller: str = "joint_trajectory_controller"
    initial_position: tuple[float, ...] = ()  # rad; empty = the home keyframe
    max_catch_up_steps: int = 50            # physics steps one tick may run (50 ms late at most)
    frame_id: str = "world"                 # of flange_pose: the robot base frame, z up
    diagnostics_period_s: float = 1.0       # s

    def __post_init__(self):
        require(self.scene in SCENES, "scene", self.scene, f"one of {SCENES}")
        require(0 < self.publish_rate_hz <= 1000.0, "publish_rate_hz", self.publish_rate_hz, "in (0, 1000] Hz")
        require(self.max_catch_up_steps >= 1, "max_catch_up_steps", self.max_catch_up_steps, ">= 1")
        require(self.diagnostics_period_s > 0, "diagnostics_period_s", self.diagnostics_period_s, "> 0 s")
        require(bool(self.forward_controller and self.trajectory_controller), "forward_controller",
                (self.forward_controller, self.trajectory_controller), "two controller names")


class MujocoSimNode(Node):
    def __init__(self, node_name: str = "mujoco_sim", **kwargs):
        super().__init__(node_name, **kwargs)
        defaults = SimNodeConfig()
        declared = {name: self.declare_parameter(name, list(value) if isinstance(value, tuple) else value).value
                    for name, value in vars(defaults).items() if name != "initial_position"}
        # an empty list has no ROS parameter type: declare it as a double array explicitly
        initial = self.declare_parameter("initial_position", Parameter.Type.DOUBLE_ARRAY).value
        self.config = c = SimNodeConfig(**declared, initial_position=tuple(initial or ()))
        scene = box_reach_scene() if c.scene == "box_reach" else SceneConfig()
        self.arm = MujocoArm(ArmSimConfig(robot_xml=c.robot_xml, scene=scene))
        if c.initial_position:
            self.arm.reset(np.asarray(c.initial_position, dtype=np.float64))
        self.switch = ControllerSwitch(self.arm.joint_names)
        self.contact_steps = 0
        self.contact_events = 0
        self.dropped_steps = 0
        self._touching: tuple = ()
        self._state = JointState(name=list(self.arm.joint_names))
        self._pose = PoseStamped()
        self._pose.header.frame_id = c.frame_id
        # reliable as the controllers' own; deep enough that a burst of commands is judged one by one
        reliable = QoSProfile(depth=10)
        self._state_pub = self.create_publisher(JointState, "joint_states", 10)
        self._pose_pub = self.create_publisher(PoseStamped, "flange_pose", 10)
        self._contacts_pub = self.create_publisher(String, "contacts", QoSProfile(depth=50))
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", QoSProfile(depth=10))
        self.create_subscription(Float64MultiArray, f"{c.forward_controller}/commands", self._on_forward, reliable)
        self.create_subscription(JointTrajectory, f"{c.trajectory_controller}/joint_trajectory",
                                 self._on_trajectory, reliable)
        self.create_subscription(Float64MultiArray, RESET_TOPIC, self._on_reset, reliable)
        self._wall_start, self._steps_done = time.monotonic(), 0
        self.create_timer(1.0 / c.publish_rate_hz, self._tick)
        self.create_timer(c.diagnostics_period_s, self._publish_diagnostics)
        self._publish()

    # -- commands ---------------------------------------------------------------------------------
    def _on_forward(self, msg: Float64MultiArray) -> None:
        reason = self.switch.forward_command(conversions.multiarray_values(msg))
        if reason is not None:
            self.get_logger().error(f"{self.config.forward_controller} command refused: {reason}",
                                    throttle_duration_sec=1.0)

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        stamp = conversions.stamp_seconds(msg.header.stamp)
        ros_now = self.get_clock().now().nanoseconds * 1e-9
        start = None if stamp == 0.0 else self.arm.time + (stamp - ros_now)  # stamp 0: start now
        points = msg.points
        reason = self.switch.trajectory_command(
            list(msg.joint_names), [conversions.duration_seconds(p.time_from_start) for p in points],
            [np.asarray(p.positions, dtype=np.float64) for p in points],
            [np.asarray(p.velocities, dtype=np.float64) for p in points],
            now=self.arm.time, start_time=start, measured_position=self.arm.position)
        if reason is not None:
            self.get_logger().error(f"{self.config.trajectory_controller} trajectory refused: {reason}",
                                    throttle_duration_sec=1.0)

    def _on_reset(self, msg: Float64MultiArray) -> None:
        values = conversions.multiarray_values(msg)
        if values.size and (values.shape != (len(self.arm.joint_names),) or not np.all(np.isfinite(values))):
            self.get_logger().error(f"reset refused: {values.tolist()} is not {len(self.arm.joint_names)} finite "
                                    "positions")
            return
        self.arm.reset(values if values.size else None)
        self.switch.reset()

    # -- physics ----------------------------------------------------------------------------------
    def _tick(self) -> None:
        due = int((time.monotonic() - self._wall_start) / self.arm.dt) - self._steps_done
        if due > self.config.max_catch_up_steps:
            self.dropped_steps += due - self.config.max_catch_up_steps
            self._steps_done += due - self.config.max_catch_up_steps
            due = self.config.max_catch_up_steps
        for _ in range(due):
            desired = self.switch.desired(self.arm.time)
            if desired is not None:
                self.arm.set_target(*desired)
            self.arm.step()
            self._watch_contacts()
        self._steps_done += due
        self._publish()

    def _watch_contacts(self) -> None:
        contacts = self.arm.contacts() if self.arm.data.ncon else []
        self.contact_steps += bool(contacts)
        pairs = tuple((c.arm_body, c.other) for c in contacts)
        if pairs == self._touching:
            return
        self.contact_events += bool(set(pairs) - set(self._touching))
        self._touching = pairs
        self._contacts_pub.publish(String(data=json.dumps({
            "sim_time": round(self.arm.time, 4), "count": len(contacts),
            "contacts": [{"arm": c.arm_body, "other": c.other, "distance": round(c.distance, 5)} for c in contacts]})))

    def _publish(self) -> None:
        stamp = self.get_clock().now().to_msg()
        self._state.header.stamp = stamp
        self._state.position = conversions.float64s(self.arm.position)
        self._state.velocity = conversions.float64s(self.arm.velocity)
        self._state.effort = conversions.float64s(self.arm.effort)
        self._state_pub.publish(self._state)
        position, quaternion = self.arm.flange_pose()
        pose = self._pose.pose
        self._pose.header.stamp = stamp
        pose.position.x, pose.position.y, pose.position.z = (float(v) for v in position)
        pose.orientation.w, pose.orientation.x, pose.orientation.y, pose.orientation.z = (float(v) for v in quaternion)
        self._pose_pub.publish(self._pose)

    def _publish_diagnostics(self) -> None:
        wall = time.monotonic() - self._wall_start
        level, message = DiagnosticStatus.OK, "simulating"
        if self._touching:
            level, message = DiagnosticStatus.WARN, f"in contact: {len(self._touching)} pair(s)"
        values = {"contacts_now": len(self._touching), "contact_steps": self.contact_steps,
                  "contact_events": self.contact_events, "sim_time_s": self.arm.time,
                  "real_time_factor": self.arm.time / wall if wall > 0 else 0.0, "dropped_steps": self.dropped_steps,
                  "active_controller": self.switch.active or "none"}
        for kind, name in ((FORWARD, self.config.forward_controller), (TRAJECTORY, self.config.trajectory_controller)):
            values[f"{name}_accepted"] = self.switch.accepted[kind]
            values[f"{name}_refused"] = self.switch.refused[kind]
        status = conversions.diagnostic_status(f"{self.get_name()}: mujoco arm", self.get_fully_qualified_name(),
                                               level, message, values)
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(array)


def main(argv: list[str] | None = None) -> None:
    rclpy.init(args=argv)
    node = MujocoSimNode()
    executor = make_executor("events")
    executor.add_node(node)
    try:
        spin(executor)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:
        if rclpy.ok():  # SIGINT landing inside a callback shuts the context down under it
            raise
    finally:
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
