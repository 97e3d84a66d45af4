"""Annealed selection for multi-level models: sequential Monte Carlo down the noise ladder (numpy).

docs/method.md section 10. The ladder sigma_0 > ... > sigma_{L-1} = 0 is listed from noise to data,
and a level is an index into that list (the last is the clean level). The MDN noised to a level is
again an MDN (each component's variance grows by sigma^2), so it is an exact proposal at every level,
and its exact reverse step from one level to the next is Gaussian. K particles start at the top
level; at each level down they are resampled when the effective sample size falls below K/2, moved
by the proposal's reverse step and re-weighted by r(y_s) - r(y_t), with r = -score / T - log q.
At L = 1 this is exactly importance resampling (selection.importance_resample) on the same draws.
"annealed_mode_first" keeps every particle in one component (chosen as mode first chooses), with
that component's density in the weights.

Cost per decision: L energy passes of K rows and L * K * (A + 1) + L random numbers, all passed in
(AnnealingNoise), so a seed fixes the decision. Particles are clipped to the action box at the
clean level only, as every rule clips what it scores; the noisy levels are not actions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ebgan_mdn_ros.config_base import require
from ebgan_mdn_ros.runtime import sampler, selection


def check_ladder(ladder, where: str = "noise_ladder") -> tuple[float, ...]:
    """The ladder as floats if it is finite and strictly decreasing to exactly 0, else ValueError naming it."""
    values = tuple(float(s) for s in ladder)
    if (not values or not all(np.isfinite(values)) or values[-1] != 0.0
            or any(a <= b for a, b in zip(values, values[1:]))):
        raise ValueError(f"{where}: {list(values)} must be strictly decreasing to 0 "
                         "(noise levels first, the data's level 0 last)")
    return values


def check_level(level, num_levels: int) -> int:
    """``level`` as an int if it indexes a ladder of ``num_levels``, else ValueError naming it."""
    if isinstance(level, (bool, np.bool_)) or not isinstance(level, (int, np.integer)) or not 0 <= level < num_levels:
        raise ValueError(f"level: {level!r} is outside the noise ladder (levels 0..{num_levels - 1}; "
                         f"{num_levels - 1} is the data)")
    return int(level)


@dataclass
class AnnealingNoise:
    """The randomness of one annealed decision, row i for level i of the ladder.

    uniforms [L,B,K]: component draws at the top level, the reverse steps' component draws below;
    noise [L,B,K,A]; resample [L,B]: systematic resampling before moving down from level i, and in
    the last row the final pick. For L = 1: importance resampling's uniforms, noise and uniform.
    """
    uniforms: np.ndarray
    noise: np.ndarray
    resample: np.ndarray


def draw_noise(rng: np.random.Generator, num_levels: int, batch: int, count: int, action_dim: int) -> AnnealingNoise:
    """Level by level: uniforms, noise, resampling uniform (the order the runtime draws a one-level decision in)."""
    draws = AnnealingNoise(np.empty((num_levels, batch, count), np.float32),
                           np.empty((num_levels, batch, count, action_dim), np.float32),
                           np.empty((num_levels, batch), np.float64))
    for level in range(num_levels):
        rng.random(out=draws.uniforms[level], dtype=np.float32)
        rng.standard_normal(out=draws.noise[level], dtype=np.float32)
        draws.resample[level] = rng.random(batch)
    return draws


def level_scales(scales: np.ndarray, tau: np.ndarray | float) -> np.ndarray:
    """Component scales of the mixture noised by tau (per action dimension): sqrt(s^2 + tau^2)."""
    if not np.any(tau):  # the clean level: the scales themselves, bit for bit
        return scales
    return np.sqrt(np.square(scales, dtype=np.float64) + np.square(tau))


def component_log_density(means: np.ndarray, scales: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """log N(candidate | mean_m, diag(scale_m^2)) per component: [B,M,A], [B,M,A], [B,K,A] -> [B,K,M]."""
    diff = (candidates[:, :, None, :] - means[:, None, :, :]) / scales[:, None, :, :]
    return (-0.5 * np.sum(diff * diff, axis=-1) - np.sum(np.log(scales), axis=-1)[:, None, :]
            - 0.5 * means.shape[-1] * sampler.LOG_2PI)


def anneal(rule: str, logits: np.ndarray, means: np.ndarray, scales: np.ndarray, taus: np.ndarray,
           energy: Callable[[int, np.ndarray], np.ndarray], draws: AnnealingNoise, low, high, *,
           previous: np.ndarray | None = None, keep_min_weight: float = 0.0, temperature: float = 1.0,
           previous_action: np.ndarray | None = None, continuity_weight: float = 0.0):
    """One annealed decision per condition -> (candidates [B,K,A], energies [B,K], components [B,K], chosen [B]).

    taus [L,A]: each level's noise std in the units of ``means`` (normalised sigma times the action
    std in raw units); the last row is 0. energy(level, particles [B,K,A]) -> [B,K]. The returned
    candidates, energies and components are the clean level's; the continuity term, if any, enters
    the clean level's score only.
    """
    if rule not in selection.ANNEALED_RULES:
        raise ValueError(f"selection: {rule!r} is not an annealed rule, expected one of {selection.ANNEALED_RULES}")
    if temperature <= 0:
        raise ValueError(f"temperature: {temperature!r} must be > 0")
    taus = np.asarray(taus, np.float64)
    num_levels = taus.shape[0]
    probs = sampler.mixture_weights(logits)
    batch, count = draws.uniforms.shape[1:]
    rows = np.arange(batch)[:, None]
    mode_first = rule == "annealed_mode_first"
    if mode_first:
        kept = sampler.choose_components(probs, draws.uniforms[0][:, 0], previous, keep_min_weight)
        components = np.broadcast_to(kept[:, None], (batch, count))
    else:
        components = sampler.draw_components(probs, draws.uniforms[0])

    def log_q(level: int, particles: np.ndarray) -> np.ndarray:
        noised = level_scales(scales, taus[level])
        if not mode_first:
            return sampler.mixture_log_density(logits, means, noised, particles)
        per_component = component_log_density(means, noised, particles)
        return np.take_along_axis(per_component, np.broadcast_to(kept[:, None, None], (batch, count, 1)), 2)[..., 0]

    def ratio(level: int, particles: np.ndarray):
        clean = level == num_levels - 1
        if clean:
            particles = np.clip(particles, low, high)
        energies = energy(level, particles)
        score = selection.scores(energies, particles, previous_action if clean else None, continuity_weight)
        return particles, energies, -score / temperature - log_q(level, particles)

    particles = sampler.draw_candidates(means, level_scales(scales, taus[0]), components, draws.noise[0])
    particles, energies, r = ratio(0, particles)
    log_w = r
    for level in range(1, num_levels):
        index, log_w = _resample_if_degenerate(log_w, draws.resample[level - 1])
        particles, components, r = particles[rows, index], components[rows, index], r[rows, index]
        particles, components = _reverse_step(logits, means, scales, taus[level - 1], taus[level], particles,
                                              components, draws.uniforms[level], draws.noise[level], mode_first)
        particles, energies, r_new = ratio(level, particles)
        log_w = log_w + r_new - r
        r = r_new
    chosen = selection.draw_by_log_weight(log_w, draws.resample[num_levels - 1])
    return particles, energies, np.asarray(components), chosen


def _resample_if_degenerate(log_w: np.ndarray, uniform: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ancestor index [B,K], log weights after): systematic resampling of the rows whose effective
    sample size is below K/2 (their weights become equal); the other rows keep particles and weights."""
    count = log_w.shape[1]
    finite = np.where(np.isfinite(log_w), log_w, -np.inf)
    peak = finite.max(axis=1, keepdims=True)
    weights = np.exp(finite - np.where(np.isfinite(peak), peak, 0.0))
    total = weights.sum(axis=1, keepdims=True)
    weights = np.where(total > 0, weights / np.where(total > 0, total, 1.0), 1.0 / count)
    degenerate = 1.0 / np.sum(weights * weights, axis=1) < count / 2
    # Row b's cdf and positions are shifted into [b, b + 1], so one searchsorted serves every row.
    offsets = np.arange(len(weights))[:, None]
    cdf = np.cumsum(weights, axis=1)
    cdf[:, -1] = 1.0
    positions = (uniform[:, None] + np.arange(count)) / count
    flat = np.searchsorted((cdf + offsets).ravel(), (positions + offsets).ravel(), side="right")
    ancestors = np.minimum(flat.reshape(weights.shape) - offsets * count, count - 1)
    index = np.where(degenerate[:, None], ancestors, np.arange(count))
    return index, np.where(degenerate[:, None], 0.0, log_w[np.arange(len(cdf))[:, None], index])


def _reverse_step(logits, means, scales, tau_t, tau_s, particles, components, uniforms, noise, mode_first):
    """y_s given y_t under the proposal: a component by its responsibility for y_t (kept in mode first),
    then the Gaussian posterior of N(mu_k, s_k^2 + tau_s^2) prior and N(y_t; y_s, tau_t^2 - tau_s^2)."""
    if not mode_first:
        joint = component_log_density(means, level_scales(scales, tau_t), particles) + np.log(
            sampler.mixture_weights(logits))[:, None, :]
        responsibility = np.exp(joint - joint.max(axis=-1, keepdims=True))
        cdf = np.cumsum(responsibility / responsibility.sum(axis=-1, keepdims=True), axis=-1)
        cdf[..., -1] = np.inf
        components = np.sum(cdf <= uniforms[..., None], axis=-1)
    index = components[..., None]
    prior_mean = np.take_along_axis(means, index, axis=1)
    prior_var = np.square(np.take_along_axis(scales, index, axis=1), dtype=np.float64) + np.square(tau_s)
    step_var = np.square(tau_t) - np.square(tau_s)
    var = prior_var * step_var / (prior_var + step_var)
    mean = (prior_mean * step_var + particles * prior_var) / (prior_var + step_var)
    return mean + np.sqrt(var) * noise, components


@dataclass(frozen=True)
class AnnealingConfig:
    """How PolicyRuntime anneals a multi-level model: the rule, and the level SMC starts from
    (0: the top of the ladder; a higher start skips the noisiest levels and their energy passes)."""
    rule: str = "annealed"
    start_level: int = 0

    def __post_init__(self):
        require(self.rule in selection.ANNEALED_RULES, "annealing.rule", self.rule,
                f"one of {selection.ANNEALED_RULES}")
        require(isinstance(self.start_level, int) and not isinstance(self.start_level, bool)
                and self.start_level >= 0, "annealing.start_level", self.start_level, "an integer >= 0")
