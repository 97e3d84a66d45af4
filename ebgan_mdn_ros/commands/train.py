"""`ebgan-mdn train`: train one method on a benchmark task or on a demonstrations file."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ebgan_mdn_ros.config_base import ConfigError
from ebgan_mdn_ros.paths import package_share_directories
from ebgan_mdn_ros.spec import ACTION_KINDS

CONFIG_DIRS = (Path.cwd() / "config" / "train", *(share / "config" / "train" for share in package_share_directories()))


def default_config_path(task: str, method: str) -> Path | None:
    """config/train/<task>-<method>.yaml, else <task>.yaml, else <kind>.yaml, else None (built-in defaults).

    A kind's file (curve.yaml) serves every task of that kind; what differs per task is in its `tasks:` section.
    """
    names = [f"{task}-{method}.yaml", f"{task}.yaml"]
    from ebgan_mdn_ros.tasks.catalog import get_task, task_names
    if task in task_names():
        names.append(f"{get_task(task).kind}.yaml")
    for directory in CONFIG_DIRS:
        for name in names:
            if (directory / name).is_file():
                return directory / name
    return None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", help="benchmark task (hyperbola, lines, circle, parabola, ik, multiroute, grid)")
    parser.add_argument("--method", help="ebgan-mdn, rnce, rnce-ml (multi-level R-NCE), mdn, bc, cgan, ebgan, ibc or "
                        "diffusion (DDPM baseline)")
    parser.add_argument("--seed", type=int, help="random seed (default 0)")
    parser.add_argument("--out", required=True, help="run directory; the checkpoint goes to OUT/checkpoint.pt")
    parser.add_argument("--config", help="YAML config (default: config/train/<task>-<method>.yaml or <task>.yaml)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set optim.epochs=50 (repeatable)")
    parser.add_argument("--data", help="demonstrations .npz or .csv instead of a benchmark task")
    parser.add_argument("--condition-columns", nargs="+", default=[], help="CSV columns forming the condition")
    parser.add_argument("--action-columns", nargs="+", default=[], help="CSV columns forming the action")
    parser.add_argument("--action-kind", choices=ACTION_KINDS, default="absolute",
                        help="with --data: whether actions are joint targets or displacements")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ebgan_mdn_ros.training.config import load_train_config, parse_override
    try:
        overrides = {}
        for name in ("task", "method", "seed"):
            if getattr(args, name) is not None:
                overrides[name] = getattr(args, name)
        if args.data:
            overrides.update({"task": "demos", "data.path": str(args.data),
                              "data.condition_columns": list(args.condition_columns),
                              "data.action_columns": list(args.action_columns)})
        if args.no_progress:
            overrides["progress"] = False
        overrides.update(parse_override(text) for text in args.set)
        config_path = args.config
        if config_path is None and not args.data:
            probe = load_train_config(None, overrides)
            config_path = default_config_path(probe.task, probe.method)
        config = load_train_config(config_path, overrides)
        conditions, actions, spec = _training_data(config, args.action_kind)
    except (ConfigError, ValueError, OSError) as exc:
        print(f"ebgan-mdn train: error: {exc}", file=sys.stderr)
        return 2
    from ebgan_mdn_ros.training.distributed import launched_by_torchrun
    if launched_by_torchrun():  # one of several torchrun workers: DDP, rank 0 prints and saves
        from ebgan_mdn_ros.training.distributed import train_distributed
        return train_distributed(config, conditions, actions, spec, args.out, str(config_path or ""))
    from ebgan_mdn_ros.training.trainer import train
    print(f"training {config.method} on {config.task} (seed {config.seed}, config {config_path or 'built-in defaults'}, "
          f"{len(actions)} pairs)")
    checkpoint = train(config, conditions, actions, spec, args.out)
    print(f"train time: {checkpoint.train_seconds:.1f} s; checkpoint: {Path(args.out) / 'checkpoint.pt'}")
    return 0


def _training_data(config, action_kind: str):
    if config.data.path:
        from ebgan_mdn_ros.data.demonstrations import load_demonstrations
        demos = load_demonstrations(config.data.path, config.data.condition_columns, config.data.action_columns)
        return demos.conditions, demos.actions, demos.spec(action_kind)
    from ebgan_mdn_ros.tasks.catalog import get_task
    task = get_task(config.task)
    return task.conditions, task.actions, task.spec
