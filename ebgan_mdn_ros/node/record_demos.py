"""Record demonstrations of a scripted multi-modal expert driving the simulated arm, as a rosbag2.

    python -m ebgan_mdn_ros.node.record_demos --task ik --goals 50 --out bags/demo_ik
    python -m ebgan_mdn_ros.node.record_demos --task multiroute --goals 30 --out bags/demo_routes
    ebgan-mdn dataset bags/demo_ik --out demos_ik.npz --command-topic /forward_position_controller/commands

Backends (the bag has the same topics and types either way):
- ``ros`` (default): real rclpy nodes in one process: sim_arm's SimArmNode and GoalSourceNode,
  the expert node, and a recorder whose raw subscriptions write the serialised CDR bytes straight
  into the MCAP file (no re-encoding), stamped with the DDS receive time (log time) and the send
  time (publish time). With ``--attach`` the sim nodes are not started: the expert and the
  recorder join an arm and goal source that are already running.
- ``inprocess``: no ROS graph (ebgan_mdn_ros.sim.recording): the same arm dynamics and goal
  schedule step in simulated time and the messages are encoded with mcap_ros2.

Topics recorded: /joint_states (sensor_msgs/JointState), /goal (std_msgs/Float64MultiArray),
/<controller>/commands (std_msgs/Float64MultiArray, the expert's commands), /goal_events
(std_msgs/String, one JSON line per finished goal) and, for multiroute, /sim_arm/reset_position
(std_msgs/Float64MultiArray, the start of every episode: pass it as `--episode-topic`).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from ebgan_mdn_ros.data.bag_writer import BagWriter, RecorderError
from ebgan_mdn_ros.sim.goal_schedule import TASKS
from ebgan_mdn_ros.sim.recording import (
    ARRAY_TYPE, GOAL, GOAL_EVENTS, JOINT_STATE_TYPE, JOINT_STATES, RESET,
    STRING_TYPE, RecordingSummary, command_topic, record_inprocess, topics_of)
from ebgan_mdn_ros.tasks.expert import IKExpert, RouteExpert


# ---- ROS backend: real nodes, raw subscriptions ---------------------------------------------------

def record_ros(task: str, goals: int, out: Path, seed: int = 0, controller: str = "forward_position_controller",
               attach: bool = False, timeout_s: float | None = None, match_timeout_s: float = 20.0,
               ros_args: list[str] | None = None, should_stop=lambda: False) -> RecordingSummary:
    """Drive sim_arm with the expert over DDS and record its topics; stops after ``goals`` finished goals,
    or early once ``should_stop()`` (the bag so far is closed and kept)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray, String

    wall_start = time.monotonic()
    deadline = wall_start + (timeout_s if timeout_s is not None else goals * 6.0 + 60.0)
    message_types = {JOINT_STATE_TYPE: JointState, ARRAY_TYPE: Float64MultiArray, STRING_TYPE: String}
    commands = command_topic(controller)
    rng = np.random.default_rng(seed)
    expert = IKExpert(rng) if task == "ik" else RouteExpert(rng)

    class ExpertNode(Node):
        """Answers goals (IK) or joint states (multiroute) with forward-controller commands."""

        def __init__(self):
            super().__init__("demo_expert")
            self._command = Float64MultiArray()
            self._publisher = self.create_publisher(Float64MultiArray, commands, QoSProfile(depth=1))
            self.active = False
            self.create_subscription(Float64MultiArray, GOAL, self._on_goal, QoSProfile(depth=10))
            if isinstance(expert, RouteExpert):
                # depth 1: a late callback answers the newest state, never a stale one
                self.create_subscription(JointState, JOINT_STATES, self._on_state, QoSProfile(depth=1))
                self.create_subscription(Float64MultiArray, RESET, self._on_reset, QoSProfile(depth=10))

        def _on_goal(self, msg) -> None:
            self.active = True
            if isinstance(expert, IKExpert):
                answer = expert.on_goal(np.asarray(msg.data, dtype=np.float64))
                if answer is not None:  # a republished goal was answered already
                    self._send(answer)

        def _on_reset(self, msg) -> None:
            expert.reset()

        def _on_state(self, msg) -> None:
            if self.active and len(msg.position) >= 2:
                position = np.asarray(msg.position, dtype=np.float64)
                self._send(position + expert.on_state(position))

        def _send(self, command: np.ndarray) -> None:
            self._command.data = [float(v) for v in command]
            self._publisher.publish(self._command)

    class RecorderNode(Node):
        """One raw subscription per topic; each message's CDR bytes go into the bag as received."""

        def __init__(self, bag: BagWriter, topics):
            super().__init__("demo_recorder")
            self.subscriptions_by_topic = {}
            self.finished_goals = 0
            self.reached_goals = 0
            for topic, type_name in topics:
                bag.add_topic(topic, type_name)
                self.subscriptions_by_topic[topic] = self.create_subscription(
                    message_types[type_name], topic, self._writer_for(bag, topic), QoSProfile(depth=1000), raw=True)
            self.create_subscription(String, GOAL_EVENTS, self._on_event, QoSProfile(depth=50))

        @staticmethod
        def _writer_for(bag: BagWriter, topic: str):
            def write(data: bytes, info) -> None:
                # MCAP chunks are buffered in memory: this appends, it does not wait for the disk.
                bag.write_serialized(topic, data, info["received_timestamp"], info["source_timestamp"])
            return write

        def _on_event(self, msg) -> None:
            self.finished_goals += 1
            try:
                self.reached_goals = int(json.loads(msg.data).get("reached", self.reached_goals))
            except (ValueError, AttributeError):
                pass

    context_args = ["record_demos"] + (["--ros-args", *ros_args] if ros_args else [])
    # Without rclpy's signal handlers: a SIGINT/SIGTERM is ``should_stop`` (main's StopSignals), so it never
    # interrupts a callback, a bag write or the teardown (node/process.py).
    from ebgan_mdn_ros.node.process import init
    init(context_args)
    executor = SingleThreadedExecutor()  # the EventsExecutor fails on raw callbacks with MessageInfo (rclpy 9.1.2)
    nodes = []
    try:
        with BagWriter(out) as bag:
            topics = topics_of(task, controller)
            if not attach:
                from ebgan_mdn_ros.node.sim_nodes import GoalSourceNode, SimArmNode
                nodes.append(SimArmNode(parameter_overrides=[
                    Parameter("task", value=task), Parameter("forward_controller", value=controller.strip("/"))]))
            recorder = RecorderNode(bag, topics)
            expert_node = ExpertNode()
            nodes += [recorder, expert_node]
            for node in nodes:
                executor.add_node(node)
            # Start the goal source only once the recorder hears the arm and the expert, and the arm
            # hears the expert, so the first goal and its command are recorded.
            needed = [(recorder.subscriptions_by_topic[JOINT_STATES].get_publisher_count, 1),
                      (recorder.subscriptions_by_topic[commands].get_publisher_count, 1),
                      (expert_node._publisher.get_subscription_count, 1 if attach else 2)]
            match_deadline = time.monotonic() + match_timeout_s
            while not all(count() >= n for count, n in needed) and not should_stop():
                if time.monotonic() > match_deadline:
                    raise RecorderError("the recorder did not match the arm's /joint_states and the expert's "
                                        f"{commands} within {match_timeout_s} s (is sim_arm running on this "
                                        "ROS_DOMAIN_ID?)")
                executor.spin_once(timeout_sec=0.05)
            if not attach and not should_stop():
                source = GoalSourceNode(parameter_overrides=[Parameter("task", value=task), Parameter("seed", value=seed)])
                nodes.append(source)
                executor.add_node(source)
            while recorder.finished_goals < goals and rclpy.ok() and not should_stop():
                if time.monotonic() > deadline:
                    raise RecorderError(f"only {recorder.finished_goals} of {goals} goals finished before the "
                                        f"timeout; the bag so far is kept in {out}")
                executor.spin_once(timeout_sec=0.1)
            counts = bag.message_counts
    finally:
        for node in nodes:
            executor.remove_node(node)
            node.destroy_node()
        executor.shutdown(timeout_sec=1.0)
        rclpy.try_shutdown()
    modes = expert.mode_counts if isinstance(expert, IKExpert) else expert.route_counts
    return RecordingSummary(Path(out), task, recorder.finished_goals, recorder.reached_goals, counts, dict(modes),
                            time.monotonic() - wall_start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ebgan_mdn_ros.node.record_demos", description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True, choices=TASKS, help="ik or multiroute")
    parser.add_argument("--goals", type=int, default=50, help="stop after this many finished goals (episodes)")
    parser.add_argument("--out", required=True, help="bag directory to create (must not exist)")
    parser.add_argument("--backend", choices=("ros", "inprocess"), default="ros",
                        help="ros: real sim_arm nodes over DDS; inprocess: the same MuJoCo arm in simulated time")
    parser.add_argument("--attach", action="store_true",
                        help="ros backend: do not start sim_arm / goal_source, join running ones")
    parser.add_argument("--seed", type=int, default=0, help="expert's mode choices and the goal source's goals")
    parser.add_argument("--controller", default="forward_position_controller",
                        help="forward command controller name: commands go to <controller>/commands")
    parser.add_argument("--timeout", type=float, default=None, help="s of wall time before giving up (ros backend)")
    args, ros_args = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if ros_args and ros_args[0] == "--ros-args":
        ros_args = ros_args[1:]
    elif ros_args:
        parser.error(f"unrecognized arguments: {' '.join(ros_args)}")
    if args.goals < 1:
        parser.error("--goals must be >= 1")
    task = args.task
    if args.backend == "inprocess":
        try:
            summary = record_inprocess(task, args.goals, Path(args.out), args.seed, controller=args.controller)
        except RecorderError as exc:
            print(f"record_demos: error: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print(f"record_demos: interrupted; the bag so far is in {args.out}", file=sys.stderr)
            return 130
        print(summary.text())
        return 0
    # The ros backend is a node process: SIGINT/SIGTERM end the recording cleanly (exit 0, the bag kept),
    # a bad --params-file is one line and exit 2, as for every node (node/process.py).
    from ebgan_mdn_ros.node.process import ROS_CONFIG_ERRORS, StopSignals, config_error_text
    signals = StopSignals()
    try:
        summary = record_ros(task, args.goals, Path(args.out), args.seed, args.controller, args.attach,
                             args.timeout, ros_args=ros_args, should_stop=signals.is_set)
    except RecorderError as exc:
        print(f"record_demos: error: {exc}", file=sys.stderr)
        return 1
    except ROS_CONFIG_ERRORS as exc:
        print(f"record_demos: start-up failed: {config_error_text(exc, ros_args)}", file=sys.stderr)
        return 2
    finally:
        # argv None: this is the process's own command line, so ignore signals until exit (a second one
        # must not kill it during interpreter exit); an in-process call gets its handlers back.
        if argv is None:
            signals.ignore()
        else:
            signals.restore()
    if signals.is_set():
        print(f"record_demos: stopped by a signal after {summary.goals_finished} of {args.goals} goals; "
              "the bag so far is kept", file=sys.stderr)
    print(summary.text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
