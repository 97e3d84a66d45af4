"""Training losses (docs/method.md sec. 3-4). Lower energy = more plausible, everywhere.

Two layers: pure functions over energy / density tensors (hand-checkable), and thin wrappers that
run the networks and enforce which parameters a loss may touch: the energy loss detaches the
generator's samples (L_E never updates phi), the generator loss evaluates the energy with detached
parameters (L_G never updates theta).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from ebgan_mdn_ros.training.mixture import level_scales, mixture_log_prob

GENERATOR_INCLUSIONS = ("none", "standard", "dynamic")


def inclusion_alpha(inclusion: str, epoch: int, epochs: int, alpha_min: float = 0.1) -> float | None:
    """Scale alpha_t of the generator sample's logit; None means the sample is left out.

    "dynamic" is the authors' schedule max(1 - epoch / epochs, alpha_min): the generator sample
    counts as a full counter-example early on and fades as its samples become plausible.
    """
    if inclusion == "none":
        return None
    if inclusion == "standard":
        return 1.0
    if inclusion == "dynamic":
        return max(1.0 - epoch / epochs, alpha_min)
    raise ValueError(f"generator_inclusion: {inclusion!r} is unknown, expected one of {GENERATOR_INCLUSIONS}")


def modified_infonce(energies: torch.Tensor, num_generator: int = 0, alpha: float | None = None) -> torch.Tensor:
    """EBGAN-MDN energy loss from energies [B, 1 + N + G]: column 0 the data, the last G generator samples.

    L = mean_b E_0 + log(exp(-E_0) + sum_j exp(-E_j) + sum_g exp(-alpha E_g)), i.e. the cross-entropy
    of picking the data among all candidates with the generator's logits scaled by alpha.
    With num_generator = 0 (or alpha None) it is IBC's InfoNCE.
    """
    logits = -energies
    if num_generator:
        if alpha is None:
            logits = logits[:, :-num_generator]
        else:
            logits = torch.cat([logits[:, :-num_generator], alpha * logits[:, -num_generator:]], dim=1)
    return -torch.log_softmax(logits, dim=1)[:, 0].mean()


def ranking_nce(energies: torch.Tensor, proposal_log_density: torch.Tensor) -> torch.Tensor:
    """R-NCE from energies and log q of [B, 1 + K] candidates (column 0 the data).

    Logits -E - log q: the proposal's density is divided out, so the energy learns log p (up to a
    constant per condition) rather than log p/q. log q is detached: the proposal learns by its own
    likelihood, never through this loss.
    """
    logits = -energies - proposal_log_density.detach()
    return -torch.log_softmax(logits, dim=1)[:, 0].mean()


def energy_enforced_generator_loss(sample_energies: torch.Tensor, negative_log_likelihood: torch.Tensor,
                                   energy_weight: float = 1.0, nll_weight: float = 1.0) -> torch.Tensor:
    """L_G = w_E mean E(x, y^) + w_NLL mean NLL(y | x): coverage from the NLL, no gaps from the energy."""
    return energy_weight * sample_energies.mean() + nll_weight * negative_log_likelihood.mean()


def mse_behaviour_cloning(predicted: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(predicted, actions)


def gan_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Standard GAN discriminator cross-entropy (real -> 1, generated -> 0) on logits."""
    return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def gan_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: -log D(G(z))."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def uniform_log_density(action_low: torch.Tensor, action_high: torch.Tensor) -> float:
    """log of the uniform density over the box (in whatever units the box is given)."""
    return -float(torch.log(action_high - action_low).sum())


# ---- wrappers that run the networks -----------------------------------------------------------

def energies_of(energy: nn.Module, condition: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """One batched energy forward over [B, K, A] candidates."""
    return energy(condition, candidates)


def energies_with_frozen_parameters(energy: nn.Module, condition: torch.Tensor,
                                    candidates: torch.Tensor) -> torch.Tensor:
    """Energies that pass gradient to the candidates but never to the energy's parameters."""
    frozen = {name: value.detach() for name, value in energy.named_parameters()}
    frozen.update(dict(energy.named_buffers()))
    return functional_call(energy, frozen, (condition, candidates))


def ebgan_energy_loss(energy: nn.Module, condition: torch.Tensor, actions: torch.Tensor,
                      negatives: torch.Tensor, generator_samples: torch.Tensor | None,
                      alpha: float | None) -> torch.Tensor:
    """Modified InfoNCE over [data, N negatives, G generator samples] in one energy forward.

    actions [B, A]; negatives [B, N, A]; generator_samples [B, G, A] (detached here) or None.
    """
    parts = [actions.unsqueeze(1), negatives]
    num_generator = 0
    if generator_samples is not None and alpha is not None:
        parts.append(generator_samples.detach())
        num_generator = generator_samples.shape[1]
    energies = energies_of(energy, condition, torch.cat(parts, dim=1))
    return modified_infonce(energies, num_generator, alpha)


def mixture_negative_log_likelihood(generator: nn.Module, condition: torch.Tensor, actions: torch.Tensor,
                                    distribution: str = "gaussian") -> tuple[torch.Tensor, tuple]:
    """Per-sample NLL of the data under the MDN, and the mixture parameters (reused for sampling)."""
    mixture = generator(condition)
    return -mixture_log_prob(*mixture, actions, distribution), mixture


def proposal_log_density(mixture: tuple, candidates: torch.Tensor, uniform_share: float,
                         uniform_log_q: float, distribution: str = "gaussian",
                         scale_multipliers: tuple[float, ...] = (1.0,),
                         level_sigma: torch.Tensor | None = None) -> torch.Tensor:
    """log q of candidates under the negatives' proposal.

    q = (1 - u) mean_s MDN_s + u uniform box, where MDN_s is the MDN with its scales times s and u
    the uniform share. Widened copies put negatives between "on the mode" and "anywhere in the
    box", the scales at which a precise energy must still rank the data first. Drawing a fixed
    share of the negatives from each part is stratified sampling of q, so this is the density
    R-NCE must divide out. With level_sigma [B] (rnce-ml) each MDN copy is noised by its
    condition's level: variance (s * scale)^2 + sigma^2, the exact law of a noised MDN sample.
    """
    logits, means, scales = (part.detach() for part in mixture)

    def widened(multiplier):
        return scales * multiplier if level_sigma is None else level_scales(scales * multiplier, level_sigma)
    per_scale = torch.stack([mixture_log_prob(logits, means, widened(multiplier), candidates, distribution)
                             for multiplier in scale_multipliers])
    log_mdn = torch.logsumexp(per_scale, dim=0) - math.log(len(scale_multipliers))
    if uniform_share <= 0.0:
        return log_mdn
    if uniform_share >= 1.0:
        return torch.full_like(log_mdn, uniform_log_q)
    return torch.logaddexp(log_mdn + math.log(1.0 - uniform_share),
                           torch.full_like(log_mdn, uniform_log_q + math.log(uniform_share)))


def draw_levels(batch: int, num_levels: int, clean_share: float,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """rnce-ml: a level index per example [B] int64: the clean level (the last) with probability
    clean_share, else uniform over the noisy ones; always clean on a one-level ladder."""
    if num_levels == 1:
        return torch.zeros(batch, dtype=torch.int64)
    clean = torch.rand(batch, generator=generator) < clean_share
    noisy = torch.randint(0, num_levels - 1, (batch,), generator=generator)
    return torch.where(clean, torch.full_like(noisy, num_levels - 1), noisy)


def denoising_loss(denoiser: nn.Module, condition: torch.Tensor, actions: torch.Tensor,
                   alpha_bar: torch.Tensor) -> torch.Tensor:
    """DDPM's simple loss: noise the data to a random step t, regress the noise (epsilon prediction)."""
    t = torch.randint(0, alpha_bar.shape[0], (actions.shape[0],))
    eps = torch.randn_like(actions)
    signal = alpha_bar[t].unsqueeze(-1)
    noisy = torch.sqrt(signal) * actions + torch.sqrt(1 - signal) * eps
    return F.mse_loss(denoiser(condition, noisy, t.to(torch.float32)), eps)
