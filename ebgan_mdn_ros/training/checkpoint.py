"""The trainer's checkpoint: networks with their constructor arguments, normalisation and I/O spec.

One file (`checkpoint.pt`, a torch.save dict) holds everything the evaluator and the exporter need,
so a run directory can be exported years later without the code that trained it guessing anything.

Keys: format, method, task, spec (PolicySpec), normalization (condition/action mean and std),
generator and energy ({"class", "kwargs", "state_dict"}; energy may be None), config (the full
training config as a plain dict), metrics (dict, possibly empty), train_seconds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ebgan_mdn_ros.spec import PolicySpec
from ebgan_mdn_ros.training.networks import Normalizer, build_model

CHECKPOINT_FORMAT = "ebgan-mdn-checkpoint/1"
@dataclass
class Checkpoint:
    method: str
    task: str
    spec: PolicySpec
    condition_normalizer: Normalizer
    action_normalizer: Normalizer
    generator: nn.Module
    energy: nn.Module | None
    config: dict
    metrics: dict = field(default_factory=dict)
    train_seconds: float = 0.0


def _module_record(module: nn.Module | None, kwargs: dict | None) -> dict | None:
    if module is None:
        return None
    return {"class": type(module).__name__, "kwargs": dict(kwargs or {}), "state_dict": module.state_dict()}


def save_checkpoint(path: str | Path, ckpt: Checkpoint, generator_kwargs: dict, energy_kwargs: dict | None) -> None:
    """Write ``ckpt``; ``*_kwargs`` are the constructor arguments that rebuild each network."""
    record: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "method": ckpt.method,
        "task": ckpt.task,
        "spec": ckpt.spec.to_dict(),
        "normalization": {
            "condition_mean": ckpt.condition_normalizer.mean.tolist(),
            "condition_std": ckpt.condition_normalizer.std.tolist(),
            "action_mean": ckpt.action_normalizer.mean.tolist(),
            "action_std": ckpt.action_normalizer.std.tolist(),
        },
        "generator": _module_record(ckpt.generator, generator_kwargs),
        "energy": _module_record(ckpt.energy, energy_kwargs),
        "config": ckpt.config,
        "metrics": ckpt.metrics,
        "train_seconds": float(ckpt.train_seconds),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(record, tmp)
    tmp.replace(path)  # atomic: a reader never sees half a checkpoint


def load_checkpoint(path: str | Path) -> Checkpoint:
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    record = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(record, dict) or record.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an {CHECKPOINT_FORMAT} checkpoint")

    def rebuild(rec):
        if rec is None:
            return None
        module = build_model(rec["class"], rec["kwargs"])
        module.load_state_dict(rec["state_dict"])
        return module.eval()

    norm = record["normalization"]
    return Checkpoint(
        method=record["method"], task=record["task"], spec=PolicySpec.from_dict(record["spec"]),
        condition_normalizer=Normalizer(norm["condition_mean"], norm["condition_std"]),
        action_normalizer=Normalizer(norm["action_mean"], norm["action_std"]),
        generator=rebuild(record["generator"]), energy=rebuild(record["energy"]),
        config=record["config"], metrics=record.get("metrics", {}),
        train_seconds=record.get("train_seconds", 0.0))

