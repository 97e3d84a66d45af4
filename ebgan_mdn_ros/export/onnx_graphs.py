"""Torch modules that are exported to ONNX: raw units in, raw units out (private to exporter.py).

Normalisation lives inside the graphs so the runtime never needs the statistics. The graphs:
- GeneratorGraph: condition [B,C] -> logits [B,M], means [B,M,A], scales [B,M,A];
- EnergyGraph: condition [B,C], actions [B,K,A] -> energy [B,K] (lower is better);
- DecisionGraph: the generator, component choice, candidate draws and energies in one graph, so a
  control step is one session run and, on CUDA, sampling stays on the device. It is a copy, for speed,
  of runtime/selection.draw (the reference), with the randomness coming in as the same inputs, so
  test/test_selection.py holds it to the reference on the same noise.
- LevelEnergyGraph: a multi-level energy, condition, actions, level [B] (index into the ladder) -> energy;
  CleanLevel serves it as a plain energy at the data's level (in the decision graph, for calibration);
- DenoiserGraph: the diffusion baseline's eps(condition (raw), sample (normalised), timestep).
"""
from __future__ import annotations

import torch
from torch import nn

from ebgan_mdn_ros.training.mixture import mixture_log_prob
from ebgan_mdn_ros.training.networks import Denoiser, EnergyMLP, LevelEnergyMLP, MixtureDensityNetwork, Normalizer


class GeneratorGraph(nn.Module):
    def __init__(self, generator: MixtureDensityNetwork, condition_normalizer: Normalizer,
                 action_normalizer: Normalizer):
        super().__init__()
        self.generator = generator
        self.condition_normalizer = condition_normalizer
        self.register_buffer("action_mean", action_normalizer.mean.clone())
        self.register_buffer("action_std", action_normalizer.std.clone())

    def forward(self, condition: torch.Tensor):
        logits, means, scales = self.generator(self.condition_normalizer(condition))
        return logits, means * self.action_std + self.action_mean, scales * self.action_std


class EnergyGraph(nn.Module):
    """EnergyMLP in raw units, its first layer split into a condition part and an action part.

    With one condition and K candidates the condition part is computed once instead of K times, and
    both normalisations are folded into the first layer's weights: mathematically the same network.
    """

    def __init__(self, energy: EnergyMLP, condition_normalizer: Normalizer, action_normalizer: Normalizer):
        super().__init__()
        layers = list(energy.net)
        first = layers[0]
        if not isinstance(first, nn.Linear):
            raise TypeError(f"energy network must start with nn.Linear, got {type(first).__name__}")
        condition_dim = energy.condition_dim
        with torch.no_grad():
            weight_c = first.weight[:, :condition_dim] / condition_normalizer.std
            weight_a = first.weight[:, condition_dim:] / action_normalizer.std
            bias = (first.bias - weight_c @ condition_normalizer.mean - weight_a @ action_normalizer.mean)
        self.condition_layer = nn.Linear(condition_dim, first.out_features)
        self.action_layer = nn.Linear(energy.action_dim, first.out_features, bias=False)
        with torch.no_grad():
            self.condition_layer.weight.copy_(weight_c)
            self.condition_layer.bias.copy_(bias)
            self.action_layer.weight.copy_(weight_a)
        self.rest = nn.Sequential(*layers[1:])
        self.action_dim = energy.action_dim

    def forward(self, condition: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        batch, count = actions.shape[0], actions.shape[1]
        # 2-D matmuls export as Gemm, which onnxruntime fuses with the activation
        hidden = self.action_layer(actions.reshape(-1, self.action_dim)).reshape(batch, count, -1)
        hidden = hidden + self.condition_layer(condition).unsqueeze(1)
        hidden = hidden.reshape(batch * count, -1)
        return self.rest(hidden).reshape(batch, count)


class ReferenceEnergy(nn.Module):
    """The energy exactly as trained (normalise, concatenate, MLP): what EnergyGraph is checked against."""

    def __init__(self, energy: EnergyMLP, condition_normalizer: Normalizer, action_normalizer: Normalizer):
        super().__init__()
        self.energy, self.condition_normalizer, self.action_normalizer = energy, condition_normalizer, action_normalizer

    def forward(self, condition: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.energy(self.condition_normalizer(condition), self.action_normalizer(actions))


class MixtureEnergyGraph(nn.Module):
    """Energy = -log q(action | condition) of the MDN itself, for runs trained without an energy model."""

    def __init__(self, generator_graph: GeneratorGraph):
        super().__init__()
        self.generator_graph = generator_graph

    def forward(self, condition: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        logits, means, scales = self.generator_graph(condition)
        return -mixture_log_prob(logits, means, scales, actions)


class DecisionGraph(nn.Module):
    """condition, noise [B,K,A], uniforms [B,K], previous_component [B], keep_min_weight [1]
    -> candidates [B,K,A], energies [B,K], components [B,K], logits, means, scales.

    Component of candidate k: inverse CDF of uniforms[:, k], replaced by previous_component where that
    is >= 0 and its weight >= keep_min_weight; candidates clipped to the action box. A selection rule
    reaches the graph through selection.graph_inputs (mode first: one uniform repeated K times; the
    whole-mixture rules: K uniforms and no previous component), and is then selection.draw's result.
    """

    def __init__(self, generator_graph: GeneratorGraph, energy_graph: nn.Module,
                 action_low: torch.Tensor, action_high: torch.Tensor):
        super().__init__()
        self.generator_graph = generator_graph
        self.energy_graph = energy_graph
        self.register_buffer("action_low", torch.as_tensor(action_low, dtype=torch.float32))
        self.register_buffer("action_high", torch.as_tensor(action_high, dtype=torch.float32))

    def forward(self, condition, noise, uniforms, previous_component, keep_min_weight):
        logits, means, scales = self.generator_graph(condition)
        num_components = logits.shape[-1]
        probs = torch.softmax(logits, dim=-1)
        cdf = torch.cumsum(probs, dim=-1)
        below = (cdf.unsqueeze(1) <= uniforms.unsqueeze(-1)).to(torch.int64)  # [B,K,M]
        drawn = torch.clamp(below.sum(-1), max=num_components - 1)
        safe_previous = torch.clamp(previous_component, min=0, max=num_components - 1)
        previous_weight = torch.gather(probs, 1, safe_previous.unsqueeze(1))  # [B,1]
        previous = previous_component.unsqueeze(1)
        keep = (previous >= 0) & (previous < num_components) & (previous_weight >= keep_min_weight)
        components = torch.where(keep, safe_previous.unsqueeze(1), drawn)
        index = components.unsqueeze(-1).expand(-1, -1, means.shape[-1])
        candidates = torch.gather(means, 1, index) + torch.gather(scales, 1, index) * noise
        candidates = torch.maximum(torch.minimum(candidates, self.action_high), self.action_low)
        if isinstance(self.energy_graph, MixtureEnergyGraph):  # the mixture is already computed above
            energies = -mixture_log_prob(logits, means, scales, candidates)
        else:
            energies = self.energy_graph(condition, candidates)
        return candidates, energies, components, logits, means, scales


class LevelEnergyGraph(nn.Module):
    """LevelEnergyMLP in raw units, split as EnergyGraph is; the level's share of the first layer
    (its features times their weights, plus the bias) is a table with one row per level."""

    def __init__(self, energy: LevelEnergyMLP, condition_normalizer: Normalizer, action_normalizer: Normalizer):
        super().__init__()
        layers = list(energy.net)
        first = layers[0]
        c, a = energy.condition_dim, energy.action_dim
        with torch.no_grad():
            weight_c = first.weight[:, :c] / condition_normalizer.std
            weight_a = first.weight[:, c:c + a] / action_normalizer.std
            bias = first.bias - weight_c @ condition_normalizer.mean - weight_a @ action_normalizer.mean
            level_bias = energy.features @ first.weight[:, c + a:].T + bias  # [L, H]
        self.condition_layer = nn.Linear(c, first.out_features, bias=False)
        self.action_layer = nn.Linear(a, first.out_features, bias=False)
        with torch.no_grad():
            self.condition_layer.weight.copy_(weight_c)
            self.action_layer.weight.copy_(weight_a)
        self.register_buffer("level_bias", level_bias.clone())
        self.rest = nn.Sequential(*layers[1:])
        self.action_dim = a

    def forward(self, condition: torch.Tensor, actions: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        batch, count = actions.shape[0], actions.shape[1]
        hidden = self.action_layer(actions.reshape(-1, self.action_dim)).reshape(batch, count, -1)
        hidden = hidden + (self.condition_layer(condition) + self.level_bias[level]).unsqueeze(1)
        return self.rest(hidden.reshape(batch * count, -1)).reshape(batch, count)


class ReferenceLevelEnergy(nn.Module):
    """The multi-level energy exactly as trained: what LevelEnergyGraph is checked against."""

    def __init__(self, energy: LevelEnergyMLP, condition_normalizer: Normalizer, action_normalizer: Normalizer):
        super().__init__()
        self.energy, self.condition_normalizer, self.action_normalizer = energy, condition_normalizer, action_normalizer

    def forward(self, condition: torch.Tensor, actions: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        return self.energy(self.condition_normalizer(condition), self.action_normalizer(actions), level)


class CleanLevel(nn.Module):
    """A multi-level energy at the data's level (the ladder's last), as a plain E(condition, actions)."""

    def __init__(self, level_energy: nn.Module, clean_level: int):
        super().__init__()
        self.level_energy, self.clean_level = level_energy, clean_level

    def forward(self, condition: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        level = torch.zeros_like(condition[:, 0], dtype=torch.int64) + self.clean_level
        return self.level_energy(condition, actions, level)


class DenoiserGraph(nn.Module):
    """The denoiser with the condition's normalisation folded in; the sample stays in normalised
    units (the DDIM loop runs there, runtime/diffusion.py) and the runtime maps the result back."""

    def __init__(self, denoiser: Denoiser, condition_normalizer: Normalizer):
        super().__init__()
        self.denoiser, self.condition_normalizer = denoiser, condition_normalizer

    def forward(self, condition: torch.Tensor, sample: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        return self.denoiser(self.condition_normalizer(condition), sample, timestep)
