"""`ebgan-mdn export RUN --out models/NAME`: ONNX model directory with a parity check against torch."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run directory (with checkpoint.pt) or a checkpoint file")
    parser.add_argument("--out", required=True, help="model directory to write, e.g. models/ik_2link")
    parser.add_argument("--version", default=None, help="model version for the manifest "
                        "(default: <task>-<method>-<hash of the graphs>)")
    parser.add_argument("--calibration", default=None, help=".npz with conditions (array 'conditions' or "
                        "'condition') for the energy threshold suggestion; default: the conditions the run trained "
                        "on (kept in its checkpoint), else draws from the condition normaliser")
    parser.add_argument("--candidates", type=int, default=256, help="K used to calibrate the threshold (default 256)")
    parser.add_argument("--threshold-quantile", type=float, default=0.999,
                        help="quantile of chosen energies the threshold starts from (default 0.999)")
    parser.add_argument("--threshold-margin", type=float, default=0.25,
                        help="threshold = q + margin * (q - median) (default 0.25)")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="largest allowed |onnxruntime - torch| / max(1, |torch|) (default 1e-4)")
    parser.add_argument("--no-decision-graph", action="store_true",
                        help="skip the fused decision.onnx (the runtime then uses two sessions)")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ebgan_mdn_ros.export.exporter import ExportError, export_model
    from ebgan_mdn_ros.runtime.model_loader import ModelValidationError

    conditions, source = None, None
    if args.calibration:
        with np.load(args.calibration) as data:
            key = next((k for k in ("conditions", "condition") if k in data), None)
            if key is None:
                print(f"ebgan-mdn export: {args.calibration} has no 'conditions' array "
                      f"(it has {sorted(data.files)})", file=sys.stderr)
                return 2
            conditions, source = data[key], f"file:{Path(args.calibration).name}"
    try:
        report = export_model(args.run, args.out, model_version=args.version, decision_graph=not args.no_decision_graph,
                              calibration_conditions=conditions, calibration_source=source,
                              calibration_candidates=args.candidates, threshold_quantile=args.threshold_quantile,
                              threshold_margin=args.threshold_margin, tolerance=args.tolerance, log=print)
    except (ExportError, ModelValidationError, FileNotFoundError, ValueError) as exc:
        print(f"ebgan-mdn export: {exc}", file=sys.stderr)
        return 1
    manifest = report.manifest
    print(f"exported {manifest.model_version} to {report.out_dir}")
    for name, size in report.file_bytes.items():
        print(f"  {name}: {size / 1024:.1f} KiB")
    return 0
