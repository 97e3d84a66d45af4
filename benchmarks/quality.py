"""Quality benchmark: every method on every task over several seeds -> benchmarks/results/quality.md.

    python benchmarks/quality.py                      # everything (resumes: finished runs are reused)
    python benchmarks/quality.py --tasks ik --methods rnce mdn --seeds 0 1 2 --jobs 2
    python benchmarks/quality.py --report-only        # rebuild the table from stored results
    python benchmarks/quality.py --timing             # lone train times of the timed configurations

Runs go to benchmarks/out/runs/<task>/<method>/s<seed> (git-ignored); per-run metrics accumulate in
benchmarks/results/quality.json; the table reports mean +- std over seeds per selection rule and
checks the issue's targets for the deployed rule (mode_first). Train times in the tables are
wall-clock with `--jobs` runs sharing the machine; the time targets are checked on `--timing` runs,
which train the timed configurations one at a time (seed 0) as the CLI would.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ebgan_mdn_ros.commands.train import default_config_path  # noqa: E402
from ebgan_mdn_ros.training.config import METHODS  # noqa: E402

TASKS = ("hyperbola", "lines", "circle", "parabola", "ik", "multiroute", "grid")
RULES = ("raw", "lowest_energy", "mode_first", "importance",
         "annealed", "annealed_mode_first", "ddim_8", "ddim_16", "ddim_32")  # the last five: rnce-ml, diffusion
RUNS = ROOT / "benchmarks" / "out" / "runs"
RESULTS = ROOT / "benchmarks" / "results"
COLUMNS = {  # task kind -> (metric key, header, format)
    "curve": [("tmc", "TMC %", ".1f"), ("amc", "AMC", ".2f"), ("off_manifold", "off-manifold %", ".2f"),
              ("kl", "KL", ".2f"), ("wasserstein", "W1", ".3f")],
    "ik": [("success", "success % (tol 0.1)", ".2f"), ("elbow_coverage", "both elbows %", ".1f"),
           ("error_mean", "EE error mean", ".4f"), ("error_median", "EE error median", ".4f")],
    "planning": [("success", "success %", ".1f"), ("routes_used", "routes used", ".1f"),
                 ("via_10_0", "via (10,0) %", ".0f"), ("via_5_5", "via (5,5) %", ".0f"),
                 ("via_0_10", "via (0,10) %", ".0f")],
    "grid": [("amc", "modes captured /49", ".1f"), ("off_manifold", "off-manifold %", ".2f"),
             ("kl", "KL", ".2f"), ("wasserstein", "sliced W1", ".3f")],
}
KIND = {"hyperbola": "curve", "lines": "curve", "circle": "curve", "parabola": "curve", "ik": "ik",
        "multiroute": "planning", "grid": "grid"}


def run_one(task: str, method: str, seed: int, rollouts: int) -> dict:
    """Train and evaluate one (task, method, seed); reuse a finished run."""
    from ebgan_mdn_ros.evaluation.evaluate import evaluate_run
    from ebgan_mdn_ros.tasks.catalog import get_task
    from ebgan_mdn_ros.training.checkpoint import read_evaluation, write_evaluation
    from ebgan_mdn_ros.training.config import load_train_config
    from ebgan_mdn_ros.training.trainer import train

    out = RUNS / task / method / f"s{seed}"
    if (out / "checkpoint.pt").is_file():
        stored = read_evaluation(out)
        if stored and stored.get("rollouts_requested", rollouts) == rollouts:
            return stored
    config_path = default_config_path(task, method)
    config = load_train_config(config_path, {"task": task, "method": method, "seed": seed, "progress": False})
    definition = get_task(task)
    ckpt = train(config, definition.conditions, definition.actions, definition.spec, out)
    metrics = evaluate_run(out, rollouts=rollouts, seed=seed, store=False)
    metrics.update(train_seconds=ckpt.train_seconds, config_file=str(config_path.relative_to(ROOT)),
                   rollouts_requested=rollouts)
    write_evaluation(out, metrics)
    print(f"{task:10s} {method:9s} s{seed}: train {ckpt.train_seconds:6.1f} s, "
          f"eval {metrics['eval_seconds']:5.1f} s", flush=True)
    return metrics


TIMED = (("hyperbola", "ebgan-mdn"), ("hyperbola", "rnce"), ("ik", "ebgan-mdn"), ("ik", "rnce"))


def lone_train_seconds(task: str, method: str) -> float:
    from ebgan_mdn_ros.tasks.catalog import get_task
    from ebgan_mdn_ros.training.config import load_train_config
    from ebgan_mdn_ros.training.trainer import train
    config = load_train_config(default_config_path(task, method), {"task": task, "method": method, "progress": False})
    definition = get_task(task)
    seconds = train(config, definition.conditions, definition.actions, definition.spec).train_seconds
    print(f"{task:10s} {method:9s} alone: train {seconds:6.1f} s", flush=True)
    return seconds


def _flat(rule_metrics: dict) -> dict:
    flat = dict(rule_metrics)
    flat.update(flat.pop("route_usage", {}))
    return flat


def _mean_std(values: list[float], fmt: str) -> str:
    if not values:
        return "n/a"
    mean, std = float(np.mean(values)), float(np.std(values))
    return f"{mean:{fmt}} ± {std:{fmt}}"


def _rule_values(results, task, method, rule, key):
    seeds = results.get(task, {}).get(method, {})
    return [_flat(m["rules"][rule])[key] for m in seeds.values() if m["rules"].get(rule)]


def _check(label, values, target, higher_is_better=True, unit=""):
    if not values:
        return f"| {label} | not run | {target}{unit} | - |"
    mean = float(np.mean(values))
    ok = mean >= target if higher_is_better else mean <= target
    gap = "" if ok else f" (misses by {abs(mean - target):.2f}{unit})"
    sign = ">=" if higher_is_better else "<="
    return f"| {label} | {mean:.2f}{unit} | {sign} {target}{unit} | {'met' if ok else 'MISSED'}{gap} |"


def target_lines(results: dict) -> list[str]:
    """The issue's targets, checked on the deployed rule (mode_first) as mean over seeds."""
    lines = ["## Targets (mean over seeds, deployed rule mode_first)", "",
             "| target | measured | wanted | verdict |", "|---|---|---|---|"]
    for method in ("ebgan-mdn", "rnce"):
        lines.append(_check(f"hyperbola TMC, {method}", _rule_values(results, "hyperbola", method, "mode_first", "tmc"), 99.5))
        lines.append(_check(f"hyperbola off-manifold, {method}",
                            _rule_values(results, "hyperbola", method, "mode_first", "off_manifold"), 0.5, False, " %"))
        lines.append(_check(f"IK success at 0.1, {method}", _rule_values(results, "ik", method, "mode_first", "success"), 97.0, unit=" %"))
        lines.append(_check(f"IK both elbow modes, {method}",
                            _rule_values(results, "ik", method, "mode_first", "elbow_coverage"), 95.0, unit=" %"))
        lines.append(_check(f"multi-route success, {method}",
                            _rule_values(results, "multiroute", method, "mode_first", "success"), 90.0, unit=" %"))
        lines.append(_check(f"multi-route routes used (of 3), {method}",
                            _rule_values(results, "multiroute", method, "mode_first", "routes_used"), 3.0))
        for task, key, label in (("hyperbola", "off_manifold", "hyperbola off-manifold"),
                                 ("ik", "error_mean", "IK end-effector error")):
            raw = _rule_values(results, task, method, "raw", key)
            reranked = _rule_values(results, task, method, "mode_first", key)
            if raw and reranked:
                better = np.mean(reranked) < np.mean(raw)
                lines.append(f"| reranking beats raw: {label}, {method} | {np.mean(reranked):.4f} (mode_first) | "
                             f"< {np.mean(raw):.4f} (raw) | {'met' if better else 'MISSED'} |")
    bc = _rule_values(results, "hyperbola", "bc", "raw", "off_manifold")
    if bc:
        lines.append(f"| explicit BC mode averaging (hyperbola off-manifold) | {np.mean(bc):.1f} % | "
                     "high = averaging | shown |")
    for task, limit in (("hyperbola", 60.0), ("ik", 180.0)):
        for method in ("ebgan-mdn", "rnce"):
            seconds = results.get("timing", {}).get(f"{task}/{method}")
            lines.append(_check(f"{task} train time alone, {method}", [seconds] if seconds else [], limit, False, " s"))
    notes = RESULTS / "quality_notes.md"
    if notes.is_file():
        lines += ["", notes.read_text().strip()]
    return lines + [""]


def write_report(results: dict, seeds: list[int]) -> Path:
    lines = ["# Quality benchmark", "",
             "Generated by `benchmarks/quality.py` (mean ± std over seeds "
             f"{', '.join(map(str, seeds))}; per-run numbers in quality.json). Rules: raw = one mixture sample "
             "(K = 1); lowest_energy = argmin over K whole-mixture candidates; mode_first = k ~ pi, K "
             "candidates from k, lowest energy (the deployed rule; closed loop keeps the previous component); "
             "importance = exp(-E)/q resampling; annealed (_mode_first) = SMC down an rnce-ml run's noise "
             "ladder (docs/method.md sec. 10); ddim_S = a diffusion run's DDIM at S steps, its raw at the "
             "config's inference.ddim_steps (sec. 11). n/a = the method has no energy or no mixture for that rule.",
             ""]
    lines += target_lines(results)
    for task in TASKS:
        runs = results.get(task)
        if not runs:
            continue
        columns = COLUMNS[KIND[task]]
        lines += [f"## {task}", "", "| method | rule | " + " | ".join(h for _, h, _ in columns) + " | train s |",
                  "|---|---|" + "---|" * (len(columns) + 1)]
        for method in METHODS:
            per_seed = [runs[method][s] for s in map(str, seeds) if method in runs and s in runs[method]]
            if not per_seed:
                continue
            train = _mean_std([m["train_seconds"] for m in per_seed], ".0f")
            for rule in RULES:
                rule_runs = [_flat(m["rules"][rule]) for m in per_seed if m["rules"].get(rule)]
                if not rule_runs:
                    continue
                cells = [_mean_std([r[key] for r in rule_runs if key in r], fmt) for key, _, fmt in columns]
                lines.append(f"| {method} | {rule} | " + " | ".join(cells) + f" | {train} |")
        plot = RESULTS / "plots" / f"{task}.png"
        if plot.is_file():
            lines += ["", f"![{task}](plots/{plot.name})"]
        lines.append("")
    path = RESULTS / "quality.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def collect_plots(tasks, methods=("rnce", "ebgan-mdn")) -> None:
    """Seed 0's per-rule sample plot of the first available headline method, one per task."""
    (RESULTS / "plots").mkdir(parents=True, exist_ok=True)
    for task in tasks:
        for method in methods:
            source = RUNS / task / method / "s0"
            if (source / "samples.png").is_file():
                shutil.copy(source / "samples.png", RESULTS / "plots" / f"{task}.png")
                for extra in ("energy.png", "ik_arms.png"):
                    if (source / extra).is_file():
                        shutil.copy(source / extra, RESULTS / "plots" / f"{task}_{extra}")
                break
        bc = RUNS / task / "bc" / "s0" / "samples.png"
        if bc.is_file():
            shutil.copy(bc, RESULTS / "plots" / f"{task}_bc.png")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--rollouts", type=int, default=200, help="closed-loop rollouts per planning run")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (they share the CPU)")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--timing", action="store_true", help="time the headline configurations alone")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    store = RESULTS / "quality.json"
    results = json.loads(store.read_text()) if store.is_file() else {}
    if args.timing:
        for task, method in TIMED:
            results.setdefault("timing", {})[f"{task}/{method}"] = lone_train_seconds(task, method)
            store.write_text(json.dumps(results, indent=1, sort_keys=True))
    elif not args.report_only:
        jobs = [(t, m, s) for t in args.tasks for m in args.methods for s in args.seeds]
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            futures = {pool.submit(run_one, t, m, s, args.rollouts): (t, m, s) for t, m, s in jobs}
            for future, (task, method, seed) in futures.items():
                metrics = future.result()
                metrics.pop("plots", None)
                results.setdefault(task, {}).setdefault(method, {})[str(seed)] = metrics
                store.write_text(json.dumps(results, indent=1, sort_keys=True))
        collect_plots(args.tasks)
    all_seeds = sorted({int(s) for name, task in results.items() if name in TASKS for m in task.values() for s in m})
    print(f"wrote {write_report(results, all_seeds)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
