"""Training loop for every method: EBGAN-MDN, R-NCE (one level or several) and the baselines
(docs/method.md sec. 3-4, 10, 11).

Reads top to bottom: `build_networks` and `build_optimizers` are separate from `train_loop` so a
distributed launcher can wrap the networks (DistributedDataParallel) between the two and shard
`epoch_batches`; `train` is the single-process entry that normalises, builds, loops and saves.
Everything inside the loop works in normalised units.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ebgan_mdn_ros.training import objectives as obj
from ebgan_mdn_ros.spec import PolicySpec
from ebgan_mdn_ros.training.checkpoint import CHECKPOINT_FILE, Checkpoint, save_checkpoint
from ebgan_mdn_ros.config_base import to_dict
from ebgan_mdn_ros.training.mixture import level_scales, sample_mixture
from ebgan_mdn_ros.training.networks import (Denoiser, EnergyMLP, LevelEnergyMLP, MixtureDensityNetwork, MLPPolicy,
                                             Normalizer)
from ebgan_mdn_ros.training.config import ENERGY_METHODS, MDN_METHODS, TrainConfig


@dataclass
class Networks:
    generator: nn.Module | None
    energy: nn.Module | None


@dataclass
class Optimizers:
    generator: torch.optim.Optimizer | None
    energy: torch.optim.Optimizer | None
    generator_schedule: torch.optim.lr_scheduler.LRScheduler | None = None
    energy_schedule: torch.optim.lr_scheduler.LRScheduler | None = None  # runs from energy_start_epoch


@dataclass
class TrainingData:
    """Normalised tensors plus the action box in normalised units (uniform negatives live there)."""
    conditions: torch.Tensor
    actions: torch.Tensor
    box_low: torch.Tensor
    box_high: torch.Tensor


def build_networks(method: str, condition_dim: int, action_dim: int, config: TrainConfig) -> Networks:
    model = config.model
    generator = energy = None
    if method in MDN_METHODS:
        generator = MixtureDensityNetwork(condition_dim, action_dim, model.num_components, model.generator_hidden,
                                          model.scale_type, model.min_scale, model.activation, model.distribution)
    elif method in ("bc", "cgan", "ebgan"):
        generator = MLPPolicy(condition_dim, action_dim, model.generator_hidden,
                              noise_dim=0 if method == "bc" else model.noise_dim, activation=model.activation)
    elif method == "diffusion":  # the denoiser takes the generator's place (and width)
        generator = Denoiser(condition_dim, action_dim, model.generator_hidden, model.activation,
                             model.diffusion_steps, model.time_frequencies)
    if method == "rnce-ml":
        energy = LevelEnergyMLP(condition_dim, action_dim, model.noise_ladder, model.energy_hidden, model.activation,
                                model.level_frequencies)
    elif method in ENERGY_METHODS:
        energy = EnergyMLP(condition_dim, action_dim, model.energy_hidden, model.activation)
    return Networks(generator, energy)


def build_optimizers(networks: Networks, config: TrainConfig) -> Optimizers:
    optim = config.optim

    def adam(module, lr):
        if module is None:
            return None
        return torch.optim.Adam(module.parameters(), lr=lr, weight_decay=optim.weight_decay)

    generator = adam(networks.generator, optim.generator_lr)
    energy = adam(networks.energy, optim.energy_lr)

    def schedule(optimizer, epochs):
        if optimizer is None or optim.lr_schedule == "constant":
            return None
        if optim.lr_schedule == "step":
            return torch.optim.lr_scheduler.StepLR(optimizer, optim.lr_step_epochs, optim.lr_gamma)
        return torch.optim.lr_scheduler.CosineAnnealingLR(  # stepped per epoch, like StepLR
            optimizer, epochs, eta_min=optimizer.defaults["lr"] * optim.lr_final_fraction)

    return Optimizers(generator, energy, schedule(generator, optim.epochs),
                      schedule(energy, optim.epochs - optim.energy_start_epoch))


def epoch_batches(count: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Shuffled index batches; the last, smaller one is dropped unless it is the only one."""
    order = torch.randperm(count, generator=generator)
    full = max(count // batch_size, 1)
    return [order[i * batch_size:(i + 1) * batch_size] for i in range(full)]


def _uniform(data: TrainingData, batch: int, count: int) -> torch.Tensor:
    low, high = data.box_low, data.box_high
    return low + (high - low) * torch.rand(batch, count, low.shape[0])


def _update(optimizer: torch.optim.Optimizer, loss: torch.Tensor, module: nn.Module, clip: float) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip > 0:
        nn.utils.clip_grad_norm_(module.parameters(), clip)
    optimizer.step()


@dataclass
class StepContext:
    networks: Networks
    optimizers: Optimizers
    data: TrainingData
    config: TrainConfig
    epoch: int
    train_energy: bool


def _energy_step_ebgan(ctx: StepContext, condition, actions) -> dict:
    """Modified InfoNCE over uniform negatives and (alpha-scaled) generator samples, R times."""
    cfg, nets = ctx.config.objective, ctx.networks
    alpha = obj.inclusion_alpha(cfg.generator_inclusion, ctx.epoch, ctx.config.optim.epochs, cfg.alpha_min)
    loss = torch.zeros(())
    for _ in range(cfg.energy_updates_per_batch):
        negatives = _uniform(ctx.data, len(actions), cfg.uniform_negatives)
        generated = None
        if alpha is not None and nets.generator is not None:
            with torch.no_grad():
                generated = _generator_samples(ctx, condition, cfg.generator_samples)
        loss = obj.ebgan_energy_loss(nets.energy, condition, actions, negatives, generated, alpha)
        _update(ctx.optimizers.energy, loss, nets.energy, ctx.config.optim.grad_clip)
    return {"energy": loss.item()}


def _generator_samples(ctx: StepContext, condition: torch.Tensor, count: int) -> torch.Tensor:
    """[B, count, A] samples; decided by method, not isinstance, so a DDP-wrapped generator works too."""
    generator = ctx.networks.generator
    if ctx.config.method in MDN_METHODS:
        return sample_mixture(*generator(condition), count, ctx.config.model.distribution)[0]
    repeated = condition.repeat_interleave(count, 0)
    return generator(repeated).reshape(len(condition), count, -1)


def _mdn_generator_step(ctx: StepContext, condition, actions) -> dict:
    """Energy-enforced MDN loss; with energy weight 0 (R-NCE's default) plain maximum likelihood."""
    cfg, nets, distribution = ctx.config.objective, ctx.networks, ctx.config.model.distribution
    nll, mixture = obj.mixture_negative_log_likelihood(nets.generator, condition, actions, distribution)
    energy_weight = cfg.energy_weight_for(ctx.config.method) if ctx.train_energy else 0.0
    sample_energy = torch.zeros(1)
    if energy_weight > 0:
        samples = sample_mixture(*mixture, cfg.generator_samples, distribution)[0]
        sample_energy = obj.energies_with_frozen_parameters(nets.energy, condition, samples)
    loss = obj.energy_enforced_generator_loss(sample_energy, nll, energy_weight, cfg.generator_nll_weight)
    _update(ctx.optimizers.generator, loss, nets.generator, ctx.config.optim.grad_clip)
    return {"nll": nll.mean().item()}


def step_ebgan_mdn(ctx: StepContext, condition, actions) -> dict:
    losses = _energy_step_ebgan(ctx, condition, actions) if ctx.train_energy else {}
    return {**losses, **_mdn_generator_step(ctx, condition, actions)}


def _rnce_proposal(ctx: StepContext, condition):
    """R-NCE's proposal for a batch: the uniform share of the negatives, the uniform log-density, and
    the MDN's mixture, fixed (no gradient) while the energy takes its R steps on this batch."""
    cfg = ctx.config.objective
    share = cfg.uniform_negatives / (cfg.uniform_negatives + cfg.proposal_negatives)
    with torch.no_grad():
        mixture = ctx.networks.generator(condition)
    return share, obj.uniform_log_density(ctx.data.box_low, ctx.data.box_high), mixture


def step_rnce(ctx: StepContext, condition, actions) -> dict:
    """MDN by its own likelihood (plus optional energy term), energy by R-NCE with the MDN as proposal."""
    losses = _mdn_generator_step(ctx, condition, actions)
    if not ctx.train_energy:
        return losses
    cfg, nets, model = ctx.config.objective, ctx.networks, ctx.config.model
    share, uniform_log_q, mixture = _rnce_proposal(ctx, condition)
    logits, means, scales = mixture
    for _ in range(cfg.energy_updates_per_batch):
        with torch.no_grad():
            parts = [actions.unsqueeze(1)]
            count = cfg.proposal_negatives // len(cfg.proposal_scales)
            for multiplier in cfg.proposal_scales if count else ():
                parts.append(sample_mixture(logits, means, scales * multiplier, count, model.distribution)[0])
            if cfg.uniform_negatives:
                parts.append(_uniform(ctx.data, len(actions), cfg.uniform_negatives))
            candidates = torch.cat(parts, 1)
            log_q = obj.proposal_log_density(mixture, candidates, share, uniform_log_q, model.distribution,
                                             cfg.proposal_scales)
        loss = obj.ranking_nce(obj.energies_of(nets.energy, condition, candidates), log_q)
        _update(ctx.optimizers.energy, loss, nets.energy, ctx.config.optim.grad_clip)
    return {**losses, "energy": loss.item()}


def step_rnce_ml(ctx: StepContext, condition, actions) -> dict:
    """Multi-level R-NCE (docs/method.md sec. 10): the MDN by its likelihood at the clean level; the
    energy by R-NCE at a level per example, with the data noised to that level as the positive and
    the MDN noised to it (its variances + sigma^2, closed form) as the proposal."""
    losses = _mdn_generator_step(ctx, condition, actions)
    if not ctx.train_energy:
        return losses
    cfg, nets, model = ctx.config.objective, ctx.networks, ctx.config.model
    share, uniform_log_q, mixture = _rnce_proposal(ctx, condition)
    logits, means, scales = mixture
    ladder = torch.tensor(model.noise_ladder, dtype=torch.float32)
    for _ in range(cfg.energy_updates_per_batch):
        with torch.no_grad():
            level = obj.draw_levels(len(actions), len(ladder), cfg.level_zero_share)
            sigma = ladder[level]
            parts = [(actions + sigma[:, None] * torch.randn_like(actions)).unsqueeze(1)]
            count = cfg.proposal_negatives // len(cfg.proposal_scales)
            for multiplier in cfg.proposal_scales if count else ():
                parts.append(sample_mixture(logits, means, level_scales(scales * multiplier, sigma), count,
                                            model.distribution)[0])
            if cfg.uniform_negatives:
                parts.append(_uniform(ctx.data, len(actions), cfg.uniform_negatives))
            candidates = torch.cat(parts, 1)
            log_q = obj.proposal_log_density(mixture, candidates, share, uniform_log_q, model.distribution,
                                             cfg.proposal_scales, level_sigma=sigma)
        loss = obj.ranking_nce(nets.energy(condition, candidates, level), log_q)
        _update(ctx.optimizers.energy, loss, nets.energy, ctx.config.optim.grad_clip)
    return {**losses, "energy": loss.item()}


def step_diffusion(ctx: StepContext, condition, actions) -> dict:
    denoiser = ctx.networks.generator
    alpha_bar = getattr(denoiser, "module", denoiser).alpha_bar  # through a DDP wrapper too
    loss = obj.denoising_loss(denoiser, condition, actions, alpha_bar)
    _update(ctx.optimizers.generator, loss, denoiser, ctx.config.optim.grad_clip)
    return {"denoise": loss.item()}


def step_mdn(ctx: StepContext, condition, actions) -> dict:
    nll, _ = obj.mixture_negative_log_likelihood(ctx.networks.generator, condition, actions, ctx.config.model.distribution)
    _update(ctx.optimizers.generator, nll.mean(), ctx.networks.generator, ctx.config.optim.grad_clip)
    return {"nll": nll.mean().item()}


def step_bc(ctx: StepContext, condition, actions) -> dict:
    loss = obj.mse_behaviour_cloning(ctx.networks.generator(condition), actions)
    _update(ctx.optimizers.generator, loss, ctx.networks.generator, ctx.config.optim.grad_clip)
    return {"mse": loss.item()}


def step_cgan(ctx: StepContext, condition, actions) -> dict:
    """Critic logit = -energy, so the saved critic ranks candidates with the same sign as an energy."""
    nets, clip = ctx.networks, ctx.config.optim.grad_clip
    fake = nets.generator(condition)
    real_logits = -nets.energy(condition, actions.unsqueeze(1))
    fake_logits = -nets.energy(condition, fake.detach().unsqueeze(1))
    d_loss = obj.gan_discriminator_loss(real_logits, fake_logits)
    _update(ctx.optimizers.energy, d_loss, nets.energy, clip)
    g_loss = obj.gan_generator_loss(-obj.energies_with_frozen_parameters(nets.energy, condition, fake.unsqueeze(1)))
    _update(ctx.optimizers.generator, g_loss, nets.generator, clip)
    return {"critic": d_loss.item(), "generator": g_loss.item()}


def step_ebgan(ctx: StepContext, condition, actions) -> dict:
    """EBGAN with an MLP generator: no density, so the generator only descends the energy."""
    losses = _energy_step_ebgan(ctx, condition, actions)
    nets = ctx.networks
    samples = _generator_samples(ctx, condition, ctx.config.objective.generator_samples)
    g_loss = obj.energies_with_frozen_parameters(nets.energy, condition, samples).mean()
    _update(ctx.optimizers.generator, g_loss, nets.generator, ctx.config.optim.grad_clip)
    return {**losses, "generator": g_loss.item()}


def step_ibc(ctx: StepContext, condition, actions) -> dict:
    cfg = ctx.config.objective
    negatives = _uniform(ctx.data, len(actions), cfg.uniform_negatives)
    loss = obj.ebgan_energy_loss(ctx.networks.energy, condition, actions, negatives, None, None)
    _update(ctx.optimizers.energy, loss, ctx.networks.energy, ctx.config.optim.grad_clip)
    return {"energy": loss.item()}


METHOD_STEPS: dict[str, Callable[[StepContext, torch.Tensor, torch.Tensor], dict]] = {
    "ebgan-mdn": step_ebgan_mdn, "rnce": step_rnce, "rnce-ml": step_rnce_ml, "mdn": step_mdn, "bc": step_bc,
    "cgan": step_cgan, "ebgan": step_ebgan, "ibc": step_ibc, "diffusion": step_diffusion,
}


def train_loop(networks: Networks, optimizers: Optimizers, data: TrainingData, config: TrainConfig,
               shuffle_generator: torch.Generator,
               batches_of: Callable[[int, int, torch.Generator], list[torch.Tensor]] | None = None) -> list[dict]:
    """All epochs of `config.method`; returns per-epoch mean losses.

    `batches_of(count, batch_size, generator)` gives each epoch's index batches (default
    `epoch_batches`, looked up per call); a distributed run passes its rank's shard.
    """
    batches_of = batches_of or epoch_batches
    step = METHOD_STEPS[config.method]
    history = []
    epochs = tqdm(range(config.optim.epochs), desc=f"{config.method} {config.task}", unit="epoch",
                  disable=not config.progress, mininterval=1.0)
    for epoch in epochs:
        for module in (networks.generator, networks.energy):
            if module is not None:
                module.train()
        totals: dict[str, float] = {}
        batches = batches_of(len(data.actions), config.optim.batch_size, shuffle_generator)
        train_energy = epoch >= config.optim.energy_start_epoch
        for index in batches:
            ctx = StepContext(networks, optimizers, data, config, epoch, train_energy)
            for key, value in step(ctx, data.conditions[index], data.actions[index]).items():
                totals[key] = totals.get(key, 0.0) + value
        if optimizers.generator_schedule is not None:
            optimizers.generator_schedule.step()
        if optimizers.energy_schedule is not None and train_energy:
            optimizers.energy_schedule.step()
        means = {key: value / len(batches) for key, value in totals.items()}
        if not all(math.isfinite(v) for v in means.values()):
            raise FloatingPointError(f"epoch {epoch}: a loss is not finite: {means}")
        history.append(means)
        epochs.set_postfix({k: f"{v:.3f}" for k, v in means.items()}, refresh=False)
    return history


def fit_normalizer(values: np.ndarray) -> Normalizer:
    """Per-dimension mean/std; a constant dimension (the grid's condition) keeps std 1, not 0."""
    values = torch.tensor(np.asarray(values, dtype=np.float32))
    std = values.std(0)
    return Normalizer(values.mean(0), torch.where(std < 1e-6, torch.ones_like(std), std))


def prepare_data(conditions: np.ndarray, actions: np.ndarray, spec: PolicySpec
                 ) -> tuple[TrainingData, Normalizer, Normalizer]:
    """Normalisers fitted on the data; the data and the action box in normalised units."""
    condition_norm, action_norm = fit_normalizer(conditions), fit_normalizer(actions)
    data = TrainingData(
        condition_norm(torch.tensor(np.asarray(conditions, dtype=np.float32))),
        action_norm(torch.tensor(np.asarray(actions, dtype=np.float32))),
        action_norm(torch.tensor(spec.flat_action_low, dtype=torch.float32)),
        action_norm(torch.tensor(spec.flat_action_high, dtype=torch.float32)))
    return data, condition_norm, action_norm


def make_checkpoint(config: TrainConfig, spec: PolicySpec, condition_norm: Normalizer, action_norm: Normalizer,
                    networks: Networks, conditions: np.ndarray, metrics: dict, seconds: float) -> Checkpoint:
    """The trained networks (unwrapped, in eval mode) with everything needed to rebuild, run and export them.

    The raw training conditions go along so that the exporter can calibrate the energy threshold on
    them without regenerating (or even having) the data.
    """
    for module in (networks.generator, networks.energy):
        if module is not None:
            module.eval()
    return Checkpoint(
        method=config.method, task=config.task, spec=spec, condition_normalizer=condition_norm,
        action_normalizer=action_norm, generator=networks.generator, energy=networks.energy,
        config=to_dict(config), metrics=metrics, train_seconds=seconds,
        training_conditions=np.asarray(conditions, dtype=np.float32))


def train(config: TrainConfig, conditions: np.ndarray, actions: np.ndarray, spec: PolicySpec,
          out_dir: str | Path | None = None) -> Checkpoint:
    """Train `config.method` on (conditions, actions); save out_dir/checkpoint.pt when out_dir is given."""
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    torch.set_num_threads(config.threads)
    data, condition_norm, action_norm = prepare_data(conditions, actions, spec)
    networks = build_networks(config.method, spec.condition_dim, spec.flat_action_dim, config)
    optimizers = build_optimizers(networks, config)
    started = time.perf_counter()
    history = train_loop(networks, optimizers, data, config, torch.Generator().manual_seed(config.seed))
    checkpoint = make_checkpoint(config, spec, condition_norm, action_norm, networks, conditions,
                                 {"final_losses": history[-1]}, time.perf_counter() - started)
    if out_dir is not None:
        save_checkpoint(Path(out_dir) / CHECKPOINT_FILE, checkpoint)
    return checkpoint
