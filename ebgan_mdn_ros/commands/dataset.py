"""`ebgan-mdn dataset BAG... --out demos.npz`: rosbag2 MCAP recordings -> (condition, action) pairs.

The alignment rule (which messages make one pair) is in ebgan_mdn_ros/data/bag_dataset.py and
docs/demonstrations.md. The .npz holds conditions, actions, condition_names, action_names (what
`ebgan-mdn train --demos` reads) plus episode_ids, times, action_kind and the source bags.
"""
from __future__ import annotations

import argparse
import sys


def _names(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"{text!r} names nothing (expected a comma-separated list)")
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bags", nargs="+", metavar="BAG",
                        help="rosbag2 directory (metadata.yaml + .mcap) or a bare .mcap file; each is one recording")
    parser.add_argument("--out", required=True, help="output .npz")
    parser.add_argument("--joint-state-topic", default="/joint_states", help="sensor_msgs/JointState topic")
    parser.add_argument("--goal-topic", default="/goal", help="std_msgs/Float64MultiArray goal topic")
    parser.add_argument("--command-topic", default=None,
                        help="std_msgs/Float64MultiArray commands the demonstrator sent (e.g. "
                             "/forward_position_controller/commands): one pair per command. Without it, "
                             "actions are the joint positions --horizon seconds later (hindsight)")
    parser.add_argument("--joints", type=_names, default=None,
                        help="action joints, comma-separated, in this order (default: the first JointState's order)")
    parser.add_argument("--command-joints", type=_names, default=None,
                        help="joint order of the command array (the controller's 'joints'; default: --joints)")
    parser.add_argument("--condition", type=_names, default=("goal",),
                        help="condition parts in order, from goal, position, velocity (default: goal)")
    parser.add_argument("--action", choices=("target", "delta"), default="target",
                        help="target: absolute joint targets; delta: target minus the current joint positions")
    parser.add_argument("--horizon", type=float, default=0.5,
                        help="s: hindsight look-ahead when there is no --command-topic (default 0.5)")
    parser.add_argument("--max-gap", type=float, default=0.5,
                        help="s without joint states that starts a new episode (default 0.5)")
    parser.add_argument("--sample-period", type=float, default=0.0,
                        help="s: keep at most one pair per period within an episode (default 0: all)")
    parser.add_argument("--episode-topic", default=None,
                        help="every message on this topic (any type) starts a new episode, e.g. "
                             "/sim_arm/reset_position; a goal of a new value always does")
    parser.add_argument("--chunk-horizon", type=int, default=1,
                        help="action chunks of this many steps, one per --horizon seconds (default 1: one action)")
    parser.add_argument("--chunk-n-exec", type=int, default=0,
                        help="steps of a chunk a robot executes before replanning (default 0: half the horizon)")
    parser.add_argument("--chunk-end", choices=("hold", "drop"), default="hold",
                        help="chunk steps past an episode's end: hold its last state (default) or drop the pair")


def run(args: argparse.Namespace) -> int:
    from ebgan_mdn_ros.data.bag_dataset import BagDatasetError, ExtractionConfig, extract

    try:
        config = ExtractionConfig(
            joint_state_topic=args.joint_state_topic, goal_topic=args.goal_topic,
            command_topic=args.command_topic, joints=args.joints, command_joints=args.command_joints,
            condition=args.condition, action=args.action, horizon=args.horizon, max_gap=args.max_gap,
            sample_period=args.sample_period, episode_topic=args.episode_topic,
            chunk_horizon=args.chunk_horizon, chunk_n_exec=args.chunk_n_exec, chunk_end=args.chunk_end)
        demos = extract(args.bags, config)
        path = demos.save(args.out)
    except BagDatasetError as exc:
        print(f"ebgan-mdn dataset: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path}: {len(demos)} pairs in {demos.episode_count} episodes from {len(demos.sources)} bag(s)")
    print(f"  conditions {list(demos.condition_names)}")
    print(f"  actions    {list(demos.action_names)} ({demos.action_kind})")
    if demos.chunk is not None:
        print(f"  chunks     {demos.chunk[0]} steps of {demos.chunk[2]:g} s, {demos.chunk[1]} executed per decision")
    for reason, count in sorted(demos.dropped.items()):
        print(f"  left out {count}: {reason}")
    return 0
