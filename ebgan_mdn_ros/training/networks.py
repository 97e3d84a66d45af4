"""PyTorch networks: the MDN generator, the energy model, a plain MLP policy, and normalisation.

Every network works in normalised units; `Normalizer` modules carry the statistics so that an
exported graph can take raw units. Modules return raw tensors; log-density and sampling live in
`mixture.py` (the robomimic GMM-head convention). Each network keeps the arguments it was built
with (`init_kwargs`), so a checkpoint can rebuild it from the module alone.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ebgan_mdn_ros.training.mixture import DISTRIBUTIONS

ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh, "gelu": nn.GELU}


def mlp(in_dim: int, hidden_sizes: Sequence[int], out_dim: int, activation: str = "relu") -> nn.Sequential:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation: {activation!r} is unknown, expected one of {sorted(ACTIVATIONS)}")
    layers: list[nn.Module] = []
    width = in_dim
    for hidden in hidden_sizes:
        layers += [nn.Linear(width, hidden), ACTIVATIONS[activation]()]
        width = hidden
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


class Normalizer(nn.Module):
    """Affine map raw -> (raw - mean) / std, with the statistics as buffers (saved and exported)."""

    def __init__(self, mean: torch.Tensor | Sequence[float], std: torch.Tensor | Sequence[float]):
        super().__init__()
        mean = torch.as_tensor(mean, dtype=torch.float32)
        std = torch.as_tensor(std, dtype=torch.float32)
        if mean.shape != std.shape or mean.ndim != 1:
            raise ValueError(f"normaliser mean {tuple(mean.shape)} and std {tuple(std.shape)} must be equal 1-D")
        if not torch.all(torch.isfinite(mean)) or not torch.all(std > 0):
            raise ValueError("normaliser statistics must be finite with std > 0")
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        return (raw - self.mean) / self.std

    def inverse(self, normalized: torch.Tensor) -> torch.Tensor:
        return normalized * self.std + self.mean


class MixtureDensityNetwork(nn.Module):
    """Condition -> mixture of M components over the action: (logits [B,M], means [B,M,A], scales [B,M,A]).

    `scale_type` "diagonal" gives one scale per action dimension, "isotropic" one per component
    (broadcast to [B,M,A] so consumers need not care). Scales are softplus(raw) + min_scale.
    `distribution` is the components' family ("gaussian" or "laplace"): it does not change the
    forward pass, but whoever samples or scores the mixture must use it, so it travels with the module.
    """

    def __init__(self, condition_dim: int, action_dim: int, num_components: int = 10,
                 hidden_sizes: Sequence[int] = (64, 64), scale_type: str = "diagonal",
                 min_scale: float = 1e-3, activation: str = "relu", distribution: str = "gaussian"):
        super().__init__()
        if scale_type not in ("diagonal", "isotropic"):
            raise ValueError(f"scale_type: {scale_type!r} is unknown, expected 'diagonal' or 'isotropic'")
        if num_components < 1:
            raise ValueError(f"num_components: {num_components!r} must be >= 1")
        if distribution not in DISTRIBUTIONS:
            raise ValueError(f"distribution: {distribution!r} is unknown, expected one of {DISTRIBUTIONS}")
        self.init_kwargs = dict(condition_dim=condition_dim, action_dim=action_dim, num_components=num_components,
                                hidden_sizes=list(hidden_sizes), scale_type=scale_type, min_scale=float(min_scale),
                                activation=activation, distribution=distribution)
        self.distribution = distribution
        self.condition_dim, self.action_dim, self.num_components = condition_dim, action_dim, num_components
        self.scale_type, self.min_scale = scale_type, float(min_scale)
        scale_width = action_dim if scale_type == "diagonal" else 1
        self._scale_width = scale_width
        self.trunk = mlp(condition_dim, hidden_sizes[:-1], hidden_sizes[-1], activation) if hidden_sizes else None
        feature = hidden_sizes[-1] if hidden_sizes else condition_dim
        self.act = ACTIVATIONS[activation]()
        self.head = nn.Linear(feature, num_components * (1 + action_dim + scale_width))

    def forward(self, condition: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        features = self.act(self.trunk(condition)) if self.trunk is not None else condition
        out = self.head(features)
        m, a = self.num_components, self.action_dim
        logits = out[:, :m]
        means = out[:, m:m + m * a].reshape(-1, m, a)
        raw_scale = out[:, m + m * a:].reshape(-1, m, self._scale_width)
        scales = F.softplus(raw_scale) + self.min_scale
        if self.scale_type == "isotropic":
            scales = scales.expand(-1, m, a)
        return logits, means, scales


class EnergyMLP(nn.Module):
    """E(condition, action) -> scalar energy per candidate; lower is more plausible.

    forward(condition [B,C], actions [B,K,A]) -> energies [B,K].
    """

    def __init__(self, condition_dim: int, action_dim: int, hidden_sizes: Sequence[int] = (64, 64),
                 activation: str = "relu"):
        super().__init__()
        self.init_kwargs = dict(condition_dim=condition_dim, action_dim=action_dim, hidden_sizes=list(hidden_sizes),
                                activation=activation)
        self.condition_dim, self.action_dim = condition_dim, action_dim
        self.net = mlp(condition_dim + action_dim, hidden_sizes, 1, activation)

    def forward(self, condition: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        batch, count, _ = actions.shape
        expanded = condition.unsqueeze(1).expand(batch, count, condition.shape[-1])
        return self.net(torch.cat([expanded, actions], dim=-1)).squeeze(-1)


class MLPPolicy(nn.Module):
    """Deterministic (explicit BC) or noise-driven (cGAN / EBGAN generator) MLP: condition[, z] -> action."""

    def __init__(self, condition_dim: int, action_dim: int, hidden_sizes: Sequence[int] = (64, 64),
                 noise_dim: int = 0, activation: str = "relu"):
        super().__init__()
        self.init_kwargs = dict(condition_dim=condition_dim, action_dim=action_dim, hidden_sizes=list(hidden_sizes),
                                noise_dim=noise_dim, activation=activation)
        self.condition_dim, self.action_dim, self.noise_dim = condition_dim, action_dim, noise_dim
        self.net = mlp(condition_dim + noise_dim, hidden_sizes, action_dim, activation)

    def forward(self, condition: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if self.noise_dim:
            if noise is None:
                noise = torch.randn(condition.shape[0], self.noise_dim, device=condition.device)
            condition = torch.cat([condition, noise], dim=-1)
        return self.net(condition)


LEVEL_FLOOR = 1e-3  # log(sigma + floor): the clean level sigma = 0 gets a finite feature


def log_sigma_features(sigmas: torch.Tensor, frequencies: int, floor: float = LEVEL_FLOOR) -> torch.Tensor:
    """Sinusoidal features of log(sigma + floor), scaled to [0, 1] over [floor, 1]: [L] -> [L, 1 + 2F].

    The level enters the energy as these features, so nearby noise scales get nearby energies.
    """
    u = torch.log(sigmas.to(torch.float32) + floor) / math.log(floor)  # 1 at sigma 0, 0 at sigma 1 - floor
    angles = u[:, None] * math.pi * (2.0 ** torch.arange(frequencies, dtype=torch.float32))
    return torch.cat([u[:, None], torch.sin(angles), torch.cos(angles)], dim=-1)


class LevelEnergyMLP(nn.Module):
    """E(condition, action, level) over a noise ladder (rnce-ml, docs/method.md sec. 10).

    forward(condition [B,C], actions [B,K,A], level [B] int64 index into noise_ladder) -> [B,K].
    Without a level it is the clean level (the last, sigma = 0), so every caller of a plain
    energy (the single-level rules, calibration) gets the energy of real actions.
    """

    def __init__(self, condition_dim: int, action_dim: int, noise_ladder: Sequence[float],
                 hidden_sizes: Sequence[int] = (64, 64), activation: str = "relu", level_frequencies: int = 4):
        super().__init__()
        ladder = [float(s) for s in noise_ladder]
        if not ladder or ladder[-1] != 0 or any(a <= b for a, b in zip(ladder, ladder[1:])):
            raise ValueError(f"noise_ladder: {ladder} must be strictly decreasing to 0")
        self.init_kwargs = dict(condition_dim=condition_dim, action_dim=action_dim, noise_ladder=ladder,
                                hidden_sizes=list(hidden_sizes), activation=activation,
                                level_frequencies=level_frequencies)
        self.condition_dim, self.action_dim = condition_dim, action_dim
        self.noise_ladder, self.level_frequencies = tuple(ladder), level_frequencies
        self.register_buffer("sigmas", torch.tensor(ladder, dtype=torch.float32))
        self.register_buffer("features", log_sigma_features(self.sigmas, level_frequencies))
        self.net = mlp(condition_dim + action_dim + self.features.shape[1], hidden_sizes, 1, activation)

    def forward(self, condition: torch.Tensor, actions: torch.Tensor,
                level: torch.Tensor | None = None) -> torch.Tensor:
        batch, count, _ = actions.shape
        if level is None:
            level = torch.full((batch,), len(self.noise_ladder) - 1, dtype=torch.int64, device=actions.device)
        expanded = condition.unsqueeze(1).expand(batch, count, condition.shape[-1])
        features = self.features[level].unsqueeze(1).expand(batch, count, self.features.shape[1])
        return self.net(torch.cat([expanded, actions, features], dim=-1)).squeeze(-1)


def squared_cosine_alpha_bar(steps: int, offset: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Cumulative signal fractions alpha_bar_t, t = 0..steps-1, of the squared-cosine DDPM schedule
    (Nichol and Dhariwal 2021), as Diffusion Policy uses; betas clipped at max_beta."""
    f = torch.cos((torch.arange(steps + 1, dtype=torch.float64) / steps + offset) / (1 + offset) * math.pi / 2) ** 2
    betas = torch.clamp(1 - f[1:] / f[:-1], max=max_beta)
    return torch.cumprod(1 - betas, 0).to(torch.float32)


class Denoiser(nn.Module):
    """eps(condition, noisy action, step): the diffusion baseline's network (docs/method.md sec. 11).

    forward(condition [B,C], sample [B,A] normalised noisy action, timestep [B] float step index) -> eps [B,A].
    It keeps its schedule (alpha_bar, a buffer) so that a checkpoint and an export carry it.
    """

    def __init__(self, condition_dim: int, action_dim: int, hidden_sizes: Sequence[int] = (64, 64),
                 activation: str = "relu", diffusion_steps: int = 100, time_frequencies: int = 8):
        super().__init__()
        self.init_kwargs = dict(condition_dim=condition_dim, action_dim=action_dim, hidden_sizes=list(hidden_sizes),
                                activation=activation, diffusion_steps=diffusion_steps,
                                time_frequencies=time_frequencies)
        self.condition_dim, self.action_dim = condition_dim, action_dim
        self.diffusion_steps, self.time_frequencies = diffusion_steps, time_frequencies
        self.register_buffer("alpha_bar", squared_cosine_alpha_bar(diffusion_steps))
        self.register_buffer("frequencies", math.pi * 2.0 ** torch.arange(time_frequencies, dtype=torch.float32))
        self.net = mlp(condition_dim + action_dim + 1 + 2 * time_frequencies, hidden_sizes, action_dim, activation)

    def forward(self, condition: torch.Tensor, sample: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        u = (timestep.to(torch.float32) / self.diffusion_steps).unsqueeze(-1)  # [B, 1] in [0, 1)
        angles = u * self.frequencies
        return self.net(torch.cat([condition, sample, u, torch.sin(angles), torch.cos(angles)], dim=-1))


MODEL_CLASSES = {cls.__name__: cls for cls in (MixtureDensityNetwork, EnergyMLP, MLPPolicy, LevelEnergyMLP, Denoiser)}


def build_model(class_name: str, kwargs: dict) -> nn.Module:
    """Rebuild a network from the (class name, constructor kwargs) pair stored in a checkpoint."""
    if class_name not in MODEL_CLASSES:
        raise ValueError(f"model class {class_name!r} is unknown, expected one of {sorted(MODEL_CLASSES)}")
    return MODEL_CLASSES[class_name](**kwargs)
