"""The main job on the MuJoCo UR5e: reach goals beyond the box, around its near or its far side.

    .venv/bin/python -m ebgan_mdn_ros.demo                 # config/sim_ur5e.yaml, models/ur5e_box_reach, 30 s

Starts what `ros2 launch ebgan_mdn_ros policy.launch.py arm:=sim` starts (mujoco_sim, goal_pose_relay,
box_reach_goal_source, policy_node) as separate processes over DDS, watches the topics, then prints
goals reached, contacts, routes taken and latency, and writes a PNG of the flange paths over the box
coloured by route. The clip (GIF) is rendered afterwards from the recorded joint states, in a process
of its own (sim/render.py), so the control loop never waits on a renderer; without GL the run still
succeeds and says why there is no clip.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ebgan_mdn_ros.tasks.box_reach import BOX_CENTER, BOX_HALF_SIZE, ROUTES

ROUTE_COLOURS = {"near": "tab:blue", "far": "tab:orange"}
RENDER_TIMEOUT_S = 300.0


class Observer:
    """What the demo reports: episode records, joint states, flange poses, decisions (one rclpy node)."""

    def __init__(self, context):
        import rclpy
        from geometry_msgs.msg import PoseStamped
        from rclpy.qos import QoSProfile, qos_profile_sensor_data
        from sensor_msgs.msg import JointState
        from std_msgs.msg import String

        from ebgan_mdn_ros.msg import Decision
        self.node = rclpy.create_node("demo_observer", context=context)
        self.events: list[dict] = []
        self.states: list[tuple[float, tuple[float, ...]]] = []   # stamp (s), positions
        self.flange: list[tuple[float, float, float, float]] = []  # stamp (s), x, y, z
        self.decisions: list[tuple[float, float, float, bool]] = []  # latency_us, inference_us, e2e_us, held
        self.joint_names: tuple[str, ...] = ()
        self.node.create_subscription(String, "goal_events", self._on_event, QoSProfile(depth=50))
        self.node.create_subscription(JointState, "joint_states", self._on_state, qos_profile_sensor_data)
        self.node.create_subscription(PoseStamped, "flange_pose", self._on_flange, qos_profile_sensor_data)
        self.node.create_subscription(Decision, "/policy_node/decision", self._on_decision, QoSProfile(depth=50))

    def _on_event(self, msg) -> None:
        self.events.append(json.loads(msg.data))

    def _on_state(self, msg) -> None:
        self.joint_names = self.joint_names or tuple(msg.name)
        self.states.append((_seconds(msg.header.stamp), tuple(msg.position)))

    def _on_flange(self, msg) -> None:
        p = msg.pose.position
        self.flange.append((_seconds(msg.header.stamp), p.x, p.y, p.z))

    def _on_decision(self, msg) -> None:
        end_to_end_us = (time.time_ns() - round(_seconds(msg.header.stamp) * 1e9)) / 1e3  # same host clock
        self.decisions.append((msg.latency_us, msg.inference_us, end_to_end_us, msg.held))

    def clear(self) -> None:
        """Forget the start-up: the report counts from the first decision on."""
        self.events.clear()
        self.decisions.clear()


def _seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def latency_percentiles(decisions: np.ndarray) -> dict:
    """[p50, p99, max] of each latency column of the decisions [N, 3] the demo saw (NaN when none)."""
    def column(i):
        values = decisions[:, i]
        return [float(np.percentile(values, q)) for q in (50, 99)] + [float(values.max())] if len(values) else [np.nan] * 3
    return {"node_latency_us": column(0), "inference_us": column(1), "state_to_decision_us": column(2)}


def shares_text(counts: dict, total: int) -> str:
    """``far 4 (36 %), near 7 (64 %)``, or ``-`` when there is nothing to count."""
    return ", ".join(f"{k} {v} ({100 * v / (total or 1):.0f} %)" for k, v in sorted(counts.items())) or "-"


def print_decisions(result: dict, node_latency_label: str) -> None:
    """The lines both demos end with: decisions, holds, and the three latencies (latency_percentiles)."""
    print(f"  decisions       {result['decisions_per_second']:.1f} /s, held by the safety filter {result['held']}")
    for key, label in (("inference_us", "inference"), ("node_latency_us", node_latency_label),
                       ("state_to_decision_us", "state stamp -> decision seen")):
        p50, p99, worst = result[key]
        print(f"  {label:30s} p50 {p50:7.0f} us   p99 {p99:7.0f} us   max {worst:7.0f} us")


def report(observer: Observer, seconds: float) -> dict:
    from ebgan_mdn_ros.node.box_reach_goal_source import summarize
    result = summarize(observer.events)
    decisions = np.array([d[:3] for d in observer.decisions]).reshape(-1, 3)

    result.update(decisions_per_second=len(decisions) / seconds, held=int(sum(d[3] for d in observer.decisions)),
                  **latency_percentiles(decisions))
    return result


def print_report(result: dict, mode: str) -> None:
    r = result
    print(f"\nEBGAN-MDN UR5e box-reach demo ({mode})")
    print(f"  goals reached   {r['reached']}/{r['episodes']} ({100 * r['success_rate']:.1f} %), "
          f"mean time to goal {r['mean_seconds_to_goal']:.2f} s")
    print(f"  contacts        {r['contact_episodes']} episodes with an arm contact")
    print(f"  routes          {shares_text(r['routes'], r['episodes'])}")
    # Timer-driven (10 Hz): a decision answers the newest state, which waited for the tick up to one
    # state period (10 ms at 100 Hz); benchmarks/e2e_latency.py measures the event-driven path.
    print_decisions(r, "newest state in -> command out")


def episode_paths(observer: Observer) -> list[tuple[dict, np.ndarray]]:
    """Each finished episode with the flange positions between its start and its score."""
    flange = np.array(observer.flange).reshape(-1, 4)
    return [(e, flange[(flange[:, 0] >= e["t_start"]) & (flange[:, 0] <= e["t_end"]), 1:])
            for e in observer.events]


def plot(observer: Observer, result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (top, side) = plt.subplots(1, 2, figsize=(12, 5))
    (cx, cy, cz), (hx, hy, hz) = BOX_CENTER, BOX_HALF_SIZE
    for axes, (i, j), (c0, c1, h0, h1), label in ((top, (0, 1), (cx, cy, hx, hy), "y"),
                                                  (side, (0, 2), (cx, cz, hx, hz), "z")):
        axes.add_patch(matplotlib.patches.Rectangle((c0 - h0, c1 - h1), 2 * h0, 2 * h1, color="tab:red", alpha=0.5))
        for event, flange in episode_paths(observer):
            colour = ROUTE_COLOURS.get(event["route"], "grey")
            axes.plot(flange[:, i], flange[:, j], color=colour, lw=1, alpha=0.8)
            goal = event["goal"]
            marker = dict(marker="o", facecolors="none", edgecolors="tab:green") if event["reached"] else \
                dict(marker="x", c="tab:red")
            axes.scatter(goal[i], goal[j], s=40, **marker)
            if event["contact"]:
                axes.scatter(*flange[-1, [i, j]], marker="*", s=80, c="k")
        axes.set_xlabel("x (m)")
        axes.set_ylabel(f"{label} (m)")
        axes.set_aspect("equal")
    for route in ROUTES:
        top.plot([], [], color=ROUTE_COLOURS[route], label=f"{route} side ({result['routes'].get(route, 0)})")
    top.add_patch(matplotlib.patches.Rectangle((0, 0), 0, 0, color="tab:red", alpha=0.5, label="box"))
    top.scatter([], [], marker="o", facecolors="none", edgecolors="tab:green", label="goal reached")
    top.legend(loc="upper left", fontsize=8)
    top.set_title("flange paths from above")
    side.set_title(f"from the front: {result['reached']}/{result['episodes']} reached, "
                   f"{result['contact_episodes']} with contact")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def save_recording(observer: Observer, path: Path) -> Path:
    """The joint states and episodes the clip is rendered from (sim/render.py reads this)."""
    events = observer.events
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, time=np.array([s[0] for s in observer.states]),
                        position=np.array([s[1] for s in observer.states]).reshape(len(observer.states), -1),
                        joint_names=np.array(observer.joint_names),
                        episode_start=np.array([e["t_start"] for e in events]),
                        episode_end=np.array([e["t_end"] for e in events]),
                        goal=np.array([e["goal"] for e in events]).reshape(-1, 3),
                        route=np.array([e["route"] for e in events]))
    return path


def render_clip(recording: Path, clip: Path, episodes: int, gl: str = "egl") -> str:
    """Render in a child process (a crash or a hang in GL cannot take the demo with it); a line to print."""
    env = {**os.environ, "MUJOCO_GL": gl}
    command = [sys.executable, "-m", "ebgan_mdn_ros.sim.render", str(recording), "--out", str(clip),
               "--episodes", str(episodes)]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=RENDER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"no clip: rendering took over {RENDER_TIMEOUT_S:.0f} s"
    if done.returncode != 0:
        lines = (done.stderr or done.stdout or f"exit {done.returncode}").strip().splitlines()
        return lines[-1] if lines else f"no clip: the renderer exited {done.returncode}"
    return f"{clip} ({done.stdout.strip().split(': ', 1)[-1]})"


def finish(observer: Observer, args, mode: str) -> int:
    """Report, figure and clip after the nodes have stopped; exit 0 when a goal was reached without contact."""
    result = report(observer, args.seconds)
    print_report(result, mode)
    png = Path(args.png)
    plot(observer, result, png)
    print(f"  {'figure':15s} {png}")
    recording = save_recording(observer, png.with_name(png.stem + "_states.npz"))
    if args.clip_episodes <= 0:
        print(f"  {'clip':15s} none (--clip-episodes 0)")
    elif not observer.events:
        print(f"  {'clip':15s} none: no episode finished")
    else:
        print(f"  {'clip':15s} {render_clip(recording, Path(args.clip), args.clip_episodes, args.clip_gl)}")
    return 0 if result["reached"] > 0 and result["contact_episodes"] == 0 else 1
