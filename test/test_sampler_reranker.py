import numpy as np
import pytest
import torch

from ebgan_mdn_ros.runtime import sampler, selection
from ebgan_mdn_ros.training.mixture import mixture_log_prob


def test_mixture_weights_softmax_and_stable():
    probs = sampler.mixture_weights(np.array([[1000.0, 1000.0, -1000.0]]))
    np.testing.assert_allclose(probs, [[0.5, 0.5, 0.0]])


def test_choose_components_follows_probabilities_by_inverse_cdf():
    probs = np.array([[0.2, 0.5, 0.3]] * 4)
    uniform = np.array([0.0, 0.19, 0.2, 0.95])
    np.testing.assert_array_equal(sampler.choose_components(probs, uniform), [0, 0, 1, 2])


def test_choose_components_keeps_previous_only_while_plausible():
    probs = np.array([[0.9, 0.1], [0.99, 0.01]])
    uniform = np.array([0.0, 0.0])  # inverse CDF alone would pick component 0 for both
    previous = np.array([1, 1])
    np.testing.assert_array_equal(sampler.choose_components(probs, uniform, previous, 0.05), [1, 0])
    np.testing.assert_array_equal(sampler.choose_components(probs, uniform, np.array([-1, -1]), 0.05), [0, 0])


def test_draw_candidates_uses_chosen_component_mean_and_scale():
    means = np.array([[[0.0, 0.0], [10.0, -10.0]]])
    scales = np.array([[[1.0, 1.0], [2.0, 0.5]]])
    noise = np.array([[[1.0, 1.0], [1.0, -2.0]]])
    out = sampler.draw_candidates(means, scales, np.array([[1, 0]]), noise)
    np.testing.assert_allclose(out, [[[12.0, -9.5], [1.0, -2.0]]])


def test_mixture_log_density_matches_torch_reference():
    rng = np.random.default_rng(0)
    logits, means = rng.normal(size=(3, 4)), rng.normal(size=(3, 4, 2))
    scales, cands = rng.uniform(0.1, 1.0, size=(3, 4, 2)), rng.normal(size=(3, 5, 2))
    ours = sampler.mixture_log_density(logits, means, scales, cands)
    ref = mixture_log_prob(*(torch.tensor(a) for a in (logits, means, scales, cands))).numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-6)


def test_scores_add_continuity_penalty():
    energies = np.array([[1.0, 1.1]])
    cands = np.array([[[0.0], [1.0]]])
    prev = np.array([[1.0]])
    assert selection.lowest_score(selection.scores(energies, cands, prev, 0.0))[0] == 0
    assert selection.lowest_score(selection.scores(energies, cands, prev, 1.0))[0] == 1
    np.testing.assert_allclose(selection.scores(energies, cands, prev, 2.0), [[3.0, 1.1]])


def test_lowest_score_ignores_nan():
    assert selection.lowest_score(np.array([[np.nan, 3.0, 2.0]]))[0] == 2


def test_choose_draws_importance_only_with_its_density():
    energies = np.array([[0.0, 1.0, 2.0]])
    assert selection.choose("lowest_energy", energies)[0] == 0
    with pytest.raises(ValueError, match="log_q"):
        selection.choose("importance", energies)
    with pytest.raises(ValueError, match="selection: 'best'"):
        selection.choose("best", energies)
    # weight exp(-E) / q: a tiny q makes the worst energy the likely draw
    assert selection.choose("importance", energies, log_q=np.array([[0.0, 0.0, -50.0]]), uniform=np.array([0.5]))[0] == 2


def test_importance_resample_matches_weights():
    energies = np.array([[0.0, np.log(3.0)]] * 20000)  # exp(-E): 1 and 1/3
    log_q = np.zeros_like(energies)
    idx = selection.importance_resample(energies, log_q, np.random.default_rng(1).random(20000))
    assert np.mean(idx == 0) == pytest.approx(0.75, abs=0.01)
    with pytest.raises(ValueError, match="temperature"):
        selection.importance_resample(energies, log_q, np.zeros(20000), temperature=0.0)


def test_energy_gap():
    energies = np.array([[0.5, 0.1, 0.9, 0.4]])
    comps = np.array([[0, 1, 1, 2]])
    chosen = np.array([1])
    np.testing.assert_allclose(selection.energy_gap(energies, comps, chosen), [0.3])
    assert np.isnan(selection.energy_gap(energies, np.zeros_like(comps), chosen)[0])


def test_laplace_log_density_matches_torch_and_noise_is_standard_laplace():
    rng = np.random.default_rng(0)
    logits, means = rng.normal(size=(3, 4)), rng.normal(size=(3, 4, 2))
    scales, cands = rng.uniform(0.1, 1.0, size=(3, 4, 2)), rng.normal(size=(3, 5, 2))
    ours = sampler.mixture_log_density(logits, means, scales, cands, "laplace")
    ref = mixture_log_prob(*(torch.tensor(a) for a in (logits, means, scales, cands)), "laplace").numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-6)
    noise = sampler.unit_noise(rng, (200_000,), "laplace")
    assert np.mean(np.abs(noise)) == pytest.approx(1.0, abs=0.01) and np.var(noise) == pytest.approx(2.0, abs=0.03)
    with pytest.raises(ValueError, match="distribution"):
        sampler.unit_noise(rng, (3,), "cauchy")
