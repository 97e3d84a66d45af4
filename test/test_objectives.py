import math

import pytest
import torch

from ebgan_mdn_ros.training import objectives as obj
from ebgan_mdn_ros.training.mixture import mixture_log_prob, sample_mixture
from ebgan_mdn_ros.training.networks import EnergyMLP, MixtureDensityNetwork


def test_infonce_matches_hand_computed_cross_entropy():
    energies = torch.tensor([[0.0, 1.0, 2.0]])
    expected = -math.log(1.0 / (1.0 + math.exp(-1.0) + math.exp(-2.0)))
    assert obj.modified_infonce(energies).item() == pytest.approx(expected, rel=1e-6)


def test_modified_infonce_scales_only_the_generator_logit():
    # L = E_0 + log(exp(-E_0) + exp(-E_1) + exp(-alpha E_g)) with E = (1, 2, 4), alpha = 0.5
    energies = torch.tensor([[1.0, 2.0, 4.0]])
    expected = 1.0 + math.log(math.exp(-1.0) + math.exp(-2.0) + math.exp(-2.0))
    assert obj.modified_infonce(energies, num_generator=1, alpha=0.5).item() == pytest.approx(expected, rel=1e-6)
    dropped = 1.0 + math.log(math.exp(-1.0) + math.exp(-2.0))
    assert obj.modified_infonce(energies, num_generator=1, alpha=None).item() == pytest.approx(dropped, rel=1e-6)


def test_modified_infonce_averages_over_the_batch():
    energies = torch.tensor([[0.0, 0.0], [0.0, 10.0]])
    expected = 0.5 * (math.log(2.0) + math.log(1.0 + math.exp(-10.0)))
    assert obj.modified_infonce(energies).item() == pytest.approx(expected, rel=1e-6)


def test_alpha_schedule():
    assert obj.inclusion_alpha("none", 3, 10) is None
    assert obj.inclusion_alpha("standard", 3, 10) == 1.0
    assert obj.inclusion_alpha("dynamic", 0, 100) == 1.0
    assert obj.inclusion_alpha("dynamic", 50, 100) == pytest.approx(0.5)
    assert obj.inclusion_alpha("dynamic", 95, 100) == pytest.approx(0.1)  # floor
    assert obj.inclusion_alpha("dynamic", 95, 100, alpha_min=0.2) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="generator_inclusion"):
        obj.inclusion_alpha("sometimes", 0, 10)


def test_ranking_nce_divides_out_the_proposal_and_detaches_it():
    energies = torch.tensor([[1.0, 0.5, 2.0]])
    log_q = torch.tensor([[-1.0, 0.0, -2.0]], requires_grad=True)
    logits = [-1.0 + 1.0, -0.5 - 0.0, -2.0 + 2.0]
    expected = -(logits[0] - math.log(sum(math.exp(v) for v in logits)))
    loss = obj.ranking_nce(energies, log_q)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert not loss.requires_grad  # log q is detached: no gradient path into the proposal


def test_ranking_nce_ignores_a_per_condition_energy_offset():
    energies, log_q = torch.randn(4, 6), torch.randn(4, 6)
    shifted = energies + torch.arange(4.0)[:, None]
    assert obj.ranking_nce(energies, log_q).item() == pytest.approx(obj.ranking_nce(shifted, log_q).item(), rel=1e-5)


def test_generator_loss_weights():
    energies, nll = torch.tensor([1.0, 3.0]), torch.tensor([0.5, 1.5])
    assert obj.energy_enforced_generator_loss(energies, nll).item() == pytest.approx(3.0)
    assert obj.energy_enforced_generator_loss(energies, nll, 0.5, 2.0).item() == pytest.approx(1.0 + 2.0)


def test_gan_losses_at_an_undecided_critic():
    zero = torch.zeros(3)
    assert obj.gan_discriminator_loss(zero, zero).item() == pytest.approx(2 * math.log(2))
    assert obj.gan_generator_loss(zero).item() == pytest.approx(math.log(2))
    assert obj.mse_behaviour_cloning(torch.ones(2, 2), torch.zeros(2, 2)).item() == pytest.approx(1.0)


def _networks():
    torch.manual_seed(0)
    return MixtureDensityNetwork(2, 2, num_components=3, hidden_sizes=(8,)), EnergyMLP(2, 2, hidden_sizes=(8,))


def test_energy_loss_never_updates_the_generator():
    generator, energy = _networks()
    condition, actions = torch.randn(5, 2), torch.randn(5, 2)
    samples, _ = sample_mixture(*generator(condition), 2)
    assert samples.requires_grad
    loss = obj.ebgan_energy_loss(energy, condition, actions, torch.randn(5, 4, 2), samples, alpha=0.7)
    loss.backward()
    assert all(p.grad is None for p in generator.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in energy.parameters())


def test_generator_loss_never_updates_the_energy():
    generator, energy = _networks()
    condition, actions = torch.randn(5, 2), torch.randn(5, 2)
    nll, mixture = obj.mixture_negative_log_likelihood(generator, condition, actions)
    samples, _ = sample_mixture(*mixture, 1)
    sample_energies = obj.energies_with_frozen_parameters(energy, condition, samples)
    assert torch.allclose(sample_energies, energy(condition, samples))
    obj.energy_enforced_generator_loss(sample_energies, nll).backward()
    assert all(p.grad is None for p in energy.parameters())
    assert all(p.grad is not None for p in generator.parameters())


def test_energy_term_alone_moves_generator_through_its_samples():
    generator, energy = _networks()
    condition = torch.randn(5, 2)
    samples, _ = sample_mixture(*generator(condition), 1)
    obj.energies_with_frozen_parameters(energy, condition, samples).mean().backward()
    assert generator.head.weight.grad.abs().sum() > 0


def test_proposal_density_mixes_scales_and_uniform_box():
    logits, means, scales = torch.zeros(1, 1), torch.zeros(1, 1, 1), torch.full((1, 1, 1), 0.5)
    candidates = torch.tensor([[[0.0], [1.0]]])
    single = mixture_log_prob(logits, means, scales, candidates)
    wide = mixture_log_prob(logits, means, scales * 4, candidates)
    two_scales = obj.proposal_log_density((logits, means, scales), candidates, 0.0, 0.0, scale_multipliers=(1.0, 4.0))
    assert torch.allclose(two_scales, torch.log(0.5 * single.exp() + 0.5 * wide.exp()))
    uniform_log_q = obj.uniform_log_density(torch.tensor([-2.0]), torch.tensor([2.0]))
    assert uniform_log_q == pytest.approx(-math.log(4.0))
    with_box = obj.proposal_log_density((logits, means, scales), candidates, 0.25, uniform_log_q)
    assert torch.allclose(with_box, torch.log(0.75 * single.exp() + 0.25 / 4.0))
