"""What launch/policy.launch.py starts, as plain data (no launch, no rclpy: tested here).

launch_ros cannot be installed from pip, so the launch file only turns this plan into Node actions,
and the demo and the tests start the same plan as processes (`process_command`).
  arm:=sim   the simulation the config describes, and policy_node: a `mujoco_sim` section (config/sim_ur5e.yaml,
             the default) starts the MuJoCo UR5e, the goal-pose relay and the box-reach goal source; a
             `sim_arm` section (config/sim_ik.yaml, config/sim_multiroute.yaml) the 2-link arm or gantry
             and its goal source
  arm:=real  policy_node only, wired to a ros2_control arm (config/real_ur5e.yaml: the UR driver, dry run;
             config/real_arm.yaml: a generic 6-joint arm)
The launch ends when the policy node exits (shutdown_on_exit): a policy that stops at start-up (a
missing model, a bad parameter: exit 2) must not leave the simulator and goal source running.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ebgan_mdn_ros.paths import PACKAGE

ARMS = ("sim", "real")
DEFAULT_CONFIG = {"sim": "config/sim_ur5e.yaml", "real": "config/real_ur5e.yaml"}
# Executable -> module, for starting a plan without ros2 launch (`python -m`).
MODULES = {"policy_node": "ebgan_mdn_ros.node.policy_node", "sim_arm": "ebgan_mdn_ros.node.sim_nodes",
           "mujoco_sim": "ebgan_mdn_ros.node.mujoco_sim_node",
           "goal_pose_relay": "ebgan_mdn_ros.node.goal_pose_relay",
           "box_reach_goal_source": "ebgan_mdn_ros.node.box_reach_goal_source"}

LAUNCH_ARGUMENTS = {
    "arm": ("sim", "sim: simulated arm, goal source and policy; real: the policy only, for a ros2_control arm"),
    "model": ("", "model directory (manifest.json + ONNX); empty: the config file's model_directory; "
                  "relative paths are looked up in the current directory, then in share/ebgan_mdn_ros"),
    "config": ("", "parameter YAML; empty: config/sim_ur5e.yaml for arm:=sim, config/real_ur5e.yaml for arm:=real "
                   "(config/sim_ik.yaml: the 2-link arm)"),
}


@dataclass(frozen=True)
class NodeSpec:
    executable: str
    name: str
    parameters: tuple[Any, ...] = ()          # parameter file paths (str) and {name: value} dicts, in order
    arguments: tuple[str, ...] = ()           # non-ROS command-line arguments
    remappings: tuple[tuple[str, str], ...] = ()
    package: str = PACKAGE
    # This node's exit, for any reason or code, ends the whole launch (launch: OnProcessExit -> Shutdown).
    shutdown_on_exit: bool = False


@dataclass(frozen=True)
class LaunchPlan:
    arm: str
    config_file: str
    nodes: tuple[NodeSpec, ...] = field(default_factory=tuple)


def resolve_config(arm: str, config: str, share_dir: str | Path) -> Path:
    """The parameter file: as given (absolute, or relative to cwd or the package share), or the arm's default."""
    if arm not in ARMS:
        raise ValueError(f"arm: {arm!r} is unknown, expected one of {ARMS}")
    if not config:
        return Path(share_dir) / DEFAULT_CONFIG[arm]
    path = Path(config).expanduser()
    if path.is_absolute() or path.is_file():
        return path.resolve() if path.is_file() else path
    return Path(share_dir) / path


def plan(arm: str = "sim", model: str = "", config: str = "", share_dir: str | Path = ".") -> LaunchPlan:
    """The nodes for ``arm``; ``model`` (when set) overrides the file's model_directory."""
    config_file = resolve_config(arm, config, share_dir)
    if not config_file.is_file():
        raise FileNotFoundError(f"config: {config_file} does not exist")
    policy_parameters: list[Any] = [str(config_file)]
    if model:
        policy_parameters.append({"model_directory": model})
    # Nothing is worth running without the policy: the sim nodes would only idle (or, on arm:=real,
    # nothing is left at all), so its exit ends the launch.
    policy = NodeSpec("policy_node", "policy_node", tuple(policy_parameters), shutdown_on_exit=True)
    if arm == "real":
        return LaunchPlan(arm, str(config_file), (policy,))
    # One file configures the whole simulation: the sim nodes read their own sections of it.
    files = (str(config_file),)
    if "mujoco_sim" in _sections(config_file):
        sim_nodes = (NodeSpec("mujoco_sim", "mujoco_sim", files), NodeSpec("goal_pose_relay", "goal_pose_relay", files),
                     NodeSpec("box_reach_goal_source", "box_reach_goal_source", files))
    else:
        sim_nodes = (NodeSpec("sim_arm", "sim_arm", files),
                     NodeSpec("sim_arm", "goal_source", files, arguments=("goal_source",)))
    return LaunchPlan(arm, str(config_file), (*sim_nodes, policy))


def _sections(config_file: Path) -> set[str]:
    """The node names a parameter file has sections for."""
    data = yaml.safe_load(config_file.read_text()) or {}
    return set(data) if isinstance(data, dict) else set()


def shutdown_reason(node: NodeSpec) -> str:
    """What the launch says when ``node``'s exit ends it."""
    return f"{node.name} exited, and the launch cannot go on without it (see its log above)"


def ends_launch(nodes: tuple[NodeSpec, ...], exited: set[str]) -> bool:
    """Whether the nodes named in ``exited`` end the launch: one of them is shutdown_on_exit.

    For a runner that starts the plan as processes itself (`process_command`) rather than ros2 launch."""
    return any(node.shutdown_on_exit and node.name in exited for node in nodes)


def ros_arguments(node: NodeSpec, extra: dict[str, Any] | None = None) -> list[str]:
    """The `--ros-args ...` a launch system would pass: node name, parameter files and values, remaps."""
    args = ["--ros-args", "-r", f"__node:={node.name}"]
    for source, target in node.remappings:
        args += ["-r", f"{source}:={target}"]
    parameters = list(node.parameters) + ([extra] if extra else [])
    for item in parameters:
        if isinstance(item, dict):
            for key, value in item.items():
                args += ["-p", f"{key}:={_parameter_text(value)}"]
        else:
            args += ["--params-file", str(item)]
    return args


def process_command(node: NodeSpec, extra: dict[str, Any] | None = None, python: str = sys.executable) -> list[str]:
    """argv that starts ``node`` as its own process with this Python (no ros2 launch needed)."""
    return [python, "-m", MODULES[node.executable], *node.arguments, *ros_arguments(node, extra)]


def _parameter_text(value: Any) -> str:
    # -p values are parsed as YAML: quote what YAML would misread ("y", "1e3", "on", ...)
    if isinstance(value, str):
        return value if yaml.safe_load(value) == value and ":" not in value else yaml.safe_dump(value).strip()
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
