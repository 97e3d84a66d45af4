"""The trainer's typed configuration: frozen dataclasses validated where they are built.

A YAML file (config/train/*.yaml) and `--set key=value` overrides are merged into a plain dict and
turned into a TrainConfig by config_base.from_dict, so an unknown key or a bad value stops the run at
start-up with the key's dotted name in the message.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from ebgan_mdn_ros.config_base import ConfigError, from_dict, merge_overrides, require
from ebgan_mdn_ros.training.objectives import GENERATOR_INCLUSIONS

METHODS = ("ebgan-mdn", "rnce", "rnce-ml", "mdn", "bc", "cgan", "ebgan", "ibc", "diffusion")
MDN_METHODS = ("ebgan-mdn", "rnce", "rnce-ml", "mdn")        # generator is a mixture density network
ENERGY_METHODS = ("ebgan-mdn", "rnce", "rnce-ml", "cgan", "ebgan", "ibc")  # an energy (or critic) is trained
LR_SCHEDULES = ("step", "cosine", "constant")
# Objective weights whose sensible default depends on the method: None means "the method's default".
DEFAULT_GENERATOR_ENERGY_WEIGHT = {"ebgan-mdn": 1.0, "rnce": 0.0, "rnce-ml": 0.0}


@dataclass(frozen=True)
class ModelConfig:
    generator_hidden: tuple[int, ...] = (64, 64)
    energy_hidden: tuple[int, ...] = (64, 64)
    num_components: int = 10
    scale_type: str = "diagonal"
    min_scale: float = 1e-3           # floor on the MDN's scales, in normalised action units
    activation: str = "relu"
    noise_dim: int = 2                # latent size of the cGAN / EBGAN MLP generator
    distribution: str = "gaussian"    # MDN component noise: gaussian or laplace (ablation)
    # rnce-ml (docs/method.md sec. 10): noise levels on normalised actions, from noise to data
    noise_ladder: tuple[float, ...] = (0.3, 0.1, 0.03, 0.0)
    level_frequencies: int = 4        # sinusoidal features of log sigma fed to the energy
    # diffusion (sec. 11): DDPM training steps of the squared-cosine schedule, time features
    diffusion_steps: int = 100
    time_frequencies: int = 8

    def __post_init__(self):
        require(len(self.generator_hidden) > 0 and all(w > 0 for w in self.generator_hidden),
                "generator_hidden", self.generator_hidden, "a non-empty list of positive widths")
        require(len(self.energy_hidden) > 0 and all(w > 0 for w in self.energy_hidden),
                "energy_hidden", self.energy_hidden, "a non-empty list of positive widths")
        require(self.num_components >= 1, "num_components", self.num_components, ">= 1")
        require(self.scale_type in ("diagonal", "isotropic"), "scale_type", self.scale_type,
                "'diagonal' or 'isotropic'")
        require(self.min_scale > 0, "min_scale", self.min_scale, "> 0")
        require(self.activation in ("relu", "silu", "tanh", "gelu"), "activation", self.activation,
                "relu, silu, tanh or gelu")
        require(self.noise_dim >= 1, "noise_dim", self.noise_dim, ">= 1")
        require(self.distribution in ("gaussian", "laplace"), "distribution", self.distribution,
                "'gaussian' or 'laplace'")
        ladder = self.noise_ladder
        require(len(ladder) >= 1 and ladder[-1] == 0 and all(a > b for a, b in zip(ladder, ladder[1:])),
                "noise_ladder", ladder, "levels strictly decreasing to 0, e.g. [0.3, 0.1, 0.03, 0]")
        require(self.level_frequencies >= 1, "level_frequencies", self.level_frequencies, ">= 1")
        require(self.diffusion_steps >= 2, "diffusion_steps", self.diffusion_steps, ">= 2")
        require(self.time_frequencies >= 1, "time_frequencies", self.time_frequencies, ">= 1")


@dataclass(frozen=True)
class OptimConfig:
    epochs: int = 100
    batch_size: int = 32
    generator_lr: float = 1e-3
    energy_lr: float = 1e-3
    lr_schedule: str = "step"         # authors' StepLR(20 epochs, x0.5); cosine decays to lr * lr_final_fraction
    lr_step_epochs: int = 20
    lr_gamma: float = 0.5
    lr_final_fraction: float = 0.01
    weight_decay: float = 0.0
    grad_clip: float = 0.0            # max gradient norm; 0 disables clipping
    energy_start_epoch: int = 0       # energy updates begin here, once the proposal has learnt the data

    def __post_init__(self):
        require(self.epochs >= 1, "epochs", self.epochs, ">= 1")
        require(self.batch_size >= 1, "batch_size", self.batch_size, ">= 1")
        require(self.generator_lr > 0, "generator_lr", self.generator_lr, "> 0")
        require(self.energy_lr > 0, "energy_lr", self.energy_lr, "> 0")
        require(self.lr_schedule in LR_SCHEDULES, "lr_schedule", self.lr_schedule, f"one of {LR_SCHEDULES}")
        require(self.lr_step_epochs >= 1, "lr_step_epochs", self.lr_step_epochs, ">= 1")
        require(0 < self.lr_gamma <= 1, "lr_gamma", self.lr_gamma, "in (0, 1]")
        require(0 < self.lr_final_fraction <= 1, "lr_final_fraction", self.lr_final_fraction, "in (0, 1]")
        require(self.weight_decay >= 0, "weight_decay", self.weight_decay, ">= 0")
        require(self.grad_clip >= 0, "grad_clip", self.grad_clip, ">= 0")
        require(self.energy_start_epoch >= 0, "energy_start_epoch", self.energy_start_epoch, ">= 0")


@dataclass(frozen=True)
class ObjectiveConfig:
    energy_updates_per_batch: int = 5   # R energy updates per generator update (authors: 5)
    uniform_negatives: int = 32         # counter-examples drawn uniformly in the action box
    proposal_negatives: int = 32        # R-NCE: counter-examples drawn from the MDN proposal
    proposal_scales: tuple[float, ...] = (1.0,)  # R-NCE: MDN scale multipliers, negatives split evenly
    generator_samples: int = 1          # EBGAN-MDN / EBGAN: generator samples in the energy loss
    generator_inclusion: str = "dynamic"
    alpha_min: float = 0.1
    generator_energy_weight: float | None = None   # None: 1 for ebgan-mdn, 0 for rnce
    generator_nll_weight: float = 1.0
    level_zero_share: float = 1 / 3     # rnce-ml: share of examples trained at the clean level

    def __post_init__(self):
        require(self.energy_updates_per_batch >= 1, "energy_updates_per_batch", self.energy_updates_per_batch, ">= 1")
        require(self.uniform_negatives >= 0, "uniform_negatives", self.uniform_negatives, ">= 0")
        require(self.proposal_negatives >= 0, "proposal_negatives", self.proposal_negatives, ">= 0")
        require(self.uniform_negatives + self.proposal_negatives >= 1, "uniform_negatives",
                self.uniform_negatives, "at least one negative in all")
        require(len(self.proposal_scales) >= 1 and all(m > 0 for m in self.proposal_scales),
                "proposal_scales", self.proposal_scales, "a non-empty list of positive multipliers")
        require(self.proposal_negatives % len(self.proposal_scales) == 0, "proposal_negatives",
                self.proposal_negatives, f"a multiple of the {len(self.proposal_scales)} proposal scales")
        require(self.generator_samples >= 1, "generator_samples", self.generator_samples, ">= 1")
        require(self.generator_inclusion in GENERATOR_INCLUSIONS, "generator_inclusion",
                self.generator_inclusion, f"one of {GENERATOR_INCLUSIONS}")
        require(0 < self.alpha_min <= 1, "alpha_min", self.alpha_min, "in (0, 1]")
        require(self.generator_energy_weight is None or self.generator_energy_weight >= 0,
                "generator_energy_weight", self.generator_energy_weight, ">= 0 or null")
        require(self.generator_nll_weight >= 0, "generator_nll_weight", self.generator_nll_weight, ">= 0")
        require(0 <= self.level_zero_share <= 1, "level_zero_share", self.level_zero_share, "in [0, 1]")

    def energy_weight_for(self, method: str) -> float:
        if self.generator_energy_weight is not None:
            return self.generator_energy_weight
        return DEFAULT_GENERATOR_ENERGY_WEIGHT.get(method, 1.0)


@dataclass(frozen=True)
class InferenceConfig:
    """How the evaluator (and the deployed runtime, by default) turns a mixture into one action."""
    num_candidates: int = 64           # K candidates scored per decision
    importance_temperature: float = 1.0
    keep_min_weight: float = 0.05      # closed loop: keep the previous component while its weight is above this
    ddim_steps: int = 16               # diffusion: DDIM steps of the deployed sampler ("raw" in eval)

    def __post_init__(self):
        require(self.num_candidates >= 1, "num_candidates", self.num_candidates, ">= 1")
        require(self.importance_temperature > 0, "importance_temperature", self.importance_temperature, "> 0")
        require(0 <= self.keep_min_weight < 1, "keep_min_weight", self.keep_min_weight, "in [0, 1)")
        require(self.ddim_steps >= 1, "ddim_steps", self.ddim_steps, ">= 1")


@dataclass(frozen=True)
class DataConfig:
    """User demonstrations instead of a benchmark task (ebgan_mdn_ros.data.demonstrations)."""
    path: str = ""
    condition_columns: tuple[str, ...] = ()
    action_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrainConfig:
    method: str = "ebgan-mdn"
    task: str = "hyperbola"
    seed: int = 0
    threads: int = 1                    # torch intra-op threads; small nets train fastest on one
    progress: bool = True
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def __post_init__(self):
        require(self.method in METHODS, "method", self.method, f"one of {', '.join(METHODS)}")
        require(self.seed >= 0, "seed", self.seed, ">= 0")
        require(self.threads >= 1, "threads", self.threads, ">= 1")
        if self.method in ENERGY_METHODS:  # an energy that never trains is a configuration mistake
            require(self.optim.energy_start_epoch < self.optim.epochs, "optim.energy_start_epoch",
                    self.optim.energy_start_epoch, f"below optim.epochs ({self.optim.epochs}) for {self.method}")
        require(self.inference.ddim_steps <= self.model.diffusion_steps, "inference.ddim_steps",
                self.inference.ddim_steps, f"at most model.diffusion_steps ({self.model.diffusion_steps})")
        if self.method == "rnce-ml":  # the MDN's energy term would need a level; rnce-ml keeps plain likelihood
            require(self.objective.energy_weight_for(self.method) == 0, "objective.generator_energy_weight",
                    self.objective.generator_energy_weight, "0 or null for rnce-ml")


def parse_override(text: str) -> tuple[str, Any]:
    """'optim.generator_lr=1e-3' -> ('optim.generator_lr', 0.001); the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value")
    key, raw = text.split("=", 1)
    value = yaml.safe_load(raw) if raw.strip() else ""
    if isinstance(value, str):
        try:  # YAML 1.1 reads "1e-3" as a string; a number is what was meant
            value = float(value) if any(ch in value for ch in ".eE") else int(value)
        except ValueError:
            pass
    return key.strip(), value


def load_train_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None,
                      base: Mapping[str, Any] | None = None) -> TrainConfig:
    """TrainConfig from (defaults <- base <- YAML file <- its `tasks.<task>` section <- its
    `methods.<method>` section <- overrides).

    The optional top-level `tasks` and `methods` mappings hold per-task and per-method adjustments,
    so one file serves a family of tasks (curve.yaml) and every method. Unknown keys (there or
    anywhere) name themselves.
    """
    from ebgan_mdn_ros.tasks.catalog import task_names

    data: dict = dict(base or {})
    overrides = dict(overrides or {})
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(loaded, Mapping):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        loaded = dict(loaded)
        per_task = _section(loaded, "tasks", task_names(), path)
        per_method = _section(loaded, "methods", METHODS, path)
        data = merge_overrides(data, _flatten(loaded))
        task = overrides.get("task", data.get("task", TrainConfig.task))
        data = merge_overrides(data, _flatten(per_task.get(task) or {}))
        method = overrides.get("method", data.get("method", TrainConfig.method))
        data = merge_overrides(data, _flatten(per_method.get(method) or {}))
    data = merge_overrides(data, overrides)
    return from_dict(TrainConfig, data)


def _section(loaded: dict, key: str, known, path) -> dict:
    """Pop the per-task or per-method mapping ``key`` from the file; its names must be known ones."""
    section = loaded.pop(key, None) or {}
    unknown = sorted(set(section) - set(known))
    if unknown:
        raise ConfigError(f"{path}: unknown {key[:-1]}(s) under {key}: {unknown} (known: {', '.join(known)})")
    return section


def _flatten(data: Mapping, prefix: str = "") -> dict:
    flat = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat
