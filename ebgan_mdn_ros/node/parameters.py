"""The policy node's parameters: one frozen dataclass, validated where it is built.

ROS parameters are the node's only runtime configuration (config/*.yaml under `/**: ros__parameters`).
An unknown parameter, a wrong type or an out-of-range value stops start-up with an error that names
the key and the value. Units are in the field comments and in the shipped YAML files.
"""
from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from ebgan_mdn_ros.config_base import ConfigError, from_dict, require
from ebgan_mdn_ros.control.safety_filter import SafetyConfig
from ebgan_mdn_ros.paths import find_in_share
from ebgan_mdn_ros.runtime.runtime_config import RuntimeConfig

# The runtime's and the safety filter's knobs keep their defaults and their checks in their own
# dataclasses; the node exposes them as flat ROS parameters under the same names.
RUNTIME, SAFETY = RuntimeConfig, SafetyConfig

OUTPUT_MODES = ("forward_command", "joint_trajectory")
EXECUTORS = ("events", "single_threaded")
ENERGY_THRESHOLD_WORDS = ("model", "none")
# Declared by rclpy itself on every node; not ours to validate.
ROS_BUILTIN_PARAMETERS = ("use_sim_time", "start_type_description_service")
REQUIRED = ("model_directory", "joint_names")


@dataclass(frozen=True)
class NodeConfig:
    model_directory: str                    # a model dir (manifest + ONNX); relative: cwd, then share/ebgan_mdn_ros
    joint_names: tuple[str, ...]            # the controller's joints, in its command order
    output_mode: str = "forward_command"    # forward_command | joint_trajectory
    controller_name: str = "forward_position_controller"  # commands go to <controller_name>/commands or /joint_trajectory
    state_topic: str = "joint_states"       # sensor_msgs/JointState
    goal_topic: str = "goal"                # std_msgs/Float64MultiArray, read when the model has goal.<i> conditions
    control_rate_hz: float = 50.0           # Hz; 0 = event-driven (decide on every new joint state)
    trajectory_time_from_start_s: float = 0.1  # s, time_from_start of the one point sent in joint_trajectory mode
    executor: str = "events"                # events | single_threaded (see README: measured)
    # policy runtime (defaults and checks: ebgan_mdn_ros.runtime.runtime_config.RuntimeConfig)
    num_candidates: int = RUNTIME.num_candidates  # K candidate actions per decision
    selection: str = RUNTIME.selection      # mode_first | lowest_energy | importance
    continuity_weight: float = RUNTIME.continuity_weight  # 1/rad^2: weight of ||candidate - previous action||^2 in the score
    stickiness: bool = RUNTIME.stickiness   # keep the previous decision's mixture component while plausible
    keep_mode_min_weight: float = RUNTIME.keep_mode_min_weight  # mixture weight below which a kept component is let go
    energy_threshold: float | str = "model"  # energy above which a decision is untrusted (dimensionless);
                                            # "model": the manifest's suggestion (none if it has none); "none"
    temperature: float = RUNTIME.temperature  # importance-resampling temperature (dimensionless)
    seed: int = RUNTIME.seed                # candidate noise seed (reproducible decisions)
    execution_providers: tuple[str, ...] = RUNTIME.providers
    intra_op_threads: int = RUNTIME.intra_op_threads
    inter_op_threads: int = RUNTIME.inter_op_threads
    splice_weight: float = RUNTIME.splice_weight  # 1/rad^2: chunk models, weight of the continuity with the running plan
    # multi-level and diffusion models (docs/method.md sections 10, 11; other models refuse them)
    annealing_rule: str = RUNTIME.annealing_rule  # "" | annealed | annealed_mode_first: SMC down the noise ladder
    annealing_start_level: int = RUNTIME.annealing_start_level  # ladder level SMC starts from (0 = the noisiest)
    ddim_steps: int = RUNTIME.ddim_steps    # diffusion: DDIM steps per decision; 0 = the manifest's
    # chunk models (docs/chunks.md; a one-step model ignores these)
    chunk_mean_candidate: bool = RUNTIME.chunk_mean_candidate  # one candidate is the kept component's mean chunk
    chunk_n_exec: int = 0                   # steps of a chunk executed before the next one; 0 = the model's n_exec
    chunk_min_lead_s: float = 0.02          # s: chunk steps due sooner than this after the chunk is ready are dropped
    temporal_ensembling: bool = False       # average overlapping chunks instead of splicing (comparison only:
                                            # it averages modes)
    ensemble_decay: float = 0.01            # temporal ensembling: weight exp(-decay * age) per chunk (ACT's m)
    swap_latency_budget_s: float = 0.0      # s: p99 probe latency a swapped-in model must meet; 0 = the
                                            # control period (no check when event-driven)
    # safety (defaults and checks: ebgan_mdn_ros.control.safety_filter.SafetyConfig)
    state_timeout_s: float = SAFETY.state_timeout_s  # s; an older joint state holds the arm
    state_queue_depth: int = 1              # joint states held for the node (best effort). 1 = always the
                                            # freshest. Event-driven at a high rate, N > 1 answers every
                                            # state through a stall of up to N periods (a model load holds
                                            # Python for ~10 ms), late instead of never
    position_lower: tuple[float, ...] = ()  # rad or m per joint; empty = the model's action box (absolute models)
    position_upper: tuple[float, ...] = ()
    max_step: float = SAFETY.max_step       # rad or m per tick: largest command change
    max_velocity: float = SAFETY.max_velocity  # rad/s or m/s
    hold_on_untrusted: bool = SAFETY.hold_on_untrusted  # an untrusted decision holds the previous command
    seed_confirmations: int = SAFETY.seed_confirmations  # consecutive agreeing joint states before one seeds an episode
    dry_run: bool = True                    # decide and publish diagnostics but send no command (real-arm default)
    lock_runtime_changes: bool = False      # true: refuse arming (dry_run) and model changes at run time: any
                                            # peer on the DDS domain can set parameters and call services
    allowed_model_roots: tuple[str, ...] = ()  # directories models may load from (real paths); empty: the
                                            # package's models/ and the folder holding the start-up model
    autostart: bool = True                  # start deciding at start-up; false: wait for ~/start
    # observability
    publish_candidates: bool = True         # the K x A candidates message with each published decision
    decision_publish_every: int = 1         # publish ~/decision (and ~/candidates) for every Nth decision;
                                            # held and untrusted ones always. At 1 kHz, K = 16, N = 10
                                            # saved ~5 % of a core here; more where ~/decision leaves the host
    diagnostics_period_s: float = 1.0       # s between /diagnostics messages
    latency_window: int = 2000              # decisions kept for the latency percentiles

    def __post_init__(self):
        require(bool(self.model_directory), "model_directory", self.model_directory, "a model directory path")
        require(len(self.joint_names) > 0 and len(set(self.joint_names)) == len(self.joint_names),
                "joint_names", list(self.joint_names), "a non-empty list of unique joint names")
        require(all(self.joint_names), "joint_names", list(self.joint_names), "no empty names")
        require(self.output_mode in OUTPUT_MODES, "output_mode", self.output_mode, f"one of {OUTPUT_MODES}")
        require(bool(self.controller_name) and " " not in self.controller_name, "controller_name",
                self.controller_name, "a controller (topic namespace) name")
        require(self.executor in EXECUTORS, "executor", self.executor, f"one of {EXECUTORS}")
        require(math.isfinite(self.control_rate_hz) and self.control_rate_hz >= 0, "control_rate_hz",
                self.control_rate_hz, "a rate in Hz >= 0 (0 = event-driven)")
        require(self.trajectory_time_from_start_s > 0, "trajectory_time_from_start_s",
                self.trajectory_time_from_start_s, "> 0 s")
        require(self.energy_threshold in ENERGY_THRESHOLD_WORDS if isinstance(self.energy_threshold, str)
                else math.isfinite(self.energy_threshold), "energy_threshold", self.energy_threshold,
                f"a finite number or one of {ENERGY_THRESHOLD_WORDS}")
        require(len(self.execution_providers) > 0, "execution_providers", list(self.execution_providers),
                "at least one ONNX Runtime execution provider")
        require(math.isfinite(self.swap_latency_budget_s) and self.swap_latency_budget_s >= 0,
                "swap_latency_budget_s", self.swap_latency_budget_s, ">= 0 s (0 = the control period)")
        require(isinstance(self.chunk_n_exec, int) and 0 <= self.chunk_n_exec <= 10000, "chunk_n_exec",
                self.chunk_n_exec, "0 (the model's n_exec) or a number of chunk steps")
        require(math.isfinite(self.chunk_min_lead_s) and 0 <= self.chunk_min_lead_s < 10, "chunk_min_lead_s",
                self.chunk_min_lead_s, "in [0, 10) s")
        require(math.isfinite(self.ensemble_decay) and self.ensemble_decay >= 0, "ensemble_decay",
                self.ensemble_decay, ">= 0")
        require(1 <= self.state_queue_depth <= 1000, "state_queue_depth", self.state_queue_depth, "1..1000")
        for key in ("position_lower", "position_upper"):
            value = getattr(self, key)
            require(len(value) in (0, len(self.joint_names)), key, list(value),
                    f"empty or {len(self.joint_names)} values (one per joint in joint_names)")
        require(len(self.position_lower) == len(self.position_upper), "position_upper", list(self.position_upper),
                "as many values as position_lower")
        require(all(lo < hi for lo, hi in zip(self.position_lower, self.position_upper)), "position_lower",
                list(self.position_lower), f"below position_upper {list(self.position_upper)}")
        require(1 <= self.decision_publish_every <= 10000, "decision_publish_every", self.decision_publish_every,
                "1..10000 (1 = every decision)")
        require(self.diagnostics_period_s > 0, "diagnostics_period_s", self.diagnostics_period_s, "> 0 s")
        require(self.latency_window >= 10, "latency_window", self.latency_window, ">= 10")
        self.runtime_config()  # the runtime's own checks, naming the same keys
        self.safety_config(self.position_lower or (-math.inf,) * len(self.joint_names),
                           self.position_upper or (math.inf,) * len(self.joint_names))

    def safety_config(self, lower: tuple[float, ...], upper: tuple[float, ...]) -> SafetyConfig:
        """The safety filter's configuration for these position limits (the node picks them at start-up)."""
        return SafetyConfig(position_lower=lower, position_upper=upper, max_step=self.max_step,
                            max_velocity=self.max_velocity, state_timeout_s=self.state_timeout_s,
                            hold_on_untrusted=self.hold_on_untrusted, seed_confirmations=self.seed_confirmations)

    @property
    def command_topic(self) -> str:
        suffix = "commands" if self.output_mode == "forward_command" else "joint_trajectory"
        return f"{self.controller_name}/{suffix}"

    @property
    def event_driven(self) -> bool:
        return self.control_rate_hz == 0

    @property
    def swap_budget_s(self) -> float | None:
        if self.swap_latency_budget_s > 0:
            return self.swap_latency_budget_s
        return None if self.event_driven else 1.0 / self.control_rate_hz

    def runtime_config(self):
        return RuntimeConfig(
            num_candidates=self.num_candidates, selection=self.selection,
            continuity_weight=self.continuity_weight, stickiness=self.stickiness,
            keep_mode_min_weight=self.keep_mode_min_weight,
            energy_threshold=self._energy_threshold(),
            temperature=self.temperature, seed=self.seed, providers=tuple(self.execution_providers),
            splice_weight=self.splice_weight, chunk_mean_candidate=self.chunk_mean_candidate,
            annealing_rule=self.annealing_rule, annealing_start_level=self.annealing_start_level,
            ddim_steps=self.ddim_steps,
            intra_op_threads=self.intra_op_threads, inter_op_threads=self.inter_op_threads)


    def _energy_threshold(self) -> float | None:
        if self.energy_threshold == "model":
            return None  # the runtime then takes the manifest's calibrated suggestion
        if self.energy_threshold == "none":
            return sys.float_info.max  # finite, as the runtime requires, and above any energy
        return float(self.energy_threshold)


def config_from_parameters(parameters: Mapping[str, Any]) -> NodeConfig:
    """NodeConfig from a flat {name: value} of ROS parameters; None means "not given" (the default)."""
    given = {k: v for k, v in parameters.items()
             if v is not None and k not in ROS_BUILTIN_PARAMETERS and not k.startswith("qos_overrides.")}
    missing = [k for k in REQUIRED if k not in given]
    if missing:
        raise ConfigError(f"missing required parameter(s) {missing} (set them in the YAML file or with -p)")
    # ROS hands arrays back as lists or array.array; the dataclass wants tuples of plain values.
    given = {k: list(v) if hasattr(v, "__len__") and not isinstance(v, str) else v for k, v in given.items()}
    return from_dict(NodeConfig, given)


def parameter_values(config: NodeConfig) -> dict[str, Any]:
    """The effective value of every parameter, as ROS can declare it (lists; empty lists left out,
    since a ROS parameter cannot be declared from an empty list without a type)."""
    values = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, tuple):
            if not value:
                continue
            value = list(value)
        values[f.name] = value
    return values


def load_parameter_file(path: str | Path, node_name: str) -> dict[str, Any]:
    """The flat parameters a ROS 2 params file gives ``node_name`` (`/**` first, then the node's own)."""
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    merged: dict[str, Any] = {}
    for key in ("/**", node_name, f"/{node_name}"):
        section = data.get(key)
        if section is None:
            continue
        if not isinstance(section, dict) or "ros__parameters" not in section:
            raise ConfigError(f"{path}: section {key!r} has no 'ros__parameters'")
        merged.update(_flatten(section["ros__parameters"] or {}))
    return merged


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def resolve_model_directory(value: str) -> Path:
    """An existing directory for ``value``: absolute, relative to cwd, or relative to the package share."""
    return find_in_share(value, want_directory=True)
