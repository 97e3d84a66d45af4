"""What the policy node needs to serve a chunk model: the chunk loop, its inference worker, the
latency estimate that times the next request, and the reused trajectory message.

The node's control timer calls `PolicyNode._chunk_tick`, which uses this object: collect a
finished chunk (splice it, publish its trajectory), play the plan (forward_command), and ask for
the next chunk early enough that it arrives before the running one's n_exec-th step.
"""
from __future__ import annotations

from collections import deque

from trajectory_msgs.msg import JointTrajectory

from ebgan_mdn_ros.control.chunk_loop import ChunkLoop, ChunkTiming
from ebgan_mdn_ros.control.model_swap import ModelRejected
from ebgan_mdn_ros.node import conversions
from ebgan_mdn_ros.node.chunk_worker import ChunkWorker


def chunk_timing(manifest, config) -> ChunkTiming:
    """The timing this node serves ``manifest``'s chunks with; ModelRejected naming what does not fit."""
    try:
        return ChunkTiming.of(manifest.chunk, config.chunk_n_exec, config.control_rate_hz, config.chunk_min_lead_s)
    except ValueError as exc:
        raise ModelRejected(f"{exc} (model chunk: horizon {manifest.chunk.horizon}, n_exec "
                            f"{manifest.chunk.n_exec}, dt {manifest.chunk.dt:g} s)") from None


class ChunkExecution:
    def __init__(self, runtime, config, safety):
        self.timing = chunk_timing(runtime.manifest, config)
        self.trajectory = config.output_mode == "joint_trajectory"
        decay = config.ensemble_decay if config.temporal_ensembling else None
        self.loop = ChunkLoop(runtime, config.joint_names, safety, self.timing, self.trajectory, decay)
        self.worker = ChunkWorker(self.loop.decide)
        self._latencies = deque([2 * self.timing.control_period_ns], maxlen=10)
        self.latency_ns = 2 * self.timing.control_period_ns
        self.message = JointTrajectory()
        self.message.joint_names = list(config.joint_names)
        self.failures = 0
        self.last_failure = ""
        self.episode = 0            # ~/start counts episodes; an answer to an older one is dropped
        self.request_episode = 0

    def measured(self, latency_ns: int) -> None:
        """One decision's state-to-splice latency: the next request starts the slowest of the last ten early."""
        self._latencies.append(latency_ns)
        self.latency_ns = max(self._latencies)

    def fill(self, points) -> JointTrajectory:
        return conversions.fill_chunk_trajectory(self.message, points.time_from_start_ns, points.positions,
                                                 points.velocities)

    def values(self) -> dict:
        """Diagnostics: what the chunk loop counted, the idle time and the latency the schedule assumes."""
        values = {f"chunk_{k}": v for k, v in self.loop.counters.items()}
        values.update(chunk_idle_s=self.loop.idle_s, chunk_latency_estimate_ms=self.latency_ns * 1e-6,
                      chunk_horizon=self.timing.horizon, chunk_n_exec=self.timing.n_exec,
                      chunk_inference_failures=self.failures)
        return values

    def close(self) -> None:
        self.worker.close()
