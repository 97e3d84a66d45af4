"""config/sim_ur5e.yaml and config/real_ur5e.yaml: every section is a valid configuration of its node."""
from __future__ import annotations

from pathlib import Path

import pytest

from ebgan_mdn_ros.node.parameters import config_from_parameters, load_parameter_file

pytest.importorskip("rclpy")
from ebgan_mdn_ros.node.box_reach_goal_source import GoalSourceConfig  # noqa: E402
from ebgan_mdn_ros.node.goal_pose_relay import RelayConfig  # noqa: E402
from ebgan_mdn_ros.node.mujoco_sim_node import SimNodeConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
UR_JOINTS = ("shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint", "wrist_1_joint", "wrist_2_joint",
             "wrist_3_joint")


def section(name: str, node: str) -> dict:
    """The node's own keys only: `/**` is the policy node's."""
    everything = load_parameter_file(ROOT / "config" / name, node)
    policy = load_parameter_file(ROOT / "config" / name, "policy_node")
    return {k: v for k, v in everything.items() if k not in policy or node == "policy_node"}


def tuples(values: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def test_the_sim_file_drives_the_shipped_model_on_the_ur_joints():
    policy = config_from_parameters(section("sim_ur5e.yaml", "policy_node"))
    assert policy.joint_names == UR_JOINTS and policy.output_mode == "forward_command"
    assert policy.controller_name == "forward_position_controller" and policy.dry_run is False
    assert policy.model_directory == "models/ur5e_box_reach" and (ROOT / policy.model_directory / "manifest.json").is_file()
    assert len(policy.position_lower) == 6 and policy.autostart is False  # the goal source starts episodes
    sim = SimNodeConfig(**tuples(section("sim_ur5e.yaml", "mujoco_sim")))
    assert sim.real_time_factor == 1.0 and sim.scene == "box_reach"
    RelayConfig(**tuples(section("sim_ur5e.yaml", "goal_pose_relay")))
    GoalSourceConfig(**section("sim_ur5e.yaml", "box_reach_goal_source"))


def test_the_real_file_is_the_ur_driver_in_dry_run():
    policy = config_from_parameters(section("real_ur5e.yaml", "policy_node"))
    assert policy.joint_names == UR_JOINTS and policy.dry_run is True
    assert policy.output_mode == "joint_trajectory"
    assert policy.command_topic == "scaled_joint_trajectory_controller/joint_trajectory"
    relay = RelayConfig(**tuples(section("real_ur5e.yaml", "goal_pose_relay")))
    assert relay.accepted_frames == ("base_link",)
