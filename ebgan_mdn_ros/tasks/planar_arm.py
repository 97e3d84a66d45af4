"""The planar 2-link arm of the IK task: its geometry, the one forward and inverse kinematics.

Every user of the arm (the IK task and its metrics, the scripted expert, the simulated arm and its
goal source, the plots and the demo) reads the link lengths and the goal annulus from here.
"""
from __future__ import annotations

import math

import numpy as np

LINK_LENGTHS = (3.0, 3.0)  # m, shoulder -> elbow, elbow -> end effector
# Goals cover the annulus between these radii: inside 1 m the elbow folds nearly flat, beyond 5.5 m
# the two elbow solutions merge into one (straight arm).
GOAL_RADIUS_RANGE = (1.0, 5.5)  # m
# The deployed goal source uses the right half plane of that annulus (where the shipped model was trained).
GOAL_BEARING_RANGE = (-math.pi / 2, math.pi / 2)  # rad
ELBOW_MODES = ("elbow_up", "elbow_down")  # elbow angle > 0, < 0


def planar_forward_kinematics(joint_position, link_lengths=LINK_LENGTHS) -> np.ndarray:
    """End-effector (x, y) [..., 2] in m from (shoulder, elbow) [..., 2] in rad."""
    angles = np.asarray(joint_position, dtype=np.float64)
    l1, l2 = link_lengths
    shoulder, elbow = angles[..., 0], angles[..., 1]
    return np.stack([l1 * np.cos(shoulder) + l2 * np.cos(shoulder + elbow),
                     l1 * np.sin(shoulder) + l2 * np.sin(shoulder + elbow)], -1)


def wrap_angle(angle):
    """Into [-pi, pi): the planar arm's joint range."""
    return (np.asarray(angle) + math.pi) % (2.0 * math.pi) - math.pi


def planar_inverse_kinematics(targets, elbow_sign: float, link_lengths=LINK_LENGTHS) -> np.ndarray:
    """(shoulder, elbow) [..., 2] in rad that put the end effector on ``targets`` [..., 2].

    cos(elbow) = (r^2 - l1^2 - l2^2) / (2 l1 l2), elbow taking the sign of ``elbow_sign`` (+ is
    "elbow_up"); shoulder = bearing - atan2(l2 sin(elbow), l1 + l2 cos(elbow)), wrapped into
    [-pi, pi). A target outside the reachable annulus gets the closest pose (stretched or folded).
    """
    targets = np.asarray(targets, dtype=np.float64)
    l1, l2 = link_lengths
    x, y = targets[..., 0], targets[..., 1]
    cosine = (x * x + y * y - l1 * l1 - l2 * l2) / (2.0 * l1 * l2)
    elbow = np.copysign(np.arccos(np.clip(cosine, -1.0, 1.0)), elbow_sign)
    shoulder = np.arctan2(y, x) - np.arctan2(l2 * np.sin(elbow), l1 + l2 * np.cos(elbow))
    return np.stack([wrap_angle(shoulder), elbow], -1)


def elbow_mode(joint_position) -> str:
    """The mode a pose is in, by the sign of its elbow angle."""
    return ELBOW_MODES[0] if joint_position[1] > 0 else ELBOW_MODES[1]
