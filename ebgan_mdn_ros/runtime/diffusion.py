"""DDIM sampling for the diffusion baseline (numpy; docs/method.md section 11).

The denoiser predicts the noise eps(condition, y_t, t) of a DDPM trained on normalised actions with
the schedule alpha_bar_t (t = 0..T-1) that the manifest carries. DDIM with eta = 0 takes S of those
steps, evenly spaced from T-1 down to 0; the prediction of the clean action is clipped to the action
box (normalised) at every step, as Diffusion Policy does, and the last step returns it. The
predicted noise is bounded to +-EPS_BOUND: its target is unit Gaussian noise (the IK, multiroute,
hyperbola and grid models stayed below 7 on their training conditions), and an unbounded answer
can run away (see ddim_sample). The only randomness is the starting noise, passed in, so a seed fixes the decision.
The runtime and the evaluator both call `ddim_sample`, with the exported graph or the torch
network as `denoise`.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

EPS_BOUND = 10.0  # |predicted noise| per dimension: 10 sigma of the unit-Gaussian target


def check_schedule(alpha_bar, where: str = "diffusion.alpha_bar") -> np.ndarray:
    """alpha_bar as float64 if it is a strictly decreasing sequence in (0, 1), else ValueError naming it
    (at alpha_bar = 1 there is no noise for an eps-predicting denoiser to predict, nor to divide by)."""
    values = np.asarray(alpha_bar, np.float64)
    if values.ndim != 1 or values.size < 2 or not np.all(np.isfinite(values)) or np.any(values <= 0) \
            or np.any(values >= 1) or np.any(np.diff(values) >= 0):
        raise ValueError(f"{where}: must be at least 2 values in (0, 1), strictly decreasing "
                         f"(got {values.size} values)")
    return values


def ddim_timesteps(train_steps: int, steps: int) -> np.ndarray:
    """S distinct training steps, evenly spaced from T-1 down to 0 (int64, descending)."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= train_steps:
        raise ValueError(f"ddim steps: {steps!r} must be an integer in [1, {train_steps}] (the training steps)")
    return np.round(np.linspace(train_steps - 1, 0, steps)).astype(np.int64)


def ddim_sample(denoise: Callable[[np.ndarray, int], np.ndarray], alpha_bar: np.ndarray, steps: int,
                noise: np.ndarray, low=None, high=None) -> np.ndarray:
    """x_T = noise [B,A] -> x_0 [B,A] (normalised units) by S deterministic DDIM steps.

    denoise(sample [B,A] float32, t) -> predicted noise [B,A]; low/high: the normalised action box
    the clean prediction is clipped to (None: no clipping).
    """
    alpha_bar = np.asarray(alpha_bar, np.float64)
    timesteps = ddim_timesteps(len(alpha_bar), steps)
    x = np.asarray(noise, np.float64)
    for i, t in enumerate(timesteps):
        signal = alpha_bar[t]
        signal_next = alpha_bar[timesteps[i + 1]] if i + 1 < len(timesteps) else 1.0
        # bounded, or a denoiser off its data (eps growing with the sample) multiplies the sample
        # step after step until it is inf, then NaN
        eps = np.array(denoise(x.astype(np.float32), int(t)), np.float64)  # our copy: clipped in place
        np.clip(eps, -EPS_BOUND, EPS_BOUND, out=eps)
        clean = (x - np.sqrt(1.0 - signal) * eps) / np.sqrt(signal)
        if low is not None:
            clean = np.clip(clean, low, high)
        x = np.sqrt(signal_next) * clean + np.sqrt(1.0 - signal_next) * eps
    return x
