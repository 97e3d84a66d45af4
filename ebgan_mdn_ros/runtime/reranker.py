"""Scoring and selection of candidates (numpy, batched). One sign convention: lower is better.

Shapes: B conditions, K candidates, A action dims. Selection rules (method.md section 5):
- "mode_first": the caller draws all K candidates from one chosen component (sampler.choose_components);
  then the lowest score wins. Multi-modal across decisions, sharp within a mode. The deployed rule.
- "lowest_energy": argmin over candidates from the whole mixture. Deterministic in the mode: kept
  only as a compared option.
- "importance": one index drawn with weights exp(-E/T) / q over whole-mixture candidates.
"""
from __future__ import annotations

import numpy as np

SELECTION_RULES = ("mode_first", "lowest_energy", "importance")


def scores(energies: np.ndarray, candidates: np.ndarray | None = None,
           previous_action: np.ndarray | None = None, continuity_weight: float = 0.0,
           out: np.ndarray | None = None) -> np.ndarray:
    """energy + continuity_weight * ||candidate - previous_action||^2; [B,K] (+ [B,K,A], [B,A]) -> [B,K].

    The continuity term prefers candidates near the last command, so near-ties within a mode do
    not make the arm jitter; it must not be used to average actions (that reintroduces mode averaging).
    """
    if out is None:
        out = np.array(energies, dtype=np.float64, copy=True)
    else:
        out[...] = energies
    if continuity_weight and candidates is not None and previous_action is not None:
        diff = candidates - previous_action[:, None, :]
        out += continuity_weight * np.einsum("bka,bka->bk", diff, diff)
    return out


def lowest_score(candidate_scores: np.ndarray) -> np.ndarray:
    """Index of the lowest score per condition (non-finite scores never win). [B,K] -> [B]."""
    finite = np.where(np.isfinite(candidate_scores), candidate_scores, np.inf)
    return np.argmin(finite, axis=-1)


def importance_resample(energies: np.ndarray, log_q: np.ndarray, uniform: np.ndarray,
                        temperature: float = 1.0) -> np.ndarray:
    """Draw one index per condition with weight proportional to exp(-E/T) / q. uniform [B] in [0,1).

    With an energy that estimates -log p up to a constant (R-NCE), this resamples p itself;
    a temperature below 1 sharpens the modes.
    """
    if temperature <= 0:
        raise ValueError(f"temperature: {temperature!r} must be > 0")
    log_w = -energies / temperature - log_q
    log_w = np.where(np.isfinite(log_w), log_w, -np.inf)
    log_w = log_w - log_w.max(axis=-1, keepdims=True)
    weights = np.exp(log_w)
    cdf = np.cumsum(weights, axis=-1)
    cdf /= cdf[..., -1:]
    cdf[..., -1] = np.inf
    return np.array([np.searchsorted(cdf[b], uniform[b], side="right") for b in range(cdf.shape[0])])


def energy_gap(energies: np.ndarray, components: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Best energy among candidates of another component minus the chosen candidate's energy.

    Large and positive: the decision is clear-cut. Near zero: another mode is about as plausible.
    NaN where every candidate came from the chosen component (mode_first): nothing to compare.
    """
    rows = np.arange(energies.shape[0])
    chosen_energy = energies[rows, chosen]
    chosen_component = components[rows, chosen]
    other = np.where(components != chosen_component[:, None], energies, np.inf)
    best_other = other.min(axis=-1)
    return np.where(np.isfinite(best_other), best_other - chosen_energy, np.nan)


def components_spanned(components: np.ndarray, candidate_scores: np.ndarray, top: int) -> np.ndarray:
    """How many distinct mixture components the ``top`` best-scoring candidates come from. [B]."""
    top = min(top, candidate_scores.shape[-1])
    order = np.argsort(candidate_scores, axis=-1)[:, :top]
    best_components = np.take_along_axis(components, order, axis=-1)
    return np.array([len(np.unique(row)) for row in best_components])
