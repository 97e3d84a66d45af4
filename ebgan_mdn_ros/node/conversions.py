"""ROS messages <-> numpy, filling messages that are made once and reused every tick.

Sequence fields are set from array.array built straight from the numpy buffer: rclpy accepts them
without the per-element type checks it runs on lists, which matters at control rate.
"""
from __future__ import annotations

from array import array
from typing import Mapping, Sequence

import numpy as np
from builtin_interfaces.msg import Duration, Time
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from std_msgs.msg import Float64MultiArray, Header
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from ebgan_mdn_ros.msg import Candidates, Decision, ModelInfo


def float64s(values: np.ndarray) -> array:
    return array("d", np.ascontiguousarray(values, dtype=np.float64).tobytes())


def float32s(values: np.ndarray) -> array:
    return array("f", np.ascontiguousarray(values, dtype=np.float32).tobytes())


def uint32s(values: np.ndarray) -> array:
    return array("I", np.ascontiguousarray(values, dtype=np.uint32).tobytes())


def stamp_seconds(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def duration(seconds: float) -> Duration:
    whole = int(seconds)
    return Duration(sec=whole, nanosec=int(round((seconds - whole) * 1e9)))


def duration_seconds(value: Duration) -> float:
    return value.sec + value.nanosec * 1e-9


def multiarray_values(msg: Float64MultiArray) -> np.ndarray:
    return np.asarray(msg.data, dtype=np.float64)


def forward_command(msg: Float64MultiArray, command: np.ndarray) -> Float64MultiArray:
    """ForwardCommandController: one value per controller joint, in its joint order."""
    msg.data = float64s(command)
    return msg


def trajectory_message(joint_names: Sequence[str], time_from_start_s: float) -> JointTrajectory:
    """A one-point trajectory for JointTrajectoryController; stamp 0 means "start now"."""
    msg = JointTrajectory()
    msg.joint_names = list(joint_names)
    point = JointTrajectoryPoint()
    point.time_from_start = duration(time_from_start_s)
    msg.points = [point]
    return msg


def trajectory_command(msg: JointTrajectory, command: np.ndarray) -> JointTrajectory:
    msg.points[0].positions = float64s(command)
    return msg


def fill_chunk_trajectory(msg: JointTrajectory, time_from_start_ns: np.ndarray, positions: np.ndarray,
                          velocities: np.ndarray) -> JointTrajectory:
    """A chunk's points (stamp 0: "start now"), times exact from integer nanoseconds. Point messages
    are reused; the list grows only to the longest chunk sent."""
    while len(msg.points) < len(time_from_start_ns):
        msg.points.append(JointTrajectoryPoint())
    del msg.points[len(time_from_start_ns):]
    for point, ns, position, velocity in zip(msg.points, time_from_start_ns, positions, velocities):
        point.time_from_start.sec, point.time_from_start.nanosec = divmod(int(ns), 1_000_000_000)
        point.positions = float64s(position)
        point.velocities = float64s(velocity)
    return msg


def trajectory_positions(msg: JointTrajectory, joint_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(time_from_start [N] in s, positions [N, joints]) reordered into ``joint_names``; raises ValueError."""
    where = {name: i for i, name in enumerate(msg.joint_names)}
    missing = [j for j in joint_names if j not in where]
    if missing:
        raise ValueError(f"trajectory lacks joint(s) {missing}")
    order = [where[j] for j in joint_names]
    times = np.array([duration_seconds(p.time_from_start) for p in msg.points])
    rows = []
    for p in msg.points:
        if len(p.positions) != len(msg.joint_names):
            raise ValueError(f"trajectory point has {len(p.positions)} positions for {len(msg.joint_names)} joints")
        rows.append(np.asarray(p.positions, dtype=np.float64)[order])
    return times, np.array(rows).reshape(len(rows), len(joint_names))


def fill_candidates(msg: Candidates, stamp: Time, model_version: str, decision) -> Candidates:
    msg.header.stamp = stamp
    msg.model_version = model_version
    candidates = decision.candidates
    msg.num_candidates, msg.action_dim = int(candidates.shape[0]), int(candidates.shape[1])
    msg.candidates = float32s(candidates.reshape(-1))
    msg.energies = float32s(decision.energies)
    msg.components = uint32s(decision.components)
    msg.chosen_index = int(decision.chosen_index)
    msg.chosen_component = int(decision.chosen_component)
    msg.trusted = bool(decision.trusted)
    return msg


def fill_decision(msg: Decision, stamp: Time, decision, action: np.ndarray, command: np.ndarray | None,
                  held: bool, note: str, latency_s: float) -> Decision:
    msg.header.stamp = stamp
    msg.action = float64s(action)
    msg.command = float64s(command) if command is not None else array("d")
    msg.energy = float(decision.energy)
    msg.energy_gap = float(decision.energy_gap)
    msg.component = int(decision.chosen_component)
    msg.trusted = bool(decision.trusted)
    msg.held = bool(held)
    msg.safety_note = note
    msg.latency_us = float(latency_s * 1e6)
    msg.inference_us = float(decision.inference_seconds * 1e6)
    return msg


def model_info(stamp: Time, model_directory: str, manifest, providers: Sequence[str], num_candidates: int,
               last_swap_result: str) -> ModelInfo:
    return ModelInfo(
        header=Header(stamp=stamp), model_directory=str(model_directory), model_version=str(manifest.model_version),
        generator_sha256=graph_sha256(manifest, "generator"), energy_sha256=graph_sha256(manifest, "energy"),
        condition_names=list(manifest.condition_names), action_names=list(manifest.action_names),
        execution_providers=list(providers), num_components=int(manifest.num_components),
        num_candidates=int(num_candidates), last_swap_result=last_swap_result)


def graph_sha256(manifest, role: str) -> str:
    graph = getattr(manifest, role, None)
    return str(getattr(graph, "sha256", "")) if graph is not None else ""


def diagnostic_status(name: str, hardware_id: str, level: bytes, message: str,
                      values: Mapping[str, object]) -> DiagnosticStatus:
    return DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id,
                            values=[KeyValue(key=k, value=_text(v)) for k, v in values.items()])


def _text(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
