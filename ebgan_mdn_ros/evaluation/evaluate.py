"""Evaluate a trained run under each selection rule (docs/method.md sec. 5), one column per rule.

Rules: "raw" (one mixture sample, K = 1), "lowest_energy" (argmin over K whole-mixture candidates:
collapses onto one mode), "mode_first" (k ~ pi, K candidates from k, lowest energy: the deployed
rule; in closed loop it keeps the previous component while its weight stays above
keep_min_weight), "importance" (exp(-E)/q resampling over whole-mixture candidates). Candidate
draws, clipping to the action box and the choice go through runtime/selection.py, the rule the
deployed runtime runs, with the run's own component family (Gaussian or Laplace). Metrics go to
eval.json in the run directory; the checkpoint is never rewritten.

Two kinds of run add their own columns (docs/method.md sec. 10, 11): a multi-level run (rnce-ml)
"annealed" and "annealed_mode_first" (SMC down its ladder, runtime/annealing.py); a diffusion run
"ddim_8", "ddim_16" and "ddim_32" (DDIM at that many steps, runtime/diffusion.py; its "raw" is the
config's inference.ddim_steps). The single-level rules score a multi-level energy at its clean level.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ebgan_mdn_ros.runtime import annealing, diffusion, sampler, selection
from ebgan_mdn_ros.training.checkpoint import Checkpoint, load_checkpoint, write_evaluation
from ebgan_mdn_ros.config_base import from_dict
from ebgan_mdn_ros.evaluation.metrics import curve_metrics, grid_metrics, ik_metrics, planning_metrics
from ebgan_mdn_ros.training.networks import Denoiser, LevelEnergyMLP, MixtureDensityNetwork
from ebgan_mdn_ros.tasks.catalog import PLANNING_STEPS, MultiRouteEnvironment, Task, get_task
from ebgan_mdn_ros.training.config import TrainConfig

RULES = ("raw", "lowest_energy", "mode_first", "importance")
ANNEALED_RULES = selection.ANNEALED_RULES         # multi-level runs only
DDIM_RULES = {"ddim_8": 8, "ddim_16": 16, "ddim_32": 32}  # diffusion runs only: rule -> DDIM steps
ALL_RULES = RULES + ANNEALED_RULES + tuple(DDIM_RULES)
IBC_POPULATION = 1024       # derivative-free optimisation (IBC): samples per iteration
IBC_ITERATIONS = 3
IBC_NOISE = 0.33            # initial resampling noise, normalised units, halved each iteration
CHUNK = 4096                # decisions per forward pass (bounds memory at K candidates each)


class PolicySampler:
    """A checkpoint as a policy: raw conditions in, raw actions out, under a named selection rule."""

    def __init__(self, checkpoint: Checkpoint, num_candidates: int = 64, importance_temperature: float = 1.0,
                 keep_min_weight: float = 0.05, ddim_steps: int = 16):
        self.ckpt = checkpoint
        self.num_candidates = num_candidates
        self.temperature = importance_temperature
        self.keep_min_weight = keep_min_weight
        self.is_mdn = isinstance(checkpoint.generator, MixtureDensityNetwork)
        self.has_energy = checkpoint.energy is not None
        self.is_ibc = checkpoint.generator is None
        self.is_diffusion = isinstance(checkpoint.generator, Denoiser)
        self.is_multilevel = isinstance(checkpoint.energy, LevelEnergyMLP)
        self.ddim_steps = ddim_steps
        self.distribution = getattr(checkpoint.generator, "distribution", "gaussian")
        self.action_low = checkpoint.action_normalizer(torch.tensor(checkpoint.spec.flat_action_low)).numpy()
        self.action_high = checkpoint.action_normalizer(torch.tensor(checkpoint.spec.flat_action_high)).numpy()

    def supports(self, rule: str) -> bool:
        if rule in DDIM_RULES:
            return self.is_diffusion
        if rule in ANNEALED_RULES:
            return self.is_mdn and self.is_multilevel
        if rule == "raw":
            return True
        if rule == "lowest_energy":
            return self.has_energy
        return self.is_mdn and self.has_energy  # mode_first and importance need components and q

    # ---- one decision per row ----------------------------------------------------------------

    @torch.no_grad()
    def decide(self, conditions: np.ndarray, rule: str, rng: np.random.Generator,
               previous: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Actions [B, A] (raw units) and the component each came from ([B], -1 without a mixture)."""
        if not self.supports(rule):
            raise ValueError(f"rule {rule!r} needs {'an MDN and ' if rule != 'lowest_energy' else ''}an energy; "
                             f"method {self.ckpt.method!r} has none")
        actions, components = [], []
        for start in range(0, len(conditions), CHUNK):
            rows = slice(start, start + CHUNK)
            prev = None if previous is None else previous[rows]
            a, k = self._decide_normalised(self._condition(conditions[rows]), rule, rng, prev)
            actions.append(a)
            components.append(k)
        normalised = torch.as_tensor(np.concatenate(actions), dtype=torch.float32)
        return self.ckpt.action_normalizer.inverse(normalised).numpy(), np.concatenate(components)

    def _condition(self, conditions: np.ndarray) -> torch.Tensor:
        return self.ckpt.condition_normalizer(torch.tensor(np.array(conditions, dtype=np.float32)))

    def _energies(self, condition: torch.Tensor, candidates: np.ndarray) -> np.ndarray:
        return self.ckpt.energy(condition, torch.as_tensor(candidates, dtype=torch.float32)).double().numpy()

    def _decide_normalised(self, condition, rule, rng, previous):
        batch, count = condition.shape[0], self.num_candidates
        action_dim = self.ckpt.spec.flat_action_dim
        no_component = np.full(batch, -1)
        if self.is_diffusion:
            return self._ddim(condition, DDIM_RULES.get(rule, self.ddim_steps), rng), no_component
        if self.is_ibc:
            actions, components = self._derivative_free(condition, rule, rng)
            return actions[:, 0], components[:, 0]
        rows = np.arange(batch)
        if not self.is_mdn:
            candidates = np.clip(self._mlp_samples(condition, 1 if rule == "raw" else count, rng),
                                 self.action_low, self.action_high)
            if rule == "raw":
                return candidates[:, 0], no_component
            chosen = selection.choose("lowest_energy", self._energies(condition, candidates))
            return candidates[rows, chosen], no_component
        logits, means, scales = (t.double().numpy() for t in self.ckpt.generator(condition))
        if rule in ANNEALED_RULES:
            return self._annealed(condition, rule, (logits, means, scales), rng, previous)
        # raw is one mixture sample, drawn as mode first draws (with nothing to keep) and K = 1
        drawn_as, count = ("mode_first", 1) if rule == "raw" else (rule, count)
        uniforms = rng.random((batch, 1 if drawn_as == "mode_first" else count))
        noise = sampler.unit_noise(rng, (batch, count, action_dim), self.distribution)
        candidates, components = selection.draw(drawn_as, logits, means, scales, uniforms, noise, self.action_low,
                                                self.action_high, previous if rule != "raw" else None,
                                                self.keep_min_weight)
        if rule == "raw":
            return candidates[:, 0], components[:, 0]
        energies = self._energies(condition, candidates)
        log_q = uniform = None
        if rule == "importance":
            log_q = sampler.mixture_log_density(logits, means, scales, candidates, self.distribution)
            uniform = rng.random(batch)
        chosen = selection.choose(rule, energies, log_q=log_q, uniform=uniform, temperature=self.temperature)
        return candidates[rows, chosen], components[rows, chosen]

    def _annealed(self, condition, rule, mixture, rng, previous):
        """SMC down the ladder through the runtime's annealing.anneal, in normalised units (sigma as trained)."""
        batch, count, action_dim = condition.shape[0], self.num_candidates, self.ckpt.spec.flat_action_dim
        ladder = np.asarray(self.ckpt.energy.noise_ladder, np.float64)
        draws = annealing.draw_noise(rng, len(ladder), batch, count, action_dim)

        def energy(level: int, particles: np.ndarray) -> np.ndarray:
            levels = torch.full((batch,), level, dtype=torch.int64)
            return self.ckpt.energy(condition, torch.as_tensor(particles, dtype=torch.float32), levels).double().numpy()
        candidates, _, components, chosen = annealing.anneal(
            rule, *mixture, np.repeat(ladder[:, None], action_dim, 1), energy, draws, self.action_low,
            self.action_high, previous=previous, keep_min_weight=self.keep_min_weight, temperature=self.temperature)
        rows = np.arange(batch)
        return candidates[rows, chosen], components[rows, chosen]

    def _ddim(self, condition, steps: int, rng) -> np.ndarray:
        """One DDIM sample per condition through the runtime's diffusion.ddim_sample, normalised units."""
        denoiser = self.ckpt.generator

        def denoise(sample: np.ndarray, t: int) -> np.ndarray:
            timestep = torch.full((sample.shape[0],), float(t))
            return denoiser(condition, torch.from_numpy(sample), timestep).double().numpy()
        noise = rng.standard_normal((condition.shape[0], self.ckpt.spec.flat_action_dim))
        return diffusion.ddim_sample(denoise, denoiser.alpha_bar.double().numpy(), steps, noise,
                                     self.action_low, self.action_high)

    def _mlp_samples(self, condition: torch.Tensor, count: int, rng) -> np.ndarray:
        generator = self.ckpt.generator
        batch = condition.shape[0]
        repeated = condition.repeat_interleave(count, 0)
        noise = None
        if generator.noise_dim:
            noise = torch.as_tensor(rng.standard_normal((batch * count, generator.noise_dim)), dtype=torch.float32)
        return generator(repeated, noise).double().numpy().reshape(batch, count, -1)

    def _derivative_free(self, condition, rule, rng, draws: int = 1):
        """IBC's derivative-free optimiser: resample by softmax(-E), perturb, shrink the noise.

        "lowest_energy" returns the final argmin (IBC's inference); "raw" draws from the final
        population's softmax instead, which keeps the modes that the argmin would drop. One
        population serves `draws` decisions at the same condition.
        """
        batch, action_dim = condition.shape[0], self.ckpt.spec.flat_action_dim
        low, high = self.action_low, self.action_high
        samples = low + (high - low) * rng.random((batch, IBC_POPULATION, action_dim))
        noise = IBC_NOISE
        rows = np.arange(batch)[:, None]
        for _ in range(IBC_ITERATIONS):
            picks = _categorical(-self._energies(condition, samples), IBC_POPULATION, rng)
            samples = np.clip(samples[rows, picks] + noise * rng.standard_normal(samples.shape), low, high)
            noise *= 0.5
        energies = self._energies(condition, samples)
        if rule == "lowest_energy":
            chosen = np.repeat(selection.lowest_score(energies)[:, None], draws, 1)
        else:
            chosen = _categorical(-energies, draws, rng)
        return samples[rows, chosen], np.full((batch, draws), -1)

    # ---- many decisions per condition ------------------------------------------------------

    def sample(self, conditions: np.ndarray, count: int, rule: str, rng: np.random.Generator) -> np.ndarray:
        """`count` independent decisions at each of T conditions -> [T, count, A] raw actions."""
        if self.is_ibc:  # one optimiser population per condition, `count` draws from it
            with torch.no_grad():
                actions, _ = self._derivative_free(self._condition(conditions), rule, rng, count)
            flat = torch.as_tensor(actions.reshape(-1, actions.shape[-1]), dtype=torch.float32)
            return self.ckpt.action_normalizer.inverse(flat).numpy().reshape(actions.shape)
        repeated = np.repeat(np.asarray(conditions, dtype=np.float32), count, axis=0)
        actions, _ = self.decide(repeated, rule, rng)
        return actions.reshape(len(conditions), count, -1)


def _categorical(logits: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
    """`draws` indices per row with P proportional to exp(logits): [B, P] -> [B, draws], vectorised."""
    weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
    cdf = np.cumsum(weights, axis=-1)
    cdf /= cdf[:, -1:]
    cdf[:, -1] = 1.0
    offsets = np.arange(len(cdf))[:, None]
    # Row b's cdf is shifted into [b, b + 1]: one searchsorted serves every row.
    flat = np.searchsorted((cdf + offsets).ravel(), (rng.random((len(cdf), draws)) + offsets).ravel(), side="right")
    return np.minimum(flat.reshape(len(cdf), draws) - offsets * cdf.shape[1], cdf.shape[1] - 1)


def rollout(policy: PolicySampler, rule: str, count: int, seed: int) -> MultiRouteEnvironment:
    """`count` closed-loop multi-route episodes; the mode-first rules keep their component between steps."""
    rng = np.random.default_rng(seed)
    env = MultiRouteEnvironment(count, seed)
    previous = np.full(count, -1)
    for _ in range(PLANNING_STEPS):
        if not env.active.any():
            break
        actions, components = policy.decide(env.positions.astype(np.float32), rule, rng,
                                             previous if rule in ("mode_first", "annealed_mode_first") else None)
        env.step(actions)
        previous = components
    return env


def evaluate_rule(policy: PolicySampler, task: Task, rule: str, samples_per_condition: int,
                  rollouts: int, seed: int) -> tuple[dict, dict]:
    """Metrics of one rule, and the raw material (samples / rollouts) for the plots."""
    rng = np.random.default_rng(seed)
    conditions = np.asarray(task.test_conditions)
    if task.kind == "planning":
        env = rollout(policy, rule, rollouts, seed)
        steps = np.stack(env.trajectories, 1)
        moved = np.any(np.diff(steps, axis=1) != 0, axis=-1).sum(1)
        return planning_metrics(env.reached, env.routes(), moved), {"env": env}
    samples = policy.sample(conditions, samples_per_condition, rule, rng)
    if task.kind == "ik":
        return ik_metrics(conditions.astype(np.float64), samples, task.mode_tolerance), {"samples": samples}
    modes = task.true_modes(conditions)
    real = task.sample_true(conditions, samples_per_condition, np.random.default_rng(seed + 1))
    low, high = task.spec.action_low, task.spec.action_high
    if task.kind == "grid":
        bounds = ((low[0], high[0]), (low[1], high[1]))
        return grid_metrics(samples, modes, real, task.mode_tolerance, bounds), {"samples": samples}
    return (curve_metrics(conditions, samples, modes, real, task.mode_tolerance, (low[0], high[0])),
            {"samples": samples})


DEFAULT_SAMPLES = {"curve": 100, "ik": 20, "grid": 5000, "planning": 20}


def evaluate_run(run_dir: str | Path, samples_per_condition: int | None = None, rollouts: int = 200,
                 seed: int = 0, rules: tuple[str, ...] | None = None, plots: bool = True, store: bool = True) -> dict:
    """Metrics of every supported rule for the run in `run_dir`; PNGs and (with store) eval.json written.

    rules: default RULES plus the run's own (annealed or DDIM) columns.
    """
    run_dir = Path(run_dir)
    ckpt = load_checkpoint(run_dir)
    config = from_dict(TrainConfig, ckpt.config)
    policy = PolicySampler(ckpt, config.inference.num_candidates, config.inference.importance_temperature,
                           config.inference.keep_min_weight, config.inference.ddim_steps)
    if rules is None:
        rules = RULES + tuple(rule for rule in ANNEALED_RULES + tuple(DDIM_RULES) if policy.supports(rule))
    if config.data.path:
        metrics = evaluate_demonstrations(policy, config, samples_per_condition or 20, rules, seed)
        if store:
            write_evaluation(run_dir, metrics)
        return metrics
    task = get_task(ckpt.task)
    count = samples_per_condition or DEFAULT_SAMPLES[task.kind]
    started = time.perf_counter()
    results, material = {}, {}
    for rule in rules:
        if policy.supports(rule):
            results[rule], material[rule] = evaluate_rule(policy, task, rule, count, rollouts, seed)
        else:
            results[rule] = None
    metrics = {"task": task.name, "method": ckpt.method, "seed": config.seed, "train_seconds": ckpt.train_seconds,
               "num_candidates": policy.num_candidates, "rules": results,
               "eval_seconds": time.perf_counter() - started}
    if plots:
        from ebgan_mdn_ros.evaluation.plots import plot_run  # matplotlib only when plotting
        metrics["plots"] = plot_run(run_dir, task, policy, material)
    if store:
        write_evaluation(run_dir, metrics)
    return metrics


def evaluate_demonstrations(policy: PolicySampler, config: TrainConfig, count: int, rules, seed: int,
                            max_conditions: int = 200) -> dict:
    """A run on user data has no ground-truth modes: report how close decisions come to the demonstration.

    best_error: over `count` decisions at a demonstrated condition, the nearest to the demonstrated
    action (coverage); mean_error: an average decision's distance to it (a multi-modal demonstration
    set makes this large even for a perfect policy).
    """
    from ebgan_mdn_ros.data.demonstrations import load_demonstrations
    demos = load_demonstrations(config.data.path, config.data.condition_columns, config.data.action_columns)
    pick = np.linspace(0, len(demos.actions) - 1, min(max_conditions, len(demos.actions))).astype(int)
    results = {}
    for rule in rules:
        if not policy.supports(rule):
            results[rule] = None
            continue
        samples = policy.sample(demos.conditions[pick], count, rule, np.random.default_rng(seed))
        errors = np.linalg.norm(samples - demos.actions[pick][:, None, :], axis=-1)
        results[rule] = {"best_error": float(errors.min(1).mean()), "mean_error": float(errors.mean())}
    return {"task": "demos", "data": config.data.path, "method": policy.ckpt.method, "rules": results}

