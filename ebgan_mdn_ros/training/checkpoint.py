"""The trainer's checkpoint and the run directory around it.

One file (`checkpoint.pt`, a torch.save dict) holds everything the evaluator and the exporter need,
so a run directory can be exported years later without the code that trained it guessing anything
or regenerating its data. It is written once, by training; `ebgan-mdn eval` writes its metrics beside
it (`eval.json`), never into it.

Keys: format, method, task, spec (PolicySpec), normalization (condition/action mean and std),
generator and energy ({"class", "kwargs", "state_dict"}; energy may be None; kwargs are what the
module was built with, networks.py keeps them), config (the full training config as a plain dict),
metrics (training's: final losses), train_seconds, training_conditions (the raw [N,C] conditions it
trained on, float32, for the exporter's threshold calibration; None in checkpoints from before).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ebgan_mdn_ros.spec import PolicySpec
from ebgan_mdn_ros.training.networks import MixtureDensityNetwork, Normalizer, build_model

CHECKPOINT_FORMAT = "ebgan-mdn-checkpoint/1"
CHECKPOINT_FILE = "checkpoint.pt"
EVALUATION_FILE = "eval.json"


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
    training_conditions: np.ndarray | None = None


def run_directory(path: str | Path) -> Path:
    """The run directory of a run directory or of a checkpoint file in it."""
    path = Path(path)
    return path if path.is_dir() else path.parent


def _module_record(module: nn.Module | None) -> dict | None:
    if module is None:
        return None
    return {"class": type(module).__name__, "kwargs": dict(module.init_kwargs), "state_dict": module.state_dict()}


def save_checkpoint(path: str | Path, ckpt: Checkpoint) -> None:
    """Write ``ckpt`` atomically; an evaluation of an earlier checkpoint in the directory is removed."""
    conditions = ckpt.training_conditions
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
        "generator": _module_record(ckpt.generator),
        "energy": _module_record(ckpt.energy),
        "config": ckpt.config,
        "metrics": ckpt.metrics,
        "train_seconds": float(ckpt.train_seconds),
        "training_conditions": None if conditions is None else torch.tensor(np.asarray(conditions, np.float32)),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(record, tmp)
    tmp.replace(path)  # atomic: a reader never sees half a checkpoint
    (path.parent / EVALUATION_FILE).unlink(missing_ok=True)


def load_checkpoint(path: str | Path) -> Checkpoint:
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    record = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(record, dict) or record.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an {CHECKPOINT_FORMAT} checkpoint")

    def rebuild(rec):
        if rec is None:
            return None
        kwargs = dict(rec["kwargs"])
        if rec["class"] == MixtureDensityNetwork.__name__ and "distribution" not in kwargs:
            # older checkpoints kept the component family only in the training config
            kwargs["distribution"] = ((record.get("config") or {}).get("model") or {}).get("distribution", "gaussian")
        module = build_model(rec["class"], kwargs)
        module.load_state_dict(rec["state_dict"])
        return module.eval()

    norm = record["normalization"]
    conditions = record.get("training_conditions")
    return Checkpoint(
        method=record["method"], task=record["task"], spec=PolicySpec.from_dict(record["spec"]),
        condition_normalizer=Normalizer(norm["condition_mean"], norm["condition_std"]),
        action_normalizer=Normalizer(norm["action_mean"], norm["action_std"]),
        generator=rebuild(record["generator"]), energy=rebuild(record["energy"]),
        config=record["config"], metrics=record.get("metrics", {}),
        train_seconds=record.get("train_seconds", 0.0),
        training_conditions=None if conditions is None else conditions.numpy())


def write_evaluation(run: str | Path, metrics: dict) -> Path:
    """Write the evaluator's metrics to the run's eval.json, atomically, as `ebgan-mdn eval` prints them."""
    path = run_directory(run) / EVALUATION_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read_evaluation(run: str | Path) -> dict | None:
    """The run's eval.json, or None if it has not been evaluated since it was trained."""
    path = run_directory(run) / EVALUATION_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
