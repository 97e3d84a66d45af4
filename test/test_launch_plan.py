"""The logic of launch/policy.launch.py (launch_ros is not installable here), and the launch file itself
where launch_ros exists."""
import ast
import importlib.util
from pathlib import Path

import pytest
import yaml

from ebgan_mdn_ros.node.launch_plan import (
    LAUNCH_ARGUMENTS, ends_launch, plan, process_command, ros_arguments, shutdown_reason)
from ebgan_mdn_ros.node.parameters import config_from_parameters, load_parameter_file

ROOT = Path(__file__).resolve().parent.parent


def test_sim_starts_the_ur5e_the_goal_relay_the_goal_source_and_the_policy():
    launch = plan("sim", share_dir=ROOT)
    assert [(n.executable, n.name) for n in launch.nodes] == [
        ("mujoco_sim", "mujoco_sim"), ("goal_pose_relay", "goal_pose_relay"),
        ("box_reach_goal_source", "box_reach_goal_source"), ("policy_node", "policy_node")]
    assert launch.config_file == str(ROOT / "config" / "sim_ur5e.yaml")
    assert all(n.parameters[0] == launch.config_file for n in launch.nodes)
    sections = yaml.safe_load(Path(launch.config_file).read_text())
    assert all(n.name in sections for n in launch.nodes[:-1])  # each sim node finds its own section


def test_the_2link_arm_stays_available_by_config():
    launch = plan("sim", config="config/sim_ik.yaml", share_dir=ROOT)
    assert [(n.executable, n.name) for n in launch.nodes] == [
        ("sim_arm", "sim_arm"), ("sim_arm", "goal_source"), ("policy_node", "policy_node")]
    assert launch.nodes[1].arguments == ("goal_source",)


def test_real_starts_the_policy_only_in_dry_run_on_the_ur_driver():
    launch = plan("real", share_dir=ROOT)
    assert [n.name for n in launch.nodes] == ["policy_node"]
    assert launch.config_file == str(ROOT / "config" / "real_ur5e.yaml")
    config = config_from_parameters(load_parameter_file(launch.config_file, "policy_node"))
    assert config.dry_run and config.output_mode == "joint_trajectory"
    assert config.command_topic == "scaled_joint_trajectory_controller/joint_trajectory"


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
    sim, goals, policy = plan("sim", config="config/sim_ik.yaml", share_dir=ROOT).nodes
    command = process_command(goals, python="python")
    assert process_command(plan("sim", share_dir=ROOT).nodes[0], python="python")[:3] == [
        "python", "-m", "ebgan_mdn_ros.node.mujoco_sim_node"]
    assert command[:4] == ["python", "-m", "ebgan_mdn_ros.node.sim_nodes", "goal_source"]
    assert "__node:=goal_source" in command
    extra = ros_arguments(policy, {"joint_names": ["y", "x"], "dry_run": False, "model_directory": "on"})
    values = dict(a.split(":=", 1) for a in extra if ":=" in a and not a.startswith("__"))
    assert yaml.safe_load(values["joint_names"]) == ["y", "x"]
    assert yaml.safe_load(values["dry_run"]) is False
    assert yaml.safe_load(values["model_directory"]) == "on"


@pytest.mark.parametrize("arm", ["sim", "real"])
def test_the_policy_nodes_exit_ends_the_launch(arm):
    """A policy node that stops (a missing model: exit 2) must not leave the sim nodes running."""
    nodes = plan(arm, share_dir=ROOT).nodes
    assert [n.name for n in nodes if n.shutdown_on_exit] == ["policy_node"]
    assert ends_launch(nodes, {"policy_node"})
    assert not ends_launch(nodes, {n.name for n in nodes[:-1]})
    assert "policy_node" in shutdown_reason(nodes[-1])


# What launch/policy.launch.py may import: actions that exist in Humble, Jazzy and Kilted alike.
PORTABLE_LAUNCH_API = {
    "launch": {"LaunchDescription"},
    "launch.actions": {"DeclareLaunchArgument", "OpaqueFunction", "RegisterEventHandler", "Shutdown"},
    "launch.event_handlers": {"OnProcessExit"},
    "launch.substitutions": {"LaunchConfiguration"},
    "launch_ros.actions": {"Node"},
    "ament_index_python.packages": {"get_package_share_directory"},
}


def _launch_file_tree():
    return ast.parse((ROOT / "launch" / "policy.launch.py").read_text())


def test_launch_file_uses_only_the_launch_api_of_every_supported_distro():
    for statement in ast.walk(_launch_file_tree()):
        if isinstance(statement, ast.ImportFrom) and not statement.module.startswith("ebgan_mdn_ros"):
            names = {alias.name for alias in statement.names}
            assert names <= PORTABLE_LAUNCH_API.get(statement.module, set()), (statement.module, names)
        assert not isinstance(statement, ast.Import), "import launch modules by name (from ... import ...)"


def test_launch_file_ends_the_launch_on_the_shutdown_on_exit_nodes():
    """Without launch_ros the file cannot run here: check it turns shutdown_on_exit into
    RegisterEventHandler(OnProcessExit(target_action=<that node>, on_exit=[Shutdown(reason=...)]))."""
    tree = _launch_file_tree()
    calls = {}
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Name):
            calls.setdefault(call.func.id, []).append(call)
    (exit_handler,) = calls["OnProcessExit"]
    keywords = {k.arg: k.value for k in exit_handler.keywords}
    assert isinstance(keywords["target_action"], ast.Name)
    (shutdown,) = [c for c in ast.walk(keywords["on_exit"]) if isinstance(c, ast.Call) and getattr(c.func, "id", "") == "Shutdown"]
    assert [k.arg for k in shutdown.keywords] == ["reason"]
    (register,) = calls["RegisterEventHandler"]
    assert register.args[0] is exit_handler
    guards = [n for n in ast.walk(tree) if isinstance(n, ast.If)
              and "shutdown_on_exit" in ast.unparse(n.test) and any(c is register for c in ast.walk(n))]
    assert guards, "the event handler must be registered for the plan's shutdown_on_exit nodes"
    # target_action is the Node built for that spec
    (node_call,) = calls["Node"]
    assigned = [a for a in ast.walk(tree) if isinstance(a, ast.Assign) and a.value is node_call]
    assert assigned and assigned[0].targets[0].id == keywords["target_action"].id


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
    actions = description.entities[-1].execute(context)
    from launch.actions import RegisterEventHandler
    from launch.event_handlers import OnProcessExit
    from launch_ros.actions import Node
    assert len([a for a in actions if isinstance(a, Node)]) == 3
    handlers = [a for a in actions if isinstance(a, RegisterEventHandler)]
    assert len(handlers) == 1 and isinstance(handlers[0].event_handler, OnProcessExit)
