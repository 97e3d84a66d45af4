"""Record box-reach demonstrations of the scripted expert driving the MuJoCo UR5e over ROS, as a rosbag2.

    python -m ebgan_mdn_ros.node.record_box_reach --demos 2000 --out bags/box_reach --seed 0
    ebgan-mdn dataset bags/box_reach --out box_reach.npz --episode-topic /mujoco_sim/reset_position \
        --condition goal,position,velocity ...   (no command topic: hindsight labels from joint states)

The sim is its own process (mujoco_sim_node, real time, 1 kHz physics); this process holds the expert
and a recorder whose raw subscriptions keep the serialised CDR bytes with their DDS receive times.
Per demo the expert plans in its own MuJoCo copy (tasks.box_reach endpoints, near/far half and
half, rejected plans redrawn: sim.box_reach_expert), then over ROS: reset the arm to the plan's
start (mujoco_sim/reset_position), wait until joint_states shows it there, publish the flange goal
on /goal and the whole plan as one JointTrajectory (positions and velocities), wait its duration
plus the settle time, and score what came back: no message on /contacts with a contact, the last
flange_pose within the goal tolerance, the flange path on the planned side of the box.

A demo's messages are held in memory until it is scored, and only a clean one goes into the bag:
a replay that touched the box (possible, rare: DDS jitter is not the expert's physics copy) never
becomes training data. /goal_events gets one JSON line per demo either way ("accepted" says which).

Real time means ~3.3 s a demo: 2000 take ~2 h. Several recorders on different ROS_DOMAIN_IDs with
different seeds make several bags that the dataset reads together.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ebgan_mdn_ros.data.bag_writer import BagWriter, RecorderError
from ebgan_mdn_ros.sim.box_reach_expert import BoxReachExpert, ExpertConfig, Plan
from ebgan_mdn_ros.tasks.box_reach import BoxReachConfig, route_of

JOINT_STATES, FLANGE, CONTACTS, GOAL, GOAL_EVENTS = "/joint_states", "/flange_pose", "/contacts", "/goal", "/goal_events"
RESET = "/mujoco_sim/reset_position"
TRAJECTORY = "/joint_trajectory_controller/joint_trajectory"
TOPICS = {JOINT_STATES: "sensor_msgs/msg/JointState", FLANGE: "geometry_msgs/msg/PoseStamped",
          CONTACTS: "std_msgs/msg/String", GOAL: "std_msgs/msg/Float64MultiArray",
          RESET: "std_msgs/msg/Float64MultiArray", TRAJECTORY: "trajectory_msgs/msg/JointTrajectory",
          GOAL_EVENTS: "std_msgs/msg/String"}
RESET_PATIENCE_S = 2.0   # s for joint_states to show a reset before it is sent again
SETTLED = 1e-4           # rad: the arm is at the reset position


@dataclass
class BoxReachRecording:
    bag: Path
    accepted: int
    rejected: Counter
    routes: Counter
    planner_rejected: Counter
    message_counts: dict[str, int]
    seconds: float

    def text(self) -> str:
        counts = ", ".join(f"{t} {n}" for t, n in sorted(self.message_counts.items()))
        return (f"recorded {self.bag}: {self.accepted} demos ({dict(self.routes)}) in {self.seconds:.1f} s; "
                f"replays rejected: {dict(self.rejected) or 0}; plans rejected: {dict(self.planner_rejected) or 0}"
                f"\n  messages: {counts}")


def start_sim(publish_rate_hz: float) -> subprocess.Popen:
    """mujoco_sim_node in its own process (same environment, so the same ROS_DOMAIN_ID)."""
    return subprocess.Popen([sys.executable, "-m", "ebgan_mdn_ros.node.mujoco_sim_node", "--ros-args",
                             "-p", f"publish_rate_hz:={float(publish_rate_hz)}"], env=dict(os.environ))


def stop_sim(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def record_box_reach(demos: int, out: Path, seed: int = 0, publish_rate_hz: float = 100.0, attach: bool = False,
                     timeout_s: float | None = None, match_timeout_s: float = 20.0,
                     task: BoxReachConfig = BoxReachConfig(), expert_config: ExpertConfig = ExpertConfig()
                     ) -> BoxReachRecording:
    import rclpy
    from rclpy.node import Node
    from rclpy.qos import QoSProfile
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray, String
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    from ebgan_mdn_ros.node import conversions
    from ebgan_mdn_ros.node.executors import make_executor

    types = {"sensor_msgs/msg/JointState": JointState, "geometry_msgs/msg/PoseStamped": PoseStamped,
             "std_msgs/msg/String": String, "std_msgs/msg/Float64MultiArray": Float64MultiArray,
             "trajectory_msgs/msg/JointTrajectory": JointTrajectory}
    wall_start = time.monotonic()
    deadline = wall_start + (timeout_s if timeout_s is not None else demos * 8.0 + 60.0)
    planner = BoxReachExpert(task=task, config=expert_config, seed=seed)

    class Recorder(Node):
        """Raw subscriptions into a per-demo buffer; /goal_events straight into the bag."""

        def __init__(self, bag: BagWriter):
            super().__init__("box_reach_recorder")
            self.bag, self.buffer, self.recording = bag, [], False
            self.subscriptions_by_topic = {}
            for topic, type_name in TOPICS.items():
                bag.add_topic(topic, type_name)
                self.subscriptions_by_topic[topic] = self.create_subscription(
                    types[type_name], topic, self._keeper(topic), QoSProfile(depth=1000), raw=True)

        def _keeper(self, topic: str):
            def keep(data: bytes, info) -> None:
                if topic == GOAL_EVENTS:
                    self.bag.write_serialized(topic, data, info["received_timestamp"], info["source_timestamp"])
                elif self.recording:
                    self.buffer.append((topic, data, info["received_timestamp"], info["source_timestamp"]))
            return keep

        def begin(self) -> None:
            self.buffer, self.recording = [], True

        def finish(self, keep: bool) -> None:
            if keep:
                for message in self.buffer:
                    self.bag.write_serialized(*message)
            self.buffer, self.recording = [], False

    class Expert(Node):
        """One demo at a time: reset, wait for the arm, goal + trajectory, wait, score."""

        def __init__(self, recorder: Recorder):
            super().__init__("box_reach_expert")
            self.recorder = recorder
            reliable = QoSProfile(depth=10)
            self.reset_pub = self.create_publisher(Float64MultiArray, RESET, reliable)
            self.goal_pub = self.create_publisher(Float64MultiArray, GOAL, reliable)
            self.trajectory_pub = self.create_publisher(JointTrajectory, TRAJECTORY, reliable)
            self.event_pub = self.create_publisher(String, GOAL_EVENTS, QoSProfile(depth=50))
            self.create_subscription(JointState, JOINT_STATES, self._on_state, QoSProfile(depth=10))
            self.create_subscription(PoseStamped, FLANGE, self._on_flange, QoSProfile(depth=100))
            self.create_subscription(String, CONTACTS, self._on_contacts, QoSProfile(depth=50))
            self.position: np.ndarray | None = None
            self.flange: list[np.ndarray] = []
            self.touched = False
            self.plan: Plan | None = None
            self.phase, self.since = "idle", 0.0
            self.finished, self.accepted = 0, 0
            self.rejected, self.routes = Counter(), Counter()

        def _on_state(self, msg) -> None:
            self.position = np.asarray(msg.position, dtype=np.float64)

        def _on_flange(self, msg) -> None:
            if self.phase == "run":
                p = msg.pose.position
                self.flange.append(np.array([p.x, p.y, p.z]))

        def _on_contacts(self, msg) -> None:
            if self.phase == "run" and json.loads(msg.data).get("count", 0) > 0:
                self.touched = True

        def step(self) -> None:
            now = time.monotonic()
            if self.phase == "idle":
                self.plan = planner.demos(1, max_attempts=planner.stats.attempts + 50)[0].plan
                self.recorder.begin()
                self._reset(now)
            elif self.phase == "reset":
                start = self.plan.joint_positions[0]
                if self.position is not None and np.abs(self.position - start).max() < SETTLED:
                    self._run(now)
                elif now - self.since > RESET_PATIENCE_S:
                    self._reset(now)
            elif self.phase == "run" and now - self.since >= self.plan.times[-1] + expert_config.settle_s:
                self._score()

        def _reset(self, now: float) -> None:
            self.phase, self.since, self.position = "reset", now, None
            self.reset_pub.publish(Float64MultiArray(data=conversions.float64s(self.plan.joint_positions[0])))

        def _run(self, now: float) -> None:
            plan = self.plan
            self.flange, self.touched = [], False
            self.goal_pub.publish(Float64MultiArray(data=conversions.float64s(plan.goal)))
            msg = JointTrajectory(joint_names=list(planner.arm.joint_names))  # stamp 0: start now
            msg.points = [JointTrajectoryPoint(positions=conversions.float64s(q), velocities=conversions.float64s(v),
                                               time_from_start=conversions.duration(float(t)))
                          for t, q, v in zip(plan.times, plan.joint_positions, plan.joint_velocities)]
            self.trajectory_pub.publish(msg)
            self.phase, self.since = "run", now

        def _score(self) -> None:
            plan = self.plan
            error = float(np.linalg.norm(self.flange[-1] - plan.goal)) if self.flange else float("inf")
            taken = route_of(np.array(self.flange), task) if self.flange else ""
            reason = ("contact" if self.touched else "goal missed" if error > task.goal_tolerance
                      else "wrong side" if taken != plan.route else "")
            self.recorder.finish(keep=not reason)
            self.finished += 1
            if reason:
                self.rejected[reason] += 1
            else:
                self.accepted += 1
                self.routes[plan.route] += 1
            self.event_pub.publish(String(data=json.dumps({
                "outcome": "reached" if not reason else reason, "accepted": not reason, "route": plan.route,
                "route_taken": taken, "start": plan.start.round(4).tolist(), "goal": plan.goal.round(4).tolist(),
                "error": round(error, 5), "accepted_so_far": self.accepted, "finished": self.finished})))
            self.phase = "idle"

    rclpy.init(args=["record_box_reach"])
    sim = None if attach else start_sim(publish_rate_hz)
    executor = make_executor("single_threaded")  # the EventsExecutor fails on raw callbacks (rclpy 9.1.2)
    nodes = []
    try:
        with BagWriter(out) as bag:
            recorder = Recorder(bag)
            expert = Expert(recorder)
            nodes = [recorder, expert]
            for node in nodes:
                executor.add_node(node)
            match_deadline = time.monotonic() + match_timeout_s
            while not (recorder.subscriptions_by_topic[JOINT_STATES].get_publisher_count() >= 1
                       and expert.trajectory_pub.get_subscription_count() >= 2
                       and expert.reset_pub.get_subscription_count() >= 2 and expert.position is not None):
                if time.monotonic() > match_deadline or (sim is not None and sim.poll() is not None):
                    raise RecorderError(f"mujoco_sim_node did not come up on this ROS_DOMAIN_ID within "
                                        f"{match_timeout_s} s" + (f" (exit code {sim.poll()})" if sim else ""))
                executor.spin_once(timeout_sec=0.05)
            while expert.accepted < demos:
                if time.monotonic() > deadline:
                    raise RecorderError(f"only {expert.accepted} of {demos} demos before the timeout; the bag so "
                                        f"far is kept in {out}")
                expert.step()
                executor.spin_once(timeout_sec=0.005)
            events_due = time.monotonic() + 2.0  # the last goal event into the bag
            while bag.message_counts[GOAL_EVENTS] < expert.finished and time.monotonic() < events_due:
                executor.spin_once(timeout_sec=0.05)
            counts = bag.message_counts
    finally:
        for node in nodes:
            executor.remove_node(node)
            node.destroy_node()
        executor.shutdown(timeout_sec=1.0)
        rclpy.try_shutdown()
        if sim is not None:
            stop_sim(sim)
    return BoxReachRecording(Path(out), expert.accepted, expert.rejected, expert.routes, planner.stats.rejected,
                             counts, time.monotonic() - wall_start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ebgan_mdn_ros.node.record_box_reach",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--demos", type=int, default=100, help="stop after this many accepted demos")
    parser.add_argument("--out", required=True, help="bag directory to create (must not exist)")
    parser.add_argument("--seed", type=int, default=0, help="endpoints and route choices")
    parser.add_argument("--rate", type=float, default=100.0, help="Hz of joint_states and flange_pose")
    parser.add_argument("--attach", action="store_true", help="join a running mujoco_sim_node")
    parser.add_argument("--timeout", type=float, default=None, help="s of wall time before giving up")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.demos < 1:
        parser.error("--demos must be >= 1")
    try:
        summary = record_box_reach(args.demos, Path(args.out), args.seed, args.rate, args.attach, args.timeout)
    except RecorderError as exc:
        print(f"record_box_reach: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"record_box_reach: interrupted; the bag so far is in {args.out}", file=sys.stderr)
        return 130
    print(summary.text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
