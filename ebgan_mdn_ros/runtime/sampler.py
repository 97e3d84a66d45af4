"""Candidate sampling from the MDN's mixture (numpy, batched, runtime-supplied randomness).

Shapes: B conditions, M components, K candidates, A action dims. All randomness comes in as
arguments (uniforms, noise), so a decision is reproducible from its seed and the same functions
serve the evaluator (many conditions) and the runtime (one condition per tick). How a selection
rule uses them is selection.py's business.

Components are Gaussian or Laplace (training's model.distribution): only the unit noise and the
density differ, a candidate is mean + scale * noise either way.
"""
from __future__ import annotations

import numpy as np

LOG_2PI = float(np.log(2.0 * np.pi))
LOG_2 = float(np.log(2.0))
DISTRIBUTIONS = ("gaussian", "laplace")


def _check_distribution(distribution: str) -> None:
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"distribution: {distribution!r} is unknown, expected one of {DISTRIBUTIONS}")


def unit_noise(rng: np.random.Generator, shape: tuple[int, ...], distribution: str = "gaussian") -> np.ndarray:
    """Zero-location, unit-scale noise of the components' family (float64)."""
    _check_distribution(distribution)
    if distribution == "gaussian":
        return rng.standard_normal(shape)
    return rng.laplace(0.0, 1.0, shape)


def mixture_weights(logits: np.ndarray) -> np.ndarray:
    """softmax over the last axis, stable for large logits. [B,M] -> [B,M]."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    weights = np.exp(shifted)
    weights /= weights.sum(axis=-1, keepdims=True)
    return weights


def _inverse_cdf(probs: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """Component index with P(k) = probs[k]; uniform [B,...] in [0,1) -> int [B,...]."""
    cdf = np.cumsum(probs, axis=-1)
    cdf[..., -1] = np.inf  # rounding must never push u past the last component
    flat_u = uniform.reshape(uniform.shape[0], -1)
    index = np.empty(flat_u.shape, dtype=np.int64)
    for b in range(flat_u.shape[0]):
        index[b] = np.searchsorted(cdf[b], flat_u[b], side="right")
    return index.reshape(uniform.shape)


def choose_components(probs: np.ndarray, uniform: np.ndarray, previous: np.ndarray | None = None,
                      keep_min_weight: float = 0.0) -> np.ndarray:
    """One component per condition: k ~ probs, or keep ``previous`` while its weight >= keep_min_weight.

    Keeping the previous decision's mode is what stops a controller hopping between equally
    valid solutions from one tick to the next; letting go when the weight drops is what lets it
    follow the data when that mode stops being plausible. previous < 0 means "no previous mode".
    """
    chosen = _inverse_cdf(probs, uniform)
    if previous is not None:
        previous = np.asarray(previous)
        valid = (previous >= 0) & (previous < probs.shape[-1])
        safe_prev = np.where(valid, previous, 0)
        prev_weight = np.take_along_axis(probs, safe_prev[:, None], axis=-1)[:, 0]
        keep = valid & (prev_weight >= keep_min_weight)
        chosen = np.where(keep, safe_prev, chosen)
    return chosen


def draw_components(probs: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """K independent component draws per condition: probs [B,M], uniform [B,K] -> [B,K]."""
    return _inverse_cdf(probs, uniform)


def draw_candidates(means: np.ndarray, scales: np.ndarray, components: np.ndarray,
                    noise: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """candidate = mean[k] + scale[k] * noise. means/scales [B,M,A], components [B,K], noise [B,K,A]."""
    index = components[..., None]
    chosen_means = np.take_along_axis(means, index, axis=1)
    chosen_scales = np.take_along_axis(scales, index, axis=1)
    if out is None:
        return chosen_means + chosen_scales * noise
    np.multiply(chosen_scales, noise, out=out)
    out += chosen_means
    return out


def mixture_log_density(logits: np.ndarray, means: np.ndarray, scales: np.ndarray, candidates: np.ndarray,
                        distribution: str = "gaussian") -> np.ndarray:
    """Exact mixture log q(candidate | x): [B,M], [B,M,A], [B,M,A], [B,K,A] -> [B,K]."""
    _check_distribution(distribution)
    log_weights = np.log(mixture_weights(logits))  # [B,M]
    diff = (candidates[:, :, None, :] - means[:, None, :, :]) / scales[:, None, :, :]  # [B,K,M,A]
    action_dim = means.shape[-1]
    log_scales = np.sum(np.log(scales), axis=-1)[:, None, :]
    if distribution == "gaussian":
        log_comp = -0.5 * np.sum(diff * diff, axis=-1) - log_scales - 0.5 * action_dim * LOG_2PI  # [B,K,M]
    else:
        log_comp = -np.sum(np.abs(diff), axis=-1) - log_scales - action_dim * LOG_2
    joint = log_comp + log_weights[:, None, :]
    peak = joint.max(axis=-1, keepdims=True)
    return (peak + np.log(np.exp(joint - peak).sum(axis=-1, keepdims=True)))[..., 0]
