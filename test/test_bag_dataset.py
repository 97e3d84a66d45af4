"""bag_dataset / `ebgan-mdn dataset` on real MCAP files written here with mcap_ros2's writer.

Messages are CDR-serialised from the real .msg definitions shipped in the ROS wheels, concatenated
into one schema per type the way rosbag2 stores them, so the reader sees what `ros2 bag record`
would have written. Times below are seconds after BASE_NS; every expected value is worked out by
hand from the alignment rule in ebgan_mdn_ros/data/bag_dataset.py.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from mcap_ros2.writer import Writer

from ebgan_mdn_ros import cli
from ebgan_mdn_ros.data.bag_dataset import BagDatasetError, ExtractionConfig, extract
from ebgan_mdn_ros.data.bag_writer import DEFINITION_DELIMITER, message_definition

BASE_NS = 1_700_000_000 * 10**9
JOINT_STATE = "sensor_msgs/msg/JointState"
ARRAY = "std_msgs/msg/Float64MultiArray"
COMMAND_TOPIC = "/forward_position_controller/commands"


def ns(seconds: float) -> int:
    return BASE_NS + int(round(seconds * 1e9))


def joint_state(names, positions, velocities=()):
    return {"header": {"stamp": {"sec": 0, "nanosec": 0}, "frame_id": ""}, "name": list(names),
            "position": [float(p) for p in positions], "velocity": [float(v) for v in velocities], "effort": []}


def array(values):
    return {"layout": {"dim": [], "data_offset": 0}, "data": [float(v) for v in values]}


def write_mcap(path: Path, events, types=None) -> Path:
    """events: (seconds, topic, message dict); topic types from ``types`` (default by topic name)."""
    types = dict(types or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as stream, Writer(stream) as writer:
        schemas = {}
        for seconds, topic, message in sorted(events, key=lambda e: e[0]):
            type_name = types.get(topic, JOINT_STATE if topic == "/joint_states" else ARRAY)
            if type_name not in schemas:
                schemas[type_name] = writer.register_msgdef(type_name, message_definition(type_name))
            writer.write_message(topic, schemas[type_name], message, log_time=ns(seconds))
    return path


def write_bag_dir(directory: Path, file_events: list, types=None) -> Path:
    """A rosbag2 directory: one .mcap per entry of file_events plus metadata.yaml naming them."""
    directory.mkdir(parents=True)
    names = []
    for i, events in enumerate(file_events):
        name = f"{directory.name}_{i}.mcap"
        write_mcap(directory / name, events, types)
        names.append(name)
    metadata = {"rosbag2_bagfile_information": {
        "version": 9, "storage_identifier": "mcap", "relative_file_paths": names,
        "compression_format": "", "compression_mode": "",
        "files": [{"path": n} for n in names]}}
    (directory / "metadata.yaml").write_text(yaml.safe_dump(metadata))
    return directory


def ik_events():
    """10 Hz joint states (names out of order, an extra joint), two goals, one command per goal."""
    events = []
    for k in range(20):
        t = 0.1 * k
        shoulder, elbow = 0.1 * k, -0.05 * k
        events.append((t, "/joint_states", joint_state(["elbow", "wrist", "shoulder"], [elbow, 9.0, shoulder],
                                                       [-0.5, 0.0, 1.0])))
    events += [(0.05, "/goal", array([1.0, 2.0])), (1.05, "/goal", array([3.0, -1.0]))]
    # The controller's joint order is (shoulder, elbow); commands come 10 ms after their goal,
    # and a second command for the first goal at 0.52 s.
    events += [(0.06, COMMAND_TOPIC, array([0.7, 0.8])), (0.52, COMMAND_TOPIC, array([0.71, 0.81])),
               (1.06, COMMAND_TOPIC, array([-0.3, 1.2]))]
    return events


def test_schema_text_is_rosbag2_concatenation_of_installed_msg_files():
    text = message_definition(JOINT_STATE)
    share = Path(__file__).resolve().parents[1] / ".venv" / "share"
    if not (share / "sensor_msgs").is_dir():
        import sys
        share = Path(sys.prefix) / "share"
    own = (share / "sensor_msgs/msg/JointState.msg").read_text()
    header = (share / "std_msgs/msg/Header.msg").read_text()
    time = (share / "builtin_interfaces/msg/Time.msg").read_text()
    expected = (own + "\n" + DEFINITION_DELIMITER + "MSG: std_msgs/Header\n" + header
                + "\n" + DEFINITION_DELIMITER + "MSG: builtin_interfaces/Time\n" + time)
    assert text == expected
    assert DEFINITION_DELIMITER == "=" * 80 + "\n"
    layout = message_definition(ARRAY)
    assert "MSG: std_msgs/MultiArrayLayout\n" in layout and "MSG: std_msgs/MultiArrayDimension\n" in layout


def test_command_labels_one_pair_per_command_with_latest_goal_and_joint_reorder(tmp_path):
    bag = write_bag_dir(tmp_path / "ik", [ik_events()])
    demos = extract([bag], ExtractionConfig(command_topic=COMMAND_TOPIC, joints=("shoulder", "elbow")))
    assert demos.condition_names == ("goal.0", "goal.1")
    assert demos.action_names == ("shoulder", "elbow")
    assert demos.action_kind == "absolute"
    np.testing.assert_allclose(demos.conditions, [[1.0, 2.0], [1.0, 2.0], [3.0, -1.0]])
    np.testing.assert_allclose(demos.actions, [[0.7, 0.8], [0.71, 0.81], [-0.3, 1.2]])
    np.testing.assert_array_equal(demos.episode_ids, [0, 0, 1])
    np.testing.assert_allclose(demos.times, [0.06, 0.52, 1.06])  # s since the first message (a state at 0)


def test_command_joint_order_differs_from_action_joints(tmp_path):
    bag = write_bag_dir(tmp_path / "ik", [ik_events()])
    demos = extract([bag], ExtractionConfig(command_topic=COMMAND_TOPIC, joints=("elbow", "shoulder"),
                                            command_joints=("shoulder", "elbow")))
    assert demos.action_names == ("elbow", "shoulder")
    np.testing.assert_allclose(demos.actions[0], [0.8, 0.7])


def test_position_condition_needs_a_joint_state_of_the_same_episode(tmp_path):
    bag = write_bag_dir(tmp_path / "ik", [ik_events()])
    demos = extract([bag], ExtractionConfig(command_topic=COMMAND_TOPIC, joints=("shoulder", "elbow"),
                                            condition=("goal", "position", "velocity"), action="delta"))
    assert demos.condition_names == ("goal.0", "goal.1", "shoulder.position", "elbow.position",
                                     "shoulder.velocity", "elbow.velocity")
    # The commands at 0.06 and 1.06 s follow their goal before any new joint state: the latest
    # state (0.0 / 1.0 s) belongs to the previous episode, so only the 0.52 s command is a pair.
    # Its state is the one at 0.5 s: shoulder 0.5, elbow -0.25.
    np.testing.assert_allclose(demos.conditions, [[1.0, 2.0, 0.5, -0.25, 1.0, -0.5]])
    np.testing.assert_allclose(demos.actions, [[0.71 - 0.5, 0.81 + 0.25]])
    assert demos.action_kind == "delta"
    assert demos.dropped == {"joint state from another episode": 2}


def test_hindsight_labels_are_positions_horizon_later_within_the_episode(tmp_path):
    bag = write_bag_dir(tmp_path / "ik", [ik_events()])
    demos = extract([bag], ExtractionConfig(joints=("shoulder", "elbow"), horizon=0.3))
    # Episode 0: states 0.1 .. 0.9 s (goal at 0.05); the look-ahead needs a state at or after t + 0.3
    # before the next goal (1.05 s): t = 0.1 .. 0.7 s. Episode 1: states 1.1 .. 1.9 s: t = 1.1 .. 1.6 s.
    state_seconds = np.round(demos.times, 6)
    np.testing.assert_allclose(state_seconds, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6])
    np.testing.assert_array_equal(demos.episode_ids, [0] * 7 + [1] * 6)
    expected = np.stack([state_seconds + 0.3, -0.5 * (state_seconds + 0.3)], 1)
    np.testing.assert_allclose(demos.actions, expected, atol=1e-9)
    delta = extract([bag], ExtractionConfig(joints=("shoulder", "elbow"), horizon=0.3, action="delta"))
    np.testing.assert_allclose(delta.actions, np.tile([0.3, -0.15], (13, 1)), atol=1e-9)


def test_gap_in_joint_states_starts_a_new_episode(tmp_path):
    events = [(0.0, "/goal", array([1.0, 1.0]))]
    seconds = [0.1 * k for k in range(1, 6)] + [2.0 + 0.1 * k for k in range(5)]  # gap 0.5 -> 2.0 s
    events += [(t, "/joint_states", joint_state(["a"], [t])) for t in seconds]
    bag = write_mcap(tmp_path / "gap.mcap", events)
    demos = extract([bag], ExtractionConfig(horizon=0.2, max_gap=0.5))
    np.testing.assert_allclose(demos.times, [0.1, 0.2, 0.3, 2.0, 2.1, 2.2])
    np.testing.assert_array_equal(demos.episode_ids, [0, 0, 0, 1, 1, 1])
    assert demos.action_names == ("a",) and demos.condition_names == ("goal.0", "goal.1")


def test_repeated_goal_continues_the_episode_and_episode_topic_splits(tmp_path):
    events = [(0.0, "/goal", array([1.0])), (1.0, "/goal", array([1.0])), (2.0, "/goal", array([2.0]))]
    events += [(0.1 + 0.1 * k, "/joint_states", joint_state(["a"], [k])) for k in range(29)]
    events += [(1.45, "/reset", array([0.0, 0.0]))]
    bag = write_mcap(tmp_path / "goals.mcap", events)
    by_goal = extract([bag], ExtractionConfig(horizon=0.1))
    # The republished goal at 1.0 s continues episode 0; the new value at 2.0 s opens episode 1.
    # States at 0.1 .. 2.9 s; the look-ahead drops the states at 1.9 s (the next one is in
    # episode 1) and 2.9 s (the recording ends).
    assert by_goal.episode_count == 2 and len(by_goal) == 27
    assert by_goal.dropped == {"episode ends within the horizon (0.1 s)": 2}
    with_reset = extract([bag], ExtractionConfig(horizon=0.1, episode_topic="reset"))
    assert with_reset.episode_count == 3 and len(with_reset) == 26  # the state at 1.4 s loses its look-ahead
    # [0, 1.45): 0.1 .. 1.3 s; [1.45, 2.0): 1.5 .. 1.8 s; [2.0, end): 2.0 .. 2.8 s
    np.testing.assert_array_equal(np.bincount(with_reset.episode_ids), [13, 4, 9])
    assert "episode topic /nothing is not in the bag" in error_of([bag], episode_topic="/nothing")


def test_joint_order_may_change_between_messages(tmp_path):
    events = [(0.0, "/goal", array([0.0]))]
    for k in range(6):
        names, values = (["a", "b"], [k, -k]) if k % 2 else (["b", "a"], [-k, k])
        events.append((0.1 * (k + 1), "/joint_states", joint_state(names, values)))
    bag = write_mcap(tmp_path / "order.mcap", events)
    demos = extract([bag], ExtractionConfig(joints=("a", "b"), condition=("position",), horizon=0.1))
    np.testing.assert_allclose(demos.conditions, [[k, -k] for k in range(5)])
    np.testing.assert_allclose(demos.actions, [[k, -k] for k in range(1, 6)])


def test_split_bag_files_are_one_recording_and_bags_are_numbered_on(tmp_path):
    events = ik_events()
    first = [e for e in events if e[0] < 1.0]
    second = [e for e in events if e[0] >= 1.0]
    split = write_bag_dir(tmp_path / "split", [first, second])
    bare = write_mcap(tmp_path / "bare.mcap", events)
    config = ExtractionConfig(command_topic=COMMAND_TOPIC, joints=("shoulder", "elbow"))
    demos = extract([split, bare], config)
    assert len(demos) == 6
    np.testing.assert_array_equal(demos.episode_ids, [0, 0, 1, 2, 2, 3])
    np.testing.assert_array_equal(demos.bag_index, [0, 0, 0, 1, 1, 1])
    np.testing.assert_allclose(demos.actions[:3], demos.actions[3:])


def test_cli_writes_the_npz_the_trainer_reads(tmp_path, capsys):
    bag = write_bag_dir(tmp_path / "ik", [ik_events()])
    out = tmp_path / "out" / "demos.npz"
    code = cli.main(["dataset", str(bag), "--out", str(out), "--command-topic", COMMAND_TOPIC,
                     "--joints", "shoulder,elbow"])
    assert code == 0
    assert "3 pairs in 2 episodes" in capsys.readouterr().out
    with np.load(out) as data:
        assert data["conditions"].shape == (3, 2) and data["actions"].shape == (3, 2)
        assert list(data["condition_names"]) == ["goal.0", "goal.1"]
        assert list(data["action_names"]) == ["shoulder", "elbow"]
        np.testing.assert_array_equal(data["episode_ids"], [0, 0, 1])
        assert str(data["action_kind"]) == "absolute"
    # The trainer's loader reads what the dataset command wrote.
    from ebgan_mdn_ros.data.demonstrations import load_demonstrations
    loaded = load_demonstrations(out)
    np.testing.assert_allclose(loaded.conditions, [[1.0, 2.0], [1.0, 2.0], [3.0, -1.0]], rtol=1e-6)
    assert tuple(loaded.action_names) == ("shoulder", "elbow")


# ---- bad recordings -----------------------------------------------------------------------------

def error_of(bags, **config) -> str:
    with pytest.raises(BagDatasetError) as info:
        extract([str(b) for b in bags], ExtractionConfig(**config))
    return str(info.value)


def test_missing_goal_topic_is_named_with_the_topics_present(tmp_path):
    events = [e for e in ik_events() if e[1] != "/goal"]
    bag = write_mcap(tmp_path / "nogoal.mcap", events)
    message = error_of([bag])
    assert "goal topic /goal is not in the bag" in message
    assert "/joint_states (sensor_msgs/msg/JointState)" in message
    # Without a goal in the condition, a bag with no goals is fine (episodes split by gaps only).
    demos = extract([bag], ExtractionConfig(condition=("position",), joints=("shoulder",), horizon=0.2))
    assert demos.episode_count == 1


def test_missing_command_topic_and_relative_topic_names(tmp_path):
    bag = write_mcap(tmp_path / "ik.mcap", ik_events())
    assert "command topic /arm/commands is not in the bag" in error_of([bag], command_topic="arm/commands")
    demos = extract([bag], ExtractionConfig(goal_topic="goal", joint_state_topic="joint_states",
                                            command_topic=COMMAND_TOPIC.lstrip("/"), joints=("shoulder", "elbow")))
    assert len(demos) == 3


def test_wrong_joint_name_is_named(tmp_path):
    bag = write_mcap(tmp_path / "ik.mcap", ik_events())
    message = error_of([bag], joints=("shoulder", "knee"))
    assert "['knee']" in message and "not in the JointState" in message and "'wrist'" in message


def test_command_of_wrong_length_is_named(tmp_path):
    bag = write_mcap(tmp_path / "ik.mcap", ik_events())
    message = error_of([bag], command_topic=COMMAND_TOPIC, joints=("shoulder",),
                       command_joints=("shoulder", "elbow", "wrist"))
    assert COMMAND_TOPIC in message and "has 2 values, expected 3" in message


def test_wrong_topic_type_is_named(tmp_path):
    # A goal published as JointState: the type check names both types.
    events = [(t, topic, joint_state(["x"], [1.0]) if topic == "/goal" else msg) for t, topic, msg in ik_events()]
    bag = write_mcap(tmp_path / "typed.mcap", events, types={"/goal": JOINT_STATE})
    message = error_of([bag])
    assert "goal topic /goal has type sensor_msgs/msg/JointState, expected std_msgs/msg/Float64MultiArray" in message


def test_goal_size_must_not_change(tmp_path):
    events = ik_events() + [(1.5, "/goal", array([1.0, 2.0, 3.0]))]
    message = error_of([write_mcap(tmp_path / "g.mcap", events)], command_topic=COMMAND_TOPIC)
    assert "/goal: goal at t=" in message and "has 3 values, expected 2" in message


def test_empty_bag(tmp_path):
    bag = write_mcap(tmp_path / "empty.mcap", [])
    assert "the bag is empty" in error_of([bag])


def test_no_pairs_says_why(tmp_path):
    events = [(0.1 * k, "/joint_states", joint_state(["a"], [k])) for k in range(5)] + [(1.0, "/goal", array([1.0]))]
    message = error_of([write_mcap(tmp_path / "late.mcap", events)])
    assert "no (condition, action) pairs" in message and "before the first goal: 5" in message


def test_unreadable_and_missing_bags(tmp_path):
    junk = tmp_path / "junk.mcap"
    junk.write_bytes(b"this is not an mcap file at all")
    assert "unreadable MCAP file" in error_of([junk]) and "junk.mcap" in error_of([junk])
    good = write_mcap(tmp_path / "good.mcap", ik_events()).read_bytes()
    truncated = tmp_path / "truncated.mcap"
    truncated.write_bytes(good[: len(good) // 2])
    assert "truncated.mcap" in error_of([truncated])
    assert "no such bag" in error_of([tmp_path / "absent"])
    (tmp_path / "hollow").mkdir()
    assert "no .mcap files" in error_of([tmp_path / "hollow"])
    sqlite = tmp_path / "sqlite_bag"
    sqlite.mkdir()
    (sqlite / "metadata.yaml").write_text(yaml.safe_dump(
        {"rosbag2_bagfile_information": {"storage_identifier": "sqlite3", "relative_file_paths": ["x.db3"]}}))
    assert "storage 'sqlite3' is not supported" in error_of([sqlite])


def test_cli_reports_errors_without_a_traceback(tmp_path, capsys):
    bag = write_mcap(tmp_path / "ik.mcap", ik_events())
    code = cli.main(["dataset", str(bag), "--out", str(tmp_path / "d.npz"), "--joints", "knee"])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("ebgan-mdn dataset: error:") and "knee" in err
    assert not (tmp_path / "d.npz").exists()


def test_config_rejects_bad_values():
    for bad in ({"action": "absolute"}, {"condition": ("goal", "torque")}, {"horizon": 0.0},
                {"joints": ("a", "a")}, {"command_joints": ("a",)}):
        with pytest.raises(BagDatasetError):
            ExtractionConfig(**bad)
