"""What a peer on the ROS domain can do to the policy node, and what the node does not let happen.

Each test drives an in-process PolicyNode over real rclpy/DDS (its own context and domain) with the
shipped configs' limits (max_step 0.05 rad per tick), not the fault suite's relaxed ones.
"""
from __future__ import annotations

import shutil
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from model_factory import build_model_dir  # noqa: E402
from test_node_ros import DISCOVERY_S, IK_JOINTS, domain_id, joint_state, ros, wait_for_match  # noqa: E402,F401

pytestmark = pytest.mark.ros
STATE_MODEL = ("shoulder.position", "elbow.position", "goal.0")
MAX_STEP = 0.05


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("safety_models")
    return {
        "narrow": build_model_dir(root / "narrow", STATE_MODEL, IK_JOINTS, seed=1, hidden_sizes=(8,),
                                  action_low=(-0.5, -0.5), action_high=(0.5, 0.5)),
        "wide": build_model_dir(root / "wide", STATE_MODEL, IK_JOINTS, seed=2, hidden_sizes=(8,),
                                action_low=(3.0, 3.0), action_high=(5.0, 5.0)),
        "other": build_model_dir(root / "other", STATE_MODEL, IK_JOINTS, seed=3, hidden_sizes=(8,),
                                 action_low=(-0.5, -0.5), action_high=(0.5, 0.5)),
    }


class Robot:
    """The probe side: publishes joint states and a goal, records the commands."""

    def __init__(self, ros):
        self.ros = ros
        self.commands = ros.collect(Float64MultiArray, "forward_position_controller/commands")
        self.states = ros.probe.create_publisher(JointState, "joint_states", 10)
        self.goals = ros.probe.create_publisher(Float64MultiArray, "goal", 1)

    def connect(self, policy):
        wait_for_match(self.ros, self.states)
        wait_for_match(self.ros, self.goals)
        self.goals.publish(Float64MultiArray(data=[0.5]))
        self.ros.spin_for(0.3)
        self.policy = policy

    def send(self, position, answered=True):
        """One joint state; waits until the node has answered it (decided, seeded or rejected)."""
        before = self.policy.decisions + self.policy.states_rejected + self.policy.seed_steps
        self.states.publish(joint_state(IK_JOINTS, position, stamp_ns=time.time_ns()))
        done = self.ros.spin_until(
            lambda: self.policy.decisions + self.policy.states_rejected + self.policy.seed_steps > before, DISCOVERY_S)
        assert done or not answered, "the node did not answer a joint state"
        self.ros.spin_for(0.02)  # the command message itself

    def call(self, service):
        client = self.ros.probe.create_client(Trigger, f"/policy_node/{service}")
        assert client.wait_for_service(timeout_sec=DISCOVERY_S)
        future = client.call_async(Trigger.Request())
        assert self.ros.spin_until(future.done, DISCOVERY_S)
        return future.result()


def command_array(robot):
    return np.array([c.data for c in robot.commands])


@pytest.mark.parametrize("absurd", [[2.5, -2.5], [7.0, 7.0]], ids=["far_inside_limits", "outside_limits"])
def test_a_reset_never_seeds_from_one_absurd_state(ros, models, absurd):
    robot = Robot(ros)
    policy = ros.policy(models["narrow"], control_rate_hz=0.0, position_lower=[-3.0, -3.0],
                        position_upper=[3.0, 3.0], max_step=MAX_STEP, max_velocity=100.0)
    robot.connect(policy)
    for _ in range(6):
        robot.send([0.2, 0.2])
    assert robot.call("reset").success
    robot.send(absurd)
    for _ in range(8):
        robot.send([0.2, 0.2])
    commands = command_array(robot)
    assert len(commands) >= 6
    assert np.abs(np.diff(commands, axis=0)).max() <= MAX_STEP + 1e-9   # no jump, seeded or not
    assert np.all(np.abs(commands) <= 3.0)                               # never outside the limits


def test_a_swapped_model_with_a_wider_box_does_not_widen_the_limits(ros, models):
    robot = Robot(ros)
    policy = ros.policy(models["narrow"], control_rate_hz=0.0, max_step=10.0, max_velocity=1e6,
                        seed_confirmations=1)   # no position limits set: the first model's box bounds
    robot.connect(policy)
    robot.send([0.0, 0.0])
    policy.set_parameters([Parameter("model_directory", value=str(models["wide"]))])
    assert ros.spin_until(lambda: policy._swapper.active_dir == str(models["wide"]), DISCOVERY_S)
    for _ in range(5):
        robot.send([0.0, 0.0])
    assert np.all(np.abs(command_array(robot)) <= 0.5 + 1e-12), command_array(robot)


def test_a_second_model_set_while_one_loads_is_refused_so_the_parameter_never_lies(ros, models):
    policy = ros.policy(models["narrow"], control_rate_hz=0.0)
    first = policy.set_parameters([Parameter("model_directory", value=str(models["other"]))])[0]
    second = policy.set_parameters([Parameter("model_directory", value=str(models["wide"]))])[0]
    assert first.successful
    assert not second.successful and "still loading" in second.reason
    assert policy.get_parameter("model_directory").value == str(models["other"])
    assert ros.spin_until(lambda: policy._swapper.active_dir == str(models["other"]), DISCOVERY_S)


def test_a_model_path_that_cannot_be_checked_is_refused_not_fatal(ros, models, tmp_path):
    policy = ros.policy(models["narrow"], control_rate_hz=0.0)
    too_long = str(tmp_path / ("x" * 300) / "model")
    result = policy.set_parameters([Parameter("model_directory", value=too_long)])[0]
    assert not result.successful and "cannot be checked" in result.reason
    assert policy.get_parameter("model_directory").value == str(models["narrow"])


def test_an_event_driven_swap_is_judged_against_the_measured_state_period(ros, models, tmp_path):
    import onnx
    from test_faults_ros import _add_dead_weight, _rehash
    slow = shutil.copytree(models["other"], models["narrow"].parent / "slow")  # inside the model root
    graph = onnx.load(str(slow / "decision.onnx"))
    _add_dead_weight(graph, width=1024, layers=24)   # the same answers, ~40 ms per decision
    onnx.save(graph, str(slow / "decision.onnx"))
    _rehash(slow)
    robot = Robot(ros)
    policy = ros.policy(models["narrow"], control_rate_hz=0.0, seed_confirmations=1, max_step=10.0)
    robot.connect(policy)
    # joint states at 200 Hz from a timer, before and during the swap: a 5 ms period
    ros.probe.create_timer(0.005, lambda: robot.states.publish(
        joint_state(IK_JOINTS, [0.0, 0.0], stamp_ns=time.time_ns())))
    assert ros.spin_until(lambda: policy.decisions >= 50, DISCOVERY_S)
    policy.set_parameters([Parameter("model_directory", value=str(slow))])
    assert ros.spin_until(lambda: not policy._swapper.busy, 60.0)
    assert policy._swapper.active_dir == str(models["narrow"])
    assert "over the budget" in policy._swapper.last_result, policy._swapper.last_result


def test_models_load_only_from_the_allowed_roots(ros, models, tmp_path):
    outside = shutil.copytree(models["other"], tmp_path / "elsewhere" / "model")
    policy = ros.policy(models["narrow"], control_rate_hz=0.0)   # default roots: models/ and the start folder
    policy.set_parameters([Parameter("model_directory", value=str(outside))])
    assert ros.spin_until(lambda: not policy._swapper.busy, DISCOVERY_S)
    assert "not inside any allowed model root" in policy._swapper.last_result
    assert policy._swapper.active_dir == str(models["narrow"])
    listed = ros.policy(models["narrow"], name="listed", control_rate_hz=0.0,
                        allowed_model_roots=[str(models["narrow"].parent), str(tmp_path / "elsewhere")])
    listed.set_parameters([Parameter("model_directory", value=str(outside))])
    assert ros.spin_until(lambda: listed._swapper.active_dir == str(outside), DISCOVERY_S)


def test_a_locked_node_refuses_arming_and_model_changes_at_run_time(ros, models):
    robot = Robot(ros)
    policy = ros.policy(models["narrow"], control_rate_hz=0.0, dry_run=True, lock_runtime_changes=True)
    robot.connect(policy)
    for name, value in (("dry_run", False), ("model_directory", str(models["other"]))):
        result = policy.set_parameters([Parameter(name, value=value)])[0]
        assert not result.successful and "lock_runtime_changes" in result.reason, name
    assert not robot.call("reload").success and not robot.call("rollback").success
    for _ in range(5):
        robot.send([0.0, 0.0])
    assert robot.commands == [] and policy._swapper.active_dir == str(models["narrow"])


def test_model_info_publishes_no_absolute_path(ros, models, tmp_path):
    from rclpy.qos import DurabilityPolicy, QoSProfile
    from ebgan_mdn_ros.msg import ModelInfo
    infos = ros.collect(ModelInfo, "/policy_node/model_info",
                        QoSProfile(depth=5, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    broken = shutil.copytree(models["other"], models["narrow"].parent / "broken")
    (broken / "manifest.json").write_text("{}")
    policy = ros.policy(models["narrow"], control_rate_hz=0.0)
    policy.set_parameters([Parameter("model_directory", value=str(broken))])
    assert ros.spin_until(lambda: any(i.last_swap_result.startswith("rejected") for i in infos), DISCOVERY_S)
    for info in infos:
        assert not info.model_directory.startswith("/") and str(tmp_path.parent) not in info.last_swap_result, info
    assert infos[0].model_directory == f"{models['narrow'].parent.name}/narrow"
