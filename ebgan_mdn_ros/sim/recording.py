"""Demonstrations of the scripted expert in simulated time, written as a rosbag2 without a ROS graph.

The in-process backend of `python -m ebgan_mdn_ros.node.record_demos --backend inprocess`: the same
MuJoCo arm (sim/task_arms.py) and goal schedule as the sim nodes step in simulated time and the messages are encoded
with mcap_ros2, in the order the ROS graph sends them. Fast, deterministic, and usable where rclpy
is not installed. The topic names and types here are the ones the ROS backend records too.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ebgan_mdn_ros.data.bag_writer import BagWriter
from ebgan_mdn_ros.sim.goal_schedule import GoalSchedule, TaskConfig
from ebgan_mdn_ros.sim.mujoco_arm import MujocoArm
from ebgan_mdn_ros.sim.task_arms import task_arm_config
from ebgan_mdn_ros.tasks.expert import IKExpert, RouteExpert

JOINT_STATES, GOAL, GOAL_EVENTS = "/joint_states", "/goal", "/goal_events"
RESET = "/sim_arm/reset_position"
JOINT_STATE_TYPE = "sensor_msgs/msg/JointState"
ARRAY_TYPE = "std_msgs/msg/Float64MultiArray"
STRING_TYPE = "std_msgs/msg/String"
GOAL_REPUBLISH_S = 0.1


@dataclass
class RecordingSummary:
    bag: Path
    task: str
    goals_finished: int
    goals_reached: int
    message_counts: dict[str, int]
    expert_modes: dict[str, int]
    seconds: float

    def text(self) -> str:
        counts = ", ".join(f"{topic} {n}" for topic, n in sorted(self.message_counts.items()))
        modes = ", ".join(f"{mode} {n}" for mode, n in self.expert_modes.items())
        return (f"recorded {self.bag} ({self.task}): {self.goals_finished} goals finished, "
                f"{self.goals_reached} reached, in {self.seconds:.1f} s\n  messages: {counts}\n"
                f"  expert modes: {modes}")


def command_topic(controller: str) -> str:
    return f"/{controller.strip('/')}/commands"


def topics_of(task: str, controller: str) -> list[tuple[str, str]]:
    topics = [(JOINT_STATES, JOINT_STATE_TYPE), (GOAL, ARRAY_TYPE), (command_topic(controller), ARRAY_TYPE),
              (GOAL_EVENTS, STRING_TYPE)]
    if task == "multiroute":
        topics.append((RESET, ARRAY_TYPE))
    return topics


# ---- in-process backend: the MuJoCo arm in simulated time ------------------------------------------

def _stamp(t_ns: int) -> dict:
    return {"sec": int(t_ns // 1_000_000_000), "nanosec": int(t_ns % 1_000_000_000)}


def _array(values) -> dict:
    return {"layout": {"dim": [], "data_offset": 0}, "data": [float(v) for v in values]}


def record_inprocess(task: str, goals: int, out: Path, seed: int = 0, rate_hz: float = 100.0,
                     controller: str = "forward_position_controller", max_sim_seconds: float | None = None,
                     start_ns: int | None = None) -> RecordingSummary:
    """Run the expert against the MuJoCo arm in simulated time; messages in the order the ROS graph sends them.

    Per tick (1 / rate_hz): the arm steps towards the last command and publishes its state; the
    multi-route expert answers the state with a command; the goal source scores the state and,
    when a goal ends, publishes the next (for multiroute after resetting the arm) and republishes
    the current goal every 0.1 s; the IK expert answers each new goal. Each reaction is stamped
    1 us after its cause.
    """
    wall_start = time.monotonic()
    rng = np.random.default_rng(seed)
    arm = MujocoArm(task_arm_config(task))
    schedule = GoalSchedule(TaskConfig(task=task, seed=seed))  # the goal source node's defaults
    expert = IKExpert(rng) if task == "ik" else RouteExpert(rng)
    joint_names = list(arm.joint_names)
    commands = command_topic(controller)
    tick_ns = int(round(1e9 / rate_hz))
    steps_per_tick = max(1, int(round(tick_ns * 1e-9 / arm.dt)))
    republish_ns = int(round(GOAL_REPUBLISH_S * 1e9))
    t = time.time_ns() if start_ns is None else int(start_ns)
    limit_ns = t + int((max_sim_seconds or goals * (schedule.config.timeout_s + 1.0) + 5.0) * 1e9)
    target = None
    next_republish = None
    with BagWriter(out) as bag:
        for topic, type_name in topics_of(task, controller):
            bag.add_topic(topic, type_name)

        def send_goal(at: int) -> None:
            nonlocal target
            bag.write_message(GOAL, _array(schedule.goal), at)
            if isinstance(expert, IKExpert):
                answer = expert.on_goal(schedule.goal)
                if answer is not None:
                    target = answer
                    bag.write_message(commands, _array(target), at + 1000)

        def start_goal(at: int) -> None:
            nonlocal target, next_republish
            schedule.new_goal(at * 1e-9)
            if schedule.start_position is not None:
                bag.write_message(RESET, _array(schedule.start_position), at)
                arm.reset(schedule.start_position)
                target = None
                expert.reset()
                at += 1000
            send_goal(at)
            next_republish = at + republish_ns

        while schedule.tally.attempted < goals and t < limit_ns:
            t += tick_ns
            if target is not None:
                arm.set_target(target)
            arm.step(steps_per_tick)
            bag.write_message(JOINT_STATES, {
                "header": {"stamp": _stamp(t), "frame_id": ""}, "name": joint_names,
                "position": arm.position.tolist(), "velocity": arm.velocity.tolist(), "effort": []}, t)
            if isinstance(expert, RouteExpert) and schedule.goal is not None:
                target = arm.position + expert.on_state(arm.position)
                bag.write_message(commands, _array(target), t + 1000)
            if schedule.goal is None and schedule.tally.attempted == 0:
                start_goal(t + 2000)
                continue
            event = schedule.update(t * 1e-9, arm.position)
            if event is not None:
                tally = schedule.tally
                bag.write_message(GOAL_EVENTS, {"data": json.dumps({
                    "outcome": event.outcome, "goal": event.goal.round(4).tolist(), "seconds": round(event.seconds, 3),
                    "error": round(event.error, 4), "mode": event.mode, "reached": tally.reached,
                    "attempted": tally.attempted})}, t + 2000)
                if tally.attempted < goals:
                    start_goal(t + 3000)
            elif next_republish is not None and t >= next_republish:
                send_goal(t + 2000)
                next_republish += republish_ns
        counts = bag.message_counts
    modes = expert.mode_counts if isinstance(expert, IKExpert) else expert.route_counts
    return RecordingSummary(Path(out), task, schedule.tally.attempted, schedule.tally.reached, counts,
                            dict(modes), time.monotonic() - wall_start)
