"""Record box-reach demonstrations of the scripted expert driving the MuJoCo UR5e over ROS, as a rosbag2.

    python -m ebgan_mdn_ros.node.record_box_reach --demos 2000 --out bags/box_reach --seed 0
    ebgan-mdn dataset bags/box_reach --out box_reach.npz --episode-topic /mujoco_sim/reset_position \
        --condition goal,position --action delta ...   (no command topic: hindsight labels from joint states)

The sim is its own process (mujoco_sim_node, 1 kHz physics, by default 20x faster than real time:
--real-time-factor); this process holds the expert and a recorder whose raw subscriptions keep the
serialised CDR bytes. Per demo the expert plans in its own MuJoCo copy (tasks.box_reach endpoints,
near/far half and half, rejected plans redrawn: sim.box_reach_expert), then over ROS: reset the arm
to the plan's start (mujoco_sim/reset_position), wait until joint_states shows it there, publish the
flange goal on /goal and the whole plan as one JointTrajectory (positions and velocities), wait its
duration plus the settle time from the first moving joint state, and score what came back: no
message on /contacts with a contact, the last flange_pose within the goal tolerance, the flange path
on the planned side of the box, and no joint state lost on the way (a gap in the stamps longer than
2.5 publish periods: the sim never skips one, so a gap is a sample DDS dropped).

Pacing. DDS gives the sim no back-pressure: a reliable reader acknowledges what reached its queue,
not what this process has read, and a keep-last reader that falls behind drops its oldest unread
samples. At 20x, with training jobs on the same 2 cores, this process fell behind until every demo
had a gap. So the recorder publishes the simulated time it has read both streams up to on
/mujoco_sim/recorder_clock, and the sim it starts (pace_topic) never runs more than 0.5 s of
simulated time ahead: a slow recorder slows the sim down instead of losing samples. With --attach,
start the sim with `-p pace_topic:=/mujoco_sim/recorder_clock` for the same.

Time is the sim's. Faster than real time, wall-clock receive times say nothing about when a state
was measured, so every message is logged at simulated time, as `ros2 bag record --use-sim-time`
would: joint_states and flange_pose at their header stamps (the sim stamps them with its clock),
everything else (goal, reset, trajectory, contacts, goal events) at the newest stamp the recorder
has seen when it arrives. The expert waits on the same clock. In real time (factor 1, or --attach
to a real-time sim) the stamps are the ROS clock and the same rules hold.

A demo's messages are held in memory until it is scored, and only a clean one goes into the bag:
a replay that touched the box (possible, rare: DDS jitter is not the expert's physics copy) never
becomes training data. Its joint states and flange poses are kept from the last state at rest
before the trajectory moved the arm to the plan's end plus the settle time: before it, the arm is
teleported to the start (the reset) and then waits at rest for the trajectory to arrive (tens of ms
of wall time, a second or more of simulated time at 20x), and states at rest whose future is "stay
at rest" would teach a policy never to leave the start.
/goal_events gets one JSON line per demo either way ("accepted" says which).

At real time a demo takes ~3.3 s (2000 take ~2 h). At the default factor 20 the 2-core build VM,
shared with other jobs, recorded 2000 in ~15 min (2.2-2.9 demos per wall second; the sim reached
~11-16x, not 20x: benchmarks/results/box_reach.md). Several recorders on different ROS_DOMAIN_IDs
with different seeds make several bags the dataset reads together.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import struct
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
RESET_PATIENCE_S = 2.0   # s (wall) for joint_states to show a reset before it is sent again
SETTLED = 1e-4           # rad: the arm is at the reset position
STAMPED = (JOINT_STATES, FLANGE)  # logged at their header stamps
MOVING = 1e-4            # rad/s: a joint faster than this has left the rest the reset put it in
LOST_STATE_GAP = 2.5     # publish periods between two stamps that mean joint states were lost
READER_DEPTH = 2000      # samples per topic: 20 s of simulated time at 100 Hz (the pace keeps it near empty)
PACE = "/mujoco_sim/recorder_clock"  # where the recorder says how far it has read (the sim waits for it)
PACE_EVERY = 5           # joint states read between two pace messages
REPAIR_PATIENCE_S = 1.0  # s (wall) a demo with a gap in its stamps waits for late samples before it is judged
DEFAULT_REAL_TIME_FACTOR = 20.0


def header_stamp_ns(data: bytes) -> int:
    """The header stamp of a CDR-serialised message that starts with std_msgs/Header (JointState,
    PoseStamped), without deserialising it: 4 bytes of encapsulation, then int32 sec, uint32 nanosec."""
    little = data[1] & 1  # encapsulation kind: 0x0001 CDR_LE, 0x0000 CDR_BE
    sec, nanosec = struct.unpack_from("<iI" if little else ">iI", data, 4)
    return sec * 1_000_000_000 + nanosec


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


def start_sim(publish_rate_hz: float, real_time_factor: float = 1.0) -> subprocess.Popen:
    """mujoco_sim_node in its own process (same environment, so the same ROS_DOMAIN_ID); faster than
    real time it is paced by this recorder's clock, so it never outruns what is read."""
    pace = ["-p", f"pace_topic:={PACE}"] if real_time_factor != 1.0 else []
    return subprocess.Popen([sys.executable, "-m", "ebgan_mdn_ros.node.mujoco_sim_node", "--ros-args",
                             "-p", f"publish_rate_hz:={float(publish_rate_hz)}",
                             "-p", f"real_time_factor:={float(real_time_factor)}", *pace], env=dict(os.environ))


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
                     task: BoxReachConfig = BoxReachConfig(), expert_config: ExpertConfig = ExpertConfig(),
                     real_time_factor: float = DEFAULT_REAL_TIME_FACTOR, progress_every: int = 0
                     ) -> BoxReachRecording:
    """``demos`` accepted demos into the bag ``out``; the sim runs ``real_time_factor`` x real time
    (ignored with ``attach``: the running sim's own clock is followed). ``progress_every`` > 0 prints
    a line every that many accepted demos."""
    import rclpy
    from rclpy.node import Node
    from rclpy.qos import QoSProfile
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray, String
    from rclpy.serialization import deserialize_message
    from rosgraph_msgs.msg import Clock
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
        """Raw subscriptions into a per-demo buffer, logged at simulated time; /goal_events straight into the bag."""

        def __init__(self, bag: BagWriter):
            super().__init__("box_reach_recorder")
            self.bag, self.buffer, self.recording = bag, [], False
            self.now_ns = 0   # the newest header stamp seen: the sim's clock as far as this process knows
            self.pose_ns = 0  # the newest flange_pose stamp
            self.on_state = None  # the expert's hook: (raw JointState, stamp) -> None
            self._states_read = 0
            self._pace_msg = Clock()
            self._pace_pub = self.create_publisher(Clock, PACE, QoSProfile(depth=10))
            self.subscriptions_by_topic = {}
            for topic, type_name in TOPICS.items():
                bag.add_topic(topic, type_name)
                # Keep-last readers drop their oldest unread sample when full; the pace (below) keeps
                # the backlog to max_lead_s of simulated time, far inside this depth.
                self.subscriptions_by_topic[topic] = self.create_subscription(
                    types[type_name], topic, self._keeper(topic), QoSProfile(depth=READER_DEPTH), raw=True)

        def _keeper(self, topic: str):
            stamped = topic in STAMPED

            def keep(data: bytes, info) -> None:
                if stamped:
                    log_ns = header_stamp_ns(data)
                    self.now_ns = max(self.now_ns, log_ns)
                    if topic == FLANGE:
                        self.pose_ns = max(self.pose_ns, log_ns)
                    else:
                        if self.on_state is not None:
                            self.on_state(data, log_ns)
                        self._states_read += 1
                        if self._states_read % PACE_EVERY == 0:
                            self._pace(min(self.now_ns, self.pose_ns))
                else:
                    log_ns = self.now_ns
                if topic == GOAL_EVENTS:
                    self.bag.write_serialized(topic, data, log_ns)
                elif self.recording:
                    self.buffer.append((topic, data, log_ns))
            return keep

        def _pace(self, read_ns: int) -> None:
            """Tell the sim how far both streams have been read: it runs at most max_lead_s beyond."""
            self._pace_msg.clock.sec, self._pace_msg.clock.nanosec = divmod(read_ns, 1_000_000_000)
            self._pace_pub.publish(self._pace_msg)

        def begin(self) -> None:
            self.buffer, self.recording = [], True

        def state_stamps(self) -> np.ndarray:
            return np.array([m[2] for m in self.buffer if m[0] == JOINT_STATES], dtype=np.int64)

        def flange_path(self, start_ns: int, end_ns: int) -> np.ndarray:
            """[N, 3] flange positions stamped in [start_ns, end_ns], in stamp order (deserialised only now)."""
            poses = sorted(((ns, deserialize_message(data, PoseStamped).pose.position)
                            for topic, data, ns in self.buffer if topic == FLANGE and start_ns <= ns <= end_ns),
                           key=lambda item: item[0])
            return np.array([[p.x, p.y, p.z] for _, p in poses]).reshape(-1, 3)

        def goal_time(self) -> int | None:
            return next((m[2] for m in self.buffer if m[0] == GOAL), None)

        def finish(self, keep: bool, start_ns: int = 0, end_ns: int = 2 ** 63 - 1) -> None:
            """Into the bag if ``keep``, in stamp order: joint states and flange poses from ``start_ns``
            (the last state at rest before the plan moved the arm) to ``end_ns`` (the plan's end plus
            the settle time), every other message of the demo."""
            if keep:
                for topic, data, log_ns in sorted(self.buffer, key=lambda m: m[2]):
                    if topic in STAMPED and not start_ns <= log_ns <= end_ns:
                        continue  # the reset's teleport, waiting for the trajectory, or waiting for repairs
                    self.bag.write_serialized(topic, data, log_ns)
            self.buffer, self.recording = [], False

    class Expert(Node):
        """One demo at a time: reset, wait for the arm, goal + trajectory, wait, score.

        It reads joint states through the recorder's raw subscription, and deserialises one only while
        it needs the arm's state (waiting for a reset, or for the plan to start): at 20x real time a
        second subscription on each stream would double this process's work, and it is the bottleneck.
        """

        def __init__(self, recorder: Recorder):
            super().__init__("box_reach_expert")
            self.recorder = recorder
            reliable = QoSProfile(depth=10)
            self.reset_pub = self.create_publisher(Float64MultiArray, RESET, reliable)
            self.goal_pub = self.create_publisher(Float64MultiArray, GOAL, reliable)
            self.trajectory_pub = self.create_publisher(JointTrajectory, TRAJECTORY, reliable)
            self.event_pub = self.create_publisher(String, GOAL_EVENTS, QoSProfile(depth=50))
            recorder.on_state = self._on_raw_state
            self.create_subscription(String, CONTACTS, self._on_contacts, QoSProfile(depth=50))
            self.position: np.ndarray | None = None
            self.state_ns = 0   # header stamp of the newest joint state: the clock the expert waits on
            self.rest_ns = 0    # stamp of the newest joint state at rest before the trajectory moved the arm
            self.moved_ns: int | None = None  # stamp of the first moving one: when the sim started the plan
            self.end_ns = 2 ** 63 - 1  # the plan's end plus the settle time, once it moved
            self.trajectory: JointTrajectory | None = None
            self.touched = False
            self.plan: Plan | None = None
            self.phase, self.since = "idle", 0.0
            self.finished, self.accepted = 0, 0
            self.rejected, self.routes = Counter(), Counter()

        def _on_raw_state(self, data: bytes, stamp_ns: int) -> None:
            self.state_ns = max(self.state_ns, stamp_ns)
            waiting = self.phase in ("idle", "reset") or (self.phase == "run" and self.moved_ns is None)
            if not waiting:
                return
            msg = deserialize_message(data, JointState)
            self.position = np.asarray(msg.position, dtype=np.float64)
            if self.phase == "run":
                if np.abs(np.asarray(msg.velocity)).max() > MOVING:
                    self.moved_ns = stamp_ns
                else:
                    self.rest_ns = stamp_ns

        def _on_contacts(self, msg) -> None:
            if self.phase == "run" and json.loads(msg.data).get("count", 0) > 0:
                self.touched = True

        def step(self) -> None:
            if self.phase == "idle":
                self.plan = planner.demos(1, max_attempts=planner.stats.attempts + 50)[0].plan
                self.trajectory = self._trajectory(self.plan)  # built now, so nothing delays it after the goal
                self.recorder.begin()
                self._reset()
            elif self.phase == "reset":
                start = self.plan.joint_positions[0]
                if self.position is not None and np.abs(self.position - start).max() < SETTLED:
                    self._run()
                elif time.monotonic() - self.since > RESET_PATIENCE_S:
                    self._reset()
            elif self.phase == "run":
                # The plan runs from the sim's first moving state, however late the trajectory arrived.
                if self.moved_ns is not None:
                    self.end_ns = self.moved_ns + int((self.plan.times[-1] + expert_config.settle_s) * 1e9)
                    if self.recorder.pose_ns >= self.end_ns and self.state_ns >= self.end_ns:  # both are there
                        self.phase, self.since = "complete", time.monotonic()
                elif time.monotonic() - self.since > RESET_PATIENCE_S:
                    self._score()  # the trajectory never moved the arm: rejected ("never moved")
            elif self.phase == "complete":
                # The flange stream can run ahead of the joint-state stream in this process: give a
                # gap a moment to fill before the demo is judged lost.
                if self._state_gap_s() <= LOST_STATE_GAP / publish_rate_hz or \
                        time.monotonic() - self.since > REPAIR_PATIENCE_S:
                    self._score()

        def _reset(self) -> None:
            self.phase, self.since, self.position = "reset", time.monotonic(), None  # wall: no state may come
            self.reset_pub.publish(Float64MultiArray(data=conversions.float64s(self.plan.joint_positions[0])))

        @staticmethod
        def _trajectory(plan: Plan) -> JointTrajectory:
            msg = JointTrajectory(joint_names=list(planner.arm.joint_names))  # stamp 0: start on receipt
            msg.points = [JointTrajectoryPoint(positions=conversions.float64s(q), velocities=conversions.float64s(v),
                                               time_from_start=conversions.duration(float(t)))
                          for t, q, v in zip(plan.times, plan.joint_positions, plan.joint_velocities)]
            return msg

        def _run(self) -> None:
            self.touched = False
            self.rest_ns, self.moved_ns, self.end_ns = self.state_ns, None, 2 ** 63 - 1
            self.goal_pub.publish(Float64MultiArray(data=conversions.float64s(self.plan.goal)))
            self.trajectory_pub.publish(self.trajectory)
            self.phase, self.since = "run", time.monotonic()

        def _state_gap_s(self) -> float:
            """The longest gap between the demo's joint-state stamps (inf: fewer than two)."""
            stamps = np.sort(self.recorder.state_stamps())
            stamps = stamps[(stamps >= self.rest_ns) & (stamps <= self.end_ns)]
            return float(np.diff(stamps).max()) * 1e-9 if len(stamps) >= 2 else float("inf")

        def _score(self) -> None:
            plan = self.plan
            flange = self.recorder.flange_path(self.rest_ns, self.end_ns)
            error = float(np.linalg.norm(flange[-1] - plan.goal)) if len(flange) else float("inf")
            taken = route_of(flange, task) if len(flange) else ""
            goal_ns = self.recorder.goal_time()
            gap = self._state_gap_s()
            reason = ("never moved" if self.moved_ns is None else "contact" if self.touched
                      else "goal missed" if error > task.goal_tolerance
                      else "wrong side" if taken != plan.route
                      else "goal not recorded" if goal_ns is None or goal_ns > self.rest_ns
                      else "joint states lost" if gap > LOST_STATE_GAP / publish_rate_hz else "")
            self.recorder.finish(keep=not reason, start_ns=self.rest_ns, end_ns=self.end_ns)
            self.finished += 1
            if reason:
                self.rejected[reason] += 1
            else:
                self.accepted += 1
                self.routes[plan.route] += 1
            self.event_pub.publish(String(data=json.dumps({
                "outcome": "reached" if not reason else reason, "accepted": not reason, "route": plan.route,
                "route_taken": taken, "start": plan.start.round(4).tolist(), "goal": plan.goal.round(4).tolist(),
                "error": round(error, 5), "state_gap_s": round(gap, 4), "accepted_so_far": self.accepted, "finished": self.finished})))
            self.phase = "idle"
            if progress_every and not reason and self.accepted % progress_every == 0:
                wall = time.monotonic() - wall_start
                print(f"{self.accepted}/{demos} demos ({dict(self.routes)}), {self.finished - self.accepted} replays "
                      f"rejected ({dict(self.rejected)}), {wall:.0f} s, {self.accepted / wall:.2f} demos/s",
                      flush=True)

    rclpy.init(args=["record_box_reach"])
    sim = None if attach else start_sim(publish_rate_hz, real_time_factor)
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
    parser.add_argument("--attach", action="store_true", help="join a running mujoco_sim_node (its clock)")
    parser.add_argument("--real-time-factor", type=float, default=DEFAULT_REAL_TIME_FACTOR,
                        help="simulated seconds per wall second of the sim this starts (default %(default)g; "
                             "1 = real time)")
    parser.add_argument("--timeout", type=float, default=None, help="s of wall time before giving up")
    parser.add_argument("--progress-every", type=int, default=0, help="print progress every N accepted demos")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.demos < 1:
        parser.error("--demos must be >= 1")
    if not 0 < args.real_time_factor <= 100:
        parser.error(f"--real-time-factor: {args.real_time_factor:g} is not in (0, 100]")
    try:
        summary = record_box_reach(args.demos, Path(args.out), args.seed, args.rate, args.attach, args.timeout,
                                   real_time_factor=args.real_time_factor, progress_every=args.progress_every)
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
