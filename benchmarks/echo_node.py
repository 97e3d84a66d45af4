"""A policy-node stand-in that does no work: the latency floor for benchmarks/e2e_latency.py.

It subscribes to the joint state exactly as the policy node does (sensor-data QoS: best effort, keep
last 1) and, in the same callback, publishes what the policy node publishes per state: a command
(std_msgs/Float64MultiArray, reliable, depth 1) and a Decision whose header.stamp is the state's stamp.
The command is the measured position (a robot would hold still). So `policy latency - echo latency`
is what the policy node adds on top of rclpy + DDS: conversion, inference, safety filter.

    python benchmarks/echo_node.py --ros-args -p joint_names:="[j1, j2]" -p executor:=events
"""
from __future__ import annotations

import sys

import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from ebgan_mdn_ros.node.conversions import float64s
from ebgan_mdn_ros.msg import Decision


class EchoNode(Node):
    def __init__(self, name: str = "echo_node"):
        super().__init__(name)
        self.declare_parameter("joint_names", ["joint1"])
        self.declare_parameter("state_topic", "joint_states")
        self.declare_parameter("command_topic", "forward_position_controller/commands")
        self.declare_parameter("decision_topic", "~/decision")
        self.declare_parameter("executor", "events")
        self.joint_names = tuple(self.get_parameter("joint_names").value)
        command_topic = self.get_parameter("command_topic").value
        decision_topic = self.get_parameter("decision_topic").value
        self._command = Float64MultiArray()
        self._decision = Decision()
        self._decision.joint_names = list(self.joint_names)
        self._order: np.ndarray | None = None
        self._names: list[str] | None = None
        self.count = 0
        self.command_publisher = self.create_publisher(Float64MultiArray, command_topic, QoSProfile(depth=1))
        self.decision_publisher = self.create_publisher(Decision, decision_topic, QoSProfile(depth=1))
        self.create_subscription(JointState, self.get_parameter("state_topic").value, self._on_state,
                                 qos_profile_sensor_data)

    def _on_state(self, msg: JointState) -> None:
        if msg.name != self._names:   # reorder by name, as the policy node does
            where = {n: i for i, n in enumerate(msg.name)}
            if any(j not in where for j in self.joint_names):
                return
            self._names = list(msg.name)
            self._order = np.array([where[j] for j in self.joint_names])
        position = np.asarray(msg.position, dtype=np.float64)[self._order]
        data = float64s(position)
        self._command.data = data
        self.command_publisher.publish(self._command)
        self._decision.header.stamp = msg.header.stamp
        self._decision.command = data
        self.decision_publisher.publish(self._decision)
        self.count += 1


def main(args=None) -> None:
    rclpy.init(args=args if args is not None else sys.argv)
    node = EchoNode()
    kind = node.get_parameter("executor").value
    if kind == "events":
        from rclpy.experimental import EventsExecutor
        executor = EventsExecutor()
    else:
        from rclpy.executors import SingleThreadedExecutor
        executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while rclpy.ok():
            executor.spin_once(timeout_sec=0.1)  # a finite timeout: the EventsExecutor hangs without one
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
