"""Per-step decisions vs action chunks vs temporal ensembling on the MuJoCo UR5e box reach (no ROS).

    python benchmarks/box_reach_chunks.py --episodes 100 --json benchmarks/results/chunks.json

Each variant drives the same episodes (the goal source's start/goal draws, --seed) with the node's
own control code: control/decision_loop.py for the per-step model (models/ur5e_box_reach, 10 Hz,
as config/sim_ur5e.yaml), control/chunk_loop.py for a chunk model (playback on the emulated
forward controller at --playback-hz, or one trajectory per chunk on the emulated
JointTrajectoryController). Inference is asynchronous as in the node: a chunk requested at one
tick is accepted at the first tick after its measured inference time plus --transport-ms, while the
running plan goes on. The arm is stepped at 1 kHz and sampled every 10 ms.

Measured per variant: success, contact episodes, route shares, time to goal; mean squared jerk of
the targets the arm was sent (sampled every 0.1 s, third differences, rad^2/s^6) and of the arm's
joint positions (every 10 ms); idle time (the arm had no future point); decisions per second;
policy CPU (thread time in the policy's calls per second of control, % of one core); mixture
component switches within an episode (the expert never switches route within one).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = {  # label: (model, n_exec (0: per step), output, temporal ensembling)
    "per-step": ("models/ur5e_box_reach", 0, "forward", False),
    "chunk H16 n8": ("models/ur5e_box_reach_chunks", 8, "forward", False),
    "chunk H16 n4": ("models/ur5e_box_reach_chunks", 4, "forward", False),
    "chunk H16 n8 trajectory": ("models/ur5e_box_reach_chunks", 8, "trajectory", False),
    "ensembling H16 n1": ("models/ur5e_box_reach_chunks", 1, "forward", True),
}


def _arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), help=f"of {list(VARIANTS)}")
    parser.add_argument("--model", action="append", default=[], metavar="LABEL=DIR",
                        help="serve another model for a variant (e.g. 'chunk H8 n4=models/x'; the n_exec "
                             "and output of a new label are parsed from it: 'chunk H8 n4 [trajectory]')")
    parser.add_argument("--config", default="config/sim_ur5e_chunks.yaml", help="the chunk variants' node parameters")
    parser.add_argument("--step-config", default="config/sim_ur5e.yaml", help="the per-step variant's")
    parser.add_argument("--playback-hz", type=float, default=50.0, help="chunk playback rate (forward output)")
    parser.add_argument("--trajectory-max-step", type=float, default=0.35,
                        help="rad per trajectory point (0.1 s) for the trajectory variants (config/sim_ur5e.yaml's)")
    parser.add_argument("--transport-ms", type=float, default=5.0, help="added to each measured inference time")
    parser.add_argument("--num-candidates", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    return parser.parse_args(argv)


def _variants(args) -> dict:
    variants = {label: VARIANTS[label] for label in args.variants if label in VARIANTS}
    for text in args.model:
        label, _, model = text.partition("=")
        words = label.split()
        n_exec = int(next(w[1:] for w in words if w.startswith("n")))
        output = "trajectory" if "trajectory" in words else "forward"
        variants[label] = (model, n_exec, output, label.startswith("ensembling"))
    unknown = [label for label in args.variants if label not in variants]
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}: pass --model 'LABEL=DIR'")
    return {label: variants[label] for label in args.variants}


def _policy(args, model: str, n_exec: int, output: str, ensembling: bool):
    """(loop, runtime, config, control period): the node's configuration from the YAML, as the node builds it."""
    from dataclasses import replace

    from ebgan_mdn_ros.control.chunk_loop import ChunkLoop, ChunkTiming
    from ebgan_mdn_ros.control.decision_loop import DecisionLoop
    from ebgan_mdn_ros.node.parameters import config_from_parameters, load_parameter_file, resolve_model_directory
    from ebgan_mdn_ros.paths import find_in_share
    from ebgan_mdn_ros.runtime.policy_runtime import PolicyRuntime

    parameters = load_parameter_file(find_in_share(args.config if n_exec else args.step_config), "policy_node")
    parameters["model_directory"] = str(resolve_model_directory(model))
    if args.num_candidates is not None:
        parameters["num_candidates"] = args.num_candidates
    if n_exec:
        parameters.update(control_rate_hz=args.playback_hz, chunk_n_exec=n_exec, temporal_ensembling=ensembling)
        if output == "trajectory":  # the filter's step limit applies per trajectory point (one per dt)
            parameters["max_step"] = args.trajectory_max_step
    node = config_from_parameters(parameters)
    runtime = PolicyRuntime(node.model_directory, node.runtime_config())
    safety = node.safety_config(node.position_lower, node.position_upper)
    if n_exec == 0:
        return DecisionLoop(runtime, node.joint_names, safety), runtime, node, 1.0 / node.control_rate_hz
    timing = ChunkTiming.of(runtime.manifest.chunk, n_exec, node.control_rate_hz, node.chunk_min_lead_s)
    decay = node.ensemble_decay if ensembling else None
    return (ChunkLoop(runtime, node.joint_names, safety, timing, output == "trajectory", decay), runtime, node,
            1.0 / node.control_rate_hz)


def run_variant(args, label: str, model: str, n_exec: int, output: str, ensembling: bool) -> dict:
    from ebgan_mdn_ros.control.chunk_loop import ChunkRequest
    from ebgan_mdn_ros.node.box_reach_goal_source import summarize
    from ebgan_mdn_ros.node.parameters import load_parameter_file
    from ebgan_mdn_ros.paths import find_in_share
    from ebgan_mdn_ros.sim.box_reach_expert import box_reach_arm, draw_episode
    from ebgan_mdn_ros.sim.controllers import ControllerSwitch
    from ebgan_mdn_ros.tasks.box_reach import route_of

    loop, runtime, node, period = _policy(args, model, n_exec, output, ensembling)
    chunked = n_exec > 0
    source = load_parameter_file(find_in_share(args.config), "box_reach_goal_source")
    timeout, tolerance = float(source.get("timeout_s", 8.0)), float(source.get("tolerance", 0.02))
    arm = box_reach_arm()
    names, every = arm.joint_names, int(round(1000.0 * period))
    rng, records = np.random.default_rng(args.seed), []
    for episode in range(args.episodes):
        _, goal, start_joints = draw_episode(arm, rng)  # as the goal source draws them
        arm.reset(start_joints)
        switch, path, joints, contacts, reached = ControllerSwitch(names), [], [], Counter(), None
        loop.new_episode()
        if chunked:
            before = dict(loop.counters)
            idle_before = loop.idle_s
        state, pending, decisions, components, cpu = (arm.position, arm.velocity), None, 0, [], 0.0
        targets = []
        for k in range(int(timeout * 1000)):
            now_ns = k * 1_000_000
            if k % 10 == 0:
                state = (arm.position.copy(), arm.velocity.copy())
            if k % every == 0:
                started = time.thread_time()
                if not chunked:
                    result = loop.step(names, state[0], state[1], goal, 0.0, k * 1e-3)
                    if result.decision is not None and result.command is not None:
                        decisions += 1
                        components.append(result.decision.chosen_component)
                        switch.forward_command(result.command)
                else:
                    if pending is not None and now_ns >= pending[2]:
                        request, decision = pending[0], pending[1]
                        points = loop.accept(request, decision, now_ns, request.position, 0.0)
                        decisions += 1
                        components.append(decision.chosen_component)
                        if points is not None:
                            switch.trajectory_command(names, points.time_from_start_ns * 1e-9, points.positions,
                                                      points.velocities, now=arm.time, measured_position=state[0])
                        pending = None
                    if output == "forward":
                        command = loop.tick(k * 1e-3, state[0], 0.0)
                        if command is not None:
                            switch.forward_command(command)
                    if pending is None and loop.due(now_ns, 2 * every * 1_000_000):
                        request = loop.request(names, state[0], state[1], goal, 0.0, now_ns)
                        if isinstance(request, ChunkRequest):
                            decision = loop.decide(request)
                            ready = now_ns + int((decision.inference_seconds + args.transport_ms * 1e-3) * 1e9)
                            pending = (request, decision, ready)
                cpu += time.thread_time() - started
            desired = switch.desired(arm.time)
            if desired is not None:
                arm.set_target(*desired)
            if k % 100 == 0 and desired is not None:
                targets.append(desired[0].copy())
            arm.step()
            if arm.data.ncon:
                contacts.update(f"{c.arm_body}-{c.other}" for c in arm.contacts())
            if k % 10 == 0:
                path.append(arm.flange_pose()[0])
                joints.append(arm.position.copy())
                if np.linalg.norm(path[-1] - goal) <= tolerance:
                    reached = k * 1e-3
                    break
        duration = (k + 1) * 1e-3
        t = np.asarray(targets)
        q = np.asarray(joints)
        record = {
            "episode": episode, "outcome": "reached" if reached is not None else "timeout",
            "reached": reached is not None, "seconds": reached, "error": float(np.linalg.norm(path[-1] - goal)),
            "min_error": float(min(np.linalg.norm(np.array(path) - goal, axis=1))),
            "route": route_of(np.array(path)), "contact": bool(contacts), "contacts": dict(contacts),
            "target_jerk": float(np.mean((np.diff(t, 3, axis=0) / 0.1 ** 3) ** 2)) if len(t) > 4 else math.nan,
            "arm_jerk": float(np.mean((np.diff(q, 3, axis=0) / 0.01 ** 3) ** 2)) if len(q) > 4 else math.nan,
            "decisions_per_s": decisions / duration, "cpu_percent": 100 * cpu / duration,
            "component_switches": int(np.sum(np.diff(components) != 0)) if len(components) > 1 else 0,
            "route_switch": _route_switch(np.array(path))}
        if chunked:
            after = loop.counters
            record.update(idle_s=loop.idle_s - idle_before + loop.timing.control_period_ns * 1e-9 * (
                after["idle_ticks"] - before["idle_ticks"]),
                splice_clamped=after["splice_clamped"] - before["splice_clamped"])
        else:
            record.update(idle_s=0.0, splice_clamped=0)
        records.append(record)
    summary = summarize(records)

    def mean(key):
        values = [r[key] for r in records if not (isinstance(r[key], float) and math.isnan(r[key]))]
        return float(np.mean(values)) if values else math.nan
    summary.update({key: mean(key) for key in ("target_jerk", "arm_jerk", "decisions_per_s", "cpu_percent",
                                               "idle_s", "component_switches", "splice_clamped")})
    summary.update(label=label, model=model, n_exec=n_exec, output=output, ensembling=ensembling,
                   control_rate_hz=1.0 / period, num_candidates=node.num_candidates,
                   episodes_with_switches=sum(r["component_switches"] > 0 for r in records),
                   route_switches=sum(r["route_switch"] for r in records),
                   safety=dict(loop.safety_counters))
    return {"summary": summary, "episodes": records}


def _route_switch(path: np.ndarray) -> bool:
    """Whether the flange headed for both sides of the box in one episode: 10 cm or more to the near
    side (y below the box centre's 0.5 m) and to the far side. Starts and goals lie within 5 cm of it."""
    return bool(path[:, 1].min() < 0.4 and path[:, 1].max() > 0.6)


def row(s: dict) -> str:
    routes = ", ".join(f"{k} {100 * v:.0f} %" for k, v in sorted(s["route_shares"].items()))
    return (f"| {s['label']} | {100 * s['success_rate']:.0f} % | {s['contact_episodes']} | {routes} | "
            f"{s['mean_seconds_to_goal']:.2f} s | {s['target_jerk']:.4g} | {s['arm_jerk']:.4g} | "
            f"{s['idle_s'] * 1000:.0f} ms | {s['decisions_per_s']:.2f} | {s['cpu_percent']:.1f} % | "
            f"{s['route_switches']} | {s['component_switches']:.2f} ({s['episodes_with_switches']}) | "
            f"{s['splice_clamped']:.2f} |")


HEADER = ("| variant | success | contact episodes | routes | time to goal | target jerk (rad²/s⁶) | arm jerk (rad²/s⁶) "
          "| idle per episode | decisions/s | policy CPU | route switches | component switches / episode (episodes) "
          "| splice clamps / episode |\n"
          "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    results = {}
    print(HEADER, flush=True)
    for label, (model, n_exec, output, ensembling) in _variants(args).items():
        results[label] = run_variant(args, label, model, n_exec, output, ensembling)
        print(row(results[label]["summary"]), flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
