"""Quality benchmark: every method on every task over several seeds -> benchmarks/results/quality.md.

    python benchmarks/quality.py                      # everything (resumes: finished runs are reused)
    python benchmarks/quality.py --tasks ik --methods rnce mdn --seeds 0 1 2 --jobs 2
    python benchmarks/quality.py --report-only        # rebuild the table from stored results
    python benchmarks/quality.py --timing             # lone train times of the timed configurations
    python benchmarks/quality.py --latency            # per-decision latency of every (task, method, rule)

Runs go to benchmarks/out/runs/<task>/<method>/s<seed> (git-ignored; delete a run's eval.json to
evaluate its checkpoint again without retraining); per-run metrics accumulate in
benchmarks/results/quality.json; the table reports mean +- std over seeds per selection rule and
checks the issue's targets for the deployed rule (mode_first). Train times in the tables are
wall-clock with `--jobs` runs sharing the machine; the time targets are checked on `--timing` runs,
which train the timed configurations one at a time (seed 0) as the CLI would.

Per-decision latency (`--latency`, stored apart in benchmarks/results/quality_latency.json so that a
training sweep running at the same time cannot overwrite it) is measured on each (task, method)'s
architecture from its config with random weights (the time of a decision does not depend on them):
one condition per call, p50 over the timed decisions. Two paths: `runtime` = PolicyRuntime.decide
on the exported model (the one-decision interface the node calls; only MDN-based and diffusion
models export), at the K the quality rows use (the config's inference.num_candidates; raw = K 1);
`torch` = the evaluator's PolicySampler.decide on one condition (every method, IBC's optimiser
included), torch eager with one thread.
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
LATENCY = RESULTS / "quality_latency.json"
PRESERVED_SECTIONS = ("UR5e box reach",)  # sections of quality.md written by others: kept as they are
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
    from ebgan_mdn_ros.training.checkpoint import load_checkpoint, read_evaluation, write_evaluation
    from ebgan_mdn_ros.training.config import load_train_config
    from ebgan_mdn_ros.training.trainer import train

    out = RUNS / task / method / f"s{seed}"
    config_path = default_config_path(task, method)
    if (out / "checkpoint.pt").is_file():
        stored = read_evaluation(out)
        if stored and stored.get("rollouts_requested", rollouts) == rollouts:
            return stored
        ckpt = load_checkpoint(out)  # trained, not (or no longer) evaluated: evaluate it again, no retraining
    else:
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


def _random_checkpoint(task: str, method: str):
    """The (task, method) config's networks with random weights, normalised on the task's data."""
    import torch
    from ebgan_mdn_ros.tasks.catalog import get_task
    from ebgan_mdn_ros.training.config import load_train_config
    from ebgan_mdn_ros.training.trainer import build_networks, make_checkpoint, prepare_data
    config = load_train_config(default_config_path(task, method), {"task": task, "method": method, "progress": False})
    definition = get_task(task)
    spec = definition.spec
    torch.manual_seed(0)
    _, condition_norm, action_norm = prepare_data(definition.conditions, definition.actions, spec)
    networks = build_networks(method, spec.condition_dim, getattr(spec, "flat_action_dim", spec.action_dim), config)
    return config, make_checkpoint(config, spec, condition_norm, action_norm, networks, definition.conditions, {}, 0.0)


def _round_robin(steps: dict, rounds: int = 15, per_round: int = 20, warmup: int = 30) -> dict:
    """label -> (p50 us, p99 us): rounds of per_round calls of each step, interleaved, so that load from
    other jobs on the machine falls on every step alike."""
    import time
    for step in steps.values():
        for _ in range(warmup):
            step()
    seconds = {label: [] for label in steps}
    for _ in range(rounds):
        for label, step in steps.items():
            for _ in range(per_round):
                start = time.perf_counter()
                step()
                seconds[label].append(time.perf_counter() - start)
    return {label: (float(np.percentile(s, 50) * 1e6), float(np.percentile(s, 99) * 1e6))
            for label, s in seconds.items()}


def _runtime(model_dir, rule: str, k: int, ddim_steps: int):
    from ebgan_mdn_ros.evaluation.evaluate import DDIM_RULES
    from ebgan_mdn_ros.runtime.policy_runtime import AnnealingConfig, PolicyRuntime
    from ebgan_mdn_ros.runtime.runtime_config import RuntimeConfig
    manifest = json.loads((Path(model_dir) / "manifest.json").read_text())
    if manifest.get("policy_kind") == "diffusion":
        return PolicyRuntime(model_dir, ddim_steps=DDIM_RULES.get(rule, ddim_steps))
    if rule in ("annealed", "annealed_mode_first"):
        return PolicyRuntime(model_dir, RuntimeConfig(num_candidates=k), annealing=AnnealingConfig(rule))
    if rule == "raw":  # one mixture sample: mode first with one candidate
        return PolicyRuntime(model_dir, RuntimeConfig(num_candidates=1))
    return PolicyRuntime(model_dir, RuntimeConfig(num_candidates=k, selection=rule))


def decision_latency(task: str, method: str) -> dict:
    """rule -> {torch_p50_us, torch_p99_us[, runtime_p50_us, runtime_p99_us], k} for one (task, method)."""
    import tempfile
    import torch
    from ebgan_mdn_ros.evaluation.evaluate import ALL_RULES, PolicySampler
    from ebgan_mdn_ros.export.exporter import ExportError, export_model
    from ebgan_mdn_ros.tasks.catalog import get_task
    torch.set_num_threads(1)
    config, ckpt = _random_checkpoint(task, method)
    inference = config.inference
    policy = PolicySampler(ckpt, inference.num_candidates, inference.importance_temperature,
                           inference.keep_min_weight, inference.ddim_steps)
    condition = np.asarray(get_task(task).test_conditions[:1], np.float32)
    rng = np.random.default_rng(0)
    timings, steps = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        try:
            export_model(ckpt, model_dir)
        except ExportError:
            model_dir = None
        for rule in ALL_RULES:
            if rule not in RULES or not policy.supports(rule):
                continue
            steps[("torch", rule)] = lambda rule=rule: policy.decide(condition, rule, rng)
            if model_dir is not None:
                runtime = _runtime(model_dir, rule, inference.num_candidates, inference.ddim_steps)
                steps[("runtime", rule)] = lambda runtime=runtime: runtime.decide(condition[0])
            timings[rule] = {"k": 1 if rule == "raw" and not policy.is_diffusion else inference.num_candidates}
        for (path, rule), (p50, p99) in _round_robin(steps).items():
            timings[rule].update({f"{path}_p50_us": p50, f"{path}_p99_us": p99})
    print(f"{task:10s} {method:9s} latency: " + ", ".join(
        f"{r} {e.get('runtime_p50_us', e['torch_p50_us']):.0f} us" for r, e in timings.items()), flush=True)
    return timings


def measure_latencies(tasks, methods) -> None:
    import datetime
    import os
    import platform
    stored = json.loads(LATENCY.read_text()) if LATENCY.is_file() else {}
    for task in tasks:
        for method in methods:
            load = os.getloadavg()
            stored.setdefault(task, {})[method] = decision_latency(task, method)
            meta = stored.setdefault("_meta", {})
            meta.setdefault("load_average_1min", []).append(round(load[0], 2))
            meta.update(machine=f"{platform.machine()}, {os.cpu_count()} CPUs", threads=1,
                        measured_at=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
            LATENCY.write_text(json.dumps(stored, indent=1, sort_keys=True))


def _latency_cells(latency: dict, task: str, method: str, rule: str) -> str:
    entry = latency.get(task, {}).get(method, {}).get(rule)
    if not entry:
        return "n/a | n/a"
    runtime = f"{entry['runtime_p50_us']:.0f}" if "runtime_p50_us" in entry else "-"
    return f"{runtime} | {entry['torch_p50_us']:.0f}"


def _preserved_sections(path: Path, generated: str) -> list[str]:
    """Sections of the existing file titled as in PRESERVED_SECTIONS that this run did not generate."""
    if not path.is_file():
        return []
    kept, current = [], None
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            current = [line] if any(line[3:].startswith(t) for t in PRESERVED_SECTIONS) else None
            if current is not None and line not in generated.splitlines():
                kept.append(current)
            continue
        if line.startswith("# ") and not line.startswith("## "):
            current = None
        if current is not None:
            current.append(line)
    return ["\n".join(section).rstrip() for section in kept]


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
             "",
             "train s: wall clock per run (mean ± std over seeds), with `--jobs` runs and other engineers' jobs "
             "sharing the machine. runtime us / torch us: per-decision latency p50 (`quality.py --latency`), on "
             "the config's architecture with random weights, one condition per call, one thread: runtime = "
             "PolicyRuntime.decide on the exported model at the row's K (the config's inference.num_candidates; "
             "raw = K 1), - where the method does not export (no mixture generator); torch = the evaluator's "
             "PolicySampler.decide (torch eager). " + _latency_note(),
             ""]
    lines += target_lines(results)
    latency = json.loads(LATENCY.read_text()) if LATENCY.is_file() else {}
    for task in TASKS:
        runs = results.get(task)
        if not runs:
            continue
        columns = COLUMNS[KIND[task]]
        lines += [f"## {task}", "", "| method | rule | " + " | ".join(h for _, h, _ in columns)
                  + " | seeds | train s | runtime us | torch us |",
                  "|---|---|" + "---|" * (len(columns) + 4)]
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
                lines.append(f"| {method} | {rule} | " + " | ".join(cells) + f" | {len(rule_runs)} | {train} | "
                             + _latency_cells(latency, task, method, rule) + " |")
        plot = RESULTS / "plots" / f"{task}.png"
        if plot.is_file():
            lines += ["", f"![{task}](plots/{plot.name})"]
        lines.append("")
    path = RESULTS / "quality.md"
    text = "\n".join(lines) + "\n"
    for section in _preserved_sections(path, text):
        text += "\n" + section + "\n"
    path.write_text(text)
    return path


def _latency_note() -> str:
    meta = (json.loads(LATENCY.read_text()) if LATENCY.is_file() else {}).get("_meta")
    if not meta:
        return "Latency not measured yet."
    loads = meta.get("load_average_1min", [])
    return (f"Measured {meta['measured_at']} on {meta['machine']}, 1-min load average "
            f"{min(loads):.1f}-{max(loads):.1f} during the measurement.")


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
    parser.add_argument("--latency", action="store_true", help="per-decision latency of each (task, method, rule)")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    store = RESULTS / "quality.json"
    results = json.loads(store.read_text()) if store.is_file() else {}
    if args.timing:
        for task, method in TIMED:
            results.setdefault("timing", {})[f"{task}/{method}"] = lone_train_seconds(task, method)
            store.write_text(json.dumps(results, indent=1, sort_keys=True))
    elif args.latency:
        measure_latencies(args.tasks, args.methods)
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
