"""The policy node over real rclpy and DDS: with the simulated arm, against the runtime, and at start-up.

Every test runs in its own rclpy Context on a random ROS domain (loopback only), so tests of other
modules or other checkouts running at the same time do not cross-talk. Assertions are about
behaviour, never timing; waits are generous because DDS discovery sometimes takes ~3 s here.
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray, String  # noqa: E402

from ebgan_mdn_ros.control.model_swap import ModelRejected, make_runtime_validator  # noqa: E402
from ebgan_mdn_ros.msg import Candidates, Decision, ModelInfo  # noqa: E402
from ebgan_mdn_ros.node.executors import make_executor  # noqa: E402
from ebgan_mdn_ros.node.policy_node import PolicyNode  # noqa: E402
from ebgan_mdn_ros.runtime.policy_runtime import PolicyRuntime  # noqa: E402
from ebgan_mdn_ros.node.sim_nodes import GoalSourceNode, SimArmNode  # noqa: E402

pytestmark = pytest.mark.ros
ROOT = Path(__file__).resolve().parent.parent
SHIPPED_IK = ROOT / "models" / "ik_2link"
IK_JOINTS = ["shoulder", "elbow"]
DISCOVERY_S = 10.0  # discovery usually takes ms, sometimes ~3 s: wait well past that


@pytest.fixture(scope="module")
def domain_id():
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    return random.randint(101, 230)


@pytest.fixture
def ros(domain_id):
    """A fresh context and EventsExecutor; nodes added with ros.add() are destroyed afterwards."""
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id)
    harness = RosHarness(context)
    yield harness
    harness.close()


class RosHarness:
    def __init__(self, context):
        self.context = context
        self.executor = make_executor("events", context)
        self.nodes = []
        self.probe = self.add(rclpy.create_node("test_probe", context=context))

    def add(self, node):
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def policy(self, model_dir, name="policy_node", **parameters):
        defaults = {"joint_names": IK_JOINTS, "dry_run": False}
        overrides = [Parameter(k, value=v) for k, v in {**defaults, **parameters,
                                                        "model_directory": str(model_dir)}.items()]
        return self.add(PolicyNode(name, context=self.context, parameter_overrides=overrides))

    def spin_until(self, predicate, timeout_s):
        # EventsExecutor: every spin call needs a timeout, or it never returns.
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return predicate()

    def spin_for(self, seconds):
        self.spin_until(lambda: False, seconds)

    def collect(self, msg_type, topic, qos=10):
        received = []
        self.probe.create_subscription(msg_type, topic, received.append, qos)
        return received

    def close(self):
        self.executor.shutdown(timeout_sec=1.0)
        for node in self.nodes:
            node.destroy_node()
        rclpy.try_shutdown(context=self.context)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Small random-weight model directories (test/model_factory.py) for what the shipped model cannot show."""
    sys.path.insert(0, str(Path(__file__).parent))
    from model_factory import build_model_dir
    root = tmp_path_factory.mktemp("models")
    return {
        "goal": build_model_dir(root / "goal", ("goal.0", "goal.1"), IK_JOINTS, seed=1),
        "state": build_model_dir(root / "state", ("shoulder.position", "elbow.position", "goal.0"), IK_JOINTS, seed=2),
        "other_joints": build_model_dir(root / "other", ("goal.0",), ("joint_1", "joint_2"), seed=3),
        "gantry": build_model_dir(root / "gantry", ("x_joint.position", "y_joint.position"), ("x_joint", "y_joint"),
                                  action_kind="delta", action_low=(-2.0, -2.0), action_high=(2.0, 2.0), seed=4),
    }


def joint_state(names, positions, stamp_ns=123_456_789):
    msg = JointState(name=list(names), position=[float(p) for p in positions], velocity=[0.0] * len(names))
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    return msg


def wait_for_match(ros, publisher, count=1):
    assert ros.spin_until(lambda: publisher.get_subscription_count() >= count, DISCOVERY_S), "no subscriber matched"


# -- closed loop with the simulated arm ----------------------------------------------------------------

@pytest.mark.skipif(not (SHIPPED_IK / "manifest.json").is_file(), reason="models/ik_2link is not shipped yet")
def test_shipped_ik_model_reaches_goals_with_the_simulated_arm(ros):
    ros.add(SimArmNode(context=ros.context))
    goals = ros.add(GoalSourceNode(context=ros.context,
                                   parameter_overrides=[Parameter("timeout_s", value=5.0)]))
    events = ros.collect(String, "goal_events", 50)
    ros.policy(SHIPPED_IK)
    assert ros.spin_until(lambda: len(events) >= 10, 60.0), f"only {len(events)} goals finished"
    outcomes = [json.loads(e.data) for e in events]
    reached = sum(o["outcome"] == "reached" for o in outcomes)
    assert reached / len(outcomes) >= 0.9, (goals.summary(), outcomes)
    assert all(o["error"] <= 0.1 for o in outcomes if o["outcome"] == "reached")
    # Each goal is a new episode: both elbow solutions serve (all ten in one mode: p ~ 0.2 %).
    assert {o["mode"] for o in outcomes if o["outcome"] == "reached"} == {"elbow_up", "elbow_down"}


@pytest.mark.parametrize("output_mode,controller", [("forward_command", "forward_position_controller"),
                                                    ("joint_trajectory", "joint_trajectory_controller")])
def test_both_output_modes_drive_the_simulated_arm(ros, models, output_mode, controller):
    model = SHIPPED_IK if (SHIPPED_IK / "manifest.json").is_file() else models["goal"]
    sim = ros.add(SimArmNode(context=ros.context))
    start = sim.arm.position.copy()
    goal_pub = ros.probe.create_publisher(Float64MultiArray, "goal", 1)
    policy = ros.policy(model, output_mode=output_mode, controller_name=controller)
    wait_for_match(ros, goal_pub)
    goal_pub.publish(Float64MultiArray(data=[3.0, 2.0]))
    assert ros.spin_until(lambda: sim.commands_received >= 20 and np.linalg.norm(sim.arm.position - start) > 0.05,
                          DISCOVERY_S + 10.0), (sim.commands_received, sim.arm.position, policy.states_rejected)
    assert policy.decisions >= 20


def test_multiroute_episode_restart_seeds_the_policy_at_the_start(ros, models):
    """The goal source stops the policy, moves the gantry back and starts the policy again: the first
    command of an episode is one safety step from the start, not a walk back from the last command."""
    ros.add(SimArmNode(context=ros.context, parameter_overrides=[Parameter("task", value="multiroute")]))
    goals = ros.add(GoalSourceNode(context=ros.context, parameter_overrides=[
        Parameter("task", value="multiroute"), Parameter("timeout_s", value=1.0)]))
    commands = []
    ros.probe.create_subscription(Float64MultiArray, "forward_position_controller/commands",
                                  lambda m: commands.append(np.array(m.data)), 10)
    ros.policy(models["gantry"], joint_names=["x_joint", "y_joint"], control_rate_hz=10.0, max_step=2.0,
               max_velocity=100.0, position_lower=[-2.0, -2.0], position_upper=[22.0, 22.0])
    first_commands, starts = [], []

    def watch():
        if goals._phase == "running" and goals.schedule.start_position is not None and (
                not starts or starts[-1][0] is not goals.schedule.start_position):
            starts.append((goals.schedule.start_position, len(commands)))
        if starts and len(commands) > starts[-1][1] and len(first_commands) < len(starts):
            first_commands.append((starts[-1][0], commands[starts[-1][1]]))
        return len(first_commands) >= 3
    assert ros.spin_until(watch, DISCOVERY_S + 15.0), (len(starts), len(commands), goals.schedule.tally)
    for start, command in first_commands:
        assert np.all(np.abs(command - start) <= 2.0 + 1e-6), (start, command)


# -- the node against the runtime -----------------------------------------------------------------------

def test_candidates_match_the_runtime_and_joint_order_changes_nothing(ros, models):
    model = models["state"]
    nodes = {name: ros.policy(model, name=name, control_rate_hz=0.0, state_topic=f"{name}/state",
                              goal_topic=f"{name}/goal")
             for name in ("ordered", "shuffled")}
    candidates = {name: ros.collect(Candidates, f"/{name}/candidates") for name in nodes}
    decisions = {name: ros.collect(Decision, f"/{name}/decision") for name in nodes}
    states = {name: ros.probe.create_publisher(JointState, f"{name}/state", 10) for name in nodes}
    goals = {name: ros.probe.create_publisher(Float64MultiArray, f"{name}/goal", 1) for name in nodes}
    for name in nodes:
        wait_for_match(ros, states[name])
        wait_for_match(ros, goals[name])
        goals[name].publish(Float64MultiArray(data=[0.5]))
    ros.spin_for(0.3)  # the goal is in before the state that triggers the (event-driven) decision
    states["ordered"].publish(joint_state(["shoulder", "elbow", "gripper"], [0.4, -1.1, 9.0]))
    states["shuffled"].publish(joint_state(["gripper", "elbow", "shoulder"], [9.0, -1.1, 0.4]))
    assert ros.spin_until(lambda: all(candidates.values()) and all(decisions.values()), DISCOVERY_S)

    # What a runtime of the same model and seed decides for that condition, after the same validation.
    runtime = PolicyRuntime(model, nodes["ordered"].config.runtime_config())
    make_runtime_validator(IK_JOINTS)(runtime)
    expected = runtime.decide(np.array([0.4, -1.1, 0.5]))
    for name in nodes:
        msg, decision = candidates[name][0], decisions[name][0]
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (0, 123_456_789)
        assert (msg.num_candidates, msg.action_dim) == (256, 2) and list(msg.action_names) == IK_JOINTS
        np.testing.assert_array_equal(np.asarray(msg.candidates).reshape(256, 2), expected.candidates)
        np.testing.assert_array_equal(np.asarray(msg.energies), expected.energies)
        np.testing.assert_array_equal(np.asarray(msg.components), expected.components)
        assert msg.chosen_index == expected.chosen_index and msg.chosen_component == expected.chosen_component
        np.testing.assert_allclose(decision.action, expected.action)
        assert decision.header.stamp == msg.header.stamp and decision.model_version == msg.model_version


def test_dry_run_decides_but_commands_nothing_until_switched_off(ros, models):
    commands = ros.collect(Float64MultiArray, "forward_position_controller/commands")
    decisions = ros.collect(Decision, "/policy_node/decision")
    state_pub = ros.probe.create_publisher(JointState, "joint_states", 10)
    goal_pub = ros.probe.create_publisher(Float64MultiArray, "goal", 1)
    policy = ros.policy(models["goal"], dry_run=True, control_rate_hz=0.0)
    wait_for_match(ros, state_pub)
    wait_for_match(ros, goal_pub)
    goal_pub.publish(Float64MultiArray(data=[2.0, 1.0]))
    ros.spin_for(0.3)

    def feed_until(predicate):
        def step():
            state_pub.publish(joint_state(IK_JOINTS, [0.1, 0.2], stamp_ns=time.time_ns()))
            return predicate()
        return ros.spin_until(step, DISCOVERY_S)
    assert feed_until(lambda: len(decisions) >= 5)
    assert commands == [] and all(d.safety_note.startswith("dry_run") and len(d.command) == 0 for d in decisions)
    # The first command after switching on starts at the measured position: no jump.
    policy.set_parameters([Parameter("dry_run", value=False)])
    assert feed_until(lambda: len(commands) >= 1)
    np.testing.assert_allclose(commands[0].data, [0.1, 0.2], atol=policy.config.max_step + 1e-9)


def test_an_incomplete_state_commands_nothing_and_is_counted(ros, models):
    commands = ros.collect(Float64MultiArray, "forward_position_controller/commands")
    state_pub = ros.probe.create_publisher(JointState, "joint_states", 10)
    goal_pub = ros.probe.create_publisher(Float64MultiArray, "goal", 1)
    policy = ros.policy(models["goal"], control_rate_hz=0.0)
    wait_for_match(ros, state_pub)
    wait_for_match(ros, goal_pub)
    goal_pub.publish(Float64MultiArray(data=[2.0, 1.0]))

    def feed(names, positions):
        state_pub.publish(joint_state(names, positions, stamp_ns=time.time_ns()))
        return False
    ros.spin_until(lambda: feed(["shoulder"], [0.1]) or policy.states_rejected >= 3, DISCOVERY_S)
    ros.spin_until(lambda: feed(IK_JOINTS, [0.1, float("nan")]) or "non-finite" in policy._last_reject, 5.0)
    assert policy.states_rejected >= 3 and policy.decisions == 0 and commands == []
    assert "non-finite position" in policy._last_reject


def test_decimated_telemetry_still_commands_every_state_and_never_hides_a_hold(ros, models):
    commands = ros.collect(Float64MultiArray, "forward_position_controller/commands")
    decisions = ros.collect(Decision, "/policy_node/decision")
    state_pub = ros.probe.create_publisher(JointState, "joint_states", 10)
    goal_pub = ros.probe.create_publisher(Float64MultiArray, "goal", 1)
    policy = ros.policy(models["goal"], control_rate_hz=0.0, decision_publish_every=4, publish_candidates=False)
    wait_for_match(ros, state_pub)
    wait_for_match(ros, goal_pub)
    goal_pub.publish(Float64MultiArray(data=[2.0, 1.0]))
    ros.spin_for(0.3)
    for _ in range(13):  # one state at a time, each answered before the next
        before = policy.decisions
        state_pub.publish(joint_state(IK_JOINTS, [0.1, 0.2], stamp_ns=time.time_ns()))
        assert ros.spin_until(lambda: policy.decisions > before, DISCOVERY_S)
    # The first states seed the episode (decided and published, nothing commanded); every later one commands.
    seeding = policy.config.seed_confirmations - 1
    assert ros.spin_until(lambda: len(commands) >= 13 - seeding and len(decisions) >= 4, DISCOVERY_S)
    ros.spin_for(0.3)
    assert policy.decisions == 13 and len(commands) == 13 - seeding
    assert [d.safety_note for d in decisions[:seeding]] == ["seeding"] * seeding
    assert len(decisions) == len({1, 5, 9, 13} | set(range(1, seeding + 1)))  # decisions 1, 5, 9, 13 and the seeding ones
    # Decision 14 would be skipped, but it is untrusted (a threshold below every energy): the arm
    # holds, and telemetry shows why.
    policy.runtime.energy_threshold = -1e30
    before = len(decisions)
    state_pub.publish(joint_state(IK_JOINTS, [0.1, 0.2], stamp_ns=time.time_ns()))
    assert ros.spin_until(lambda: len(decisions) > before, DISCOVERY_S)
    assert policy.decisions == 14 and not decisions[-1].trusted and decisions[-1].held


def test_model_info_is_latched_and_diagnostics_report_the_model(ros, models):
    policy = ros.policy(models["goal"], diagnostics_period_s=0.2)
    late = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    ros.spin_for(0.2)
    infos = ros.collect(ModelInfo, "/policy_node/model_info", late)  # subscribes after the publication
    from diagnostic_msgs.msg import DiagnosticArray
    diagnostics = ros.collect(DiagnosticArray, "/diagnostics")
    assert ros.spin_until(lambda: infos and diagnostics, DISCOVERY_S)
    info = infos[0]
    assert info.last_swap_result == "loaded" and list(info.action_names) == IK_JOINTS
    assert len(info.generator_sha256) == 64 and info.num_candidates == 256
    values = {kv.key: kv.value for kv in diagnostics[0].status[0].values}
    assert values["model_version"] == policy.runtime.manifest.model_version
    for key in ("achieved_rate_hz", "latency_p99_us", "overruns", "state_age_s", "safety_held",
                "last_swap_result", "best_energy", "energy_gap", "execution_providers"):
        assert key in values


def test_model_directory_change_swaps_between_decisions(ros, models):
    policy = ros.policy(models["goal"])
    infos = ros.collect(ModelInfo, "/policy_node/model_info",
                        QoSProfile(depth=5, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    other = str(models["goal"].parent / "goal_copy")
    import shutil
    shutil.copytree(models["goal"], other)
    policy.set_parameters([Parameter("model_directory", value=other)])
    label = f"{models['goal'].parent.name}/goal_copy"  # published relative to its model root, never absolute
    assert ros.spin_until(lambda: any(i.model_directory == label and i.last_swap_result == "swapped" for i in infos),
                          DISCOVERY_S + 10.0), [(i.model_directory, i.last_swap_result) for i in infos]
    policy.set_parameters([Parameter("model_directory", value=str(models["other_joints"]))])
    assert ros.spin_until(lambda: any(i.last_swap_result.startswith("rejected") for i in infos), DISCOVERY_S + 10.0)
    assert policy._swapper.active_dir == other  # the rejected model never served
    assert ros.spin_until(lambda: policy.get_parameter("model_directory").value == other, 5.0)  # set back


# -- start-up failures ------------------------------------------------------------------------------

def test_mismatched_model_stops_start_up_with_the_reason(ros, models):
    with pytest.raises(ModelRejected, match=r"joint names differ: model \['joint_1', 'joint_2'\]"):
        ros.policy(models["other_joints"])
    with pytest.raises(ModelRejected, match="'wrist'"):
        ros.policy(models["state"], joint_names=["wrist", "elbow"])


def test_missing_model_exits_the_process_with_a_clear_error(tmp_path, domain_id):
    missing = tmp_path / "no_such_model"
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain_id), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    result = subprocess.run(
        [sys.executable, "-m", "ebgan_mdn_ros.node.policy_node", "--ros-args", "-p", f"model_directory:={missing}",
         "-p", "joint_names:=[shoulder, elbow]"], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2, result.stderr
    assert "start-up failed" in result.stderr and str(missing) in result.stderr
    typo = subprocess.run(
        [sys.executable, "-m", "ebgan_mdn_ros.node.policy_node", "--ros-args", "-p", f"model_directory:={missing}",
         "-p", "joint_names:=[shoulder, elbow]", "-p", "max_stepp:=0.1"], capture_output=True, text=True,
        timeout=60, env=env)
    assert typo.returncode == 2 and "max_stepp" in typo.stderr
