"""End-to-end state -> command latency through the policy node, against a no-work echo node (the floor).

    python benchmarks/e2e_latency.py                                  # 30 s per target at 1 kHz, K=256
    python benchmarks/e2e_latency.py --seconds 10 --out benchmarks/results/e2e_latency.md

This process plays the robot: one rclpy node (EventsExecutor, one thread) publishes
sensor_msgs/JointState for 7 joints at --rate with the current time as header stamp, and receives what
the target publishes per state. The target runs as its own process, started here, one after the other:
- echo:   benchmarks/echo_node.py: same QoS, publishes the measured position as the command and a
          Decision stamped with the state's stamp; no other work;
- policy: ebgan_mdn_ros.node.policy_node, event-driven (control_rate_hz 0), not a dry run, K candidates,
          a robot-sized random model (14 conditions = 7 positions + 7 velocities, 7 actions,
          8 components, 2 x 256 hidden; latency does not depend on the weights) unless --model is given.
Latency = receipt of the Decision answering a state (matched by stamp) - the publish of that state,
both on this process's perf_counter. The command (Float64MultiArray has no header) is published just
before its Decision in both targets, so the Decision is its timestamped proxy (the policy node fills
and publishes the Decision after the command: a few us, as the echo does). Lost = states without an
answering Decision; commands are counted separately. The policy node's own view (Decision.latency_us:
state receipt -> command published; Decision.inference_us) splits its time.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "test"))

import rclpy  # noqa: E402
from rclpy.experimental import EventsExecutor  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402

from ebgan_mdn_ros.msg import Decision  # noqa: E402

JOINTS = tuple(f"joint_{i}" for i in range(1, 8))
COMMANDS = "forward_position_controller/commands"
NAMESPACE = f"/e2e_{os.getpid()}"   # topics of our own, whatever else runs on the ROS domain
DISCOVERY_S = 20.0
WARMUP_S = 2.0


@dataclass(frozen=True)
class RobotSetup:
    """What the robot process publishes for a model: its joints, a state near the training data, a goal."""
    joints: tuple[str, ...]
    position: tuple[float, ...]              # rad: the states swing +-0.05 rad around it
    goal: tuple[float, ...] | None = None    # published on `goal` when the model is conditioned on one
    delta: bool = False                      # position + action: the node needs limits of its own


def robot_setup(model: Path | None) -> RobotSetup:
    """The random robot-sized model's 7 joints, or what a shipped model's manifest asks for: its action
    joints, positions and goal at the training conditions' mean (a plausible state, not a corner)."""
    if model is None:
        return RobotSetup(JOINTS, (0.1,) * len(JOINTS))
    manifest = json.loads((model / "manifest.json").read_text())
    names, mean = manifest["condition_names"], manifest["normalization"]["condition_mean"]
    joints = tuple(manifest["action_names"])
    by_name = dict(zip(names, mean))
    goal = tuple(by_name[n] for n in names if n.startswith("goal.")) or None
    return RobotSetup(joints, tuple(by_name.get(f"{j}.position", 0.1) for j in joints), goal,
                      manifest["action_kind"] == "delta")


def build_model(directory: Path) -> Path:
    """A robot-sized model directory (random weights, seeded): 14 conditions, 7 actions, 8 components."""
    import warnings
    warnings.filterwarnings("ignore")
    from model_factory import build_model_dir
    conditions = tuple(f"{j}.position" for j in JOINTS) + tuple(f"{j}.velocity" for j in JOINTS)
    return build_model_dir(directory, conditions, JOINTS, num_components=8, hidden_sizes=(256, 256), seed=0,
                           model_version="e2e-bench")


def start_target(kind: str, model: Path, args, log: Path, num_candidates: int = 256) -> subprocess.Popen:
    env = {**os.environ, "ROS_DOMAIN_ID": str(args.domain_id), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    joints = "[" + ", ".join(args.setup.joints) + "]"
    if kind == "echo":
        command = [sys.executable, str(Path(__file__).resolve().parent / "echo_node.py"), "--ros-args", "-r", "__node:=policy_node",
                   "-r", f"__ns:={NAMESPACE}",
                   "-p", f"joint_names:={joints}", "-p", f"executor:={args.executor}"]
    else:
        command = [sys.executable, "-m", "ebgan_mdn_ros.node.policy_node", "--ros-args", "-r", f"__ns:={NAMESPACE}",
                   "-p", f"model_directory:={model}", "-p", f"joint_names:={joints}",
                   "-p", "control_rate_hz:=0.0", "-p", "dry_run:=false", "-p", f"executor:={args.executor}",
                   "-p", f"num_candidates:={num_candidates}",
                   "-p", f"publish_candidates:={'true' if kind == 'policy+candidates' else 'false'}",
                   "-p", f"decision_publish_every:={args.decision_every}",
                   "-p", "max_step:=10.0", "-p", "max_velocity:=10000.0"]
        if args.setup.delta:  # a delta model has no action box to take limits from
            n = len(args.setup.joints)
            command += ["-p", f"position_lower:={[-6.2832] * n}", "-p", f"position_upper:={[6.2832] * n}"]
    handle = open(log, "w")
    return subprocess.Popen(command, env=env, stdout=handle, stderr=handle, cwd=ROOT)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Robot:
    """Publishes JointState on a timer and matches the answers, in one EventsExecutor thread."""

    def __init__(self, context, rate_hz: float, setup: RobotSetup):
        self.node = rclpy.create_node("e2e_robot", namespace=NAMESPACE, context=context)
        self.publisher = self.node.create_publisher(JointState, "joint_states", QoSProfile(depth=10))
        self.setup = setup
        if setup.goal is not None:  # the node keeps the newest goal; twice a second covers discovery
            goal_pub = self.node.create_publisher(Float64MultiArray, "goal", QoSProfile(depth=1))
            goal = Float64MultiArray(data=list(setup.goal))
            self.node.create_timer(0.5, lambda: goal_pub.publish(goal))
        self.node.create_subscription(Decision, "policy_node/decision", self._on_decision, 1000)
        self.node.create_subscription(Float64MultiArray, COMMANDS, self._on_command, 1000)
        n = len(setup.joints)
        self.msg = JointState(name=list(setup.joints), position=list(setup.position), velocity=[0.0] * n)
        self.sent: dict[int, float] = {}
        self.latency: dict[int, float] = {}
        self.node_latency_us: list[float] = []
        self.inference_us: list[float] = []
        self.commands = 0
        self.recording = False
        self.tick = 0
        self.timer = self.node.create_timer(1.0 / rate_hz, self._publish)
        self.timer.cancel()

    def _publish(self) -> None:
        self.tick += 1
        self.msg.position = [p + 0.05 * math.sin(self.tick * 1e-3 + i) for i, p in enumerate(self.setup.position)]
        stamp = time.time_ns()
        self.msg.header.stamp.sec, self.msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        sent_at = time.perf_counter()
        self.publisher.publish(self.msg)
        if self.recording:
            self.sent[stamp] = sent_at

    def _on_decision(self, msg: Decision) -> None:
        now = time.perf_counter()
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        sent_at = self.sent.get(stamp)
        if sent_at is not None:
            self.latency[stamp] = now - sent_at
            self.node_latency_us.append(msg.latency_us)
            self.inference_us.append(msg.inference_us)

    def _on_command(self, msg: Float64MultiArray) -> None:
        if self.recording:
            self.commands += 1


def spin_for(executor, seconds: float, until=lambda: False) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if until():
            return True
        executor.spin_once(timeout_sec=0.01)  # EventsExecutor: always a timeout
    return until()


def measure(kind: str, model: Path, args, workdir: Path, num_candidates: int = 256) -> dict:
    target = start_target(kind, model, args, workdir / f"{kind}.log", num_candidates)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=args.domain_id)
    executor = EventsExecutor(context=context)
    robot = Robot(context, args.rate, args.setup)
    executor.add_node(robot.node)
    try:
        matched = spin_for(executor, DISCOVERY_S + 20.0, lambda: robot.publisher.get_subscription_count() >= 1
                           and robot.node.count_publishers("policy_node/decision") >= 1
                           and robot.node.count_publishers(COMMANDS) >= 1)
        if not matched or target.poll() is not None:
            raise RuntimeError(f"{kind} did not come up; see {workdir / f'{kind}.log'}")
        robot.timer.reset()
        spin_for(executor, WARMUP_S)                      # first decisions, discovery of the reverse path
        cpu_before, wall_before = cpu_seconds(target.pid), time.perf_counter()
        load_before = os.getloadavg()[0]
        robot.recording = True
        spin_for(executor, args.seconds)
        robot.recording = False
        cpu = (cpu_seconds(target.pid) - cpu_before) / (time.perf_counter() - wall_before)
        robot.timer.cancel()
        spin_for(executor, 1.0)                           # let the last answers arrive
    finally:
        executor.shutdown(timeout_sec=1.0)
        robot.node.destroy_node()
        rclpy.try_shutdown(context=context)
        target.terminate()
        try:
            target.wait(10)
        except subprocess.TimeoutExpired:
            target.kill()
    latency_us = np.array(list(robot.latency.values())) * 1e6
    sent = len(robot.sent)
    label = kind if kind == "echo" else f"{kind} K={num_candidates}"
    lost = sent - len(latency_us)
    if kind != "echo" and args.decision_every > 1:
        # Only every Nth decision is published: latency is sampled from those, loss counted by commands.
        label, lost = f"{label}, decision 1/{args.decision_every}", sent - robot.commands
    row = {"target": label, "states": sent, "answered": len(latency_us), "lost": lost,
           "commands": robot.commands, "rate_hz": sent / args.seconds, "cpu_percent": 100 * cpu,
           "load_average": load_before,
           "p50_us": float(np.percentile(latency_us, 50)), "p99_us": float(np.percentile(latency_us, 99)),
           "max_us": float(latency_us.max())}
    if kind != "echo" and robot.node_latency_us:
        node, inference = np.array(robot.node_latency_us), np.array(robot.inference_us)
        row.update(node_p50_us=float(np.percentile(node, 50)), node_p99_us=float(np.percentile(node, 99)),
                   inference_p50_us=float(np.percentile(inference, 50)),
                   inference_p99_us=float(np.percentile(inference, 99)))
    return row


def breakdown(model: Path, args, num_candidates: int) -> str:
    """Time the node's per-state steps in-process (no DDS receive), on its own objects.

    Mirrors PolicyNode._decide step by step (state assembly, runtime.decide, safety filter, command
    publish, Decision fill + publish) and also times the whole _on_state callback. Uses the node's
    private attributes: if they change, this section says so and the e2e table still stands."""
    if args.model is not None:
        return "(breakdown: only for the random robot-sized model, whose 7 joints it assumes)\n"
    from ebgan_mdn_ros.node import conversions
    from ebgan_mdn_ros.node.policy_node import PolicyNode
    from rclpy.parameter import Parameter
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=args.domain_id)
    overrides = {"model_directory": str(model), "joint_names": list(JOINTS), "control_rate_hz": 0.0,
                 "dry_run": False, "num_candidates": num_candidates, "publish_candidates": False,
                 "max_step": 10.0, "max_velocity": 10000.0}
    node = PolicyNode(context=context, namespace=NAMESPACE,
                      parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
    msg = JointState(name=list(JOINTS), position=[0.1] * 7, velocity=[0.0] * 7)
    steps = {name: [] for name in ("assemble", "decide", "safety", "command publish", "decision publish",
                                   "whole _on_state callback")}
    try:
        clock = time.perf_counter
        for i in range(args.breakdown):
            msg.header.stamp = node.get_clock().now().to_msg()
            msg.position = [0.1 + 0.05 * math.sin(i * 1e-3 + j) for j in range(7)]
            t0 = clock()
            loop = node._loop
            reading = loop.assembler.read_joints(msg.name, msg.position, msg.velocity)
            goal = loop.assembler.check_goal(node._goal)
            condition = loop.assembler.condition(reading, goal)
            t1 = clock()
            decision = node.runtime.decide(condition, None)
            t2 = clock()
            result = loop._safety.filter(decision.action, reading.position, 0.0, decision.trusted, 0.001)
            t3 = clock()
            node._publish_command(result.command)
            t4 = clock()
            node._decision_pub.publish(conversions.fill_decision(
                node._decision_msg, msg.header.stamp, decision, decision.action, result.command, result.held,
                result.note, t4 - t0))
            t5 = clock()
            fresh = JointState(name=msg.name, position=msg.position, velocity=msg.velocity)
            fresh.header.stamp = node.get_clock().now().to_msg()   # a new message: the node skips a repeat
            t6 = clock()
            node._on_state(fresh)
            t7 = clock()
            for name, seconds in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t7 - t6)):
                steps[name].append(seconds)
    except AttributeError as exc:
        return f"(breakdown skipped: the node's internals changed: {exc})\n"
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    lines = [f"In-process breakdown, K={num_candidates}, {args.breakdown} states (no DDS receive; us):\n",
             "| step | p50 | p99 |", "| --- | --- | --- |"]
    for name, values in steps.items():
        us = np.array(values[len(values) // 10:]) * 1e6        # the first 10 % warm up
        lines.append(f"| {name} | {np.percentile(us, 50):.0f} | {np.percentile(us, 99):.0f} |")
    return "\n".join(lines) + "\n"


def report(rows: list[dict], args, command_line: str) -> str:
    by_kind = {r["target"]: r for r in rows}
    lines = ["| target | states | lost | commands | achieved Hz | p50 us | p99 us | max us | target CPU % | load avg |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['target']} | {r['states']} | {r['lost']} | {r['commands']} | {r['rate_hz']:.0f} | "
                     f"{r['p50_us']:.0f} | {r['p99_us']:.0f} | {r['max_us']:.0f} | {r['cpu_percent']:.0f} | "
                     f"{r['load_average']:.2f} |")
    text = "\n".join(lines) + "\n"
    echo = by_kind.get("echo")
    for r in rows:
        if r["target"] == "echo" or echo is None or "node_p50_us" not in r:
            continue
        text += (f"\n{r['target']}: adds {r['p50_us'] - echo['p50_us']:.0f} us median, "
                 f"{r['p99_us'] - echo['p99_us']:.0f} us p99 over the echo floor; inside the node: state receipt -> "
                 f"command published p50 {r['node_p50_us']:.0f} us / p99 {r['node_p99_us']:.0f} us, of which "
                 f"inference p50 {r['inference_p50_us']:.0f} us / p99 {r['inference_p99_us']:.0f} us.\n")
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds per target")
    parser.add_argument("--rate", type=float, default=1000.0, help="joint state rate (Hz)")
    parser.add_argument("--num-candidates", default="256",
                        help="K candidates per decision (comma list: one policy run each)")
    parser.add_argument("--breakdown", type=int, default=2000,
                        help="decisions timed step by step in an in-process node (0: skip)")
    parser.add_argument("--model", type=Path, default=None, help="model directory (default: a robot-sized random one)")
    parser.add_argument("--targets", default="echo,policy", help="comma list of echo, policy, policy+candidates")
    parser.add_argument("--decision-every", type=int, default=1,
                        help="the policy node's decision_publish_every (N > 1: latency sampled from every Nth "
                             "decision, lost = states without a command)")
    parser.add_argument("--executor", default="events", choices=("events", "single_threaded"))
    parser.add_argument("--domain-id", type=int, default=229)
    parser.add_argument("--out", type=Path, default=None, help="append the markdown table to this file")
    args = parser.parse_args()
    command_line = "python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:])
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        args.setup = robot_setup(args.model)
        model = args.model or build_model(workdir / "model")
        rows = []
        ks = [int(k) for k in str(args.num_candidates).split(",")]
        for kind in (k.strip() for k in args.targets.split(",")):
            for k in ([256] if kind == "echo" else ks):
                row = measure(kind, model, args, workdir, k)
                print(json.dumps(row), flush=True)
                rows.append(row)
        text = report(rows, args, command_line)
        if args.breakdown:
            for k in ks:
                text += "\n" + breakdown(model, args, k)
    header = (f"`{command_line}` on {platform.node() or 'this machine'} ({os.cpu_count()} CPUs, "
              f"{platform.processor() or platform.machine()}), {time.strftime('%Y-%m-%d %H:%M')}, "
              f"{args.seconds:g} s per target at {args.rate:g} Hz, K={args.num_candidates}, "
              f"{args.executor} executor\n\n")
    print("\n" + header + text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "a") as handle:
            handle.write("\n" + header + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
