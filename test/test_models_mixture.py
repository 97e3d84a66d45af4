import math

import numpy as np
import pytest
import torch

from ebgan_mdn_ros.spec import PolicySpec
from ebgan_mdn_ros.training.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from ebgan_mdn_ros.training.mixture import mixture_log_prob, sample_mixture
from ebgan_mdn_ros.training.networks import EnergyMLP, MixtureDensityNetwork, Normalizer


def test_mixture_log_prob_matches_direct_gaussian_sum():
    logits = torch.tensor([[0.3, -1.0]])
    means = torch.tensor([[[0.0, 1.0], [2.0, -1.0]]])
    scales = torch.tensor([[[0.5, 0.5], [1.0, 2.0]]])
    y = torch.tensor([[0.4, 0.2]])
    pi = torch.softmax(logits, -1)[0]
    direct = 0.0
    for m in range(2):
        density = 1.0
        for a in range(2):
            mu, s = means[0, m, a].item(), scales[0, m, a].item()
            density *= math.exp(-0.5 * ((y[0, a].item() - mu) / s) ** 2) / (s * math.sqrt(2 * math.pi))
        direct += pi[m].item() * density
    assert mixture_log_prob(logits, means, scales, y).item() == pytest.approx(math.log(direct), rel=1e-5)


def test_laplace_log_prob_integrates_to_one_in_1d():
    logits, means, scales = torch.zeros(1, 1), torch.zeros(1, 1, 1), torch.full((1, 1, 1), 0.3)
    grid = torch.linspace(-6, 6, 20001).reshape(1, -1, 1)
    density = mixture_log_prob(logits, means, scales, grid, "laplace").exp()
    assert torch.trapezoid(density[0], grid[0, :, 0]).item() == pytest.approx(1.0, abs=1e-3)


def test_sampling_follows_weights_and_components():
    gen = torch.Generator().manual_seed(0)
    logits = torch.log(torch.tensor([[0.8, 0.2]]))
    means = torch.tensor([[[-5.0], [5.0]]])
    scales = torch.full((1, 2, 1), 0.01)
    samples, comps = sample_mixture(logits, means, scales, 4000, generator=gen)
    share = (comps == 0).float().mean().item()
    assert 0.77 < share < 0.83
    assert torch.all((samples[comps == 0] < -4.9) & (samples[comps == 0] > -5.1))


def test_mdn_shapes_and_positive_scales():
    mdn = MixtureDensityNetwork(3, 2, num_components=4, hidden_sizes=(16, 16), scale_type="isotropic")
    logits, means, scales = mdn(torch.randn(5, 3))
    assert logits.shape == (5, 4) and means.shape == (5, 4, 2) and scales.shape == (5, 4, 2)
    assert torch.all(scales >= 1e-3)
    assert torch.all(scales[..., 0] == scales[..., 1])
    assert EnergyMLP(3, 2, (8,))(torch.randn(5, 3), torch.randn(5, 7, 2)).shape == (5, 7)


def test_checkpoint_round_trip_needs_nothing_beside_the_modules(tmp_path):
    spec = PolicySpec(("goal.0",), ("j1", "j2"), (-1.0, -1.0), (1.0, 1.0))
    generator = MixtureDensityNetwork(1, 2, num_components=3, hidden_sizes=[8], scale_type="isotropic",
                                      distribution="laplace")
    conditions = np.linspace(-1, 1, 7, dtype=np.float32)[:, None]
    ckpt = Checkpoint("ebgan-mdn", "toy", spec, Normalizer([0.5], [2.0]), Normalizer([0, 0], [1, 1]),
                      generator, EnergyMLP(1, 2, hidden_sizes=[8], activation="tanh"), {"seed": 0},
                      training_conditions=conditions)
    save_checkpoint(tmp_path / "checkpoint.pt", ckpt)
    loaded = load_checkpoint(tmp_path)
    x = torch.randn(4, 1)
    for a, b in zip(ckpt.generator(x), loaded.generator(x)):
        assert torch.equal(a, b)
    actions = torch.randn(4, 5, 2)
    assert torch.equal(ckpt.energy(x, actions), loaded.energy(x, actions))
    assert loaded.generator.distribution == "laplace" and loaded.generator.scale_type == "isotropic"
    assert loaded.spec == spec and loaded.condition_normalizer.std.tolist() == [2.0]
    np.testing.assert_array_equal(loaded.training_conditions, conditions)


def test_policy_spec_rejects_bad_bounds():
    with pytest.raises(ValueError, match="below"):
        PolicySpec(("c",), ("a",), (1.0,), (0.0,))
