"""The executor every node process here spins, and the one way to spin it.

"events" (rclpy's EventsExecutor) measured fastest for the policy node. It never returns from a
spin call without a timeout, so every spin here has one. Never the MultiThreadedExecutor: in this
rclpy it runs at ~30 Hz. Humble and Jazzy have no rclpy.experimental: single_threaded there.
"""
from __future__ import annotations

import rclpy
from rclpy.executors import SingleThreadedExecutor

try:
    from rclpy.experimental import EventsExecutor
except ImportError:  # Humble / Jazzy
    EventsExecutor = None

SPIN_TIMEOUT_S = 0.1


def make_executor(kind: str, context=None):
    """An "events" or "single_threaded" executor (events falls back where rclpy lacks it)."""
    if kind == "events" and EventsExecutor is not None:
        return EventsExecutor(context=context)
    return SingleThreadedExecutor(context=context)


def spin(executor, should_stop=lambda: False, context=None) -> None:
    """Spin with a timeout on every call until ``context`` (default: the global one) shuts down or
    ``should_stop()``. The timeout is what lets a stop request (node/process.py) be seen within 0.1 s."""
    while rclpy.ok(context=context) and not should_stop():
        executor.spin_once(timeout_sec=SPIN_TIMEOUT_S)
