"""`ebgan-mdn eval RUN`: metrics of a trained run per selection rule (JSON on stdout and in RUN/eval.json),
plots in RUN. The checkpoint is only read."""
from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run directory holding checkpoint.pt")
    parser.add_argument("--samples", type=int, help="decisions per test condition (default per task)")
    parser.add_argument("--rollouts", type=int, default=200, help="closed-loop rollouts (planning task)")
    parser.add_argument("--seed", type=int, default=0, help="evaluation seed")
    parser.add_argument("--rules", nargs="+", help="subset of raw, lowest_energy, mode_first, importance, "
                        "annealed, annealed_mode_first (multi-level runs), ddim_8, ddim_16, ddim_32 (diffusion runs); "
                        "default: the first four and the run's own")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNGs")


def run(args: argparse.Namespace) -> int:
    from ebgan_mdn_ros.evaluation.evaluate import ALL_RULES, evaluate_run
    rules = tuple(args.rules) if args.rules else None
    unknown = [rule for rule in rules or () if rule not in ALL_RULES]
    if unknown:
        print(f"ebgan-mdn eval: error: unknown rule(s) {unknown}, expected {list(ALL_RULES)}", file=sys.stderr)
        return 2
    try:
        metrics = evaluate_run(args.run, args.samples, args.rollouts, args.seed, rules, plots=not args.no_plots)
    except (FileNotFoundError, ValueError) as exc:
        print(f"ebgan-mdn eval: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(metrics, indent=2))
    return 0
