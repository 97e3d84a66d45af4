"""`ebgan-mdn` command line: one subcommand per module in ebgan_mdn_ros.commands.

Each module defines `add_arguments(parser)` and `run(args) -> int`; its one-line help is here. Modules are
imported only when their subcommand runs, so `ebgan-mdn validate` works without torch installed.
"""
from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = {
    "train": "Train a policy on a benchmark task or a demonstrations file.",
    "eval": "Evaluate a trained run: metrics as JSON, plots as PNG.",
    "export": "Export a trained run to a self-describing ONNX model directory.",
    "validate": "Check an exported model directory (files, hashes, graph I/O, finite probe).",
    "dataset": "Turn rosbag2 MCAP recordings into a (condition, action) .npz for train.",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ebgan-mdn", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in SUBCOMMANDS:
        build_parser().parse_args(argv or ["--help"])  # prints usage / the error and exits
        return 2
    name, rest = argv[0], argv[1:]
    try:
        module = importlib.import_module(f"ebgan_mdn_ros.commands.{name}")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("ebgan_mdn_ros.commands"):
            print(f"ebgan-mdn: subcommand {name!r} is not available in this build", file=sys.stderr)
            return 2
        raise
    parser = argparse.ArgumentParser(prog=f"ebgan-mdn {name}", description=SUBCOMMANDS[name])
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
