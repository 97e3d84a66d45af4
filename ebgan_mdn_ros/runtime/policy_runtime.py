"""PolicyRuntime: one call per control step, numpy in, Decision out. No rclpy, no torch.

A step (docs/method.md section 5): one generator forward gives the mixture; K candidates are drawn with
seeded noise and scored with one batched energy forward; one is chosen by the rule in selection.py
("mode_first", the default, keeps the previous decision's component while its weight stays >=
keep_mode_min_weight when stickiness is on). A decision whose chosen energy is above the threshold
(or not finite) is marked untrusted; the caller holds.

With the fused graph (decision.onnx) a step is one session run: sampling happens inside the graph
from noise passed in, so with the CUDA provider it stays on the device. Inputs and outputs are bound
once to preallocated buffers (IO binding); the hot path does no I/O and allocates only small arrays.
Not thread-safe: one runtime per control loop.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ebgan_mdn_ros.runtime import sampler, selection
from ebgan_mdn_ros.config_base import ConfigError
from ebgan_mdn_ros.runtime.manifest import Manifest, load_manifest
from ebgan_mdn_ros.runtime.runtime_config import RuntimeConfig
from ebgan_mdn_ros.runtime.model_loader import LoadedModel, ModelValidationError, check_model_root, load_model

__all__ = ["RuntimeConfig", "Decision", "PolicyRuntime", "ModelValidationError"]


@dataclass
class Decision:
    action: np.ndarray  # [A] float64, raw units; for action_kind "delta" this is the delta
    candidates: np.ndarray  # [K,A] float32
    energies: np.ndarray  # [K] float32, lower is better
    components: np.ndarray  # [K] int64, mixture component of each candidate
    chosen_index: int
    chosen_component: int
    trusted: bool  # chosen energy finite and <= threshold
    energy: float  # energy of the chosen candidate
    energy_gap: float  # best energy of another component minus the chosen one; nan if no other component
    inference_seconds: float


class PolicyRuntime:
    def __init__(self, model_dir: str | Path, config: RuntimeConfig | None = None, *,
                 allowed_roots: Sequence[str | Path] | None = None):
        config = RuntimeConfig() if config is None else config
        if not isinstance(config, RuntimeConfig):
            raise ConfigError(f"config: expected a RuntimeConfig, got {type(config).__name__}")
        self.config = config
        if allowed_roots is not None:  # before any file of the model is read
            model_dir = check_model_root(model_dir, allowed_roots)
        has_decision = _manifest_of(model_dir).decision is not None
        self.uses_fused_graph = config.use_fused_graph and has_decision
        roles = ("decision",) if self.uses_fused_graph else ("generator", "energy")
        self._model: LoadedModel = load_model(model_dir, config.providers, config.intra_op_threads,
                                               config.inter_op_threads, roles=roles, probe=True,
                                               allowed_roots=allowed_roots)
        self.manifest: Manifest = self._model.manifest
        self.providers: list[str] = list(self._model.providers)
        self.model_dir = Path(model_dir)
        self.energy_threshold = (config.energy_threshold if config.energy_threshold is not None
                                 else self.manifest.energy_threshold)
        self._allocate()
        self._rng = np.random.default_rng(config.seed)
        self._previous_component = -1

    # -- set-up ---------------------------------------------------------------------------------

    def _allocate(self) -> None:
        k, a = self.config.num_candidates, self.manifest.action_size
        c, m = self.manifest.condition_size, self.manifest.num_components
        f32 = np.float32
        self._condition = np.zeros((1, c), f32)
        self._noise = np.zeros((1, k, a), f32)
        self._uniforms = np.zeros((1, k), f32)
        self._previous = np.full((1,), -1, np.int64)
        self._keep_min_weight = np.array([self.config.keep_mode_min_weight], f32)
        self._candidates = np.zeros((1, k, a), f32)
        self._energies = np.zeros((1, k), f32)
        self._components = np.zeros((1, k), np.int64)
        self._logits = np.zeros((1, m), f32)
        self._means = np.zeros((1, m, a), f32)
        self._scales = np.ones((1, m, a), f32)
        self._scores = np.zeros((1, k), np.float64)
        self._previous_action = np.zeros((1, a), np.float64)
        self._selection_uniform = np.zeros((1,), np.float64)
        self._low = np.asarray(self.manifest.action_low, f32)
        self._high = np.asarray(self.manifest.action_high, f32)
        sessions = self._model.sessions
        if self.uses_fused_graph:
            self._decision_run = self._bind(sessions["decision"], {
                "condition": self._condition, "noise": self._noise, "uniforms": self._uniforms,
                "previous_component": self._previous, "keep_min_weight": self._keep_min_weight}, {
                "candidates": self._candidates, "energies": self._energies, "components": self._components,
                "logits": self._logits, "means": self._means, "scales": self._scales})
        else:
            self._generator_run = self._bind(sessions["generator"], {"condition": self._condition}, {
                "logits": self._logits, "means": self._means, "scales": self._scales})
            self._energy_run = self._bind(sessions["energy"], {
                "condition": self._condition, "actions": self._candidates}, {"energy": self._energies})

    @staticmethod
    def _bind(session, inputs: dict, outputs: dict):
        """Bind host buffers once; each run reads and writes them in place.

        On the CPU provider this is zero-copy. On CUDA, onnxruntime copies the (small) inputs to the
        device and the outputs back; everything in between, sampling included, runs on the device.
        """
        binding = session.io_binding()
        for name, array in inputs.items():
            binding.bind_input(name, "cpu", 0, array.dtype, list(array.shape), array.ctypes.data)
        for name, array in outputs.items():
            binding.bind_output(name, "cpu", 0, array.dtype, list(array.shape), array.ctypes.data)

        def run() -> None:
            session.run_with_iobinding(binding)
        return run

    # -- control step ---------------------------------------------------------------------------

    def decide(self, condition: np.ndarray, previous_action: np.ndarray | None = None) -> Decision:
        start = time.perf_counter()
        condition = np.asarray(condition)
        if condition.shape != (self.manifest.condition_size,):
            raise ValueError(f"condition has shape {condition.shape}, the model reads "
                             f"({self.manifest.condition_size},) = {list(self.manifest.condition_names)}")
        self._condition[0] = condition
        rule = self.config.selection
        # The same draws in the same order every step, whatever the path, so a seed fixes the sequence.
        self._rng.random(out=self._uniforms[0], dtype=np.float32)
        self._rng.standard_normal(out=self._noise[0], dtype=np.float32)
        self._selection_uniform[0] = self._rng.random()
        self._previous[0] = self._previous_component if self.config.stickiness else -1
        selection.graph_inputs(rule, self._uniforms, self._previous)
        if self.uses_fused_graph:
            self._decision_run()
        else:
            self._two_session_step(rule)

        with_continuity = self.config.continuity_weight > 0 and previous_action is not None
        if with_continuity:
            self._previous_action[0] = previous_action
        log_q = None
        if rule == "importance":
            log_q = sampler.mixture_log_density(self._logits, self._means, self._scales, self._candidates)
        chosen = selection.choose(rule, self._energies, candidates=self._candidates,
                                  previous_action=self._previous_action if with_continuity else None,
                                  continuity_weight=self.config.continuity_weight, log_q=log_q,
                                  uniform=self._selection_uniform, temperature=self.config.temperature,
                                  out=self._scores)
        chosen_index = int(chosen[0])
        chosen_component = int(self._components[0, chosen_index])
        energy = float(self._energies[0, chosen_index])
        trusted = math.isfinite(energy) and (self.energy_threshold is None or energy <= self.energy_threshold)
        # mode first draws every candidate from one component: there is no other to compare with
        gap = math.nan if rule == "mode_first" else float(selection.energy_gap(self._energies, self._components,
                                                                                chosen)[0])
        self._previous_component = chosen_component
        return Decision(
            action=self._candidates[0, chosen_index].astype(np.float64),
            # copies: the buffers are overwritten by the next step, a caller may keep the decision
            candidates=self._candidates[0].copy(), energies=self._energies[0].copy(),
            components=self._components[0].copy(), chosen_index=chosen_index, chosen_component=chosen_component,
            trusted=trusted, energy=energy, energy_gap=gap, inference_seconds=time.perf_counter() - start)

    def _two_session_step(self, rule: str) -> None:
        """The decision graph's work done with two sessions and the reference draw in between."""
        self._generator_run()
        _, components = selection.draw(rule, self._logits, self._means, self._scales, self._uniforms, self._noise,
                                       self._low, self._high, self._previous, self.config.keep_mode_min_weight,
                                       out=self._candidates)
        self._components[...] = components
        self._energy_run()

    def reset(self) -> None:
        """Forget the previous decision's mode (a new episode). The random stream continues."""
        self._previous_component = -1

    def warmup(self, n: int = 20) -> np.ndarray:
        """Run n decisions at the training mean to settle allocations and caches; returns their latencies (s).

        The random stream and the previous mode are restored afterwards, so warming up does not change
        the decision sequence that the seed fixes.
        """
        state, previous = self._rng.bit_generator.state, self._previous_component
        condition = np.asarray(self.manifest.normalization.condition_mean, dtype=np.float32)
        seconds = np.array([self.decide(condition).inference_seconds for _ in range(n)])
        self._rng.bit_generator.state, self._previous_component = state, previous
        return seconds


def _manifest_of(model_dir: str | Path) -> Manifest:
    try:
        return load_manifest(model_dir)
    except ValueError as exc:
        raise ModelValidationError(str(exc)) from None
