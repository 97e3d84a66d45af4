"""Log-density and sampling for the MDN's mixture (torch). Shapes: B batch, M components, K samples, A action."""
from __future__ import annotations

import math

import torch

DISTRIBUTIONS = ("gaussian", "laplace")


def component_log_prob(means: torch.Tensor, scales: torch.Tensor, actions: torch.Tensor,
                       distribution: str = "gaussian") -> torch.Tensor:
    """log N(actions | mean_m, diag(scale_m^2)) per component.

    means, scales [B,M,A]; actions [B,K,A] -> [B,K,M].
    """
    diff = (actions.unsqueeze(2) - means.unsqueeze(1)) / scales.unsqueeze(1)  # [B,K,M,A]
    log_scale = torch.log(scales).sum(-1).unsqueeze(1)  # [B,1,M]
    if distribution == "gaussian":
        return -0.5 * (diff ** 2).sum(-1) - log_scale - 0.5 * means.shape[-1] * math.log(2 * math.pi)
    if distribution == "laplace":
        return -diff.abs().sum(-1) - log_scale - means.shape[-1] * math.log(2.0)
    raise ValueError(f"distribution: {distribution!r} is unknown, expected one of {DISTRIBUTIONS}")


def mixture_log_prob(logits: torch.Tensor, means: torch.Tensor, scales: torch.Tensor,
                     actions: torch.Tensor, distribution: str = "gaussian") -> torch.Tensor:
    """Exact log q(actions | x): logsumexp_m [log pi_m + log N_m].  actions [B,A] -> [B]; [B,K,A] -> [B,K]."""
    squeeze = actions.ndim == 2
    if squeeze:
        actions = actions.unsqueeze(1)
    log_weights = torch.log_softmax(logits, dim=-1).unsqueeze(1)  # [B,1,M]
    log_prob = torch.logsumexp(log_weights + component_log_prob(means, scales, actions, distribution), dim=-1)
    return log_prob.squeeze(1) if squeeze else log_prob


def sample_noise(shape: tuple[int, ...], distribution: str = "gaussian",
                 generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    if distribution == "gaussian":
        return torch.randn(shape, generator=generator, device=device)
    if distribution == "laplace":
        uniform = torch.rand(shape, generator=generator, device=device).clamp(1e-6, 1 - 1e-6) - 0.5
        return -torch.sign(uniform) * torch.log1p(-2 * uniform.abs())
    raise ValueError(f"distribution: {distribution!r} is unknown, expected one of {DISTRIBUTIONS}")


def sample_mixture(logits: torch.Tensor, means: torch.Tensor, scales: torch.Tensor, num_samples: int,
                   distribution: str = "gaussian", generator: torch.Generator | None = None,
                   components: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw num_samples per condition: k ~ softmax(logits) (or the given components [B,K]), y = mu_k + s_k * eps.

    Returns (samples [B,K,A], components [B,K]). Not differentiable through k; differentiable through
    mu and sigma (reparameterised), which the energy-enforced generator loss needs.
    """
    batch, _, action_dim = means.shape
    if components is None:
        probs = torch.softmax(logits, dim=-1)
        components = torch.multinomial(probs, num_samples, replacement=True, generator=generator)
    index = components.unsqueeze(-1).expand(batch, components.shape[1], action_dim)
    chosen_means = torch.gather(means, 1, index)
    chosen_scales = torch.gather(scales, 1, index)
    eps = sample_noise(chosen_means.shape, distribution, generator, means.device)
    return chosen_means + chosen_scales * eps, components


def level_scales(scales: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Component scales of the MDN noised by sigma per condition: sqrt(s^2 + sigma^2). [B,M,A], [B] -> [B,M,A].

    Adding N(0, sigma^2) noise to a Gaussian mixture adds sigma^2 to every component's variance,
    so the noised MDN is again an MDN with exact samples and log-density (docs/method.md sec. 10).
    """
    return torch.sqrt(scales ** 2 + sigma.reshape(-1, 1, 1) ** 2)
