"""Simulated arm and goal source for the demo, the launch file's `arm:=sim` and the node tests.

`sim_arm` is the MuJoCo sim node (node/mujoco_sim_node.py) with a 2-D task's arm: the planar 2-link
or the gantry as position servos in 1 kHz physics, behind the topics of ros2_control's
ForwardCommandController (`<forward_controller>/commands`) and JointTrajectoryController
(`<trajectory_controller>/joint_trajectory`), publishing sensor_msgs/JointState on `joint_states`.
`sim_arm goal_source` runs the task's goal source instead: goals on `goal` (std_msgs/Float64MultiArray),
one JSON line per finished goal on `goal_events` (std_msgs/String) and in the log, and a summary on
shutdown.
"""
from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import replace

import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import Trigger

from ebgan_mdn_ros.config_base import require
from ebgan_mdn_ros.node import conversions
from ebgan_mdn_ros.node.mujoco_sim_node import MujocoSimNode, SimNodeConfig
from ebgan_mdn_ros.node.process import run_nodes
from ebgan_mdn_ros.sim.goal_schedule import GoalSchedule, TaskConfig
from ebgan_mdn_ros.sim.task_arms import ROBOTS

RESET_TOPIC = "sim_arm/reset_position"  # multiroute episodes restart the gantry here
RUNNING, STOPPING, MOVING = "running", "stopping", "moving"
RESTART_PATIENCE_S = 2.0  # s to wait for the policy or the arm during an episode restart


class SimArmNode(MujocoSimNode):
    """The arm of a 2-D task in MuJoCo (sim/task_arms.py), picked by the `task` parameter: the planar
    2-link (ik) or the gantry (multiroute), with the UR5e's controllers, clock and topics."""

    def __init__(self, **kwargs):
        super().__init__("sim_arm", **kwargs)

    def _read_config(self, defaults: SimNodeConfig) -> SimNodeConfig:
        task = self.declare_parameter("task", "ik").value
        robots = {task_name: robot for robot, task_name in ROBOTS.items()}
        require(task in robots, "task", task, f"one of {sorted(robots)}")
        return super()._read_config(replace(defaults, robot=robots[task], scene="none", publish_rate_hz=100.0))

    @property
    def joint_names(self) -> list[str]:
        return list(self.arm.joint_names)


class GoalSourceNode(Node):
    """One goal at a time; for multiroute, each episode restarts the gantry near (0, 0).

    An episode restart must not look like a jump to the policy (its safety filter would walk the arm
    back from the last command): stop the policy, move the gantry, wait until joint_states shows it
    at the start, then start the policy again (which re-seeds from the measured position).
    """

    def __init__(self, **kwargs):
        super().__init__("goal_source", **kwargs)
        declare = self.declare_parameter
        defaults = TaskConfig()
        self.schedule = GoalSchedule(TaskConfig(
            task=declare("task", "ik").value,
            goal_radius_min=declare("goal_radius_min", defaults.goal_radius_min).value,   # m
            goal_radius_max=declare("goal_radius_max", defaults.goal_radius_max).value,   # m
            goal_bearing_min=declare("goal_bearing_min", defaults.goal_bearing_min).value,  # rad
            goal_bearing_max=declare("goal_bearing_max", defaults.goal_bearing_max).value,  # rad
            tolerance=declare("tolerance", defaults.tolerance).value,               # m, end-effector error
            timeout_s=declare("timeout_s", defaults.timeout_s).value,               # s per goal
            seed=declare("seed", 0).value))
        policy = declare("policy_node", "policy_node").value         # whose ~/stop, ~/start, ~/reset to call
        # Each IK goal is a new query: let the policy draw its elbow mode afresh instead of keeping the
        # last goal's (stickiness holds a mode within an episode, not across them).
        self._reset_per_goal = declare("reset_policy_per_goal", True).value
        self._goal_pub = self.create_publisher(Float64MultiArray, "goal", QoSProfile(depth=1))
        self._event_pub = self.create_publisher(String, "goal_events", QoSProfile(depth=50))
        self._reset_pub = self.create_publisher(Float64MultiArray, RESET_TOPIC, QoSProfile(depth=1))
        self._policy_stop = self.create_client(Trigger, f"{policy}/stop")
        self._policy_start = self.create_client(Trigger, f"{policy}/start")
        self._policy_reset = self.create_client(Trigger, f"{policy}/reset")
        self._goal_msg = Float64MultiArray()
        self._phase, self._phase_since = RUNNING, 0.0
        self.create_subscription(JointState, "joint_states", self._on_state, qos_profile_sensor_data)
        # Re-sent so a policy that starts (or reconnects) late still learns the current goal.
        self.create_timer(declare("republish_period_s", 0.1).value, self._publish_goal)

    def _on_state(self, msg: JointState) -> None:
        position, now = np.asarray(msg.position, dtype=np.float64), time.monotonic()
        if self.schedule.goal is None and self.schedule.tally.attempted == 0:
            # The clock of the first goal starts once a policy listens, not while it is still loading.
            if self._goal_pub.get_subscription_count() > 0:
                self._start_goal(now)
            return
        if self._phase != RUNNING:
            self._continue_restart(position, now)
            return
        event = self.schedule.update(now, position)
        if event is None:
            return
        tally = self.schedule.tally
        record = {"outcome": event.outcome, "goal": event.goal.round(4).tolist(), "seconds": round(event.seconds, 3),
                  "error": round(event.error, 4), "mode": event.mode, "reached": tally.reached,
                  "attempted": tally.attempted}
        self._event_pub.publish(String(data=json.dumps(record)))
        self.get_logger().info(f"goal {event.outcome}: {record}")
        self._start_goal(now)

    def _start_goal(self, now: float) -> None:
        goal = self.schedule.new_goal(now)
        self._goal_msg.data = conversions.float64s(goal)
        if self.schedule.start_position is None:
            self._publish_goal()
            if self._reset_per_goal and self._policy_reset.service_is_ready():
                self._policy_reset.call_async(Trigger.Request())  # never wait in a callback
            return
        self._phase, self._phase_since = STOPPING, now
        if self._policy_stop.service_is_ready():
            self._policy_stop.call_async(Trigger.Request()).add_done_callback(lambda _: self._move_to_start())
        else:
            self._move_to_start()

    def _move_to_start(self) -> None:
        self._phase, self._phase_since = MOVING, time.monotonic()
        self._reset_pub.publish(Float64MultiArray(data=conversions.float64s(self.schedule.start_position)))

    def _continue_restart(self, position: np.ndarray, now: float) -> None:
        waited = now - self._phase_since
        if self._phase == STOPPING and waited > RESTART_PATIENCE_S:
            self._move_to_start()  # the policy never answered: restart without it
        elif self._phase == MOVING and waited > RESTART_PATIENCE_S:
            self._reset_pub.publish(Float64MultiArray(data=conversions.float64s(self.schedule.start_position)))
            self._phase_since = now
        elif self._phase == MOVING and np.linalg.norm(position[:2] - self.schedule.start_position) < 1e-3:
            self._phase = RUNNING
            self.schedule.restart_clock(now)
            self._publish_goal()
            if self._policy_start.service_is_ready():
                self._policy_start.call_async(Trigger.Request())  # never wait in a callback

    def _publish_goal(self) -> None:
        if self.schedule.goal is not None:
            self._goal_pub.publish(self._goal_msg)

    def summary(self) -> str:
        tally = self.schedule.tally
        if not tally.attempted:
            return "goals: none finished"
        modes = ", ".join(f"{k} {v}" for k, v in sorted(tally.modes.items())) or "-"
        mean = np.mean(tally.seconds_to_reach) if tally.seconds_to_reach else math.nan
        return (f"goals: reached {tally.reached}/{tally.attempted} ({100.0 * tally.success_rate:.1f} %), "
                f"modes: {modes}, mean time to reach {mean:.2f} s")


def main(argv: list[str] | None = None) -> int:
    """`sim_arm` runs the arm; `sim_arm goal_source` runs the goal source (same ROS arguments).

    Exit 0 on SIGINT/SIGTERM (the goal source prints its summary first), 2 on a configuration it cannot
    run with (node/process.py).
    """
    command_line = list(sys.argv if argv is None else argv)

    def build():
        # After rclpy.init: remove_ros_args raises for a bad --params-file, which run_nodes reports.
        goal_source = "goal_source" in rclpy.utilities.remove_ros_args(command_line)[1:]
        return GoalSourceNode() if goal_source else SimArmNode()

    def print_summary(nodes) -> None:
        for node in nodes:
            if isinstance(node, GoalSourceNode):
                print(f"[goal_source] {node.summary()}", flush=True)

    name = "goal_source" if "goal_source" in command_line[1:] else "sim_arm"  # for the start-up message only
    code = run_nodes(name, build, argv, executor="events", startup_errors=(ValueError,), on_stop=print_summary)
    if code:
        raise SystemExit(code)  # an exit code even from wrappers that ignore main's return value
    return code


if __name__ == "__main__":
    sys.exit(main())
