"""A tiny action-chunk model trained for a few seconds, for tests (needs torch; the export does not).

    chunk_demonstrations(horizon=4, n_exec=2, dt=0.1, count=600, seed=0) -> Demonstrations
        Two joints, condition "goal.0" (c in [-1, 1]) and the joints' positions; every chunk is one of
        two whole plans: step t (0-based) moves both joints by sign * (t + 1) * 0.05 + 0.02 * c from
        the current position (delta kind), with sign +1 or -1 (the two modes) at random.
    train_chunk_model(out_dir, horizon=4, n_exec=2, dt=0.1, epochs=30) -> pathlib.Path
        R-NCE on those demonstrations, exported to out_dir (generator, energy, decision graphs).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ebgan_mdn_ros.data.demonstrations import Demonstrations
from ebgan_mdn_ros.spec import ChunkSpec

JOINTS = ("joint_1", "joint_2")
CONDITIONS = ("goal.0", "joint_1.position", "joint_2.position")
STEP = 0.05


def chunk_demonstrations(horizon: int = 4, n_exec: int = 2, dt: float = 0.1, count: int = 2000,
                         seed: int = 0) -> Demonstrations:
    rng = np.random.default_rng(seed)
    goal = rng.uniform(-1, 1, count)
    position = rng.uniform(-0.5, 0.5, (count, 2))
    sign = np.where(rng.random(count) < 0.5, -1.0, 1.0)
    steps = np.arange(1, horizon + 1)
    delta = sign[:, None] * steps[None, :] * STEP + 0.02 * goal[:, None]        # [N, H]
    actions = np.repeat(delta[:, :, None], 2, axis=2).reshape(count, horizon * 2)  # both joints alike
    conditions = np.column_stack([goal, position]).astype(np.float32)
    return Demonstrations(conditions, actions.astype(np.float32), CONDITIONS, JOINTS,
                          ChunkSpec(horizon, n_exec, dt))


def train_chunk_model(out_dir: str | Path, horizon: int = 4, n_exec: int = 2, dt: float = 0.1,
                      epochs: int = 40) -> Path:
    from ebgan_mdn_ros.export.exporter import export_model
    from ebgan_mdn_ros.training.config import load_train_config
    from ebgan_mdn_ros.training.trainer import train

    demos = chunk_demonstrations(horizon, n_exec, dt)
    config = load_train_config(None, {
        "method": "rnce", "progress": False, "optim.epochs": epochs, "optim.batch_size": 128,
        "optim.energy_start_epoch": epochs // 2, "optim.lr_schedule": "constant", "model.num_components": 2,
        "model.generator_hidden": [32, 32], "model.energy_hidden": [32, 32],
        "objective.energy_updates_per_batch": 1})
    checkpoint = train(config, demos.conditions, demos.actions, demos.spec("delta"))
    export_model(checkpoint, out_dir, calibration_candidates=16, max_calibration_conditions=64)
    return Path(out_dir)
