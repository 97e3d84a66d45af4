"""The ROS 2 policy node (`policy_node`): a thin shell over PolicyRuntime and SafetyFilter.

Per decision: the newest JointState (reordered by name) and goal -> condition -> PolicyRuntime.decide
-> target (absolute, or position + action for delta models) -> SafetyFilter -> one command to the
controller, plus the Candidates and Decision messages stamped with the answered state's stamp.
Everything heavy (the model, its sessions, publishers, reusable messages) is built at start-up; a
missing or mismatched model stops start-up with the reason. Model swaps load on a worker thread
(ModelSwapper) and take effect between decisions. Callbacks never block and never touch files.

Topics (relative names, so a namespace or remapping moves them):
  in:  joint_states (sensor_msgs/JointState, sensor-data QoS), goal (std_msgs/Float64MultiArray)
  out: <controller>/commands (std_msgs/Float64MultiArray) or <controller>/joint_trajectory
       (trajectory_msgs/JointTrajectory), reliable keep-last 1; ~/candidates, ~/decision;
       ~/model_info (latched); /diagnostics
  services: ~/start ~/stop ~/reset ~/reload ~/rollback (std_srvs/Trigger)

A chunk model (manifest "chunk", docs/chunks.md) is served by `_chunk_tick` instead of `_decide`:
inference on a worker thread (node/chunk_worker.py), the chunk spliced into the running plan, one
JointTrajectory per chunk or the plan played out at the control rate on forward_command.
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import SetParametersResult

from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from ebgan_mdn_ros.node import conversions
from ebgan_mdn_ros.node.chunk_execution import ChunkExecution, chunk_timing
from ebgan_mdn_ros.config_base import ConfigError
from ebgan_mdn_ros.control.latency_stats import LatencyStats, RateMeter
from ebgan_mdn_ros.control.model_swap import ModelRejected, ModelSwapper, SwapEvent, make_runtime_validator
from ebgan_mdn_ros.msg import Candidates, Decision
from ebgan_mdn_ros.node.model_paths import model_label, model_roots, without_paths
from ebgan_mdn_ros.node.parameters import (
    NodeConfig, config_from_parameters, parameter_values, resolve_model_directory)
from ebgan_mdn_ros.paths import package_share_directories
from ebgan_mdn_ros.control.decision_loop import DecisionLoop
from ebgan_mdn_ros.control.safety_filter import NOTE_SEED_OUT_OF_LIMITS, NOTE_STALE, SEED_NOTES, SafetyConfig
from ebgan_mdn_ros.control.state_assembly import Rejected, StateAssembler

NODE_NAME = "policy_node"
# Parameters that may change while running; the rest need a restart (they shape sessions and topics).
LIVE_PARAMETERS = ("model_directory", "dry_run")
LOCKED = "refused: lock_runtime_changes is set (arm and choose the model at launch)"


class PolicyNode(Node):
    def __init__(self, node_name: str = NODE_NAME, **node_kwargs):
        # Declaring every override lets an unknown (misspelt) parameter fail start-up by name.
        super().__init__(node_name, automatically_declare_parameters_from_overrides=True, **node_kwargs)
        self.runtime = None
        self._chunks: ChunkExecution | None = None
        self._swapper = ModelSwapper(self._load_runtime, self._validate_runtime)
        try:
            self.config: NodeConfig = self._read_config()
            model_dir = resolve_model_directory(self.config.model_directory)
            if not model_dir.is_dir():
                raise ModelRejected(f"model_directory: {self.config.model_directory!r} is not a directory (looked "
                                    f"in {Path.cwd()} and {[str(p) for p in package_share_directories()]})")
            self.runtime = self._swapper.load_initial(str(model_dir))  # raises ModelRejected with the reason
            self._use_model(self.runtime)
        except Exception:
            self.destroy_node()  # nothing was published or commanded; leave no half-built node behind
            raise
        c = self.config

        self._running = c.autostart
        self._dry_run = c.dry_run
        self._state: JointState | None = None
        self._state_received = 0.0       # perf_counter at receipt
        self._answered: JointState | None = None
        self._goal: np.ndarray | None = None
        self._last_decision = None
        self._last_reject = ""
        self._seed_note = ""
        self.states_rejected = 0
        self.seed_steps = 0              # states spent seeding an episode (or refused as its seed)
        self.decisions = 0
        period = 1.0 / c.control_rate_hz if c.control_rate_hz > 0 else None
        self.latency = LatencyStats(c.latency_window, budget_s=period)
        self.inference = LatencyStats(c.latency_window)
        self.rate = RateMeter(min(c.latency_window, 1000))
        self._state_period = LatencyStats(200)  # joint-state inter-arrival times: the event-driven swap budget

        reliable_1 = QoSProfile(depth=1)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        if c.output_mode == "forward_command":
            self._command_msg = Float64MultiArray()
            self._command_pub = self.create_publisher(Float64MultiArray, c.command_topic, reliable_1)
        else:
            self._command_msg = conversions.trajectory_message(c.joint_names, c.trajectory_time_from_start_s)
            self._command_pub = self.create_publisher(JointTrajectory, c.command_topic, reliable_1)
        self._candidates_msg = Candidates()
        self._decision_msg = Decision()
        self._candidates_pub = self.create_publisher(Candidates, "~/candidates", QoSProfile(depth=5))
        self._decision_pub = self.create_publisher(Decision, "~/decision", QoSProfile(depth=5))
        self._model_info_pub = self.create_publisher(conversions.ModelInfo, "~/model_info", latched)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", QoSProfile(depth=10))
        self._set_model_fields()
        self._publish_model_info()

        # Sensor-data QoS (best effort: matches any publisher); depth > 1 only to ride out stalls.
        state_qos = QoSProfile(depth=c.state_queue_depth, reliability=qos_profile_sensor_data.reliability,
                               durability=qos_profile_sensor_data.durability)
        self.create_subscription(JointState, c.state_topic, self._on_state, state_qos)
        self.create_subscription(Float64MultiArray, c.goal_topic, self._on_goal, QoSProfile(depth=1))
        if period is not None:
            self.create_timer(period, self._decide if self._chunks is None else self._chunk_tick)
        self.create_timer(0.05, self._poll_swap)  # swaps also land while stopped or without state
        self.create_timer(c.diagnostics_period_s, self._publish_diagnostics)
        for name, handler in (("start", self._srv_start), ("stop", self._srv_stop), ("reset", self._srv_reset),
                              ("reload", self._srv_reload), ("rollback", self._srv_rollback)):
            self.create_service(Trigger, f"~/{name}", handler)
        self.add_on_set_parameters_callback(self._check_parameter_change)
        if hasattr(self, "add_post_set_parameters_callback"):
            self.add_post_set_parameters_callback(self._apply_parameter_change)
        else:  # Humble: no post-set hook; act after validating in the same call
            self._apply_in_check = True
        mode = "event-driven" if period is None else f"{c.control_rate_hz:g} Hz"
        self.get_logger().info(
            f"serving {self._swapper.active_dir} (version {self.runtime.manifest.model_version}) on "
            f"{list(self.runtime.providers)}, {mode}, {c.output_mode} -> {c.command_topic}"
            f"{', DRY RUN (no commands)' if self._dry_run else ''}{'' if self._running else ', waiting for ~/start'}")

    # -- configuration and model -----------------------------------------------------------------
    def _read_config(self) -> NodeConfig:
        names = self.list_parameters([], 0).names
        config = config_from_parameters({name: self.get_parameter(name).value for name in names})
        # Declare the defaults too, so `ros2 param get/set` sees every parameter (dry_run included).
        for name, value in parameter_values(config).items():
            if not self.has_parameter(name):
                self.declare_parameter(name, value)
        return config

    def _load_runtime(self, model_dir: str):
        from ebgan_mdn_ros.runtime.policy_runtime import PolicyRuntime  # onnxruntime is loaded with the first model
        if not hasattr(self, "_model_roots"):  # the start-up model: its folder becomes a root by default
            self._model_roots = model_roots(self.config.allowed_model_roots, model_dir)
        return PolicyRuntime(model_dir, self.config.runtime_config(), allowed_roots=self._model_roots)

    def _validate_runtime(self, runtime) -> None:
        """On the swap worker (or at start-up): can this node serve ``runtime``? Raises ModelRejected."""
        manifest = runtime.manifest
        try:
            StateAssembler(manifest.condition_names, self.config.joint_names)
        except ValueError as exc:
            raise ModelRejected(f"{exc} (model conditions {list(manifest.condition_names)})") from None
        if manifest.action_kind == "delta" and not self.config.position_lower:
            raise ModelRejected("a delta-action model needs the position_lower/position_upper parameters")
        running_chunk = self.runtime.manifest.chunk if self.runtime is not None else None
        if self.runtime is not None and manifest.chunk != running_chunk:
            raise ModelRejected(f"chunk: the model's {manifest.chunk} differs from the running model's "
                                f"{running_chunk} (the control timer and the plan are built for it: restart)")
        if manifest.chunk is not None:
            chunk_timing(manifest, self.config)
        # A swap must not turn absolute targets into deltas, nor be slower than the loop it joins;
        # probes run at the training condition mean. The condition layout may change: the node
        # rebuilds its assembler for the new model. At start-up the latency is not judged (200 probes
        # on a busy machine are noisy, and there is no running model to keep).
        swapping = self.runtime is not None
        make_runtime_validator(
            self.config.joint_names, action_kind=self.runtime.manifest.action_kind if swapping else None,
            latency_budget_s=self._swap_budget_s() if swapping else None)(runtime)

    def _swap_budget_s(self) -> float | None:
        """The p99 latency a new model must meet: the configured budget, else the control period, else
        (event-driven) the measured period of the joint states it will answer; None before any state."""
        configured = self.config.swap_budget_s
        if configured is not None:
            return configured
        period = self._state_period.summary()["p50_us"] * 1e-6
        return period if period > 0 else None

    def _safety_config(self, manifest) -> SafetyConfig:
        c = self.config
        if c.position_lower:
            return c.safety_config(c.position_lower, c.position_upper)
        if manifest.action_kind != "delta":
            return c.safety_config(tuple(manifest.action_low), tuple(manifest.action_high))
        raise ModelRejected("a delta-action model needs position_lower/position_upper parameters")

    def _use_model(self, runtime) -> None:
        """Adopt ``runtime`` (start-up or swap; between decisions, never inside one)."""
        self.runtime = runtime
        if getattr(self, "_loop", None) is None:
            # The limits are fixed here, from the parameters or the first model's box: they bound
            # every later model, so a swap to a model with a wider box cannot widen them.
            safety = self._safety_config(runtime.manifest)
            if runtime.manifest.chunk is not None:
                self._chunks = ChunkExecution(runtime, self.config, safety)
                self._loop = self._chunks.loop
            else:
                self._loop = DecisionLoop(runtime, self.config.joint_names, safety)
        else:
            self._loop.adopt(runtime)  # a swap continues from the last command

    def _set_model_fields(self) -> None:
        manifest = self.runtime.manifest
        self._decision_msg.model_version = str(manifest.model_version)
        self._decision_msg.model_sha256 = conversions.graph_sha256(manifest, "generator")
        self._decision_msg.joint_names = list(self.config.joint_names)
        self._candidates_msg.action_names = list(manifest.action_names)

    def _publish_model_info(self) -> None:
        # resolved once per model change, not on every diagnostics tick (realpath touches the filesystem)
        self._model_label = model_label(self._swapper.active_dir, self._model_roots)
        # Topics are readable by any peer: names an operator recognises, no absolute paths (the log has them).
        self._model_info_pub.publish(conversions.model_info(
            self.get_clock().now().to_msg(), self._model_label,
            self.runtime.manifest, self.runtime.providers, self.config.num_candidates,
            without_paths(self._swapper.last_result)))

    def _poll_swap(self) -> None:
        event = self._swapper.poll()
        if event is not None:
            self._on_swap(event)

    def _on_swap(self, event: SwapEvent) -> None:
        if event.ok:
            self._use_model(self._swapper.active)
            self.runtime.reset()
            self._set_model_fields()
            self.get_logger().info(f"model {event.kind}: now serving {event.model_dir} "
                                   f"(version {self.runtime.manifest.model_version})")
        else:
            self.get_logger().error(f"model {event.model_dir} rejected, still serving "
                                    f"{self._swapper.active_dir}: {event.reason}")
            self._restore_model_parameter()
        self._publish_model_info()

    def _restore_model_parameter(self) -> None:
        """After a refused swap, model_directory names the model still serving again, so `ros2 param get`
        and ~/reload do not point at the refused one. (After a rollback it keeps naming the requested
        model: ~/reload brings it back.) From a one-shot timer: this may run inside a callback."""
        if str(resolve_model_directory(self.get_parameter("model_directory").value)) == self._swapper.active_dir:
            return

        def restore():
            self.destroy_timer(timer)
            self.set_parameters([Parameter("model_directory", value=self._swapper.active_dir)])
        timer = self.create_timer(0.0, restore)

    # -- inputs ------------------------------------------------------------------------------------
    def _on_state(self, msg: JointState) -> None:
        received = time.perf_counter()
        if self._state is not None:
            self._state_period.add(received - self._state_received)
        self._state, self._state_received = msg, received
        if self.config.event_driven:
            self._decide()

    def _on_goal(self, msg: Float64MultiArray) -> None:
        self._goal = conversions.multiarray_values(msg)

    # -- one decision --------------------------------------------------------------------------------
    def _decide(self) -> None:
        event = self._swapper.poll()
        if event is not None:
            self._on_swap(event)
        msg = self._state
        if not self._running or msg is None or msg is self._answered:
            return
        self._answered = msg
        now = time.perf_counter()
        result = self._loop.step(msg.name, msg.position, msg.velocity, self._goal, self._state_age(msg), now)
        if result.rejected:
            self._reject(result.rejected)
            return
        decision = result.decision
        if result.note in SEED_NOTES:  # seeding: decided, nothing commanded
            self.seed_steps += 1
            if result.note == NOTE_SEED_OUT_OF_LIMITS:
                self.get_logger().warning("no command: a joint state outside the position limits cannot seed "
                                          "the episode", throttle_duration_sec=2.0)
        self._seed_note = result.note if result.note in SEED_NOTES else ""
        note, published = result.note, None
        if self._dry_run:
            note = f"dry_run,{note}" if note else "dry_run"
        elif result.command is not None:
            self._publish_command(result.command)
            published = result.command
        latency = time.perf_counter() - self._state_received
        self._count_decision(decision, now, latency)
        # Telemetry is decimated on request (it is I/O on the control path); a hold or a seeding step is
        # never hidden.
        if ((self.decisions - 1) % self.config.decision_publish_every and not result.held and decision.trusted
                and not self._seed_note):
            return
        self._publish_telemetry(msg.header.stamp, decision, published, result.held, note, latency)

    def _count_decision(self, decision, now_s: float, latency_s: float) -> None:
        self._last_decision = decision
        self.decisions += 1
        self.rate.tick(now_s)
        self.latency.add(latency_s)
        self.inference.add(decision.inference_seconds)

    def _publish_telemetry(self, stamp, decision, published, held: bool, note: str, latency_s: float) -> None:
        """~/candidates (if enabled) and ~/decision, stamped with the answered state's stamp."""
        if self.config.publish_candidates:
            self._candidates_pub.publish(conversions.fill_candidates(
                self._candidates_msg, stamp, self._decision_msg.model_version, decision))
        self._decision_pub.publish(conversions.fill_decision(
            self._decision_msg, stamp, decision, decision.action, published, held, note, latency_s))

    # -- chunks (a chunk model; docs/chunks.md) -----------------------------------------------------
    def _chunk_tick(self) -> None:
        """The control timer for a chunk model. Never waits: inference runs on the worker."""
        chunks = self._chunks
        if not chunks.worker.busy:  # a swap never lands while the worker is inside the runtime
            event = self._swapper.poll()
            if event is not None:
                self._on_swap(event)
        result = chunks.worker.poll()
        now_ns = time.perf_counter_ns()
        if result is not None and self._running:
            self._on_chunk(result, now_ns)
        msg = self._state
        if not self._running or msg is None:
            return
        age = self._state_age(msg)
        if not chunks.trajectory and not self._dry_run:
            reading = self._loop.assembler.read_joints(msg.name, msg.position, msg.velocity)
            if not isinstance(reading, Rejected):
                command = self._loop.tick(now_ns * 1e-9, reading.position, age)
                if command is not None:
                    self._command_pub.publish(conversions.forward_command(self._command_msg, command))
        if msg is self._answered or chunks.worker.busy or not self._loop.due(now_ns, chunks.latency_ns):
            return
        self._answered = msg
        request = self._loop.request(msg.name, msg.position, msg.velocity, self._goal, age, now_ns)
        if isinstance(request, str):
            if request in SEED_NOTES or request == NOTE_STALE:
                self.seed_steps += 1
                self._seed_note = request
            else:
                self._reject(request)
            return
        self._seed_note = ""
        if chunks.worker.submit(request):
            chunks.request_episode = chunks.episode

    def _on_chunk(self, result, now_ns: int) -> None:
        chunks = self._chunks
        if result.error is not None:
            chunks.failures += 1
            chunks.last_failure = f"{type(result.error).__name__}: {result.error}"
            self.get_logger().error(f"chunk inference failed: {chunks.last_failure}", throttle_duration_sec=2.0)
            return
        request, decision = result.request, result.value
        if chunks.request_episode != chunks.episode:  # asked before ~/start began this episode: stale
            return
        state_age = self._state_age(self._state) if self._state is not None else math.inf
        points = self._loop.accept(request, decision, now_ns, request.position, state_age)
        latency = (now_ns - request.observed_ns) * 1e-9
        chunks.measured(now_ns - request.observed_ns)
        published = None
        if points is not None and not self._dry_run:
            self._command_pub.publish(chunks.fill(points))
            published = points.positions[0]
        self._count_decision(decision, now_ns * 1e-9, latency)
        stamp = self._state.header.stamp if self._state is not None else self.get_clock().now().to_msg()
        note = "dry_run" if self._dry_run else ("untrusted" if not decision.trusted else "")
        self._publish_telemetry(stamp, decision, published, False, note, latency)

    def _publish_command(self, command: np.ndarray) -> None:
        if self.config.output_mode == "forward_command":
            self._command_pub.publish(conversions.forward_command(self._command_msg, command))
        else:
            self._command_pub.publish(conversions.trajectory_command(self._command_msg, command))

    def _state_age(self, msg: JointState) -> float:
        """now - stamp, signed: a stamp from the future (a robot clock ahead of ours) stays visible, and the
        safety filter refuses one beyond the timeout instead of trusting a watchdog it cannot time."""
        stamp = conversions.stamp_seconds(msg.header.stamp)
        if stamp > 0:
            return self.get_clock().now().nanoseconds * 1e-9 - stamp
        return time.perf_counter() - self._state_received  # unstamped: judge by receipt alone

    def _reject(self, reason: str) -> None:
        self.states_rejected += 1
        self._last_reject = reason
        self.get_logger().warning(f"no command: {reason}", throttle_duration_sec=2.0)

    # -- services and parameters ---------------------------------------------------------------------
    def _srv_start(self, request, response):
        """Start (or restart) deciding as a new episode: no kept mode, seeded from the next measured state."""
        self._loop.new_episode()
        if self._chunks is not None:
            self._chunks.episode += 1
        self._running, self._answered = True, self._state
        response.success, response.message = True, "deciding" + (" (dry run: no commands)" if self._dry_run else "")
        return response

    def _srv_stop(self, request, response):
        self._running = False  # publishing nothing: a position controller holds the last command
        response.success, response.message = True, "stopped; the controller holds the last command"
        if self._chunks is not None and self._chunks.trajectory and not self._dry_run:
            # a trajectory controller would finish the running chunk: replace it with the point it is at
            hold = self._loop.hold(time.perf_counter_ns())
            if hold is not None:
                self._command_pub.publish(self._chunks.fill(hold))
                response.message = "stopped; the trajectory controller holds the point it was at"
        return response

    def _srv_reset(self, request, response):
        self._loop.reset_episode()
        self._answered = None
        response.success, response.message = True, "runtime reset; next command starts from the measured position"
        return response

    def _srv_reload(self, request, response):
        if self.config.lock_runtime_changes:
            response.success, response.message = False, LOCKED
            return response
        try:
            directory = str(resolve_model_directory(self.get_parameter("model_directory").value))
        except OSError as exc:  # the directory changed under us since the parameter was set
            response.success, response.message = False, f"refused: model_directory cannot be checked ({exc.strerror})"
            return response
        response.success = self._swapper.request(directory)
        response.message = f"loading {directory}" if response.success else "refused: another model is still loading"
        return response

    def _srv_rollback(self, request, response):
        if self.config.lock_runtime_changes:
            response.success, response.message = False, LOCKED
            return response
        event = self._swapper.rollback()
        self._on_swap(event)
        response.success, response.message = event.ok, event.result
        return response

    def _check_parameter_change(self, parameters) -> SetParametersResult:
        for p in parameters:
            if p.name not in LIVE_PARAMETERS:
                return SetParametersResult(successful=False, reason=f"{p.name} is read at start-up: restart the node")
            if self.config.lock_runtime_changes and p.value != self.get_parameter(p.name).value:
                return SetParametersResult(successful=False, reason=f"{p.name}: {LOCKED}")
            if p.name == "model_directory":
                if not isinstance(p.value, str) or not p.value:
                    return SetParametersResult(successful=False, reason=f"model_directory: {p.value!r} is not a path")
                # The parameter names what serves or what is loading, never a request that was dropped.
                if self._swapper.busy:
                    return SetParametersResult(successful=False,
                                               reason="model_directory: refused, another model is still loading")
                try:
                    resolve_model_directory(p.value)
                except (OSError, ValueError) as exc:  # e.g. a name too long, a directory we may not search
                    return SetParametersResult(successful=False, reason=f"model_directory: cannot be checked "
                                                                        f"({type(exc).__name__}: {exc.strerror if isinstance(exc, OSError) else exc})")
            if p.name == "dry_run" and not isinstance(p.value, bool):
                return SetParametersResult(successful=False, reason=f"dry_run: {p.value!r} is not true/false")
        if getattr(self, "_apply_in_check", False):
            self._apply_parameter_change(parameters)
        return SetParametersResult(successful=True)

    def _apply_parameter_change(self, parameters) -> None:
        for p in parameters:
            if p.name == "model_directory":
                directory = str(resolve_model_directory(p.value))
                if directory == self._swapper.active_dir:
                    continue  # already serving (or set back after a refusal); ~/reload reloads it
                if not self._swapper.request(directory):
                    self.get_logger().error(f"model_directory {directory}: refused, another model is still loading")
            elif p.name == "dry_run" and p.value != self._dry_run:
                self._dry_run = p.value
                self._loop.reseed()
                self.get_logger().warning("dry run: no commands" if p.value else "commanding the arm")

    # -- diagnostics -----------------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        c, manifest, decision = self.config, self.runtime.manifest, self._last_decision
        now = time.perf_counter()
        latency, inference = self.latency.summary(), self.inference.summary()
        state_age = self._state_age(self._state) if self._state is not None else math.inf
        achieved = self.rate.rate_hz(now)
        target = c.control_rate_hz
        if self._chunks is not None:  # one decision per n_exec steps of the chunk, by design
            timing = self._chunks.timing
            target = 1e9 / (timing.n_exec * timing.dt_ns)
        level, message = DiagnosticStatus.OK, "deciding"
        if not self._running:
            level, message = DiagnosticStatus.OK, "stopped"
        elif self._state is None or not abs(state_age) <= c.state_timeout_s:
            level, message = DiagnosticStatus.WARN, "no fresh joint state"
        elif self.states_rejected and self._last_reject and self.decisions == 0:
            level, message = DiagnosticStatus.WARN, f"states rejected: {self._last_reject}"
        elif target > 0 and not achieved >= 0.9 * target:
            level, message = DiagnosticStatus.WARN, f"rate {achieved:.1f} Hz below target {target:g} Hz"
        values = {
            "target_rate_hz": target if target > 0 else "event-driven", "achieved_rate_hz": achieved,
            "latency_p50_us": latency["p50_us"], "latency_p99_us": latency["p99_us"],
            "latency_max_us": latency["max_us"], "overruns": latency["overruns"],
            "inference_p50_us": inference["p50_us"], "inference_p99_us": inference["p99_us"],
            "decisions": self.decisions, "state_age_s": state_age, "states_rejected": self.states_rejected,
            "last_reject_reason": self._last_reject, "seed": self._seed_note or "seeded",
            "dry_run": self._dry_run, "running": self._running,
            "model_directory": self._model_label,
            "model_version": manifest.model_version,
            "model_sha256": conversions.graph_sha256(manifest, "generator"), "execution_providers": ",".join(self.runtime.providers),
            "last_swap_result": without_paths(self._swapper.last_result),
            "best_energy": float(decision.energy) if decision is not None else math.nan,
            "energy_gap": float(decision.energy_gap) if decision is not None else math.nan,
        }
        values.update({f"safety_{k}": v for k, v in self._loop.safety_counters.items()})
        if self._chunks is not None:
            values.update(self._chunks.values())
        status = conversions.diagnostic_status(f"{self.get_name()}: policy", self.get_fully_qualified_name(),
                                               level, message, values)
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(array)

    def destroy_node(self):
        self._swapper.close()
        if self._chunks is not None:
            self._chunks.close()
        super().destroy_node()


def main(argv: list[str] | None = None) -> int:
    """Exit 0 on SIGINT/SIGTERM; 2 with one line for a configuration or model it cannot run with
    (a bad --params-file included): node/process.py decides both for every node process."""
    from ebgan_mdn_ros.node.process import run_nodes  # here, so the module's imports stay the class's
    code = run_nodes(NODE_NAME, PolicyNode, argv, executor=lambda nodes: nodes[0].config.executor,
                     startup_errors=(ConfigError, ModelRejected, ValueError))
    if code:
        raise SystemExit(code)  # an exit code even from wrappers that ignore main's return value
    return code


if __name__ == "__main__":
    sys.exit(main())
