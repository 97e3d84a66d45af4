"""Start the policy node, with a simulated arm (arm:=sim) or for a ros2_control arm (arm:=real).

  ros2 launch ebgan_mdn_ros policy.launch.py arm:=sim
  ros2 launch ebgan_mdn_ros policy.launch.py arm:=real model:=/path/to/model config:=/path/to/params.yaml

Which nodes start, with which parameters, and whose exit ends the launch is decided in
ebgan_mdn_ros.node.launch_plan (tested without launch_ros); this file only turns that plan into launch
actions. Only actions that Humble, Jazzy and Kilted all have are used.
"""
from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, RegisterEventHandler, Shutdown
from launch.event_handlers import OnProcessExit
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from ebgan_mdn_ros.node.launch_plan import LAUNCH_ARGUMENTS, PACKAGE, plan, shutdown_reason


def _nodes(context):
    values = {name: LaunchConfiguration(name).perform(context) for name in LAUNCH_ARGUMENTS}
    launch_plan = plan(values["arm"], values["model"], values["config"], get_package_share_directory(PACKAGE))
    actions = []
    for spec in launch_plan.nodes:
        node = Node(package=spec.package, executable=spec.executable, name=spec.name, output="screen",
                    parameters=list(spec.parameters), arguments=list(spec.arguments),
                    remappings=list(spec.remappings))
        if spec.shutdown_on_exit:
            # Registered before the node starts, so even an exit at start-up (exit 2) ends the launch.
            actions.append(RegisterEventHandler(OnProcessExit(
                target_action=node, on_exit=[Shutdown(reason=shutdown_reason(spec))])))
        actions.append(node)
    return actions


def generate_launch_description():
    arguments = [DeclareLaunchArgument(name, default_value=default, description=description)
                 for name, (default, description) in LAUNCH_ARGUMENTS.items()]
    return LaunchDescription(arguments + [OpaqueFunction(function=_nodes)])
