"""Recorder, expert and record_demos: recorded sessions become correct demonstration pairs.

The in-process backend runs in simulated time (no DDS); the ROS test drives the real sim_arm
nodes in a subprocess with its own ROS_DOMAIN_ID and records through raw rclpy subscriptions.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from ebgan_mdn_ros import cli
from ebgan_mdn_ros.data.bag_dataset import ExtractionConfig, extract
from ebgan_mdn_ros.data.bag_reader import read_topics
from ebgan_mdn_ros.tasks.planar_arm import planar_forward_kinematics as forward_kinematics
from ebgan_mdn_ros.tasks.expert import ELBOW_MODES, IKExpert, RouteExpert, inverse_kinematics
from ebgan_mdn_ros.sim.recording import RESET, record_inprocess
from ebgan_mdn_ros.data.bag_writer import BagWriter, RecorderError, message_definition
from ebgan_mdn_ros.tasks.routes import ROUTE_GOAL, ROUTE_VIA_POINTS

COMMANDS = "/forward_position_controller/commands"
REPO = Path(__file__).resolve().parents[1]
ROS_DOMAIN_ID = "232"


def ik_pairs(bag: Path, tmp_path: Path) -> dict:
    out = tmp_path / "ik.npz"
    assert cli.main(["dataset", str(bag), "--out", str(out), "--command-topic", COMMANDS,
                     "--joints", "shoulder,elbow"]) == 0
    with np.load(out) as data:
        return {key: data[key] for key in data.files}


def assert_ik_labels_hit_their_goals_in_both_modes(pairs: dict, min_episodes: int) -> None:
    assert list(pairs["condition_names"]) == ["goal.0", "goal.1"]
    assert list(pairs["action_names"]) == ["shoulder", "elbow"]
    reached = forward_kinematics(pairs["actions"])
    np.testing.assert_allclose(reached, pairs["conditions"], atol=1e-9)
    elbow_signs = {int(np.sign(e)) for e in pairs["actions"][:, 1]}
    assert elbow_signs == {-1, 1}, "both elbow modes must be in the demonstrations"
    episodes = pairs["episode_ids"]
    assert len(np.unique(episodes)) >= min_episodes
    for episode in np.unique(episodes):  # one goal and one mode per episode
        rows = episodes == episode
        assert len(np.unique(pairs["conditions"][rows], axis=0)) == 1
        assert len(np.unique(np.sign(pairs["actions"][rows, 1]))) == 1


# ---- expert -------------------------------------------------------------------------------------

def test_inverse_kinematics_reaches_goals_in_both_modes_within_joint_limits():
    rng = np.random.default_rng(3)
    radius = np.sqrt(rng.uniform(0.5 ** 2, 5.9 ** 2, 300))
    bearing = rng.uniform(-math.pi, math.pi, 300)
    for goal in np.stack([radius * np.cos(bearing), radius * np.sin(bearing)], 1):
        for mode in ELBOW_MODES:
            angles = inverse_kinematics(goal, mode)
            np.testing.assert_allclose(forward_kinematics(angles), goal, atol=1e-9)
            assert -math.pi <= angles[0] < math.pi
            assert (angles[1] > 0) == (mode == "elbow_up")
    with pytest.raises(ValueError):
        inverse_kinematics([1.0, 1.0], "sideways")


def test_ik_expert_keeps_its_mode_while_the_goal_repeats_and_uses_both():
    expert = IKExpert(np.random.default_rng(0))
    first = expert.on_goal([2.0, 1.0])
    assert expert.on_goal([2.0, 1.0]) is None  # a republished goal is not answered again
    np.testing.assert_array_equal(expert.target, first)
    for k in range(40):
        expert.on_goal([1.0 + 0.1 * k, 1.0])
    assert expert.mode_counts["elbow_up"] > 5 and expert.mode_counts["elbow_down"] > 5


def test_route_expert_follows_each_route_to_the_goal_in_bounded_steps():
    seen = set()
    expert = RouteExpert(np.random.default_rng(1))
    for _ in range(12):
        expert.reset()
        position, path = np.zeros(2), [np.zeros(2)]
        for _ in range(60):
            step = expert.on_state(position)
            assert np.all(np.abs(step) <= 2.0) and np.linalg.norm(step) <= 1.0 + 1e-9
            position = position + step
            path.append(position)
        np.testing.assert_allclose(position, ROUTE_GOAL, atol=1e-9)
        via = np.array(ROUTE_VIA_POINTS[expert.route])
        assert min(np.linalg.norm(p - via) for p in path) <= 0.5
        seen.add(expert.route)
    assert seen == {0, 1, 2}


# ---- BagWriter ----------------------------------------------------------------------------------

def test_bag_writer_writes_rosbag2_layout_and_raw_cdr_reads_back(tmp_path):
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray

    state = JointState(name=["elbow", "shoulder"], position=[0.5, -0.25])
    state.header.stamp.sec, state.header.stamp.nanosec = 12, 345
    # Serialised once: CDR padding bytes are not initialised, so two serialisations may differ.
    raw = serialize_message(state)
    bag_dir = tmp_path / "raw"
    with BagWriter(bag_dir) as bag:
        bag.add_topic("joint_states", "sensor_msgs/msg/JointState")
        bag.add_topic("/goal", "std_msgs/msg/Float64MultiArray")
        bag.write_serialized("/joint_states", raw, 1_000, 900)
        bag.write_serialized("/goal", serialize_message(Float64MultiArray(data=[1.0, 2.0])), 2_000)
        bag.write_message("/goal", {"layout": {"dim": [], "data_offset": 0}, "data": [3.0, 4.0]}, 3_000)
        with pytest.raises(RecorderError, match="was not added"):
            bag.write_serialized("/other", b"", 1)
    info = yaml.safe_load((bag_dir / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["storage_identifier"] == "mcap" and info["version"] == 9
    assert info["relative_file_paths"] == ["raw_0.mcap"] and info["message_count"] == 3
    assert info["starting_time"]["nanoseconds_since_epoch"] == 1_000 and info["duration"]["nanoseconds"] == 2_000
    counts = {t["topic_metadata"]["name"]: t["message_count"] for t in info["topics_with_message_count"]}
    assert counts == {"/joint_states": 1, "/goal": 2}
    types = {t["topic_metadata"]["name"]: t["topic_metadata"]["type"] for t in info["topics_with_message_count"]}
    assert types["/joint_states"] == "sensor_msgs/msg/JointState"

    streams, topics = read_topics(bag_dir, ["/joint_states", "/goal"])
    assert topics == {"/joint_states": "sensor_msgs/msg/JointState", "/goal": "std_msgs/msg/Float64MultiArray"}
    decoded = streams["/joint_states"].messages[0]
    assert list(decoded.name) == ["elbow", "shoulder"] and list(decoded.position) == [0.5, -0.25]
    assert (decoded.header.stamp.sec, decoded.header.stamp.nanosec) == (12, 345)
    assert [list(m.data) for m in streams["/goal"].messages] == [[1.0, 2.0], [3.0, 4.0]]
    assert streams["/goal"].times == [1_000, 2_000]  # ns since the first message

    from mcap.reader import make_reader
    with open(bag_dir / "raw_0.mcap", "rb") as stream:
        reader = make_reader(stream)
        summary = reader.get_summary()
        assert reader.get_header().profile == "ros2"
        schemas = {s.name: s for s in summary.schemas.values()}
        assert schemas["sensor_msgs/msg/JointState"].encoding == "ros2msg"
        assert schemas["sensor_msgs/msg/JointState"].data.decode() == message_definition("sensor_msgs/msg/JointState")
        channel = next(c for c in summary.channels.values() if c.topic == "/joint_states")
        assert channel.message_encoding == "cdr" and channel.metadata["topic_type_hash"].startswith("RIHS01_")
        message = next(m for _, c, m in reader.iter_messages(topics=["/joint_states"]))
        assert message.data == raw and message.publish_time == 900  # the bytes as given


def test_bag_writer_refuses_an_existing_directory_and_unknown_types(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(RecorderError, match="already exists"):
        BagWriter(tmp_path / "taken")
    with BagWriter(tmp_path / "fresh") as bag:
        with pytest.raises(RecorderError, match="no .msg definition"):
            bag.add_topic("/x", "no_such_msgs/msg/Thing")


# ---- recording sessions -------------------------------------------------------------------------

def test_inprocess_ik_session_gives_correct_labels_in_both_modes(tmp_path):
    summary = record_inprocess("ik", 6, tmp_path / "ik", seed=0, start_ns=1_700_000_000 * 10**9)
    assert summary.goals_finished == 6 and summary.goals_reached == 6
    assert set(summary.message_counts) == {"/joint_states", "/goal", COMMANDS, "/goal_events"}
    pairs = ik_pairs(tmp_path / "ik", tmp_path)
    assert_ik_labels_hit_their_goals_in_both_modes(pairs, min_episodes=6)
    # The recorded arm really went there: a goal ends when the end effector is within 0.1 m, so the
    # last hindsight label of each episode (joint positions 0.05 s later) is nearly an IK solution.
    hindsight = extract([tmp_path / "ik"], ExtractionConfig(joints=("shoulder", "elbow"), horizon=0.05))
    assert hindsight.episode_count == 6
    last = [np.flatnonzero(hindsight.episode_ids == e)[-1] for e in range(6)]
    errors = np.linalg.norm(forward_kinematics(hindsight.actions[last]) - hindsight.conditions[last], axis=1)
    assert np.all(errors < 0.3), errors


def test_inprocess_multiroute_session_labels_are_the_expert_displacements(tmp_path):
    record_inprocess("multiroute", 6, tmp_path / "routes", seed=2, start_ns=1_700_000_000 * 10**9)
    demos = extract([tmp_path / "routes"], ExtractionConfig(
        command_topic=COMMANDS, condition=("position",), action="delta", episode_topic=RESET))
    assert demos.condition_names == ("x_joint.position", "y_joint.position")
    assert demos.action_names == ("x_joint", "y_joint") and demos.action_kind == "delta"
    assert demos.episode_count == 6
    assert np.all(np.linalg.norm(demos.actions, axis=1) <= 1.0 + 1e-9)
    routes = set()
    for episode in range(demos.episode_count):
        path = demos.conditions[demos.episode_ids == episode]
        assert np.linalg.norm(path[0]) < 1.5                                  # starts near (0, 0)
        assert np.all(np.abs(path[-1] - ROUTE_GOAL) < 1.5)                    # ends near the goal box
        routes.add(int(np.argmin([np.min(np.linalg.norm(path - via, axis=1)) for via in ROUTE_VIA_POINTS])))
    assert len(routes) >= 2


@pytest.mark.ros
def test_ros_session_with_sim_arm_gives_correct_labels_in_both_modes(tmp_path):
    pytest.importorskip("rclpy")
    env = dict(os.environ, ROS_DOMAIN_ID=ROS_DOMAIN_ID, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    bag = tmp_path / "ros_ik"
    result = subprocess.run(
        [sys.executable, "-m", "ebgan_mdn_ros.node.record_demos", "--task", "ik", "--goals", "5", "--seed", "0",
         "--out", str(bag), "--timeout", "120"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "5 goals finished" in result.stdout
    pairs = ik_pairs(bag, tmp_path)
    assert_ik_labels_hit_their_goals_in_both_modes(pairs, min_episodes=5)
    # log time = DDS receive time, publish time = send time: a message is never received before it is sent
    from mcap.reader import make_reader
    with open(next(bag.glob("*.mcap")), "rb") as stream:
        for _, _, message in make_reader(stream).iter_messages():
            assert message.publish_time <= message.log_time
