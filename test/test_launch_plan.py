"""The logic of launch/policy.launch.py (launch_ros is not installable here), and the launch file itself
where launch_ros exists."""
import importlib.util
from pathlib import Path

import pytest
import yaml

from ebgan_mdn_ros.node.launch_plan import LAUNCH_ARGUMENTS, plan, process_command, ros_arguments
from ebgan_mdn_ros.node.parameters import config_from_parameters, load_parameter_file

ROOT = Path(__file__).resolve().parent.parent


def test_sim_starts_the_arm_the_goal_source_and_the_policy():
    launch = plan("sim", share_dir=ROOT)
    assert [(n.executable, n.name) for n in launch.nodes] == [
        ("sim_arm", "sim_arm"), ("sim_arm", "goal_source"), ("policy_node", "policy_node")]
    assert launch.config_file == str(ROOT / "config" / "sim_ik.yaml")
    assert launch.nodes[1].arguments == ("goal_source",)
    assert all(n.parameters[0] == launch.config_file for n in launch.nodes)


def test_real_starts_the_policy_only_in_dry_run():
    launch = plan("real", share_dir=ROOT)
    assert [n.name for n in launch.nodes] == ["policy_node"]
    config = config_from_parameters(load_parameter_file(launch.config_file, "policy_node"))
    assert config.dry_run and config.output_mode == "joint_trajectory"
    assert config.command_topic == "joint_trajectory_controller/joint_trajectory"


def test_model_argument_overrides_the_files_model_directory():
    policy = plan("real", model="/opt/models/arm6", share_dir=ROOT).nodes[-1]
    assert policy.parameters[-1] == {"model_directory": "/opt/models/arm6"}
    args = ros_arguments(policy)
    assert args[args.index("-p") + 1] == "model_directory:=/opt/models/arm6"


def test_config_argument_is_found_relative_to_the_share_directory():
    launch = plan("sim", config="config/sim_multiroute.yaml", share_dir=ROOT)
    assert launch.config_file.endswith("sim_multiroute.yaml")


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="arm: 'hardware'"):
        plan("hardware", share_dir=ROOT)
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        plan("sim", config="missing.yaml", share_dir=ROOT)


def test_every_launch_argument_has_a_description():
    assert set(LAUNCH_ARGUMENTS) == {"arm", "model", "config"}
    assert all(len(description) > 20 for _, description in LAUNCH_ARGUMENTS.values())


def test_process_command_passes_names_files_and_yaml_safe_values():
    sim, goals, policy = plan("sim", share_dir=ROOT).nodes
    command = process_command(goals, python="python")
    assert command[:4] == ["python", "-m", "ebgan_mdn_ros.node.sim_nodes", "goal_source"]
    assert "__node:=goal_source" in command
    extra = ros_arguments(policy, {"joint_names": ["y", "x"], "dry_run": False, "model_directory": "on"})
    values = dict(a.split(":=", 1) for a in extra if ":=" in a and not a.startswith("__"))
    assert yaml.safe_load(values["joint_names"]) == ["y", "x"]
    assert yaml.safe_load(values["dry_run"]) is False
    assert yaml.safe_load(values["model_directory"]) == "on"


def test_launch_file_builds_the_plan_when_launch_ros_is_installed():
    if importlib.util.find_spec("launch_ros") is None:
        pytest.skip("launch_ros is not installable from pip; the plan above is what it runs")
    from launch import LaunchContext
    spec = importlib.util.spec_from_file_location("policy_launch", ROOT / "launch" / "policy.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    names = [a.name for a in description.entities if hasattr(a, "default_value")]
    assert names == ["arm", "model", "config"]
    context = LaunchContext()
    context.launch_configurations.update({"arm": "sim", "model": "", "config": str(ROOT / "config" / "sim_ik.yaml")})
    nodes = description.entities[-1].execute(context)
    assert len(nodes) == 3
