"""Per-step vs action chunks vs temporal ensembling on the multi-route task (closed loop, no ROS).

    python benchmarks/multiroute_chunks.py data --horizon 8 --n-exec 4 --out runs/multiroute_chunks/h8.npz
    ebgan-mdn train --data runs/multiroute_chunks/h8.npz --action-kind delta --method rnce \
        --config config/train/multiroute_chunks.yaml --out runs/multiroute_chunks/rnce_h8
    ebgan-mdn export runs/multiroute_chunks/rnce_h8 --out runs/multiroute_chunks/model_h8
    python benchmarks/multiroute_chunks.py compare --chunk-model runs/multiroute_chunks/model_h8 --rollouts 200

`data`: the task's 300 demonstrations (tasks/catalog.py: planning_paths) as chunk pairs: at each
point, the next H points minus this one (past a demo's end: its last point, held).
`compare`: 200 rollouts of tasks/catalog.py's MultiRouteEnvironment from the same starts, driven
by the shipped per-step model (models/multiroute, one decision per step), by the chunk model
(n_exec steps per decision, the next chunk chosen by energy and continuity with the running
chunk's tail, in its component) and by temporal ensembling of the same chunk model (a decision
every step, each step's target the exp(-m * age)-weighted mean of every chunk covering it).
Measured: success, routes, route switches (a path passing within the route radius of two via
points), paths on no route, mean squared jerk of the path (third differences per step), decisions
per step, mixture-component switches per rollout.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def chunk_pairs(horizon: int) -> tuple[np.ndarray, np.ndarray]:
    from ebgan_mdn_ros.tasks.catalog import planning_paths
    conditions, actions = [], []
    for path in planning_paths():
        last = len(path) - 1
        for t in range(last):
            steps = path[np.minimum(np.arange(t + 1, t + horizon + 1), last)] - path[t]
            conditions.append(path[t])
            actions.append(steps.reshape(-1))
    return np.asarray(conditions, np.float32), np.asarray(actions, np.float32)


def write_data(args) -> int:
    conditions, actions = chunk_pairs(args.horizon)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, conditions=conditions, actions=actions,
             condition_names=np.array(["x_joint.position", "y_joint.position"]),
             action_names=np.array(["x_joint", "y_joint"]), action_kind=np.array("delta"),
             chunk_horizon=np.array(args.horizon), chunk_n_exec=np.array(args.n_exec), chunk_dt=np.array(1.0))
    print(f"wrote {args.out}: {len(actions)} chunk pairs of {args.horizon} steps")
    return 0


def rollouts(runtime, count: int, seed: int, n_exec: int, ensemble_decay: float | None, steps: int):
    """One rollout at a time through the runtime (as the node serves it); returns (env, stats)."""
    from ebgan_mdn_ros.tasks.catalog import MultiRouteEnvironment
    env = MultiRouteEnvironment(count, seed)
    horizon = runtime.horizon
    decisions, switches = np.zeros(count), np.zeros(count)
    paths = np.zeros((count, steps + 1, 2))
    for r in range(count):
        runtime.reset()
        position = env.positions[r].copy()
        plan: list[tuple[int, np.ndarray]] = []   # (step index of the chunk's first step, targets [H, 2])
        components = []
        paths[r, 0] = position
        done = False
        for step in range(steps):
            if not done:
                replan = horizon == 1 or step % n_exec == 0 or ensemble_decay is not None
                if replan:
                    tail = None
                    if horizon > 1 and plan:
                        start, targets = plan[-1]
                        rest = targets[step - start:]
                        tail = rest - position if len(rest) else None
                    decision = runtime.decide(position.astype(np.float32), tail)
                    decisions[r] += 1
                    components.append(decision.chosen_component)
                    chunk = decision.action.reshape(horizon, 2) + position
                    plan = (plan + [(step, chunk)])[-horizon:] if ensemble_decay is not None else [(step, chunk)]
                if ensemble_decay is None:
                    start, targets = plan[-1]
                    target = targets[min(step - start, horizon - 1)]
                else:
                    covering = [(age, t[step - s]) for age, (s, t) in enumerate(plan) if step - s < horizon]
                    weights = np.array([np.exp(-ensemble_decay * age) for age, _ in covering])
                    target = np.sum([w * p for w, (_, p) in zip(weights, covering)], axis=0) / weights.sum()
                move = np.clip(target - position, -2.0, 2.0)
                position = position + move
                inside = np.all((position >= 19.0) & (position <= 21.0))
                outside = np.any((position < -2.0) | (position > 22.0))
                done = inside or outside
                env.reached[r] |= inside and not outside
                env.left_arena[r] |= outside
            paths[r, step + 1] = position
        switches[r] = int(np.sum(np.diff(components) != 0)) if len(components) > 1 else 0
    return paths, env, decisions, switches


def measure(label: str, runtime, args, n_exec: int, ensemble_decay: float | None) -> dict:
    from ebgan_mdn_ros.tasks.catalog import PLANNING_STEPS
    from ebgan_mdn_ros.tasks.routes import ROUTE_RADIUS, ROUTE_VIA_POINTS
    paths, env, decisions, switches = rollouts(runtime, args.rollouts, args.seed, n_exec, ensemble_decay,
                                               PLANNING_STEPS)
    near = np.linalg.norm(paths[:, :, None, :] - ROUTE_VIA_POINTS[None, None], axis=-1).min(1) <= ROUTE_RADIUS
    routes = np.where(near.any(1), np.linalg.norm(paths[:, :, None, :] - ROUTE_VIA_POINTS[None, None],
                                                  axis=-1).min(1).argmin(1), -1)
    moving = [np.flatnonzero(np.any(np.diff(p, axis=0) != 0, axis=1)) for p in paths]
    jerk = [np.mean(np.diff(p[:m[-1] + 2], 3, axis=0) ** 2) for p, m in zip(paths, moving) if len(m) > 4]
    steps_taken = np.array([len(m) for m in moving])
    return {"label": label, "success": float(env.reached.mean()), "left_arena": int(env.left_arena.sum()),
            "route_shares": {str(k): float(np.mean(routes == k)) for k in (-1, 0, 1, 2)},
            "route_switches": int(np.sum(near.sum(1) >= 2)), "no_route": int(np.sum(routes == -1)),
            "mean_squared_jerk": float(np.mean(jerk)), "decisions_per_step": float(decisions.sum() / steps_taken.sum()),
            "steps_to_goal": float(steps_taken[env.reached].mean()) if env.reached.any() else float("nan"),
            "component_switches": float(switches.mean())}


def compare(args) -> int:
    from ebgan_mdn_ros.runtime.policy_runtime import PolicyRuntime, RuntimeConfig
    config = RuntimeConfig(num_candidates=args.num_candidates, seed=args.seed, splice_weight=args.splice_weight)
    step = PolicyRuntime(ROOT / "models" / "multiroute", config)
    chunks = PolicyRuntime(args.chunk_model, config)
    n_exec = args.n_exec or chunks.manifest.chunk.n_exec
    horizon = chunks.horizon
    # without stickiness every decision draws its component afresh (as ACT and diffusion policies do):
    # the case where ensembling averages chunks of different modes
    loose = PolicyRuntime(args.chunk_model, dataclasses.replace(config, stickiness=False))
    results = [measure("per-step (models/multiroute)", step, args, 1, None),
               measure(f"chunk H{horizon} n{n_exec}", chunks, args, n_exec, None),
               measure(f"ensembling H{horizon} (every step, m={args.ensemble_decay:g})", chunks, args, 1,
                       args.ensemble_decay),
               measure(f"chunk H{horizon} n{n_exec}, no stickiness", loose, args, n_exec, None),
               measure(f"ensembling H{horizon}, no stickiness", loose, args, 1, args.ensemble_decay)]
    print("| variant | success | left arena | routes (none / 10,0 / 5,5 / 0,10) | route switches | steps to goal "
          "| mean sq. jerk (m²/step⁶) | decisions per step | component switches / rollout |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        shares = " / ".join(f"{100 * r['route_shares'][k]:.0f} %" for k in ("-1", "0", "1", "2"))
        print(f"| {r['label']} | {100 * r['success']:.1f} % | {r['left_arena']} | {shares} | {r['route_switches']} | "
              f"{r['steps_to_goal']:.1f} | {r['mean_squared_jerk']:.3g} | {r['decisions_per_step']:.3f} | "
              f"{r['component_switches']:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    data = sub.add_parser("data")
    data.add_argument("--horizon", type=int, default=8)
    data.add_argument("--n-exec", type=int, default=4)
    data.add_argument("--out", required=True)
    cmp = sub.add_parser("compare")
    cmp.add_argument("--chunk-model", required=True)
    cmp.add_argument("--n-exec", type=int, default=0, help="0: the model's")
    cmp.add_argument("--rollouts", type=int, default=200)
    cmp.add_argument("--num-candidates", type=int, default=64)
    cmp.add_argument("--splice-weight", type=float, default=1.0, help="1/m^2 (this task's steps are metres)")
    cmp.add_argument("--ensemble-decay", type=float, default=0.01)
    cmp.add_argument("--seed", type=int, default=0)
    cmp.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    return write_data(args) if args.command == "data" else compare(args)


if __name__ == "__main__":
    sys.exit(main())
