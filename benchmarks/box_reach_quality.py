"""Every method on the UR5e box reach, several seeds, judged closed loop in MuJoCo.

    python benchmarks/box_reach_quality.py                                  # everything (resumes)
    python benchmarks/box_reach_quality.py --methods rnce mdn --seeds 0     # a subset
    python benchmarks/box_reach_quality.py --stage train                    # only train what is missing
    python benchmarks/box_reach_quality.py --stage eval                     # only export + evaluate what is trained
    python benchmarks/box_reach_quality.py --report-only                    # rebuild the tables
    python benchmarks/box_reach_quality.py --latency                        # per-decision p50 of every row

Per (method, seed): train on runs/box_reach/corrective.npz exactly as the shipped model was
(`ebgan-mdn train --data ... --action-kind delta --method M --seed S --config config/train/box_reach.yaml`),
export (`ebgan-mdn export`'s export_model; the MDN-based methods and diffusion: what the exporter and
the ONNX runtime serve), then drive the MuJoCo arm with the policy node's decision loop in process
(box_reach_closed_loop.run_inprocess: control/decision_loop.py, the safety filter, the emulated
forward controller, config/sim_ur5e.yaml's parameters, 10 Hz) for --episodes episodes on one fixed
goal seed, the same start/goal draws for every run.

Selections: the mixture methods (rnce, ebgan-mdn, mdn) through the deployed PolicyRuntime with the
node's rule, mode_first at K = 64 (mdn ranks by its own mixture density), and raw samples (K = 1);
rnce-ml the same and its annealed_mode_first (the node's annealing_rule: SMC down the noise ladder,
K = 64 particles per level); diffusion one DDIM action per decision at 8 and 16 steps (ddim_steps).
The others have no ONNX export and no runtime of their own; they are served from their torch
checkpoints through evaluation/evaluate.py's PolicySampler (the rule quality.py reports for them)
behind the same decision loop: bc its one deterministic output; cgan and ebgan the lowest energy
(critic) of K = 64 generator samples, and one raw sample; ibc its derivative-free optimiser's argmin.

Runs live in benchmarks/out/runs/box_reach/<method>/s<seed> (git-ignored): checkpoint.pt, model/,
closed_loop_<selection>.json (every episode); finished pieces are reused. Per-run metrics go to
benchmarks/results/box_reach_quality.json, the tables (mean ± std over seeds) to
benchmarks/results/box_reach_quality.md, and its summary table into quality.md's section
"UR5e box reach (MuJoCo, closed loop)" (quality.py keeps that section when it regenerates: its
PRESERVED_SECTIONS).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

METHODS = ("rnce", "ebgan-mdn", "mdn", "bc", "cgan", "ebgan", "ibc", "rnce-ml", "diffusion")
# selection label -> (how it is served, the rule, K). The rule: for "torch" a PolicySampler rule; for
# "runtime" None (the node's selection) or the node parameters that pick it (annealing, DDIM steps)
SELECTIONS = {
    "rnce": [("mode_first", "runtime", None, 64), ("raw", "runtime", None, 1)],
    "ebgan-mdn": [("mode_first", "runtime", None, 64), ("raw", "runtime", None, 1)],
    "mdn": [("mode_first", "runtime", None, 64), ("raw", "runtime", None, 1)],
    "bc": [("deterministic", "torch", "raw", 1)],
    "cgan": [("lowest_energy", "torch", "lowest_energy", 64), ("raw", "torch", "raw", 1)],
    "ebgan": [("lowest_energy", "torch", "lowest_energy", 64), ("raw", "torch", "raw", 1)],
    "ibc": [("lowest_energy", "torch", "lowest_energy", 64)],   # DFO: 1024 samples x 3 iterations, argmin
    # multi-level: SMC down the ladder keeping the chosen component (K particles per level), and its
    # level-0 energy under the single-level rule
    "rnce-ml": [("annealed_mode_first", "runtime", {"annealing_rule": "annealed_mode_first"}, 64),
                ("mode_first", "runtime", None, 64), ("raw", "runtime", None, 1)],
    # one denoised action per decision; 16 steps is what the exporter deploys, 8 the fewest that matched
    # the shipped model's success and contacts in benchmarks/box_reach_speed.py
    "diffusion": [("ddim_8", "runtime", {"ddim_steps": 8}, 1), ("ddim_16", "runtime", {"ddim_steps": 16}, 1)],
}
DATA = ROOT / "runs" / "box_reach" / "corrective.npz"
TRAIN_CONFIG = ROOT / "config" / "train" / "box_reach.yaml"
RUNS = ROOT / "benchmarks" / "out" / "runs" / "box_reach"
RESULTS = ROOT / "benchmarks" / "results"
STORE = RESULTS / "box_reach_quality.json"
PAGE = RESULTS / "box_reach_quality.md"
NOTES = RESULTS / "box_reach_quality_notes.md"
SECTION_TITLE = "## UR5e box reach (MuJoCo, closed loop)"
# metric key -> (header, format, scale); computed per run by run_metrics
COLUMNS = [("success", "success %", ".1f"), ("contact", "contact episodes %", ".1f"),
           ("near", "near %", ".0f"), ("far", "far %", ".0f"), ("seconds_to_goal", "time to goal s", ".2f"),
           ("jerk", "mean sq. cmd jerk rad²/s⁶", ".0f"), ("train_seconds", "train s", ".0f")]


# ---- one run -------------------------------------------------------------------------------------

def run_dir(method: str, seed: int) -> Path:
    return RUNS / method / f"s{seed}"


def train_run(method: str, seed: int) -> Path:
    """Train (unless checkpoint.pt is there) with the same command line as the shipped model."""
    out = run_dir(method, seed)
    if (out / "checkpoint.pt").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    command = ["ebgan-mdn", "train", "--data", str(DATA), "--action-kind", "delta", "--method", method,
               "--seed", str(seed), "--config", str(TRAIN_CONFIG), "--out", str(out), "--no-progress"]
    print(f"{method} s{seed}: {' '.join(command)}", flush=True)
    with open(out / "train.log", "w") as log:
        subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT,
                       env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
    return out


def export_run(out: Path) -> Path:
    """The ONNX model directory of a mixture run (exported once, like `ebgan-mdn export RUN --out RUN/model`)."""
    from ebgan_mdn_ros.export.exporter import export_model
    from ebgan_mdn_ros.runtime.manifest import MANIFEST_FILE
    model = out / "model"
    if not (model / MANIFEST_FILE).is_file():
        report = export_model(out, model)
        print(f"  exported {model} ({sum(report.file_bytes.values())} bytes)", flush=True)
    return model


class CheckpointRuntime:
    """A torch checkpoint behind the runtime's interface (manifest names, decide, reset) for the
    methods the exporter cannot serve: each decision is PolicySampler.decide at one condition."""

    def __init__(self, checkpoint, rule: str, num_candidates: int, seed: int = 0):
        from ebgan_mdn_ros.evaluation.evaluate import PolicySampler
        self.sampler = PolicySampler(checkpoint, num_candidates=num_candidates)
        self.manifest = SimpleNamespace(condition_names=tuple(checkpoint.spec.condition_names),
                                        action_kind=checkpoint.spec.action_kind)
        self.rule, self._rng = rule, np.random.default_rng(seed)
        self.inference_seconds: list[float] = []

    def decide(self, condition, previous_action=None):
        from ebgan_mdn_ros.runtime.policy_runtime import Decision
        start = time.perf_counter()
        actions, _ = self.sampler.decide(np.asarray(condition, np.float32)[None], self.rule, self._rng)
        action = actions[0].astype(np.float64)
        seconds = time.perf_counter() - start
        self.inference_seconds.append(seconds)
        return Decision(action=action, candidates=action[None].astype(np.float32), energies=np.full(1, np.nan, np.float32),
                        components=np.full(1, -1, np.int64), chosen_index=0, chosen_component=-1,
                        trusted=bool(np.all(np.isfinite(action))), energy=math.nan, energy_gap=math.nan,
                        inference_seconds=seconds)

    def reset(self) -> None:
        pass


def serve(method: str, seed: int, served: str, rule, k: int, goal_seed: int, episodes: int = 0):
    """(closed-loop args, the runtime object) for one selection of one run, served as the node would:
    "runtime" = PolicyRuntime on the exported model with the node's config and the selection's
    parameters; "torch" = the checkpoint behind CheckpointRuntime."""
    import box_reach_closed_loop as closed_loop
    out = run_dir(method, seed)
    args = SimpleNamespace(episodes=episodes, model=None, config="config/sim_ur5e.yaml", num_candidates=k,
                           selection=None, seed=goal_seed, parameters=rule if served == "runtime" else None)
    if served == "runtime":
        from ebgan_mdn_ros.runtime.policy_runtime import PolicyRuntime
        args.model = str(export_run(out))
        node = closed_loop.node_config(args)
        return args, PolicyRuntime(node.model_directory, node.runtime_config())
    from ebgan_mdn_ros.training.checkpoint import load_checkpoint
    args.model = "models/ur5e_box_reach"  # the node's configuration needs one; the checkpoint is what runs
    return args, CheckpointRuntime(load_checkpoint(out), rule, k, seed=goal_seed)


def evaluate_run(method: str, seed: int, label: str, served: str, rule, k: int,
                 episodes: int, goal_seed: int) -> dict:
    """Closed loop in process; the result (summary + every episode) is kept in the run directory."""
    import box_reach_closed_loop as closed_loop
    out = run_dir(method, seed)
    path = out / f"closed_loop_{label}.json"
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored.get("episodes_requested") == episodes and stored.get("goal_seed") == goal_seed:
            return stored
    args, runtime = serve(method, seed, served, rule, k, goal_seed, episodes)
    wall = time.monotonic()
    result = closed_loop.run_inprocess(args, runtime=runtime)
    result.update(episodes_requested=episodes, goal_seed=goal_seed, eval_wall_s=time.monotonic() - wall,
                  selection_label=label, served=served, num_candidates=k,
                  rule=rule if isinstance(rule, str) else label if rule else result["summary"]["selection"])
    if isinstance(runtime, CheckpointRuntime):
        result["inference_p50_us"] = float(np.percentile(runtime.inference_seconds, 50) * 1e6)
    path.write_text(json.dumps(result, indent=1, default=float))
    s = result["summary"]
    print(f"  {method} s{seed} {label}: {s['reached']}/{s['episodes']} reached, {s['contact_episodes']} touching, "
          f"routes {s['routes']}, jerk {s['mean_squared_jerk']:.0f}; {result['eval_wall_s']:.0f} s", flush=True)
    return result


def measure_latency(methods, seed: int = 0, rounds: int = 10, per_round: int = 20) -> dict:
    """Per-decision latency of every selection on its seed-``seed`` run, round robin: each round
    times every selection on the same training conditions (reset first), so load falls on all
    alike; the first round is warm-up. {method: {label: {p50_us, p99_us}}}."""
    data = np.load(DATA)
    rng = np.random.default_rng(0)
    conditions = data["conditions"][rng.choice(len(data["conditions"]), per_round, replace=False)].astype(np.float64)
    rows = {(method, label): serve(method, seed, served, rule, k, goal_seed=0)[1]
            for method in methods if (run_dir(method, seed) / "checkpoint.pt").is_file()
            for label, served, rule, k in SELECTIONS[method]}
    times: dict = {key: [] for key in rows}
    for round_index in range(rounds + 1):
        for key, runtime in rows.items():
            runtime.reset()
            for condition in conditions:
                start = time.perf_counter()
                runtime.decide(condition)
                if round_index:
                    times[key].append(time.perf_counter() - start)
    latency: dict = {}
    for (method, label), values in times.items():
        latency.setdefault(method, {})[label] = {"p50_us": float(np.percentile(values, 50) * 1e6),
                                                 "p99_us": float(np.percentile(values, 99) * 1e6)}
        print(f"  {method:10s} {label:20s} p50 {latency[method][label]['p50_us']:8.0f} us", flush=True)
    return latency


def run_metrics(result: dict, train_seconds: float) -> dict:
    """One run's row: percentages, route shares, time to goal, jerk, and what the misses were."""
    s, records = result["summary"], result["episodes"]
    shares = s.get("route_shares", {})
    missed = [r for r in records if not r["reached"]]
    safety = s.get("safety", {})
    return {"episodes": s["episodes"], "success": 100.0 * s["success_rate"], "contact": 100.0 * s["contact_rate"],
            "near": 100.0 * shares.get("near", 0.0), "far": 100.0 * shares.get("far", 0.0),
            "through": 100.0 * shares.get("through", 0.0), "seconds_to_goal": s["mean_seconds_to_goal"],
            "jerk": s["mean_squared_jerk"], "train_seconds": train_seconds,
            "eval_wall_s": result.get("eval_wall_s", math.nan),
            "missed_min_error_mm": float(np.mean([1000 * r["min_error"] for r in missed])) if missed else math.nan,
            "contact_bodies": _count(c for r in records for c in r.get("contacts", {})),
            "held": safety.get("held", 0), "clamped_step": safety.get("clamped_step", 0),
            "untrusted": safety.get("untrusted", 0), "selection": result.get("rule"), "K": result.get("num_candidates")}


def _count(items) -> dict:
    counts: dict = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


# ---- aggregation and the report ------------------------------------------------------------------

def mean_std(values) -> tuple[float, float, int]:
    """Mean and population std over the finite values, and how many there were (nan, nan, 0 if none)."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not finite:
        return math.nan, math.nan, 0
    return float(np.mean(finite)), float(np.std(finite)), len(finite)


def aggregate(runs: dict) -> list[dict]:
    """runs[method][seed][selection] = metrics -> one row per (method, selection), in METHODS order,
    with (mean, std, n) per column over the seeds that have that selection."""
    rows = []
    for method in [m for m in METHODS if m in runs] + sorted(set(runs) - set(METHODS)):
        labels = [label for label, _, _, _ in SELECTIONS.get(method, ())]  # the stored json sorts its keys
        for seed in sorted(runs[method], key=int):
            labels += [label for label in runs[method][seed] if label not in labels]
        labels = [label for label in labels if any(label in runs[method][seed] for seed in runs[method])]
        for label in labels:
            per_seed = [runs[method][seed][label] for seed in sorted(runs[method], key=int) if label in runs[method][seed]]
            row = {"method": method, "selection": label, "seeds": len(per_seed),
                   "cells": {key: mean_std(m.get(key) for m in per_seed) for key, _, _ in COLUMNS}}
            rows.append(row)
    return rows


def format_cell(cell: tuple[float, float, int], fmt: str) -> str:
    mean, std, n = cell
    if n == 0:
        return "n/a"
    return f"{mean:{fmt}}" if n == 1 else f"{mean:{fmt}} ± {std:{fmt}}"


def table(runs: dict, latency: dict | None = None) -> list[str]:
    """The summary table; latency (measure_latency's, from --latency) adds its p50 per row."""
    latency = latency or {}
    lines = ["| method | selection | seeds | " + " | ".join(h for _, h, _ in COLUMNS) + " | p50 us per decision |",
             "|---|---|---|" + "---|" * (len(COLUMNS) + 1)]
    for row in aggregate(runs):
        cells = [format_cell(row["cells"][key], fmt) for key, _, fmt in COLUMNS]
        p50 = latency.get(row["method"], {}).get(row["selection"], {}).get("p50_us")
        cells.append("n/a" if p50 is None else f"{p50:.0f}")
        lines.append(f"| {row['method']} | {row['selection']} | {row['seeds']} | " + " | ".join(cells) + " |")
    return lines


def per_run_lines(runs: dict) -> list[str]:
    lines = ["| method | seed | selection | reached | contact ep. | near / far / other % | time to goal s | jerk | "
             "held / step-clamped | misses' closest approach mm | contacts (episodes per pair) | train s | eval s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for method in [m for m in METHODS if m in runs]:
        for seed in sorted(runs[method], key=int):
            order = [label for label, _, _, _ in SELECTIONS.get(method, ())]
            for label, m in sorted(runs[method][seed].items(),
                                   key=lambda item: order.index(item[0]) if item[0] in order else len(order)):
                bodies = ", ".join(f"{k} {v}" for k, v in sorted(m["contact_bodies"].items(), key=lambda kv: -kv[1])[:3])
                lines.append(f"| {method} | {seed} | {label} | {m['success']:.0f} % | {m['contact']:.0f} % | "
                             f"{m['near']:.0f} / {m['far']:.0f} / {m['through']:.0f} | {m['seconds_to_goal']:.2f} | "
                             f"{m['jerk']:.0f} | {m['held']} / {m['clamped_step']} | "
                             f"{'-' if not math.isfinite(m['missed_min_error_mm']) else format(m['missed_min_error_mm'], '.0f')} | "
                             f"{bodies or '-'} | "
                             f"{m['train_seconds']:.0f} | {m['eval_wall_s']:.0f} |")
    return lines


def section(store: dict) -> str:
    """quality.md's section: the summary table and a link to the full page."""
    meta = store.get("meta", {})
    return "\n".join([
        SECTION_TITLE, "",
        f"Generated by `benchmarks/box_reach_quality.py` (mean ± std over seeds; {meta.get('episodes', '?')} "
        f"episodes per run on goal seed {meta.get('goal_seed', '?')}, the node's decision loop on the MuJoCo arm "
        "in process; success = flange within 2 cm of the goal before 8 s; contact = any arm contact in the "
        "episode; routes by the flange path beside the box, the rest 'through' or never got there; jerk = mean "
        "squared third difference of the commands). " + latency_text(store) + " Per-run numbers, what the "
        "misses were, commands and caveats: [box_reach_quality.md](box_reach_quality.md).", "",
        *table(store.get("runs", {}), store.get("latency")), ""])


def latency_text(store: dict) -> str:
    meta = store.get("latency_meta")
    if not meta:
        return "No per-decision latency was measured (`--latency`)."
    load = ", ".join(f"{v:.1f}" for v in meta.get("load_average_1min", []))
    return (f"p50 us per decision: one decide() call on seed 0's model as the row serves it (the exported "
            f"model through PolicyRuntime, or the torch checkpoint), 20 training conditions x "
            f"{meta.get('rounds', '?')} rounds, every row timed in each round, {meta.get('when', '?')}, "
            f"1-minute load average {load} before/after.")


def write_page(store: dict) -> Path:
    meta = store.get("meta", {})
    lines = ["# UR5e box reach: every method, closed loop (MuJoCo, in process)", "",
             "Generated by `benchmarks/box_reach_quality.py` from box_reach_quality.json; the notes at the end "
             "are box_reach_quality_notes.md, hand-written.", "",
             "    . .venv/bin/activate; export OMP_NUM_THREADS=1",
             f"    python benchmarks/box_reach_quality.py --episodes {meta.get('episodes', 100)} "
             f"--goal-seed {meta.get('goal_seed', 0)}",
             "    python benchmarks/box_reach_quality.py --latency", "",
             "## Summary (mean ± std over seeds)", "",
             "Selections: mode_first = the node's rule at K = 64 through the exported model (PolicyRuntime); raw = "
             "K = 1, one mixture sample (cgan/ebgan: one generator sample); annealed_mode_first = rnce-ml's SMC "
             "down its noise ladder within the chosen component (K = 64 per level); ddim_S = diffusion's DDIM at "
             "S steps, one action per decision; deterministic = BC's one output; "
             "lowest_energy = the lowest energy (critic) of K = 64 generator samples, for ibc the argmin of its "
             "derivative-free optimiser (1024 samples, 3 iterations). Train s is wall clock on a shared 2-core VM "
             "(see the notes). The std is over seeds (population std); a cell without ± has one seed. "
             + latency_text(store), "",
             *table(store.get("runs", {}), store.get("latency")), "",
             "## Every run", "", *per_run_lines(store.get("runs", {})), ""]
    if NOTES.is_file():
        lines += [NOTES.read_text().strip(), ""]
    PAGE.write_text("\n".join(lines) + "\n")
    return PAGE


def update_quality_md(store: dict) -> Path:
    """Replace (or append) the generated section in quality.md, leaving the rest as it is."""
    path = RESULTS / "quality.md"
    text = path.read_text() if path.is_file() else "# Quality benchmark\n"
    text = replace_section(text, section(store))
    path.write_text(text)
    return path


def replace_section(text: str, new_section: str) -> str:
    """text with the section titled SECTION_TITLE (its heading up to the next "## " or "# " heading)
    replaced by new_section, or new_section appended. quality.py keeps this section when it
    regenerates quality.md (its PRESERVED_SECTIONS), so it holds no "## " heading of its own."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(SECTION_TITLE)), None)
    if start is None:
        return text.rstrip("\n") + "\n\n" + new_section.rstrip("\n") + "\n"
    stop = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("# ") or lines[i].startswith("## ")),
                len(lines))
    rest = "\n".join(lines[stop:])
    return "\n".join(lines[:start]) + "\n" + new_section.rstrip("\n") + "\n" + ("\n" + rest + "\n" if rest else "")


# ---- main ----------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--goal-seed", type=int, default=0, help="the start/goal draws, the same for every run")
    parser.add_argument("--stage", choices=("all", "train", "eval"), default="all",
                        help="train: only train missing runs; eval: only export/evaluate runs already trained")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--latency", action="store_true",
                        help="time every selection per decision (seed 0 runs, round robin) and rebuild the tables")
    parser.add_argument("--rounds", type=int, default=10, help="--latency: timed rounds of 20 decisions")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    store = json.loads(STORE.read_text()) if STORE.is_file() else {}
    store.setdefault("runs", {})
    store["meta"] = {"episodes": args.episodes, "goal_seed": args.goal_seed, "config": "config/train/box_reach.yaml",
                     "data": "runs/box_reach/corrective.npz"}
    changed = False
    if args.latency:
        import torch
        torch.set_num_threads(1)
        load_before = os.getloadavg()
        store["latency"] = measure_latency(args.methods, rounds=args.rounds)
        store["latency_meta"] = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rounds": args.rounds,
                                 "load_average_1min": [load_before[0], os.getloadavg()[0]]}
        changed = True
    elif not args.report_only:
        import torch
        torch.set_num_threads(1)
        from ebgan_mdn_ros.training.checkpoint import load_checkpoint
        for seed in args.seeds:  # seed-major: every method at seed 0 first
            for method in args.methods:
                out = run_dir(method, seed)
                if args.stage != "eval":
                    train_run(method, seed)
                if args.stage == "train" or not (out / "checkpoint.pt").is_file():
                    continue
                train_seconds = float(load_checkpoint(out).train_seconds)
                for label, served, rule, k in SELECTIONS[method]:
                    result = evaluate_run(method, seed, label, served, rule, k, args.episodes, args.goal_seed)
                    metrics = run_metrics(result, train_seconds)
                    runs = store["runs"].setdefault(method, {}).setdefault(str(seed), {})
                    changed |= json.dumps(runs.get(label), default=float) != json.dumps(metrics, default=float)
                    runs[label] = metrics
                    STORE.write_text(json.dumps(store, indent=1, sort_keys=True, default=float))
    if not (changed or args.report_only):
        return 0  # nothing new: leave the reports alone
    STORE.write_text(json.dumps(store, indent=1, sort_keys=True, default=float))
    print("\n".join(table(store["runs"], store.get("latency"))))
    print(f"wrote {write_page(store)}, {update_quality_md(store)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
