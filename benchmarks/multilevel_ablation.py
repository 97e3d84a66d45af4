"""Does multi-level R-NCE's noise ladder pay? Ablations on 2-link IK (issue #13), and speed at equal quality.

    python benchmarks/multilevel_ablation.py train                 # the ladder models that are missing, one at a time
    python benchmarks/multilevel_ablation.py quality [--decisions 10]   # the L x K grid (resumable)
    python benchmarks/multilevel_ablation.py latency [--rounds 30] # per-decision p50/p99 through PolicyRuntime
    python benchmarks/multilevel_ablation.py speed                 # shipped rule against DDIM, one run
    python benchmarks/multilevel_ablation.py report                # the markdown tables from results.json
    (--task multiroute for the same on the multi-route planner, closed loop)

Models (benchmarks/out/ablation/<task>/<name>, git-ignored; seed 0, the task's committed config):
L1 = `rnce` as shipped (one level); L2, L4, L6 = `rnce-ml` with the ladders below (L4 is the committed
IK ladder). A finished run elsewhere with the same config (quality.py's s0, the first comparison's
runs) is reused instead of retrained. The MDN of every model is the same bit for bit (its updates draw
no random numbers), so the rows differ by their energies only.

Arms, each at K in {16, 64, 256} candidates (particles) per level:
(a) L1, mode_first at K (today's rule) and importance at K;
(b) L >= 2, mode_first at K: the multi-level energy used at its data level only;
(c) L1 at the matched total L*K: mode_first (against annealed_mode_first) and importance
    (against annealed; annealing over one level *is* importance resampling);
(d) L >= 2, annealed_mode_first and annealed: SMC down all L levels with K particles.
Quality uses the evaluator (evaluation/evaluate.py) on the task's 500 test goals with --decisions
independent decisions each (closed-loop rollouts for multiroute). Latency goes through
PolicyRuntime.decide on one condition, round robin over every configuration so that load from other
jobs hits all rows alike.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OUT = ROOT / "benchmarks" / "out" / "ablation"
KS = (16, 64, 256)
LADDERS = {  # name -> noise ladder (None: single-level rnce)
    "ik": {"L1": None, "L2": (0.01, 0.0), "L4": (0.1, 0.03, 0.01, 0.0), "L6": (0.3, 0.1, 0.03, 0.01, 0.003, 0.0)},
    "multiroute": {"L1": None, "L2": (0.03, 0.0), "L4": (0.3, 0.1, 0.03, 0.0), "L6": (1.0, 0.3, 0.1, 0.03, 0.01, 0.0)},
}
REUSE = {  # finished runs of the same (task, method, ladder, seed 0) config, tried in order
    ("ik", "L1"): ["benchmarks/out/runs/ik/rnce/s0", "benchmarks/out/runs/ml/ik-rnce"],
    ("ik", "L4"): ["benchmarks/out/runs/ik/rnce-ml/s0", "benchmarks/out/runs/ml/ik-rnce-ml"],
    ("multiroute", "L1"): ["benchmarks/out/runs/multiroute/rnce/s0"],
    ("multiroute", "L4"): ["benchmarks/out/runs/multiroute/rnce-ml/s0"],
}
SPEED_STEPS = (8, 16, 32, 64, 100)
SHIPPED_IK = ROOT / "models" / "ik_2link"
SHIPPED_K = 16  # config/sim_ik.yaml


# ---- arms -------------------------------------------------------------------------------------

def levels_of(name: str) -> int:
    return int(name[1:])


def quality_arms(task: str) -> list[tuple[str, str, int]]:
    """(model, rule, K) for every arm (a)-(d); L1's matched totals L*K included."""
    arms = []
    names = list(LADDERS[task])
    single_ks = sorted({k * levels_of(n) for n in names for k in KS})
    for k in single_ks:
        arms += [("L1", "mode_first", k), ("L1", "importance", k)]
    for name in names[1:]:
        for k in KS:
            arms += [(name, "mode_first", k), (name, "annealed_mode_first", k), (name, "annealed", k)]
    return arms


def key(task: str, name: str, rule: str, k: int) -> str:
    return f"{task}/{name}/{rule}/K{k}"


# ---- storage ----------------------------------------------------------------------------------

def results_path() -> Path:
    return OUT / "results.json"


def load_results() -> dict:
    path = results_path()
    return json.loads(path.read_text()) if path.is_file() else {}


def store(results: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = results_path().with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1, sort_keys=True))
    tmp.replace(results_path())


def run_dir(task: str, name: str) -> Path:
    """Where the model's run is: a reusable finished run, else its own directory under OUT."""
    for candidate in REUSE.get((task, name), []):
        if (ROOT / candidate / "checkpoint.pt").is_file():
            return ROOT / candidate
    return OUT / task / name


# ---- train ------------------------------------------------------------------------------------

def train_missing(task: str) -> None:
    from ebgan_mdn_ros.commands.train import default_config_path
    from ebgan_mdn_ros.tasks.catalog import get_task
    from ebgan_mdn_ros.training.config import load_train_config
    from ebgan_mdn_ros.training.trainer import train
    definition = get_task(task)
    for name, ladder in LADDERS[task].items():
        out = run_dir(task, name)
        if (out / "checkpoint.pt").is_file():
            print(f"{task} {name}: have {out.relative_to(ROOT)}", flush=True)
            continue
        method = "rnce" if ladder is None else "rnce-ml"
        overrides = {"task": task, "method": method, "seed": 0, "progress": False}
        if ladder is not None:
            overrides["model.noise_ladder"] = list(ladder)
        config = load_train_config(default_config_path(task, method), overrides)
        ckpt = train(config, definition.conditions, definition.actions, definition.spec, out)
        print(f"{task} {name}: trained {method} {ladder} in {ckpt.train_seconds:.0f} s -> {out.relative_to(ROOT)}",
              flush=True)
        results = load_results()
        results.setdefault("train_seconds", {})[f"{task}/{name}"] = ckpt.train_seconds
        store(results)


# ---- quality ----------------------------------------------------------------------------------

def evaluate_arms(task: str, decisions: int, rollouts: int) -> None:
    from ebgan_mdn_ros.config_base import from_dict
    from ebgan_mdn_ros.evaluation.evaluate import PolicySampler, evaluate_rule
    from ebgan_mdn_ros.tasks.catalog import get_task
    from ebgan_mdn_ros.training.checkpoint import load_checkpoint
    from ebgan_mdn_ros.training.config import TrainConfig
    definition = get_task(task)
    policies = {}
    results = load_results()
    for name, rule, k in quality_arms(task):
        entry = key(task, name, rule, k)
        if entry in results.get("quality", {}) and results["quality"][entry].get("decisions") == decisions:
            continue
        if name not in policies:
            path = run_dir(task, name)
            if not (path / "checkpoint.pt").is_file():
                print(f"skip {entry}: no model (run `train`)", flush=True)
                continue
            ckpt = load_checkpoint(path)
            config = from_dict(TrainConfig, ckpt.config)
            policies[name] = PolicySampler(ckpt, k, config.inference.importance_temperature,
                                           config.inference.keep_min_weight)
        policy = policies[name]
        policy.num_candidates = k
        started = time.perf_counter()
        metrics, _ = evaluate_rule(policy, definition, rule, decisions, rollouts, seed=0)
        metrics = {m: v for m, v in metrics.items() if not isinstance(v, dict)} | {
            "decisions": decisions, "eval_seconds": time.perf_counter() - started}
        results = load_results()  # another invocation may have written meanwhile
        results.setdefault("quality", {})[entry] = metrics
        store(results)
        headline = metrics.get("success")
        print(f"{entry:40s} success {headline:6.2f}  ({metrics['eval_seconds']:.1f} s)", flush=True)


# ---- latency ----------------------------------------------------------------------------------

def export_dir(task: str, name: str) -> Path:
    return OUT / task / "export" / name


def ensure_export(task: str, name: str) -> Path:
    from ebgan_mdn_ros.export.exporter import export_model
    out = export_dir(task, name)
    if not (out / "manifest.json").is_file():
        export_model(run_dir(task, name), out)
    return out


def runtime_for(model: Path, rule: str, k: int, ddim_steps: int | None = None):
    from ebgan_mdn_ros.runtime.policy_runtime import AnnealingConfig, PolicyRuntime
    from ebgan_mdn_ros.runtime.runtime_config import RuntimeConfig
    if ddim_steps is not None:
        return PolicyRuntime(model, RuntimeConfig(), ddim_steps=ddim_steps)
    if rule.startswith("annealed"):
        return PolicyRuntime(model, RuntimeConfig(num_candidates=k), annealing=AnnealingConfig(rule))
    return PolicyRuntime(model, RuntimeConfig(num_candidates=k, selection=rule))


def round_robin(runtimes: dict, condition: np.ndarray, rounds: int, per_round: int = 20,
                warmup: int = 30) -> dict:
    """label -> (p50 us, p99 us): rounds of per_round decisions per runtime, interleaved."""
    for runtime in runtimes.values():
        runtime.warmup(warmup)
    seconds = {label: [] for label in runtimes}
    for _ in range(rounds):
        for label, runtime in runtimes.items():
            for _ in range(per_round):
                start = time.perf_counter()
                runtime.decide(condition)
                seconds[label].append(time.perf_counter() - start)
    return {label: (float(np.percentile(s, 50) * 1e6), float(np.percentile(s, 99) * 1e6))
            for label, s in seconds.items()}


def measure_latency(task: str, rounds: int) -> None:
    from ebgan_mdn_ros.tasks.catalog import get_task
    definition = get_task(task)
    condition = np.asarray(definition.test_conditions[0], np.float32)
    runtimes = {}
    for name, rule, k in quality_arms(task):
        if not (run_dir(task, name) / "checkpoint.pt").is_file():
            continue
        runtimes[key(task, name, rule, k)] = runtime_for(ensure_export(task, name), rule, k)
    load_before = os.getloadavg()
    timings = round_robin(runtimes, condition, rounds)
    results = load_results()
    for label, (p50, p99) in timings.items():
        results.setdefault("latency", {})[label] = {"p50_us": p50, "p99_us": p99}
        print(f"{label:40s} p50 {p50:7.0f} us  p99 {p99:7.0f} us", flush=True)
    results.setdefault("latency_load", {})[task] = [load_before, os.getloadavg()]
    store(results)


# ---- speed at equal quality (IK) --------------------------------------------------------------

def diffusion_runs() -> list[Path]:
    found = [ROOT / f"benchmarks/out/runs/ik/diffusion/s{s}" for s in (0, 1, 2)]
    found = [p for p in found if (p / "checkpoint.pt").is_file()]
    fallback = ROOT / "benchmarks/out/runs/ml/ik-diffusion-1000"
    return found or ([fallback] if (fallback / "checkpoint.pt").is_file() else [])


def runtime_quality(runtime, conditions: np.ndarray, decisions: int) -> dict:
    """Success etc. of `decisions` independent decisions per goal, one PolicyRuntime.decide at a time."""
    from ebgan_mdn_ros.evaluation.metrics import ik_metrics
    from ebgan_mdn_ros.tasks.catalog import get_task
    angles = np.empty((len(conditions), decisions, 2))
    for i, goal in enumerate(conditions.astype(np.float32)):
        for j in range(decisions):
            runtime.reset()  # independent decisions: no mode kept from the last one
            angles[i, j] = runtime.decide(goal).action
    return ik_metrics(conditions.astype(np.float64), angles, get_task("ik").mode_tolerance)


def speed(decisions: int, rounds: int) -> None:
    from ebgan_mdn_ros.export.exporter import export_model
    from ebgan_mdn_ros.tasks.catalog import get_task
    conditions = np.asarray(get_task("ik").test_conditions)
    configs = {f"shipped rnce mode_first K={k}": runtime_for(SHIPPED_IK, "mode_first", k) for k in (1, SHIPPED_K)}
    sources = {}
    for run in diffusion_runs():
        label = run.relative_to(ROOT).as_posix().replace("benchmarks/out/runs/", "")
        out = OUT / "ik" / "export" / ("diffusion-" + label.replace("/", "-"))
        if not (out / "manifest.json").is_file():
            export_model(run, out)
        sources[label] = out
    for label, out in sources.items():
        for steps in SPEED_STEPS:
            configs[f"diffusion {label} DDIM {steps}"] = runtime_for(out, "", 0, ddim_steps=steps)
    results = load_results()
    speed_results = results.setdefault("speed", {})
    for label, runtime in configs.items():
        if label in speed_results and speed_results[label].get("decisions") == decisions:
            continue
        started = time.perf_counter()
        metrics = runtime_quality(runtime, conditions, decisions)
        speed_results[label] = metrics | {"decisions": decisions, "eval_seconds": time.perf_counter() - started}
        print(f"{label:45s} success {metrics['success']:6.2f}  both {metrics['elbow_coverage']:5.1f}", flush=True)
        store(results)
    load_before = os.getloadavg()
    timings = round_robin(configs, conditions[0].astype(np.float32), rounds)
    for label, (p50, p99) in timings.items():
        speed_results[label].update(p50_us=p50, p99_us=p99)
        print(f"{label:45s} p50 {p50:7.0f} us  p99 {p99:7.0f} us", flush=True)
    results["speed_load"] = [load_before, os.getloadavg()]
    store(results)


# ---- report -----------------------------------------------------------------------------------

def _cell(metrics: dict | None, field: str, fmt: str) -> str:
    return "-" if not metrics or field not in metrics else f"{metrics[field]:{fmt}}"


def report(task: str) -> str:
    results = load_results()
    quality, latency = results.get("quality", {}), results.get("latency", {})
    planning = task == "multiroute"
    fields = ([("success", ".1f"), ("routes_used", ".0f")] if planning else
              [("success", ".2f"), ("elbow_coverage", ".1f"), ("error_median", ".4f")])
    header = ("| model | rule | K per level | total candidates | " + " | ".join(f for f, _ in fields)
              + " | p50 us | p99 us |")
    lines = [header, "|---" * (header.count("|") - 1) + "|"]
    for name, rule, k in quality_arms(task):
        entry = key(task, name, rule, k)
        if entry not in quality:
            continue
        total = k * (levels_of(name) if rule.startswith("annealed") else 1)
        m, t = quality[entry], latency.get(entry)
        lines.append(f"| {name} | {rule} | {k} | {total} | " + " | ".join(_cell(m, f, fmt) for f, fmt in fields)
                     + f" | {_cell(t, 'p50_us', '.0f')} | {_cell(t, 'p99_us', '.0f')} |")
    out = "\n".join(lines)
    if task == "ik" and results.get("speed"):
        rows = ["| configuration | success % | both elbows % | EE error median | p50 us | p99 us |",
                "|---|---|---|---|---|---|"]
        for label, m in results["speed"].items():
            rows.append(f"| {label} | {m['success']:.2f} | {m['elbow_coverage']:.1f} | {m['error_median']:.4f} | "
                        f"{_cell(m, 'p50_us', '.0f')} | {_cell(m, 'p99_us', '.0f')} |")
        out += "\n\n" + "\n".join(rows)
    if results.get("train_seconds"):
        out += "\n\ntrain seconds: " + json.dumps(results["train_seconds"])
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("train", "quality", "latency", "speed", "report"))
    parser.add_argument("--task", default="ik", choices=tuple(LADDERS))
    parser.add_argument("--decisions", type=int, default=10, help="independent decisions per test goal (IK)")
    parser.add_argument("--rollouts", type=int, default=200, help="closed-loop episodes (multiroute)")
    parser.add_argument("--rounds", type=int, default=30, help="latency: round-robin rounds of 20 decisions")
    args = parser.parse_args(argv)
    if args.step == "train":
        train_missing(args.task)
    elif args.step == "quality":
        evaluate_arms(args.task, args.decisions, args.rollouts)
    elif args.step == "latency":
        measure_latency(args.task, args.rounds)
    elif args.step == "speed":
        speed(args.decisions, args.rounds)
    print(report(args.task))
    return 0


if __name__ == "__main__":
    sys.exit(main())
