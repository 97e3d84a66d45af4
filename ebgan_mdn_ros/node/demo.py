"""The main job: a simulated arm reaching goals, driven by a shipped model, over ROS.

    .venv/bin/python -m ebgan_mdn_ros.demo [--seconds 30]        # the MuJoCo UR5e around the box (node/ur5e_demo.py)
    .venv/bin/python -m ebgan_mdn_ros.demo --config config/sim_ik.yaml [--composed]     # the 2-link arm
    .venv/bin/python -m ebgan_mdn_ros.demo --config config/sim_multiroute.yaml          # the gantry

Starts exactly what `ros2 launch ebgan_mdn_ros policy.launch.py arm:=sim config:=...` starts
(launch_plan), as separate processes talking over DDS, watches the topics for the given time, then
prints the success rate, the modes used and the latency, and writes a PNG of the goals and paths.
The model is the config's model_directory unless --model says otherwise. `--composed` (2-link and
gantry) runs the same nodes in this process on one executor instead (see README for the comparison).
DDS stays on this host, on a ROS domain of its own unless ROS_DOMAIN_ID is set: the demo publishes
controller commands and must never reach a real arm on the network.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from ebgan_mdn_ros.node.launch_plan import plan, process_command
from ebgan_mdn_ros.node.parameters import load_parameter_file, resolve_model_directory
from ebgan_mdn_ros.node.ur5e_demo import latency_percentiles, print_decisions, shares_text
from ebgan_mdn_ros.paths import find_in_share
from ebgan_mdn_ros.tasks.routes import ROUTE_NAMES, ROUTE_VIA_POINTS, nearest_routes

DEFAULT_CONFIG = "config/sim_ur5e.yaml"
TASK_TITLES = {"ik": "2-link IK", "multiroute": "multi-route"}


def _arguments(argv):
    parser = argparse.ArgumentParser(prog="python -m ebgan_mdn_ros.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to run goals (s)")
    parser.add_argument("--model", default="", help="model directory (default: the config's model_directory)")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="parameter file (default: %(default)s)")
    parser.add_argument("--png", default="runs/demo/demo.png", help="figure to write (default: %(default)s)")
    parser.add_argument("--clip", default="runs/demo/demo.gif", help="UR5e: the clip to render (default: %(default)s)")
    parser.add_argument("--clip-episodes", type=int, default=3, help="UR5e: episodes in the clip (0: no clip)")
    parser.add_argument("--clip-gl", default=os.environ.get("MUJOCO_GL", "egl"),
                        help="UR5e: MUJOCO_GL for the clip's renderer: egl (headless Mesa), osmesa, glfw "
                             "(default: %(default)s)")
    parser.add_argument("--composed", action="store_true", help="run all nodes in this process, one executor")
    parser.add_argument("--output-mode", choices=("forward_command", "joint_trajectory"), default=None,
                        help="override the config's output_mode")
    return parser.parse_args(argv)


def _isolate_dds() -> None:
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(101, 230)))


class Observer:
    """Records what the demo reports: goal events, joint states, decisions (one rclpy node)."""

    def __init__(self, context):
        import rclpy
        from rclpy.qos import QoSProfile, qos_profile_sensor_data
        from sensor_msgs.msg import JointState
        from std_msgs.msg import String

        from ebgan_mdn_ros.msg import Decision
        self.node = rclpy.create_node("demo_observer", context=context)
        self.events: list[dict] = []
        self.positions: list[tuple[float, np.ndarray]] = []
        self.decisions: list[tuple[float, float, float, bool]] = []  # latency_us, inference_us, e2e_us, held
        self.node.create_subscription(String, "goal_events", self._on_event, QoSProfile(depth=50))
        self.node.create_subscription(JointState, "joint_states", self._on_state, qos_profile_sensor_data)
        self.node.create_subscription(Decision, "/policy_node/decision", self._on_decision, QoSProfile(depth=50))

    def _on_event(self, msg) -> None:
        event = json.loads(msg.data)
        event["received"] = time.monotonic()
        self.events.append(event)

    def _on_state(self, msg) -> None:
        self.positions.append((time.monotonic(), np.asarray(msg.position, dtype=np.float64)))

    def _on_decision(self, msg) -> None:
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        end_to_end_us = (time.time_ns() - stamp_ns) / 1e3  # state stamp -> decision received, same host clock
        self.decisions.append((msg.latency_us, msg.inference_us, end_to_end_us, msg.held))


def _run_processes(args, config: Path, model: Path, seconds: float, observer, executor, logs: list[str]) -> None:
    launch = plan("sim", str(model), str(config))
    extra = {"output_mode": args.output_mode} if args.output_mode else None
    processes = []
    try:
        for node in launch.nodes:
            command = process_command(node, extra if node.executable == "policy_node" else None)
            processes.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        _watch(observer, executor, seconds, lambda: [p for p in processes if p.poll() is not None])
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)  # the goal source prints its summary on the way out
        for process in processes:
            try:
                out, _ = process.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                out, _ = process.communicate()
            logs.append(out)


def _run_composed(args, config: Path, model: Path, seconds: float, observer, executor, context,
                  logs: list[str]) -> None:
    from rclpy.parameter import Parameter

    from ebgan_mdn_ros.node.policy_node import PolicyNode
    from ebgan_mdn_ros.node.sim_nodes import GoalSourceNode, SimArmNode
    overrides = [Parameter("model_directory", value=str(model))]
    if args.output_mode:
        overrides.append(Parameter("output_mode", value=args.output_mode))
    nodes = [SimArmNode(context=context), GoalSourceNode(context=context),
             PolicyNode(context=context, parameter_overrides=overrides)]
    for node in nodes:
        executor.add_node(node)
    try:
        _watch(observer, executor, seconds, lambda: [])
    finally:
        logs.append(f"[goal_source] {nodes[1].summary()}")
        for node in nodes:
            executor.remove_node(node)
            node.destroy_node()


def _watch(observer, executor, seconds: float, exited) -> None:
    """Spin until the first decision (start-up), then for ``seconds`` of goals."""
    deadline = time.monotonic() + 60.0
    while not observer.decisions:
        if time.monotonic() > deadline or exited():
            raise RuntimeError("the policy never decided (see the node logs below)")
        executor.spin_once(timeout_sec=0.05)  # EventsExecutor: never spin without a timeout
    observer.events.clear()
    observer.decisions.clear()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if exited():
            raise RuntimeError("a node exited early (see the node logs below)")
        executor.spin_once(timeout_sec=0.05)


def route_of(path: np.ndarray) -> str:
    """The via point a multi-route path passed closest to (as the trainer's metrics count routes)."""
    if len(path) == 0:
        return "none"
    route = int(nearest_routes(np.asarray(path, dtype=np.float64)[None, :, :2])[0])
    return ROUTE_NAMES[route] if route >= 0 else "none"


def report(observer, seconds: float, task: str) -> dict:
    events = observer.events
    reached = [e for e in events if e["outcome"] == "reached"]
    modes: dict[str, int] = {}
    for e in reached:
        if task == "multiroute":
            start = e["received"] - e["seconds"]
            mode = route_of(np.array([q for t, q in observer.positions if start <= t <= e["received"]]))
        else:
            mode = e["mode"]
        modes[mode] = modes.get(mode, 0) + 1
    decisions = np.array([d[:3] for d in observer.decisions]) if observer.decisions else np.zeros((0, 3))
    return {
        "task": task, "goals_attempted": len(events), "goals_reached": len(reached),
        "success_rate": len(reached) / len(events) if events else float("nan"),
        "modes": modes, "mean_seconds_to_reach": float(np.mean([e["seconds"] for e in reached])) if reached else float("nan"),
        "decisions_per_second": len(decisions) / seconds, "held": int(sum(d[3] for d in observer.decisions)),
        **latency_percentiles(decisions),
    }


def print_report(result: dict, mode: str) -> None:
    p = result
    print(f"\nEBGAN-MDN {TASK_TITLES[p['task']]} demo ({mode})")
    print(f"  goals reached   {p['goals_reached']}/{p['goals_attempted']} "
          f"({100 * p['success_rate']:.1f} %), mean time to reach {p['mean_seconds_to_reach']:.2f} s")
    modes = "routes" if p["task"] == "multiroute" else "elbow modes"
    print(f"  {modes:15s} {shares_text(p['modes'], sum(p['modes'].values()))}")
    print_decisions(p, "state in -> command out")


def plot(observer, result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (workspace, latency) = plt.subplots(1, 2, figsize=(12, 5.5))
    if result["task"] == "multiroute":
        _plot_gantry(workspace, observer, matplotlib)
    else:
        _plot_arm(workspace, observer, matplotlib)
    for e in observer.events:
        if e["outcome"] == "reached":
            workspace.scatter(*e["goal"], marker="o", s=60, facecolors="none", edgecolors="tab:green")
        else:
            workspace.scatter(*e["goal"], marker="x", s=60, c="tab:red")
    workspace.scatter([], [], marker="o", facecolors="none", edgecolors="tab:green", label="goal reached")
    workspace.scatter([], [], marker="x", c="tab:red", label="goal missed")
    workspace.set_aspect("equal")
    workspace.legend(loc="lower left", fontsize=8)
    workspace.set_title(f"{TASK_TITLES[result['task']]}: {result['goals_reached']}/{result['goals_attempted']} "
                        "goals reached")
    if observer.decisions:
        values = np.array([d[0] for d in observer.decisions])
        latency.hist(values, bins=60, color="tab:purple")
        latency.axvline(np.percentile(values, 99), color="k", ls="--", label="p99")
        latency.legend()
    latency.set_xlabel("state received -> command published (us)")
    latency.set_ylabel("decisions")
    latency.set_title("policy node latency")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _plot_arm(axes, observer, matplotlib) -> None:
    from ebgan_mdn_ros.tasks.planar_arm import planar_forward_kinematics
    joints = [q for _, q in observer.positions if len(q) >= 2]
    tips = np.array([planar_forward_kinematics(q) for q in joints]).reshape(-1, 2)
    up = np.array([q[1] > 0 for q in joints], dtype=bool)
    axes.scatter(tips[up, 0], tips[up, 1], s=1, c="tab:blue", label="end effector, elbow up")
    axes.scatter(tips[~up, 0], tips[~up, 1], s=1, c="tab:orange", label="end effector, elbow down")
    axes.add_patch(matplotlib.patches.Circle((0, 0), 6.0, fill=False, ls=":", color="grey"))
    axes.set_xlim(-6.5, 6.5)
    axes.set_ylim(-6.5, 6.5)


def _plot_gantry(axes, observer, matplotlib) -> None:
    points = np.array([q[:2] for _, q in observer.positions if len(q) >= 2]).reshape(-1, 2)
    axes.scatter(points[:, 0], points[:, 1], s=1, c="tab:blue", label="gantry position")
    axes.add_patch(matplotlib.patches.Rectangle((19, 19), 2, 2, fill=False, color="tab:green"))
    axes.scatter(ROUTE_VIA_POINTS[:, 0], ROUTE_VIA_POINTS[:, 1], marker="+", s=80, c="k", label="via points")
    axes.set_xlim(-3, 23)
    axes.set_ylim(-3, 23)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    _isolate_dds()
    config = find_in_share(args.config)
    if not config.is_file():
        print(f"demo: no parameter file {args.config}", file=sys.stderr)
        return 2
    model = resolve_model_directory(args.model or load_parameter_file(config, "policy_node").get("model_directory", ""))
    if not (model / "manifest.json").is_file():
        print(f"demo: no model at {args.model or model} (looked in the current directory and the package); "
              "export one with `ebgan-mdn export` or pass --model", file=sys.stderr)
        return 2
    ur5e = "mujoco_sim" in (yaml.safe_load(config.read_text()) or {})
    if ur5e and args.composed:
        print("demo: --composed runs the 2-link arm and the gantry; the UR5e runs as separate processes "
              "(benchmarks/box_reach_closed_loop.py composes it)", file=sys.stderr)
        return 2
    import rclpy

    from ebgan_mdn_ros.node import ur5e_demo as demo_ur5e
    from ebgan_mdn_ros.node.executors import make_executor
    context = rclpy.Context()
    init_args = ["demo"] + (["--ros-args", "--params-file", str(config)] if args.composed else [])
    rclpy.init(args=init_args, context=context)
    executor = make_executor("events", context)
    observer = demo_ur5e.Observer(context) if ur5e else Observer(context)
    executor.add_node(observer.node)
    mode = "nodes composed in one process" if args.composed else "separate processes over DDS"
    print(f"demo: {mode}, config {config}, model {model}, {args.seconds:g} s of goals "
          f"(ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']}, discovery on localhost)", flush=True)
    logs: list[str] = []
    try:
        if args.composed:
            _run_composed(args, config, model, args.seconds, observer, executor, context, logs)
        else:
            _run_processes(args, config, model, args.seconds, observer, executor, logs)
    except RuntimeError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        for log in logs:
            print(log, file=sys.stderr)
        return 1
    finally:
        executor.shutdown(timeout_sec=1.0)
        observer.node.destroy_node()
        rclpy.try_shutdown(context=context)
    if ur5e:
        return demo_ur5e.finish(observer, args, mode)
    for log in logs:
        for line in log.splitlines():
            if "[goal_source]" in line and "goals:" in line:
                print(f"  {line.strip()}")
    task = load_parameter_file(config, "goal_source").get("task", "ik")
    result = report(observer, args.seconds, task)
    print_report(result, mode)
    png = Path(args.png)
    plot(observer, result, png)
    print(f"  {'figure':15s} {png}")
    return 0 if result["goals_reached"] > 0 else 1

