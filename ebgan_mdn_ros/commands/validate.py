"""`ebgan-mdn validate DIR`: the checks the node runs before serving a model, as a command.

Exit 0 with a summary when the directory is servable; exit 1 with the reason otherwise. Needs
onnxruntime and numpy only (no torch), so it runs on the robot.
"""
from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", help="model directory with manifest.json")
    parser.add_argument("--providers", nargs="+", default=["CPUExecutionProvider"],
                        help="onnxruntime execution providers to load with, in order of preference")


def run(args: argparse.Namespace) -> int:
    from ebgan_mdn_ros.runtime.model_loader import ModelValidationError, load_model

    try:
        model = load_model(args.model_dir, providers=args.providers, probe=True)
    except ModelValidationError as exc:
        print(f"invalid model directory: {exc}", file=sys.stderr)
        return 1
    manifest = model.manifest
    print(f"valid: {manifest.model_version} ({manifest.method}, task {manifest.task})")
    print(f"  condition ({manifest.condition_size}): {', '.join(manifest.condition_names)}")
    print(f"  action ({manifest.action_size}, {manifest.action_kind}): {', '.join(manifest.action_names)}")
    if manifest.chunk is not None:
        chunk = manifest.chunk
        print(f"  chunk: horizon {chunk.horizon} steps of {chunk.dt:g} s ({chunk.horizon * chunk.dt:g} s), "
              f"executes {chunk.n_exec} before replanning; graphs see {manifest.flat_action_size} action values")
    print(f"  components: {manifest.num_components}; energy: {manifest.energy_source}; "
          f"threshold suggestion: {manifest.energy_threshold}")
    print(f"  graphs: {', '.join(g.file for g in manifest.graphs.values())}; providers: {', '.join(model.providers)}")
    return 0
