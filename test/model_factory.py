"""Small exported model directories for tests (needs torch at build time; the directory does not).

    from model_factory import build_model_dir, two_mode_checkpoint, export_checkpoint

    build_model_dir(out_dir, condition_names=("goal.0",), action_names=("joint_1",), *,
                    action_low=None, action_high=None, action_kind="absolute", num_components=3,
                    hidden_sizes=(16, 16), seed=0, with_energy=True, decision_graph=True,
                    metrics=None, model_version=None, activation="relu", scale_type="diagonal") -> pathlib.Path
        A valid model directory with random weights (seeded): generator.onnx, energy.onnx,
        decision.onnx, manifest.json. The action box defaults to [-pi, pi] per action. ~1 s.

    two_mode_checkpoint(weights=(0.7, 0.3), means=(-1.0, 1.0), scale=0.1, weight_slope=4.0,
                        energy_minimum=1.05, condition_limit=2.0, ood_slope=5.0) -> Checkpoint
        Hand-set weights with known behaviour; condition "goal.0" (c), action "joint_1" (a):
          mixture weights: pi_0 = sigmoid(log(weights[0] / weights[1]) + weight_slope * c), pi_1 = 1 - pi_0;
          component means `means`, scales `scale`, whatever c;
          energy E(c, a) = | |a| - energy_minimum |  +  ood_slope * max(|c| - condition_limit, 0):
          lowest at a = +-energy_minimum, and high for |c| > condition_limit (out of distribution).

    export_checkpoint(ckpt, out_dir, **export_model_kwargs) -> pathlib.Path
        export_model(ckpt, out_dir, ...) with quiet defaults; returns out_dir.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ebgan_mdn_ros.spec import PolicySpec
from ebgan_mdn_ros.training.checkpoint import Checkpoint
from ebgan_mdn_ros.export.exporter import export_model
from ebgan_mdn_ros.training.networks import EnergyMLP, MixtureDensityNetwork, Normalizer


def random_checkpoint(condition_names: Sequence[str] = ("goal.0",), action_names: Sequence[str] = ("joint_1",), *,
                      action_low: Sequence[float] | None = None, action_high: Sequence[float] | None = None,
                      action_kind: str = "absolute", num_components: int = 3, hidden_sizes: Sequence[int] = (16, 16),
                      seed: int = 0, with_energy: bool = True, metrics: dict | None = None,
                      activation: str = "relu", scale_type: str = "diagonal") -> Checkpoint:
    torch.manual_seed(seed)
    c, a = len(condition_names), len(action_names)
    low = tuple(action_low) if action_low is not None else (-math.pi,) * a
    high = tuple(action_high) if action_high is not None else (math.pi,) * a
    spec = PolicySpec(tuple(condition_names), tuple(action_names), low, high, action_kind)
    generator = MixtureDensityNetwork(c, a, num_components, tuple(hidden_sizes), scale_type=scale_type,
                                      activation=activation).eval()
    energy = EnergyMLP(c, a, tuple(hidden_sizes), activation=activation).eval() if with_energy else None
    rng = np.random.default_rng(seed)
    condition_norm = Normalizer(rng.normal(0, 0.5, c), rng.uniform(0.5, 2.0, c))
    action_norm = Normalizer((np.array(low) + np.array(high)) / 2, (np.array(high) - np.array(low)) / 4)
    return Checkpoint("ebgan-mdn", "test", spec, condition_norm, action_norm, generator, energy,
                      config={"seed": seed, "hidden_sizes": list(hidden_sizes)}, metrics=dict(metrics or {}))


def _inverse_softplus(value: float) -> float:
    return math.log(math.expm1(value))


def two_mode_checkpoint(weights: tuple[float, float] = (0.7, 0.3), means: tuple[float, float] = (-1.0, 1.0),
                        scale: float = 0.1, weight_slope: float = 4.0, energy_minimum: float = 1.05,
                        condition_limit: float = 2.0, ood_slope: float = 5.0) -> Checkpoint:
    spec = PolicySpec(("goal.0",), ("joint_1",), (-3.0,), (3.0,))
    generator = MixtureDensityNetwork(1, 1, num_components=2, hidden_sizes=(2,))
    energy = EnergyMLP(1, 1, hidden_sizes=(4, 3))
    with torch.no_grad():
        for p in list(generator.parameters()) + list(energy.parameters()):
            p.zero_()
        trunk = generator.trunk[0]
        trunk.weight.copy_(torch.tensor([[1.0], [-1.0]]))  # features = (relu(c), relu(-c))
        head = generator.head  # rows: logits[0:2], means[2:4], raw scales[4:6]
        head.weight[0] = torch.tensor([weight_slope, -weight_slope])  # logit_0 gains slope * c
        head.bias[0:2] = torch.tensor([math.log(weights[0]), math.log(weights[1])])
        head.bias[2:4] = torch.tensor(means)
        head.bias[4:6] = _inverse_softplus(scale - generator.min_scale)
        first, second, last = energy.net[0], energy.net[2], energy.net[4]
        first.weight.copy_(torch.tensor([[0.0, 1.0], [0.0, -1.0], [1.0, 0.0], [-1.0, 0.0]]))  # input (c, a)
        second.weight.copy_(torch.tensor([[1.0, 1.0, 0, 0], [-1.0, -1.0, 0, 0], [0, 0, 1.0, 1.0]]))
        second.bias.copy_(torch.tensor([-energy_minimum, energy_minimum, -condition_limit]))
        last.weight.copy_(torch.tensor([[1.0, 1.0, ood_slope]]))
    return Checkpoint("ebgan-mdn", "two_mode", spec, Normalizer([0.0], [1.0]), Normalizer([0.0], [1.0]),
                      generator.eval(), energy.eval(), config={"hand_set": True}, metrics={"tmc": 1.0})


def export_checkpoint(ckpt: Checkpoint, out_dir: str | Path, **export_kwargs) -> Path:
    export_kwargs.setdefault("max_calibration_conditions", 128)
    if ckpt.task == "two_mode":
        export_kwargs.setdefault("calibration_conditions", np.linspace(-1.5, 1.5, 128, dtype=np.float32)[:, None])
        export_kwargs.setdefault("calibration_source", "two_mode:uniform[-1.5,1.5]")
    export_model(ckpt, out_dir, **export_kwargs)
    return Path(out_dir)


def build_model_dir(out_dir: str | Path, condition_names: Sequence[str] = ("goal.0",),
                    action_names: Sequence[str] = ("joint_1",), *, decision_graph: bool = True,
                    model_version: str | None = None, **checkpoint_kwargs) -> Path:
    ckpt = random_checkpoint(condition_names, action_names, **checkpoint_kwargs)
    return export_checkpoint(ckpt, out_dir, decision_graph=decision_graph, model_version=model_version)
