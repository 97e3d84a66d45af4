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

Two more kinds of model serve through the same call (docs/method.md sections 10, 11): a multi-level
model with ``annealing=AnnealingConfig(...)`` decides by sequential Monte Carlo down its noise
ladder (runtime/annealing.py: L energy runs of K candidates, two sessions); a diffusion model
(policy_kind "diffusion") by DDIM from one seeded noise vector (runtime/diffusion.py: one denoiser
run per step), one action out, with no energy: its decisions are trusted when finite.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ebgan_mdn_ros.runtime import annealing as annealed, chunk_selection, diffusion, sampler, selection
from ebgan_mdn_ros.runtime.annealing import AnnealingConfig
from ebgan_mdn_ros.config_base import ConfigError
from ebgan_mdn_ros.runtime.manifest import Manifest, load_manifest
from ebgan_mdn_ros.runtime.runtime_config import RuntimeConfig
from ebgan_mdn_ros.runtime.model_loader import LoadedModel, ModelValidationError, check_model_root, load_model

__all__ = ["RuntimeConfig", "AnnealingConfig", "Decision", "PolicyRuntime", "ModelValidationError"]


@dataclass
class Decision:
    """One decision. A diffusion model has no candidates to choose from and no energy: K = 1 (the
    action), energies NaN, component 0, and it is trusted when its action is finite."""
    action: np.ndarray  # [A] float64, raw units; for action_kind "delta" this is the delta. A chunk
    # model's is the whole chunk, flattened step-major: [H*A] (reshape(H, A) for the steps)
    candidates: np.ndarray  # [K,A] float32 ([K,H*A] for a chunk model)
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
                 allowed_roots: Sequence[str | Path] | None = None, annealing: AnnealingConfig | None = None,
                 ddim_steps: int | None = None):
        """annealing: decide by SMC down a multi-level model's ladder (a one-level model anneals over
        its one level: importance resampling). ddim_steps: a diffusion model's DDIM steps (default:
        the manifest's sampling_steps). Both default to the config's annealing_rule /
        annealing_start_level and ddim_steps (what the node sets); given here, they override it
        (the benchmarks sweep them)."""
        config = RuntimeConfig() if config is None else config
        if not isinstance(config, RuntimeConfig):
            raise ConfigError(f"config: expected a RuntimeConfig, got {type(config).__name__}")
        if annealing is None and config.annealing_rule:
            annealing = AnnealingConfig(config.annealing_rule, config.annealing_start_level)
        if ddim_steps is None and config.ddim_steps:
            ddim_steps = config.ddim_steps
        if annealing is not None and not isinstance(annealing, AnnealingConfig):
            raise ConfigError(f"annealing: expected an AnnealingConfig, got {type(annealing).__name__}")
        self.config, self.annealing = config, annealing
        if allowed_roots is not None:  # before any file of the model is read
            model_dir = check_model_root(model_dir, allowed_roots)
        manifest = _manifest_of(model_dir)
        self.is_diffusion = manifest.policy_kind == "diffusion"
        if self.is_diffusion and annealing is not None:
            raise ConfigError("annealing: a diffusion model has no energy ladder to anneal down")
        if not self.is_diffusion and ddim_steps is not None:
            raise ConfigError(f"ddim_steps: {ddim_steps!r} applies to diffusion models only "
                              f"({model_dir} is a {manifest.policy_kind} model)")
        self.uses_fused_graph = config.use_fused_graph and manifest.decision is not None and annealing is None
        roles = (("denoiser",) if self.is_diffusion else ("decision",) if self.uses_fused_graph
                 else ("generator", "energy"))
        self._model: LoadedModel = load_model(model_dir, config.providers, config.intra_op_threads,
                                               config.inter_op_threads, roles=roles, probe=True,
                                               allowed_roots=allowed_roots)
        self.manifest: Manifest = self._model.manifest
        self._check_levels_and_steps(ddim_steps)
        self.providers: list[str] = list(self._model.providers)
        self.model_dir = Path(model_dir)
        self.energy_threshold = (config.energy_threshold if config.energy_threshold is not None
                                 else self.manifest.energy_threshold)
        self._allocate()
        self._rng = np.random.default_rng(config.seed)
        self._previous_component = -1
        self.horizon = self.manifest.horizon

    # -- set-up ---------------------------------------------------------------------------------

    def _check_levels_and_steps(self, ddim_steps: int | None) -> None:
        manifest = self.manifest
        ladder = manifest.noise_ladder if manifest.noise_ladder is not None else (0.0,)
        self._ladder = ladder
        if self.annealing is not None:
            try:
                start = annealed.check_level(self.annealing.start_level, len(ladder))
            except ValueError as exc:
                raise ConfigError(f"annealing_start_level: {exc}") from None
            # sigma is in normalised units; candidates are raw: per dimension, sigma times the action std
            std = np.asarray(manifest.normalization.action_std, np.float64)
            self._taus = np.asarray(ladder[start:], np.float64)[:, None] * std[None, :]
            self._start_level = start
        if self.is_diffusion:
            schedule = manifest.diffusion
            self.ddim_steps = schedule.sampling_steps if ddim_steps is None else ddim_steps
            try:
                diffusion.ddim_timesteps(schedule.train_steps, self.ddim_steps)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            self._alpha_bar = np.asarray(schedule.alpha_bar, np.float64)

    def _allocate(self) -> None:
        if self.is_diffusion:
            self._allocate_diffusion()
            return
        k, a = self.config.num_candidates, self.manifest.flat_action_size
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
        self._low = np.asarray(self.manifest.flat_action_low, f32)
        self._high = np.asarray(self.manifest.flat_action_high, f32)
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
            inputs = {"condition": self._condition, "actions": self._candidates}
            self._level = np.full((1,), len(self._ladder) - 1, np.int64)  # the clean level unless annealing
            if self.manifest.noise_ladder is not None:
                inputs["level"] = self._level
            self._energy_run = self._bind(sessions["energy"], inputs, {"energy": self._energies})

    def _allocate_diffusion(self) -> None:
        c, a = self.manifest.condition_size, self.manifest.action_size
        norm = self.manifest.normalization
        self._condition = np.zeros((1, c), np.float32)
        self._start_noise = np.zeros((1, a), np.float32)
        self._sample = np.zeros((1, a), np.float32)
        self._timestep = np.zeros((1,), np.float32)
        self._eps = np.zeros((1, a), np.float32)
        self._action_mean = np.asarray(norm.action_mean, np.float64)
        self._action_std = np.asarray(norm.action_std, np.float64)
        self._low = np.asarray(self.manifest.action_low, np.float64)
        self._high = np.asarray(self.manifest.action_high, np.float64)
        self._low_normalised = (self._low - self._action_mean) / self._action_std
        self._high_normalised = (self._high - self._action_mean) / self._action_std
        self._denoiser_run = self._bind(self._model.sessions["denoiser"], {
            "condition": self._condition, "sample": self._sample, "timestep": self._timestep}, {"eps": self._eps})

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
        """One decision. previous_action: the continuity reference. For a chunk model it is the
        previous chunk's unexecuted tail [T, A] at this chunk's first T step times, in the model's
        action units (runtime/chunk_selection.py), or None (no splice: the episode's first chunk)."""
        start = time.perf_counter()
        condition = np.asarray(condition)
        if condition.shape != (self.manifest.condition_size,):
            raise ValueError(f"condition has shape {condition.shape}, the model reads "
                             f"({self.manifest.condition_size},) = {list(self.manifest.condition_names)}")
        self._condition[0] = condition
        if self.is_diffusion:
            return self._diffusion_decision(start)
        if self.annealing is not None:
            return self._annealed_decision(start, previous_action)
        rule = self.config.selection
        # The same draws in the same order every step, whatever the path, so a seed fixes the sequence.
        self._rng.random(out=self._uniforms[0], dtype=np.float32)
        self._rng.standard_normal(out=self._noise[0], dtype=np.float32)
        if self.horizon > 1 and self.config.chunk_mean_candidate:
            # one candidate is the component's mean chunk: the smoothest plan of the mode, which
            # independent per-step noise would make jittery; the energy still decides
            self._noise[0, 0] = 0.0
        self._selection_uniform[0] = self._rng.random()
        self._previous[0] = self._previous_component if self.config.stickiness else -1
        selection.graph_inputs(rule, self._uniforms, self._previous)
        if self.uses_fused_graph:
            self._decision_run()
        else:
            self._two_session_step(rule)
        if self.horizon > 1:
            chosen = chunk_selection.choose(rule, self._energies, self._candidates, previous_action,
                                            self.config.splice_weight, self._selection_uniform,
                                            self.config.temperature, self.manifest.action_size, out=self._scores,
                                            log_q=self._log_q(rule))
            return self._decision(start, chosen, rule)
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
        return self._decision(start, int(chosen[0]), rule)

    def _log_q(self, rule: str) -> np.ndarray | None:
        if rule != "importance":
            return None
        return sampler.mixture_log_density(self._logits, self._means, self._scales, self._candidates)

    def _decision(self, start: float, chosen_index: int, rule: str) -> Decision:
        """The Decision of candidate ``chosen_index`` in the buffers (chosen by ``rule``)."""
        chosen_component = int(self._components[0, chosen_index])
        energy = float(self._energies[0, chosen_index])
        trusted = math.isfinite(energy) and (self.energy_threshold is None or energy <= self.energy_threshold)
        # mode first draws every candidate from one component: there is no other to compare with
        gap = (math.nan if rule in ("mode_first", "annealed_mode_first") else
               float(selection.energy_gap(self._energies, self._components, np.array([chosen_index]))[0]))
        self._previous_component = chosen_component
        return Decision(
            action=self._candidates[0, chosen_index].astype(np.float64),
            # copies: the buffers are overwritten by the next step, a caller may keep the decision
            candidates=self._candidates[0].copy(), energies=self._energies[0].copy(),
            components=self._components[0].copy(), chosen_index=chosen_index, chosen_component=chosen_component,
            trusted=trusted, energy=energy, energy_gap=gap, inference_seconds=time.perf_counter() - start)

    def _annealed_decision(self, start: float, previous_action: np.ndarray | None) -> Decision:
        """SMC down the ladder from the start level: one generator run, then one energy run per level."""
        k, a = self.config.num_candidates, self.manifest.action_size
        draws = annealed.draw_noise(self._rng, self._taus.shape[0], 1, k, a)
        self._previous[0] = self._previous_component if self.config.stickiness else -1
        self._generator_run()

        def energy(level: int, particles: np.ndarray) -> np.ndarray:
            self._level[0] = self._start_level + level
            self._candidates[...] = particles
            self._energy_run()
            return self._energies.copy()
        with_continuity = self.config.continuity_weight > 0 and previous_action is not None
        if with_continuity:
            self._previous_action[0] = previous_action
        candidates, energies, components, chosen = annealed.anneal(
            self.annealing.rule, self._logits, self._means, self._scales, self._taus, energy, draws,
            self._low, self._high, previous=self._previous, keep_min_weight=self.config.keep_mode_min_weight,
            temperature=self.config.temperature, previous_action=self._previous_action if with_continuity else None,
            continuity_weight=self.config.continuity_weight)
        self._candidates[...], self._energies[...], self._components[...] = candidates, energies, components
        return self._decision(start, int(chosen[0]), self.annealing.rule)

    def _diffusion_decision(self, start: float) -> Decision:
        """DDIM from one seeded noise vector: one denoiser run per step, one action out."""
        self._rng.standard_normal(out=self._start_noise[0], dtype=np.float32)

        def denoise(sample: np.ndarray, t: int) -> np.ndarray:
            self._sample[...] = sample
            self._timestep[0] = t
            self._denoiser_run()
            return self._eps
        clean = diffusion.ddim_sample(denoise, self._alpha_bar, self.ddim_steps, self._start_noise,
                                      self._low_normalised, self._high_normalised)
        action = np.clip(clean[0] * self._action_std + self._action_mean, self._low, self._high)
        return Decision(action=action, candidates=action[None].astype(np.float32),
                        energies=np.full(1, np.nan, np.float32), components=np.zeros(1, np.int64), chosen_index=0,
                        chosen_component=0, trusted=bool(np.all(np.isfinite(action))), energy=math.nan,
                        energy_gap=math.nan, inference_seconds=time.perf_counter() - start)

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
