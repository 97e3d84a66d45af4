"""Closed-loop box reach on the MuJoCo UR5e through ROS: sim + goal relay + goal source + policy node.

    python benchmarks/box_reach_closed_loop.py --episodes 100                       # the shipped selection
    python benchmarks/box_reach_closed_loop.py --episodes 100 --num-candidates 1    # raw mixture samples
    python benchmarks/box_reach_closed_loop.py --episodes 100 --markdown benchmarks/results/box_reach.md
    python benchmarks/box_reach_closed_loop.py --model M --param ddim_steps:=16     # any node parameter

All four nodes run in this process on one EventsExecutor, spun with a timeout (never the
MultiThreadedExecutor), with the parameters of config/sim_ur5e.yaml (each node reads its own section;
the policy node reads `/**`). The sim runs in real time. DDS stays on this host, on ROS_DOMAIN_ID
(a random one in 101..230 unless set), because this publishes controller commands.

Printed (and with --markdown appended as a section): success (flange within the goal tolerance
before the timeout), episodes with any arm contact, route shares (tasks.box_reach.route_of on the
flange path), time to goal, and the mean squared jerk of the commands the policy sent while an
episode ran (third differences of forward_position_controller/commands over the control period,
rad^2/s^6, averaged over joints and samples, then over episodes).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

DEFAULT_CONFIG = "config/sim_ur5e.yaml"


def _arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--model", default=None, help="model directory (default: the config's)")
    parser.add_argument("--config", default=DEFAULT_CONFIG)
    parser.add_argument("--num-candidates", type=int, default=None, help="override K (1 = raw mixture samples)")
    parser.add_argument("--selection", default=None, help="override the selection rule")
    parser.add_argument("--seed", type=int, default=0, help="the goal source's start/goal draws")
    parser.add_argument("--timeout", type=float, default=None, help="s of wall time for the whole run "
                        "(default: 15 s per episode + 60 s)")
    parser.add_argument("--json", default=None, help="write the summary and every episode here")
    parser.add_argument("--markdown", default=None, help="append a results section to this file")
    parser.add_argument("--label", default="", help="the section's title in --markdown")
    parser.add_argument("--inprocess", action="store_true",
                        help="no ROS: the node's decision loop on the arm in this process (quick model comparisons)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME:=VALUE",
                        help="another policy_node parameter, as `ros2 run -p` takes it (e.g. ddim_steps:=8)")
    args = parser.parse_args(argv)
    args.parameters = {}
    for item in args.param:
        name, sep, value = item.partition(":=")
        if not sep or not name:
            parser.error(f"--param {item!r}: expected NAME:=VALUE")
        args.parameters[name] = yaml.safe_load(value)
    return args


class CommandLog:
    """The policy's commands with their receive times (node clock), to measure jerk per episode."""

    def __init__(self, node, topic: str):
        from rclpy.qos import QoSProfile
        from std_msgs.msg import Float64MultiArray
        self.times: list[float] = []
        self.values: list[np.ndarray] = []
        self._clock = node.get_clock()
        node.create_subscription(Float64MultiArray, topic, self._on_command, QoSProfile(depth=50))

    def _on_command(self, msg) -> None:
        self.times.append(self._clock.now().nanoseconds * 1e-9)
        self.values.append(np.asarray(msg.data, dtype=np.float64))

    def mean_squared_jerk(self, start: float, end: float, period: float) -> float:
        times = np.asarray(self.times)
        chosen = [v for t, v in zip(times, self.values) if start <= t <= end]
        if len(chosen) < 4:
            return math.nan
        third = np.diff(np.asarray(chosen), n=3, axis=0) / period ** 3
        return float(np.mean(third ** 2))


def run(args) -> dict:
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(101, 230)))
    import rclpy
    from rclpy.parameter import Parameter

    from ebgan_mdn_ros.node.box_reach_goal_source import BoxReachGoalSource, summarize, summary_text
    from ebgan_mdn_ros.node.executors import make_executor
    from ebgan_mdn_ros.node.goal_pose_relay import GoalPoseRelay
    from ebgan_mdn_ros.node.mujoco_sim_node import MujocoSimNode
    from ebgan_mdn_ros.node.parameters import load_parameter_file, resolve_model_directory
    from ebgan_mdn_ros.node.policy_node import PolicyNode
    from ebgan_mdn_ros.paths import find_in_share

    config = find_in_share(args.config)
    policy_file = load_parameter_file(config, "policy_node")
    model = str(resolve_model_directory(args.model or policy_file["model_directory"]))
    overrides = [Parameter("model_directory", value=model)]
    if args.num_candidates is not None:
        overrides.append(Parameter("num_candidates", value=args.num_candidates))
    if args.selection is not None:
        overrides.append(Parameter("selection", value=args.selection))
    overrides += [Parameter(name, value=value) for name, value in (getattr(args, "parameters", None) or {}).items()]
    context = rclpy.Context()
    rclpy.init(args=["box_reach_closed_loop", "--ros-args", "--params-file", str(config)], context=context)
    executor = make_executor("events", context)
    nodes = []
    try:
        sim = MujocoSimNode(context=context)
        relay = GoalPoseRelay(context=context)
        source = BoxReachGoalSource(context=context, parameter_overrides=[
            Parameter("episodes", value=args.episodes), Parameter("seed", value=args.seed)])
        policy = PolicyNode(context=context, parameter_overrides=overrides)
        nodes = [sim, relay, source, policy]
        commands = CommandLog(source, policy.config.command_topic)
        for node in nodes:
            executor.add_node(node)
        period = 1.0 / policy.config.control_rate_hz if policy.config.control_rate_hz > 0 else 1.0 / sim.config.publish_rate_hz
        deadline = time.monotonic() + (args.timeout if args.timeout else 15.0 * args.episodes + 60.0)
        wall = time.monotonic()
        last_print = 0
        while not source.finished:
            if time.monotonic() > deadline:
                print(f"timeout: {len(source.records)} of {args.episodes} episodes finished", file=sys.stderr)
                break
            executor.spin_once(timeout_sec=0.05)  # EventsExecutor: never spin without a timeout
            if len(source.records) >= last_print + 10:
                last_print = len(source.records)
                print(f"  {last_print}/{args.episodes}: {summary_text(source.summary())}", flush=True)
        wall = time.monotonic() - wall
        records = source.records
        for record in records:
            record["mean_squared_jerk"] = commands.mean_squared_jerk(record["t_start"], record["t_end"], period)
        summary = summarize(records)
        jerks = [r["mean_squared_jerk"] for r in records if not math.isnan(r["mean_squared_jerk"])]
        summary.update({
            "mean_squared_jerk": float(np.mean(jerks)) if jerks else math.nan,
            "model": model, "config": str(config), "num_candidates": policy.config.num_candidates,
            "selection": policy.config.selection, "control_rate_hz": policy.config.control_rate_hz,
            "seed": args.seed, "wall_s": wall, "sim_contact_steps": sim.contact_steps,
            "policy_decisions": policy.decisions, "policy_states_rejected": policy.states_rejected,
            "safety": dict(getattr(getattr(policy, "_loop", None), "safety_counters", {})),  # the node's internals
            "inference_p50_us": policy.inference.summary()["p50_us"],
            "inference_p99_us": policy.inference.summary()["p99_us"]})
        return {"summary": summary, "episodes": records}
    finally:
        for node in nodes:
            executor.remove_node(node)
            node.destroy_node()
        executor.shutdown(timeout_sec=1.0)
        rclpy.try_shutdown(context=context)


def node_config(args):
    """The policy node's NodeConfig as the config file and args set it: --model, --num-candidates,
    --selection, and args.parameters (other node parameters, e.g. annealing_rule or ddim_steps)."""
    from ebgan_mdn_ros.node.parameters import config_from_parameters, load_parameter_file, resolve_model_directory
    from ebgan_mdn_ros.paths import find_in_share
    parameters = load_parameter_file(find_in_share(args.config), "policy_node")
    parameters["model_directory"] = str(resolve_model_directory(args.model or parameters["model_directory"]))
    if args.num_candidates is not None:
        parameters["num_candidates"] = args.num_candidates
    if args.selection is not None:
        parameters["selection"] = args.selection
    parameters.update(getattr(args, "parameters", None) or {})
    return config_from_parameters(parameters)


def run_inprocess(args, runtime=None) -> dict:
    """The same loop without ROS, for quick model comparisons: the policy node's decision loop
    (control/decision_loop.py, runtime, safety filter) and the emulated forward controller on the
    MuJoCo arm, stepped at 1 kHz; joint states sampled every 10 ms, a decision every control period,
    no DDS, no latency. The ROS run above is the measurement; this one ranks candidates in seconds.

    runtime: serve this object instead of a PolicyRuntime on args.model (anything with the runtime's
    manifest.condition_names / manifest.action_kind, decide() and reset(): benchmarks/box_reach_quality.py
    serves the torch checkpoints of methods that cannot be exported this way)."""
    from collections import Counter

    from ebgan_mdn_ros.control.decision_loop import DecisionLoop
    from ebgan_mdn_ros.node.parameters import load_parameter_file
    from ebgan_mdn_ros.paths import find_in_share
    from ebgan_mdn_ros.runtime.policy_runtime import PolicyRuntime
    from ebgan_mdn_ros.sim.box_reach_expert import box_reach_arm, draw_episode
    from ebgan_mdn_ros.sim.controllers import ControllerSwitch
    from ebgan_mdn_ros.tasks.box_reach import route_of

    config = find_in_share(args.config)
    source = load_parameter_file(config, "box_reach_goal_source")
    node = node_config(args)
    if runtime is None:
        runtime = PolicyRuntime(node.model_directory, node.runtime_config())
    loop = DecisionLoop(runtime, node.joint_names, node.safety_config(node.position_lower, node.position_upper))
    arm = box_reach_arm()
    names, every = arm.joint_names, int(round(1000.0 / node.control_rate_hz))
    timeout, tolerance = float(source.get("timeout_s", 8.0)), float(source.get("tolerance", 0.02))
    rng, records = np.random.default_rng(args.seed), []
    for episode in range(args.episodes):
        _, goal, start_joints = draw_episode(arm, rng)  # as the goal source draws them
        arm.reset(start_joints)
        switch, commands, path, contacts, reached = ControllerSwitch(names), [], [], Counter(), None
        loop.new_episode()
        state = (arm.position, arm.velocity)
        for k in range(int(timeout * 1000)):
            if k % 10 == 0:
                state = (arm.position, arm.velocity)
            if k % every == 0:
                result = loop.step(names, state[0], state[1], goal, 0.0, k * 1e-3)
                if result.command is not None:
                    switch.forward_command(result.command)
                    commands.append(result.command)
            desired = switch.desired(arm.time)
            if desired is not None:
                arm.set_target(*desired)
            arm.step()
            if arm.data.ncon:
                contacts.update(f"{c.arm_body}-{c.other}" for c in arm.contacts())
            if k % 10 == 0:
                path.append(arm.flange_pose()[0])
                if np.linalg.norm(path[-1] - goal) <= tolerance:
                    reached = k * 1e-3
                    break
        c = np.asarray(commands)
        jerk = float(np.mean((np.diff(c, 3, axis=0) * node.control_rate_hz ** 3) ** 2)) if len(c) > 4 else math.nan
        error = float(np.linalg.norm(path[-1] - goal))
        records.append({"episode": episode, "outcome": "reached" if reached is not None else "timeout",
                        "reached": reached is not None, "seconds": reached, "error": error,
                        "min_error": float(min(np.linalg.norm(np.array(path) - goal, axis=1))),
                        "route": route_of(np.array(path)), "contact": bool(contacts), "contacts": dict(contacts),
                        "final_position": [float(v) for v in path[-1]], "goal": [float(v) for v in goal],
                        "mean_squared_jerk": jerk})
    from ebgan_mdn_ros.node.box_reach_goal_source import summarize
    summary = summarize(records)
    jerks = [r["mean_squared_jerk"] for r in records if not math.isnan(r["mean_squared_jerk"])]
    summary.update({"mean_squared_jerk": float(np.mean(jerks)) if jerks else math.nan,
                    "model": node.model_directory, "config": str(config), "num_candidates": node.num_candidates,
                    "selection": node.selection, "control_rate_hz": node.control_rate_hz, "seed": args.seed,
                    "wall_s": math.nan, "safety": loop.safety_counters, "inference_p50_us": math.nan,
                    "inference_p99_us": math.nan})
    return {"summary": summary, "episodes": records}


def text(summary: dict) -> str:
    from ebgan_mdn_ros.node.box_reach_goal_source import summary_text
    return (f"{summary_text(summary)}\n  K = {summary['num_candidates']}, {summary['selection']}, "
            f"{summary['control_rate_hz']:g} Hz; mean squared command jerk {summary['mean_squared_jerk']:.4g} rad^2/s^6; "
            f"inference p50 {summary['inference_p50_us']:.0f} us, p99 {summary['inference_p99_us']:.0f} us; "
            f"{summary['wall_s']:.0f} s wall")


def markdown(result: dict, label: str, command: str) -> str:
    s = result["summary"]
    routes = ", ".join(f"{k} {100 * v:.0f} %" for k, v in sorted(s["route_shares"].items()))
    lines = [f"### {label or 'run'}", "", f"    {command}", "",
             "| episodes | success | contact episodes | routes | time to goal (mean / median) | mean sq. command jerk | final error (mean) |",
             "| --- | --- | --- | --- | --- | --- | --- |",
             f"| {s['episodes']} | {s['reached']} ({100 * s['success_rate']:.1f} %) | {s['contact_episodes']} "
             f"({100 * s['contact_rate']:.1f} %) | {routes} | {s['mean_seconds_to_goal']:.2f} s / "
             f"{s['median_seconds_to_goal']:.2f} s | {s['mean_squared_jerk']:.4g} rad²/s⁶ | {1000 * s['mean_final_error']:.1f} mm |",
             "", f"K = {s['num_candidates']}, selection {s['selection']}, {s['control_rate_hz']:g} Hz decisions; "
             f"inference p50 {s['inference_p50_us']:.0f} µs / p99 {s['inference_p99_us']:.0f} µs; safety filter "
             f"{json.dumps(s['safety'])}; {s['wall_s']:.0f} s wall.", ""]
    missed = [r for r in result["episodes"] if not r["reached"] or r["contact"]]
    if missed:
        lines += ["Missed or touching episodes: " + "; ".join(
            f"#{r['episode']} {r['outcome']} ({r['route']}, min error {1000 * r['min_error']:.0f} mm"
            f"{', contact ' + ','.join(r['contacts']) if r['contact'] else ''})" for r in missed[:20]), ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    if args.episodes < 1:
        print("--episodes must be >= 1", file=sys.stderr)
        return 2
    result = run_inprocess(args) if args.inprocess else run(args)
    print(text(result["summary"]))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1, default=float))
    if args.markdown:
        command = "python benchmarks/box_reach_closed_loop.py " + " ".join(sys.argv[1:] if argv is None else argv)
        with open(args.markdown, "a") as f:
            f.write(markdown(result, args.label, command))
    return 0 if result["summary"]["reached"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
