"""Geometry of the multi-route task (docs/method.md section 6), numpy only.

A point starts near (0, 0) and reaches the goal box [19, 21]^2 via (10, 0), (5, 5) or (0, 10), then
(10, 10), without leaving the arena [-2, 22]^2. The task's data (tasks.py), the scripted
demonstrator (expert.py) and the demo's report (node/demo.py) all read it from here.
"""
from __future__ import annotations

import numpy as np

ROUTE_VIA_POINTS = np.array([[10.0, 0.0], [5.0, 5.0], [0.0, 10.0]])  # m
ROUTE_NAMES = ("via_10_0", "via_5_5", "via_0_10")
ROUTE_MERGE = np.array([10.0, 10.0])   # m
ROUTE_GOAL = np.array([20.0, 20.0])    # m, centre of the goal box
GOAL_BOX = (19.0, 21.0)                # m, per axis
ARENA = (-2.0, 22.0)                   # m, per axis
MAX_STEP = 2.0                         # m per decision: the action box
ROUTE_RADIUS = 2.5                     # m: a path "took" a route if it passed this close to its via point


def nearest_routes(paths: np.ndarray, radius: float = ROUTE_RADIUS) -> np.ndarray:
    """Paths [R, T, 2] -> per path the index of the via point it passed closest to, -1 if none within radius."""
    distance = np.linalg.norm(paths[:, :, None, :2] - ROUTE_VIA_POINTS[None, None], axis=-1).min(1)  # [R, 3]
    return np.where(distance.min(1) <= radius, distance.argmin(1), -1)
