"""How many candidates does a model need? Quality and latency against K, through the deployed runtime.

    python benchmarks/candidates.py                                   # both shipped models
    python benchmarks/candidates.py --model models/ik_2link --candidates 1 4 16 64 256 1024

K is the runtime's main latency lever (the energy pass is K x the energy network), so it should be
chosen from a measurement like this one, per model, not left at a round number. Every decision goes
through PolicyRuntime (onnxruntime, fused graph, mode first: the node's exact code path):
- ik (2-link arm): the task's test targets, independent decisions (no stickiness), --samples per
  target; success at 0.1 end-effector error, median error, both elbows among the successes;
- multiroute: closed-loop rollouts of 50 steps from the task's start distribution, stickiness on
  as in the node; success (goal box reached without leaving the arena) and mean steps to the goal.
Latency is PolicyRuntime.decide's own p50 over all of a K's decisions (1 intra-op thread).
Writes a markdown table (stdout, --out) and a PNG (quality and latency against K) beside --out.
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
from ebgan_mdn_ros.tasks import catalog as tasks  # noqa: E402
from ebgan_mdn_ros.evaluation.metrics import ik_metrics  # noqa: E402
from ebgan_mdn_ros.runtime.policy_runtime import PolicyRuntime
from ebgan_mdn_ros.runtime.runtime_config import RuntimeConfig  # noqa: E402

PLANNING_STEPS = 50


def ik_rows(model: Path, k: int, seed: int, targets: int, samples: int) -> dict:
    task = tasks.get_task("ik")
    conditions = np.asarray(task.test_conditions, dtype=np.float32)[:targets]
    runtime = PolicyRuntime(model, RuntimeConfig(num_candidates=k, seed=seed, stickiness=False))
    angles = np.empty((len(conditions), samples, 2))
    seconds = []
    for s in range(samples):
        for t, condition in enumerate(conditions):
            decision = runtime.decide(condition)
            angles[t, s] = decision.action
            seconds.append(decision.inference_seconds)
    metrics = ik_metrics(conditions.astype(np.float64), angles, task.mode_tolerance)
    return {"success %": metrics["success"], "median error": metrics["error_median"],
            "both elbows %": metrics["elbow_coverage"], "seconds": seconds}


def multiroute_rows(model: Path, k: int, seed: int, rollouts: int) -> dict:
    runtime = PolicyRuntime(model, RuntimeConfig(num_candidates=k, seed=seed))
    reached, steps, seconds = [], [], []
    for episode in range(rollouts):
        env = tasks.MultiRouteEnvironment(1, seed=10_000 * seed + episode)
        runtime.reset()
        taken = 0
        while env.active[0] and taken < PLANNING_STEPS:
            decision = runtime.decide(env.positions[0].astype(np.float32))
            env.step(decision.action[None])
            seconds.append(decision.inference_seconds)
            taken += 1
        reached.append(bool(env.reached[0]))
        if env.reached[0]:
            steps.append(taken)
    return {"success %": 100.0 * float(np.mean(reached)),
            "steps to goal": float(np.mean(steps)) if steps else float("nan"), "seconds": seconds}


def sweep(model: Path, candidates: list[int], seeds: int, args) -> tuple[str, list[dict]]:
    task = json.loads((model / "manifest.json").read_text())["task"]
    if task not in ("ik", "multiroute"):
        raise SystemExit(f"{model}: task {task!r} has no closed-form check here (ik and multiroute do)")
    results = []
    for k in candidates:
        started = time.perf_counter()
        runs = [ik_rows(model, k, seed, args.targets, args.samples) if task == "ik"
                else multiroute_rows(model, k, seed, args.rollouts) for seed in range(seeds)]
        row = {"K": k, "p50 us": 1e6 * float(np.median(np.concatenate([r.pop("seconds") for r in runs])))}
        for key in runs[0]:
            values = np.array([r[key] for r in runs])
            row[key] = (float(values.mean()), float(values.std()))
        results.append(row)
        print(f"{model.name} K={k}: " + ", ".join(f"{key} {value[0]:.4g}" if isinstance(value, tuple)
                                                  else f"{key} {value:.0f}" for key, value in row.items()
                                                  if key != "K") + f" ({time.perf_counter() - started:.0f} s)",
              flush=True)
    return task, results


def table(model: Path, task: str, results: list[dict], seeds: int) -> str:
    keys = [k for k in results[0] if k not in ("K", "p50 us")]
    lines = [f"### {model.name} ({task}; mean ± std over {seeds} runtime seeds)", "",
             "| K | " + " | ".join(keys) + " | decide p50 us |", "|---" * (len(keys) + 2) + "|"]
    for row in results:
        cells = [f"{row[k][0]:.4g} ± {row[k][1]:.2g}" for k in keys]
        lines.append(f"| {row['K']} | " + " | ".join(cells) + f" | {row['p50 us']:.0f} |")
    return "\n".join(lines)


def plot(path: Path, sweeps: list[tuple[Path, str, list[dict]]]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(1, len(sweeps) + 1, figsize=(4.5 * (len(sweeps) + 1), 3.6))
    for axis, (model, task, results) in zip(axes, sweeps):
        ks = [r["K"] for r in results]
        mean = np.array([r["success %"][0] for r in results])
        std = np.array([r["success %"][1] for r in results])
        axis.errorbar(ks, mean, yerr=std, marker="o", capsize=3)
        axis.set(xscale="log", xlabel="candidates K", ylabel="success %", title=f"{model.name} ({task})")
        axis.grid(alpha=0.3)
    for model, task, results in sweeps:
        axes[-1].plot([r["K"] for r in results], [r["p50 us"] for r in results], marker="o", label=model.name)
    axes[-1].set(xscale="log", yscale="log", xlabel="candidates K", ylabel="decide p50 (us)",
                 title="PolicyRuntime latency, 1 thread")
    axes[-1].grid(alpha=0.3)
    axes[-1].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, nargs="+", default=[ROOT / "models" / "ik_2link",
                                                                   ROOT / "models" / "multiroute"])
    parser.add_argument("--candidates", type=int, nargs="+", default=[1, 4, 16, 64, 256, 1024])
    parser.add_argument("--seeds", type=int, default=3, help="runtime seeds per K")
    parser.add_argument("--targets", type=int, default=500, help="ik: test targets")
    parser.add_argument("--samples", type=int, default=8, help="ik: decisions per target")
    parser.add_argument("--rollouts", type=int, default=100, help="multiroute: closed-loop rollouts per seed")
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown here (and a PNG beside it)")
    args = parser.parse_args(argv)
    sweeps = []
    for model in args.model:
        task, results = sweep(model, args.candidates, args.seeds, args)
        sweeps.append((model, task, results))
    command = "python benchmarks/candidates.py " + " ".join(sys.argv[1:] if argv is None else argv)
    text = "\n\n".join([f"Command: `{command.strip()}`"] + [table(m, t, r, args.seeds) for m, t, r in sweeps]) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
        plot(args.out.with_suffix(".png"), sweeps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
