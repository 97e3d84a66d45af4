"""Speed at equal quality on the UR5e box reach: the shipped rule against diffusion's DDIM steps, one run.

    python benchmarks/box_reach_speed.py --diffusion runs/box_reach/model_diffusion_e300 --episodes 50

Success, contacts and routes closed loop in MuJoCo (box_reach_closed_loop.run_inprocess: the node's
decision loop and the emulated forward controller, the same episodes for every row), then the
per-decision latency of PolicyRuntime.decide, every row timed in interleaved rounds on the same
conditions (the training conditions' mean plus noise), so load on the shared machine falls on all
rows alike. Prints a markdown table; --out appends it to a file.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from box_reach_closed_loop import run_inprocess  # noqa: E402
from ebgan_mdn_ros.runtime.policy_runtime import PolicyRuntime  # noqa: E402
from ebgan_mdn_ros.runtime.runtime_config import RuntimeConfig  # noqa: E402

SHIPPED = ROOT / "models" / "ur5e_box_reach"


def rows(diffusion: Path, steps: list[int], ks: list[int]) -> dict[str, PolicyRuntime]:
    runtimes = {f"shipped R-NCE, mode_first K = {k}": PolicyRuntime(SHIPPED, RuntimeConfig(num_candidates=k))
                for k in ks}
    runtimes.update({f"diffusion, DDIM {s}": PolicyRuntime(diffusion, RuntimeConfig(), ddim_steps=s) for s in steps})
    return runtimes


def latency_us(runtimes: dict[str, PolicyRuntime], rounds: int, per_round: int, seed: int = 0) -> dict[str, float]:
    manifest = next(iter(runtimes.values())).manifest
    mean = np.asarray(manifest.normalization.condition_mean)
    std = np.asarray(manifest.normalization.condition_std)
    conditions = mean + 0.5 * std * np.random.default_rng(seed).standard_normal((per_round, len(mean)))
    times = {name: [] for name in runtimes}
    for _ in range(rounds):
        for name, runtime in runtimes.items():
            runtime.reset()
            for condition in conditions:
                start = time.perf_counter()
                runtime.decide(condition)
                times[name].append(time.perf_counter() - start)
    return {name: float(np.percentile(values[per_round:], 50)) * 1e6 for name, values in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--diffusion", type=Path, required=True, help="exported diffusion model directory")
    parser.add_argument("--steps", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--candidates", type=int, nargs="+", default=[64, 16])
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    runtimes = rows(args.diffusion, args.steps, args.candidates)
    quality = {}
    for name, runtime in runtimes.items():
        run_args = argparse.Namespace(config="config/sim_ur5e.yaml", model=str(runtime.model_dir), episodes=args.episodes,
                                      num_candidates=None, selection=None, seed=0)
        summary = run_inprocess(run_args, runtime=runtime)["summary"]
        quality[name] = summary
        print(json.dumps({"row": name, "success": summary["success_rate"], "contacts": summary["contact_episodes"],
                          "routes": summary["routes"]}), flush=True)
    latency = latency_us(runtimes, args.rounds, 50)
    lines = [f"`python {' '.join(['benchmarks/box_reach_speed.py'] + sys.argv[1:])}` "
             f"({time.strftime('%Y-%m-%d %H:%M')}, {args.episodes} episodes per row, goal seed 0)\n",
             "| policy | success % | contact episodes | routes | time to goal s | p50 us per decision | x shipped K = 64 |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    base = latency[next(iter(runtimes))]
    for name, summary in quality.items():
        routes = ", ".join(f"{k} {v}" for k, v in sorted(summary["routes"].items()))
        lines.append(f"| {name} | {100 * summary['success_rate']:.0f} | {summary['contact_episodes']} | {routes} | "
                     f"{summary['mean_seconds_to_goal']:.2f} | {latency[name]:.0f} | {latency[name] / base:.2f} |")
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    if args.out:
        with open(args.out, "a") as handle:
            handle.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
