"""Choosing the next action chunk: energy plus continuity with the previous chunk's unexecuted tail.

A chunk model's mixture components are whole chunks, so a candidate is one whole plan in one mode.
The next chunk is never an average of chunks: it is one candidate, chosen by

    score_k = energy_k + splice_weight * mean_t ||candidate_k[t] - tail[t]||^2   (t < len(tail))

where tail[t] is where the previous chunk would have been at this chunk's step t. Under "mode_first"
with stickiness (the deployed rule) every candidate comes from the previous chunk's component while
that component stays plausible, so the splice stays in its mode; the continuity term only picks,
within the mode, the plan that continues the running one most smoothly. Lower score is better.

Shapes: K candidates, H steps, A action dims; candidates arrive flattened step-major [1, K, H*A].
"""
from __future__ import annotations

import numpy as np

from ebgan_mdn_ros.runtime import selection


def tail_distances(candidates: np.ndarray, tail: np.ndarray, action_size: int) -> np.ndarray:
    """Mean squared distance per candidate between its first len(tail) steps and the tail. [K] float64.

    candidates: [K, H*A] (flattened chunks); tail: [T, A] with T <= H (longer tails are cut to H).
    """
    count = candidates.shape[0]
    steps = candidates.reshape(count, -1, action_size)
    overlap = min(tail.shape[0], steps.shape[1])
    if overlap == 0:
        return np.zeros(count)
    diff = steps[:, :overlap, :] - tail[None, :overlap, :]
    return np.einsum("kta,kta->k", diff, diff) / overlap


def choose(rule: str, energies: np.ndarray, candidates: np.ndarray, tail: np.ndarray | None,
           splice_weight: float, uniform: np.ndarray, temperature: float, action_size: int,
           out: np.ndarray, log_q: np.ndarray | None = None) -> int:
    """The chosen candidate's index. energies [1, K], candidates [1, K, H*A], tail [T, A] or None,
    out [1, K] float64 (the scores are written there). "importance" resamples by the same scores."""
    out[...] = energies
    if tail is not None and splice_weight > 0:
        out[0] += splice_weight * tail_distances(candidates[0], np.asarray(tail, np.float64), action_size)
    if rule == "importance":
        return int(selection.importance_resample(out, log_q, uniform, temperature)[0])
    return int(selection.lowest_score(out)[0])
