"""Choosing one of K candidates by energy: the reference rule (numpy, batched). Lower energy is better.

Everything that picks a candidate calls this module: PolicyRuntime (both paths), the evaluator and
the exporter's threshold calibration. The fused decision graph (export/onnx_graphs.py) does `draw`
inside onnxruntime for speed; test/test_selection.py holds it to `draw` and `choose` on the same noise.

Shapes: B conditions, M components, K candidates, A action dims. All randomness comes in as arguments.
Rules (docs/method.md section 5):
- "mode_first": one component per decision (k ~ pi, or the previous decision's while its weight stays
  >= keep_min_weight), all K candidates from it, lowest score wins. Multi-modal across decisions,
  sharp within a mode, no hopping between modes from tick to tick. The deployed rule.
- "lowest_energy": K whole-mixture candidates, lowest score wins. Deterministic in the mode: compared only.
- "importance": K whole-mixture candidates, one drawn with weight exp(-score / T) / q.
A decision is `draw` (components, candidates, clipped to the action box so the energy scores what
would be executed), the energies of the candidates, then `choose`.
"""
from __future__ import annotations

import numpy as np

from ebgan_mdn_ros.runtime import sampler

SELECTION_RULES = ("mode_first", "lowest_energy", "importance")
# Multi-level models (docs/method.md sec. 10): sequential Monte Carlo down the noise ladder,
# runtime/annealing.py; over the whole mixture, or with every particle in one chosen component.
ANNEALED_RULES = ("annealed", "annealed_mode_first")
RUNTIME_RULES = SELECTION_RULES + ANNEALED_RULES


def _check_rule(rule: str) -> None:
    if rule not in SELECTION_RULES:
        raise ValueError(f"selection: {rule!r} is unknown, expected one of {SELECTION_RULES}")


def graph_inputs(rule: str, uniforms: np.ndarray, previous: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The decision graph's uniforms [B,K] and previous_component [B] for ``rule``, written in place.

    The graph knows only "inverse CDF per candidate, then keep previous where plausible": mode first is
    one uniform repeated K times, and the whole-mixture rules never keep a previous component.
    """
    _check_rule(rule)
    if rule == "mode_first":
        uniforms[:, 1:] = uniforms[:, :1]
    else:
        previous[...] = -1
    return uniforms, previous


def draw(rule: str, logits: np.ndarray, means: np.ndarray, scales: np.ndarray, uniforms: np.ndarray,
         noise: np.ndarray, low, high, previous: np.ndarray | None = None, keep_min_weight: float = 0.0,
         out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(candidates [B,K,A] clipped to [low, high], components [B,K]) from noise [B,K,A] and uniforms.

    mode_first reads uniforms[:, 0] only (so [B,1] will do) and keeps ``previous`` (< 0: none);
    the other rules read all K uniforms and ignore ``previous``.
    """
    _check_rule(rule)
    probs = sampler.mixture_weights(logits)
    if rule == "mode_first":
        one = sampler.choose_components(probs, uniforms[:, 0], previous, keep_min_weight)
        components = np.broadcast_to(one[:, None], noise.shape[:2])
    else:
        components = sampler.draw_components(probs, uniforms)
    candidates = sampler.draw_candidates(means, scales, components, noise, out=out)
    return np.clip(candidates, low, high, out=candidates), components


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


def importance_resample(candidate_scores: np.ndarray, log_q: np.ndarray, uniform: np.ndarray,
                        temperature: float = 1.0) -> np.ndarray:
    """Draw one index per condition with weight proportional to exp(-score/T) / q. uniform [B] in [0,1).

    With an energy that estimates -log p up to a constant (R-NCE), this resamples p itself;
    a temperature below 1 sharpens the modes.
    """
    if temperature <= 0:
        raise ValueError(f"temperature: {temperature!r} must be > 0")
    return draw_by_log_weight(-candidate_scores / temperature - log_q, uniform)


def draw_by_log_weight(log_w: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """One index per row with probability proportional to exp(log_w); non-finite weights never win."""
    log_w = np.where(np.isfinite(log_w), log_w, -np.inf)
    log_w = log_w - log_w.max(axis=-1, keepdims=True)
    weights = np.exp(log_w)
    cdf = np.cumsum(weights, axis=-1)
    cdf /= cdf[..., -1:]
    cdf[..., -1] = np.inf
    return np.array([np.searchsorted(cdf[b], uniform[b], side="right") for b in range(cdf.shape[0])])


def choose(rule: str, energies: np.ndarray, *, candidates: np.ndarray | None = None,
           previous_action: np.ndarray | None = None, continuity_weight: float = 0.0,
           log_q: np.ndarray | None = None, uniform: np.ndarray | None = None, temperature: float = 1.0,
           out: np.ndarray | None = None) -> np.ndarray:
    """The chosen candidate's index per condition [B] from energies [B,K] (scored into ``out`` if given).

    importance needs log_q [B,K] (the density the candidates were drawn from) and uniform [B].
    """
    _check_rule(rule)
    candidate_scores = scores(energies, candidates, previous_action, continuity_weight, out=out)
    if rule != "importance":
        return lowest_score(candidate_scores)
    if log_q is None or uniform is None:
        raise ValueError("selection 'importance' needs log_q and a uniform per condition")
    return importance_resample(candidate_scores, log_q, uniform, temperature)


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
