"""A chunk model through the policy node over rclpy and DDS: one JointTrajectory per chunk with exact,
increasing times, or the plan played out on forward_command at the control rate; timing the node
cannot serve stops start-up naming it. The model is trained in a fixture for a few seconds."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from chunk_model_factory import JOINTS, train_chunk_model  # noqa: E402
from ebgan_mdn_ros.control.model_swap import ModelRejected  # noqa: E402
from ebgan_mdn_ros.msg import Decision  # noqa: E402
from test_node_ros import DISCOVERY_S, domain_id, joint_state, ros  # noqa: E402,F401

pytestmark = pytest.mark.ros
LIMITS = {"position_lower": [-3.0, -3.0], "position_upper": [3.0, 3.0], "max_step": 0.5, "max_velocity": 5.0}


@pytest.fixture(scope="module")
def chunk_model(tmp_path_factory):
    """Trained (a few seconds), exported and passed by `ebgan-mdn validate`, then served by the node."""
    from ebgan_mdn_ros import cli
    model = train_chunk_model(tmp_path_factory.mktemp("chunk_node") / "model", horizon=4, n_exec=2, dt=0.1)
    assert cli.main(["validate", str(model)]) == 0
    return model


def drive(ros, node_topic_type, topic, seconds, position=(0.1, -0.1)):
    """Publish fresh joint states at 100 Hz and a goal; collect what arrives on ``topic``."""
    received = ros.collect(node_topic_type, topic)
    decisions = ros.collect(Decision, "/policy_node/decision")
    states = ros.probe.create_publisher(type(joint_state(JOINTS, position)), "joint_states", 10)
    goal = ros.probe.create_publisher(Float64MultiArray, "goal", 1)
    assert ros.spin_until(lambda: states.get_subscription_count() >= 1 and goal.get_subscription_count() >= 1,
                          DISCOVERY_S)
    ros.spin_for(5.0)  # discovery of the command topic (>= 5 s, as every test here)

    def publish():
        msg = joint_state(JOINTS, position, stamp_ns=ros.probe.get_clock().now().nanoseconds)
        states.publish(msg)
        goal.publish(Float64MultiArray(data=[0.5]))
    ros.probe.create_timer(0.01, publish)
    start = len(received)
    ros.spin_for(seconds)
    return received[start:], decisions


def test_joint_trajectory_one_per_chunk_with_exact_increasing_times(ros, chunk_model):
    node = ros.policy(chunk_model, joint_names=list(JOINTS), output_mode="joint_trajectory",
                      controller_name="arm_controller", control_rate_hz=50.0, seed_confirmations=1, **LIMITS)
    trajectories, decisions = drive(ros, JointTrajectory, "arm_controller/joint_trajectory", 3.0)
    assert len(trajectories) >= 5, len(trajectories)
    for trajectory in trajectories:
        assert list(trajectory.joint_names) == list(JOINTS)
        assert trajectory.header.stamp.sec == 0 and trajectory.header.stamp.nanosec == 0  # start now
        times = [p.time_from_start.sec * 1_000_000_000 + p.time_from_start.nanosec for p in trajectory.points]
        assert all(isinstance(p.time_from_start.nanosec, int) and p.time_from_start.nanosec < 1_000_000_000
                   for p in trajectory.points)
        assert 1 <= len(times) <= 4 and times[0] >= 20_000_000  # min lead 20 ms: nothing stale is sent
        assert all(b - a == 100_000_000 for a, b in zip(times, times[1:]))  # exactly dt apart
        for point in trajectory.points:
            assert len(point.positions) == 2 and len(point.velocities) == 2
            assert np.all(np.abs(point.positions) <= 3.0)
        assert list(trajectory.points[-1].velocities) == [0.0, 0.0]
    # n_exec = 2 steps of 0.1 s: ~5 chunks/s, not one decision per 50 Hz tick
    assert len(trajectories) <= 3.0 * 5 * 1.5
    assert node.decisions >= 5 and node._chunks.loop.counters["chunks"] >= 5
    assert decisions and len(decisions[-1].action) == 8  # the whole chunk, flattened
    # ~/stop replaces the running trajectory with the point the arm is at, at rest
    from std_srvs.srv import Trigger
    client = ros.probe.create_client(Trigger, "/policy_node/stop")
    assert ros.spin_until(client.service_is_ready, DISCOVERY_S)
    later = ros.collect(JointTrajectory, "arm_controller/joint_trajectory")
    ros.spin_for(1.0)
    seen = len(later)
    future = client.call_async(Trigger.Request())
    assert ros.spin_until(future.done, DISCOVERY_S) and future.result().success
    assert ros.spin_until(lambda: any(len(t.points) == 1 for t in later[seen:]), 3.0)
    hold = [t for t in later[seen:] if len(t.points) == 1][-1]
    assert list(hold.points[0].velocities) == [0.0, 0.0] and hold.points[0].time_from_start.nanosec == 20_000_000


def test_forward_command_plays_the_chunk_at_the_control_rate(ros, chunk_model):
    node = ros.policy(chunk_model, joint_names=list(JOINTS), output_mode="forward_command",
                      controller_name="forward_position_controller", control_rate_hz=50.0, seed_confirmations=1,
                      **LIMITS)
    diagnostics = ros.collect(DiagnosticArray, "/diagnostics")
    commands, _ = drive(ros, Float64MultiArray, "forward_position_controller/commands", 3.0)
    chunks = node._chunks.loop.counters["chunks"]
    assert len(commands) >= 100  # ~50 Hz of commands for ~3 s ...
    assert 5 <= chunks <= len(commands) / 5  # ... from ~5 decisions a second
    assert all(len(c.data) == 2 and np.all(np.isfinite(c.data)) for c in commands)
    steps = np.abs(np.diff(np.array([c.data for c in commands]), axis=0))
    # the filter's step limit holds at every command (its velocity cap scales with the tick's actual
    # dt, which a loaded machine stretches, so that is checked in test_chunk_control, not here)
    assert steps.max() <= LIMITS["max_step"] + 1e-9
    ros.spin_until(lambda: any(any(kv.key == "chunk_chunks" for kv in d.status[0].values) for d in diagnostics), 3.0)
    values = {kv.key: kv.value for kv in diagnostics[-1].status[0].values}
    assert int(values["chunk_chunks"]) >= 5 and "chunk_idle_s" in values and "chunk_splice_clamped" in values


@pytest.mark.parametrize("parameters, words", [
    ({"control_rate_hz": 25.0}, "chunk.dt: the model's 0.1 s steps do not fit control_rate_hz 25"),
    ({"control_rate_hz": 50.0, "chunk_n_exec": 5}, "chunk_n_exec: 5 is outside 1..4"),
    ({"control_rate_hz": 0.0}, "control_rate_hz"),
])
def test_chunk_timing_the_node_cannot_serve_stops_start_up(ros, chunk_model, parameters, words):
    with pytest.raises(ModelRejected, match=words.replace(".", r"\.")):
        ros.policy(chunk_model, joint_names=list(JOINTS), **LIMITS, **parameters)
