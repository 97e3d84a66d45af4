"""The MuJoCo UR5e as a ROS 2 arm: the topics of ros2_control's controllers, 1 kHz physics in real time.

The one simulator of the package: `robot` picks the UR5e (default) or one of the 2-D tasks' arms
(sim/task_arms.py: planar_2link, gantry_xy), which `sim_arm` (node/sim_nodes.py) runs by task.

    python -m ebgan_mdn_ros.node.mujoco_sim_node --ros-args -p publish_rate_hz:=500.0
    python -m ebgan_mdn_ros.node.mujoco_sim_node --ros-args -p publish_rate_hz:=100.0 -p real_time_factor:=20.0

in:  <forward_controller>/commands (std_msgs/Float64MultiArray, one position per joint in joint order)
     <trajectory_controller>/joint_trajectory (trajectory_msgs/JointTrajectory, joints by name)
     <node name>/reset_position (std_msgs/Float64MultiArray: put the arm there at rest; empty = home)
out: joint_states (sensor_msgs/JointState: position, velocity, effort), flange_pose
     (geometry_msgs/PoseStamped), contacts (std_msgs/String, JSON, whenever the set of touching
     pairs changes), /diagnostics (counts of contacts and of accepted / refused commands),
     /clock (rosgraph_msgs/Clock, only faster than real time: the simulated clock)

The rules for commands are sim/controllers.py's; a refused one is logged with its reason and never
applied. Physics runs on the publish timer.

real_time_factor 1 (the default): each tick steps as many 1 ms steps as wall time has advanced since
the last, so the arm moves in real time at any publish rate up to 1 kHz; a tick later than
max_catch_up_steps drops the excess instead of running faster than real time after it. Stamps are
the ROS clock, as a real arm's driver stamps them (the policy node judges a state's age by it).

real_time_factor F != 1 (data generation): the timer runs F times faster and each tick steps exactly
one publish period of physics, then publishes, so joint_states come every 1/publish_rate_hz of
*simulated* time without gaps, stamped with the simulated clock (its origin is the ROS time at
start-up, so stamps look like dates and are never 0, which means "unstamped"). The physics is
stepped exactly as at F = 1 (same steps, same controller sampling); only the wall time between
ticks shrinks. When the machine cannot keep up, the simulated clock falls behind F x wall time
(diagnostics: real_time_factor, lagged_ticks) instead of skipping steps or samples. DDS gives a
fast publisher no back-pressure (a reliable reader acknowledges what reached its queue, not what its
node has read), so a consumer that must see every sample publishes the simulated time it has read
up to on `pace_topic` (rosgraph_msgs/Clock) and the sim never runs more than max_lead_s ahead of it
(paced_ticks counts the waits); the box-reach recorder does. A trajectory's
header stamp is read on the same simulated clock (stamp 0 = start now, as always). Nodes that must
follow this clock set use_sim_time and listen on /clock.

Resets (mujoco_sim/reset_position) restart MuJoCo's own time, never the published clock: stamps
stay monotonic across episodes.
"""
from __future__ import annotations

import sys
import json
import math
import time
from dataclasses import dataclass

import numpy as np
from builtin_interfaces.msg import Time as TimeMsg
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped
from rosgraph_msgs.msg import Clock
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String
from trajectory_msgs.msg import JointTrajectory

from ebgan_mdn_ros.config_base import ConfigError, require
from ebgan_mdn_ros.node import conversions
from ebgan_mdn_ros.node.process import RCLError
from ebgan_mdn_ros.sim.box_reach_expert import box_reach_scene
from ebgan_mdn_ros.sim.controllers import FORWARD, TRAJECTORY, ControllerSwitch
from ebgan_mdn_ros.sim.mujoco_arm import ArmSimConfig, MujocoArm, RobotLoadError, SceneConfig
from ebgan_mdn_ros.sim.task_arms import ROBOTS, task_arm_config

SCENES = ("box_reach", "table", "none")
NODE_NAME = "mujoco_sim"
RESET_TOPIC = f"{NODE_NAME}/reset_position"
MAX_TICK_HZ = 5000.0   # wall-clock ticks per second a faster-than-real-time sim may ask for


@dataclass(frozen=True)
class SimNodeConfig:
    robot: str = "ur5e"                     # ur5e | planar_2link | gantry_xy (the 2-D tasks' arms)
    robot_xml: str = ""                     # "" = the Menagerie UR5e; a file: any position-servoed MJCF
    scene: str = "box_reach"                # box_reach (table and box) | table
    publish_rate_hz: float = 500.0          # Hz, joint_states and flange_pose (the UR driver's rate)
    forward_controller: str = "forward_position_controller"
    trajectory_controller: str = "joint_trajectory_controller"
    initial_position: tuple[float, ...] = ()  # rad; empty = the home keyframe
    max_catch_up_steps: int = 50            # physics steps one tick may run (50 ms late at most); real time only
    frame_id: str = "world"                 # of flange_pose: the robot base frame, z up
    diagnostics_period_s: float = 1.0       # s
    real_time_factor: float = 1.0           # simulated s per wall s; != 1: stamps and /clock on the simulated clock
    pace_topic: str = ""                    # faster than real time: a consumer's clock (rosgraph_msgs/Clock) to wait for
    max_lead_s: float = 0.5                 # simulated s the sim may run ahead of the pace_topic clock

    def __post_init__(self):
        require(self.robot in ("ur5e", *ROBOTS), "robot", self.robot, f"one of {('ur5e', *ROBOTS)}")
        require(self.scene in SCENES, "scene", self.scene, f"one of {SCENES}")
        require(self.robot == "ur5e" or (self.scene == "none" and not self.robot_xml), "scene", self.scene,
                f"'none' and no robot_xml for robot {self.robot!r} (the task arms have no scene)")
        require(0 < self.publish_rate_hz <= 1000.0, "publish_rate_hz", self.publish_rate_hz, "in (0, 1000] Hz")
        require(math.isfinite(self.real_time_factor) and 0 < self.real_time_factor <= 100.0, "real_time_factor",
                self.real_time_factor, "in (0, 100] simulated seconds per wall second")
        # One tick per publish period of simulated time: beyond a few kHz of ticks rclpy's timer
        # cannot keep up, and the clock would just lag the factor asked for.
        require(self.real_time_factor == 1.0 or self.publish_rate_hz * self.real_time_factor <= MAX_TICK_HZ,
                "real_time_factor", self.real_time_factor,
                f"at most {MAX_TICK_HZ:g} / publish_rate_hz ({MAX_TICK_HZ / self.publish_rate_hz:g} at "
                f"{self.publish_rate_hz:g} Hz): ticks beyond {MAX_TICK_HZ:g} Hz of wall time cannot be kept")
        require(self.max_catch_up_steps >= 1, "max_catch_up_steps", self.max_catch_up_steps, ">= 1")
        require(math.isfinite(self.max_lead_s) and self.max_lead_s > 0, "max_lead_s", self.max_lead_s, "> 0 s")
        require(not self.pace_topic or self.real_time_factor != 1.0, "pace_topic", self.pace_topic,
                "empty in real time (a real-time sim cannot wait for a consumer)")
        require(self.diagnostics_period_s > 0, "diagnostics_period_s", self.diagnostics_period_s, "> 0 s")
        require(bool(self.forward_controller and self.trajectory_controller), "forward_controller",
                (self.forward_controller, self.trajectory_controller), "two controller names")


class MujocoSimNode(Node):
    def __init__(self, node_name: str = NODE_NAME, **kwargs):
        super().__init__(node_name, **kwargs)
        self.config = c = self._read_config(SimNodeConfig())
        self.arm = MujocoArm(self._arm_config(c))
        if c.initial_position:
            self.arm.reset(np.asarray(c.initial_position, dtype=np.float64))
        self.switch = ControllerSwitch(self.arm.joint_names)
        self.contact_steps = 0
        self.contact_events = 0
        self.dropped_steps = 0
        self.lagged_ticks = 0
        self.publish_failures = 0
        self.paced_ticks = 0
        self._unsent: list = []
        self.fast = c.real_time_factor != 1.0
        # The published clock: MuJoCo's time restarts at every reset, this does not.
        self.clock_origin_ns = self.get_clock().now().nanoseconds  # the simulated clock at sim_time 0
        self._time_before_resets = 0.0
        self._steps_per_publish = max(1, int(round(1.0 / (c.publish_rate_hz * self.arm.dt))))
        self._touching: tuple = ()
        self._state = JointState(name=list(self.arm.joint_names))
        self._pose = PoseStamped()
        self._pose.header.frame_id = c.frame_id
        self._stamp = TimeMsg()
        # reliable as the controllers' own; deep enough that a burst of commands is judged one by one
        reliable = QoSProfile(depth=10)
        # Reliable keep-last: a reader that falls more than `depth` samples behind loses the oldest.
        # Faster than real time a recorder descheduled for 50 ms of wall time is a second of states
        # behind at 20x, so the history holds 10 s of simulated time there.
        depth = int(10 * c.publish_rate_hz) if self.fast else 10
        self._state_pub = self.create_publisher(JointState, "joint_states", depth)
        self._pose_pub = self.create_publisher(PoseStamped, "flange_pose", depth)
        self._clock_pub = self.create_publisher(Clock, "/clock", 10) if self.fast else None
        self._clock_msg = Clock()
        self._contacts_pub = self.create_publisher(String, "contacts", QoSProfile(depth=50))
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", QoSProfile(depth=10))
        self.create_subscription(Float64MultiArray, f"{c.forward_controller}/commands", self._on_forward, reliable)
        self.create_subscription(JointTrajectory, f"{c.trajectory_controller}/joint_trajectory",
                                 self._on_trajectory, reliable)
        self.create_subscription(Float64MultiArray, f"{node_name}/reset_position", self._on_reset, reliable)
        self._paced_ns: int | None = None  # the consumer's clock, once it has said where it is
        if c.pace_topic:
            self.create_subscription(Clock, c.pace_topic, self._on_pace, QoSProfile(depth=10))
        self._wall_start, self._steps_done = time.monotonic(), 0
        if self.fast:
            self._fast_wall_start, self._fast_sim_start = self._wall_start, 0.0
            self.create_timer(1.0 / (c.publish_rate_hz * c.real_time_factor), self._tick_fast)
        else:
            self.create_timer(1.0 / c.publish_rate_hz, self._tick)
        self.create_timer(c.diagnostics_period_s, self._publish_diagnostics)
        self._publish()

    def _read_config(self, defaults: SimNodeConfig) -> SimNodeConfig:
        declared = {name: self.declare_parameter(name, list(value) if isinstance(value, tuple) else value).value
                    for name, value in vars(defaults).items() if name != "initial_position"}
        # an empty list has no ROS parameter type: declare it as a double array explicitly
        initial = self.declare_parameter("initial_position", Parameter.Type.DOUBLE_ARRAY).value
        return SimNodeConfig(**declared, initial_position=tuple(initial or ()))

    @staticmethod
    def _arm_config(c: SimNodeConfig) -> ArmSimConfig:
        if c.robot != "ur5e":
            return task_arm_config(ROBOTS[c.robot])
        scene = box_reach_scene() if c.scene == "box_reach" else SceneConfig(table=c.scene == "table")
        return ArmSimConfig(robot_xml=c.robot_xml, scene=scene)

    @property
    def commands_received(self) -> int:
        return sum(self.switch.accepted.values())

    # -- commands ---------------------------------------------------------------------------------
    def _on_forward(self, msg: Float64MultiArray) -> None:
        reason = self.switch.forward_command(conversions.multiarray_values(msg))
        if reason is not None:
            self.get_logger().error(f"{self.config.forward_controller} command refused: {reason}",
                                    throttle_duration_sec=1.0)

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        stamp = conversions.stamp_seconds(msg.header.stamp)
        start = None if stamp == 0.0 else self.arm.time + (stamp - self._now_ns() * 1e-9)  # stamp 0: start now
        points = msg.points
        reason = self.switch.trajectory_command(
            list(msg.joint_names), [conversions.duration_seconds(p.time_from_start) for p in points],
            [np.asarray(p.positions, dtype=np.float64) for p in points],
            [np.asarray(p.velocities, dtype=np.float64) for p in points],
            now=self.arm.time, start_time=start, measured_position=self.arm.position)
        if reason is not None:
            self.get_logger().error(f"{self.config.trajectory_controller} trajectory refused: {reason}",
                                    throttle_duration_sec=1.0)

    def _on_pace(self, msg: Clock) -> None:
        self._paced_ns = msg.clock.sec * 1_000_000_000 + msg.clock.nanosec

    def _on_reset(self, msg: Float64MultiArray) -> None:
        values = conversions.multiarray_values(msg)
        if values.size and (values.shape != (len(self.arm.joint_names),) or not np.all(np.isfinite(values))):
            self.get_logger().error(f"reset refused: {values.tolist()} is not {len(self.arm.joint_names)} finite "
                                    "positions")
            return
        self._time_before_resets += self.arm.time
        self.arm.reset(values if values.size else None)
        self.switch.reset()

    # -- clock ------------------------------------------------------------------------------------
    @property
    def sim_time(self) -> float:
        """Simulated seconds since start-up, monotonic across resets."""
        return self._time_before_resets + self.arm.time

    def _now_ns(self) -> int:
        """The clock of stamps: ROS time in real time, else the simulated clock."""
        if self.fast:
            return self.clock_origin_ns + int(round(self.sim_time * 1e9))
        return self.get_clock().now().nanoseconds

    # -- physics ----------------------------------------------------------------------------------
    def _step_physics(self, steps: int) -> None:
        """The one stepping rule of both modes: the controllers sampled at the arm's time, then one step."""
        for _ in range(steps):
            desired = self.switch.desired(self.arm.time)
            if desired is not None:
                self.arm.set_target(*desired)
            self.arm.step()
            self._watch_contacts()

    def _tick_fast(self) -> None:
        """One publish period of physics per tick, no more often than F x wall time allows."""
        if self._unsent and not self._send_unsent():
            return  # a reader is behind: this instant must go out before the physics moves on
        if self._paced_ns is not None and self._now_ns() > self._paced_ns + int(self.config.max_lead_s * 1e9):
            self.paced_ticks += 1
            return  # the consumer (a recorder) is behind: a reader's queue would only grow
        wall = time.monotonic() - self._fast_wall_start
        budget = self.config.real_time_factor * wall - (self.sim_time - self._fast_sim_start)
        period = self._steps_per_publish * self.arm.dt
        if budget < period - 1e-9:
            return  # ahead of F x wall time: wait for the clock
        if budget > 3 * period:
            # Behind (the machine cannot keep up): carry on from here rather than rushing to catch up.
            self.lagged_ticks += 1
            self._fast_wall_start, self._fast_sim_start = time.monotonic(), self.sim_time
        self._step_physics(self._steps_per_publish)
        self._steps_done += self._steps_per_publish
        self._publish()

    def _tick(self) -> None:
        due = int((time.monotonic() - self._wall_start) / self.arm.dt) - self._steps_done
        if due > self.config.max_catch_up_steps:
            self.dropped_steps += due - self.config.max_catch_up_steps
            self._steps_done += due - self.config.max_catch_up_steps
            due = self.config.max_catch_up_steps
        self._step_physics(due)
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
            "sim_time": round(self.sim_time, 4), "stamp_ns": self._now_ns(), "count": len(contacts),
            "contacts": [{"arm": c.arm_body, "other": c.other, "distance": round(c.distance, 5)} for c in contacts]})))

    def _publish(self) -> bool:
        """Fill and send this instant's clock, joint state and flange pose; False if DDS refused one."""
        now_ns = self._now_ns()
        stamp = self._stamp
        stamp.sec, stamp.nanosec = divmod(now_ns, 1_000_000_000)
        self._unsent = []
        if self._clock_pub is not None:
            self._clock_msg.clock = stamp
            self._unsent.append((self._clock_pub, self._clock_msg))
        self._state.header.stamp = stamp
        self._state.position = conversions.float64s(self.arm.position)
        self._state.velocity = conversions.float64s(self.arm.velocity)
        self._state.effort = conversions.float64s(self.arm.effort)
        position, quaternion = self.arm.flange_pose()
        pose = self._pose.pose
        self._pose.header.stamp = stamp
        pose.position.x, pose.position.y, pose.position.z = (float(v) for v in position)
        pose.orientation.w, pose.orientation.x, pose.orientation.y, pose.orientation.z = (float(v) for v in quaternion)
        self._unsent += [(self._state_pub, self._state), (self._pose_pub, self._pose)]
        return self._send_unsent()

    def _send_unsent(self) -> bool:
        """Send what the last _publish has not sent yet, in order; stop at the first refusal.

        A reliable writer whose history is full of samples a slow reader has not acknowledged blocks,
        then refuses (FastDDS: "cannot publish data"). Faster than real time that reader is a
        recorder that fell behind: the sim then waits for it, retrying the same instant each tick
        before it steps on, so nothing is lost and the clock simply slows down. In real time there is
        no waiting: the sample is dropped and counted (publish_failures)."""
        while self._unsent:
            publisher, msg = self._unsent[0]
            try:
                publisher.publish(msg)
            except RCLError:
                self.publish_failures += 1
                if not self.fast:
                    self._unsent = []
                return False
            self._unsent.pop(0)
        return True

    def _publish_diagnostics(self) -> None:
        wall = time.monotonic() - self._wall_start
        level, message = DiagnosticStatus.OK, "simulating"
        if self._touching:
            level, message = DiagnosticStatus.WARN, f"in contact: {len(self._touching)} pair(s)"
        values = {"contacts_now": len(self._touching), "contact_steps": self.contact_steps,
                  "contact_events": self.contact_events, "sim_time_s": self.sim_time,
                  "real_time_factor": self.sim_time / wall if wall > 0 else 0.0,
                  "real_time_factor_set": self.config.real_time_factor, "dropped_steps": self.dropped_steps,
                  "lagged_ticks": self.lagged_ticks, "publish_failures": self.publish_failures,
                  "paced_ticks": self.paced_ticks,
                  "active_controller": self.switch.active or "none"}
        for kind, name in ((FORWARD, self.config.forward_controller), (TRAJECTORY, self.config.trajectory_controller)):
            values[f"{name}_accepted"] = self.switch.accepted[kind]
            values[f"{name}_refused"] = self.switch.refused[kind]
        status = conversions.diagnostic_status(f"{self.get_name()}: mujoco arm", self.get_fully_qualified_name(),
                                               level, message, values)
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(array)


def main(argv: list[str] | None = None) -> int:
    from ebgan_mdn_ros.node.process import run_nodes
    return run_nodes("mujoco_sim", MujocoSimNode, argv, startup_errors=(ConfigError, ValueError, RobotLoadError))

if __name__ == "__main__":
    sys.exit(main())
