"""Corrective copies of box-reach demonstration pairs: states beside the expert's path, labelled back onto it.

    python -m ebgan_mdn_ros.sim.box_reach_data box_reach.npz --out box_reach_corrective.npz --sigma 0.04

A policy cloned from the expert's own states alone sees only the expert's path: a few millimetres
off it (servo lag, one model error) the states are new, the model extrapolates, and the error grows
(measured: benchmarks/results/box_reach.md). The expert knows where it would have gone, so each
copy here perturbs a pair's joint positions by eps and relabels it with the same future position:

    condition q' = q + eps,   action delta' = delta - eps     (so q' + delta' = q + delta)

which teaches "from beside the path, go back to where the expert would be in one horizon" (the
effect of noise injection into the expert, DART, without re-recording). eps is Gaussian per joint,
sigma times a uniform [0, 1] factor per pair, so every scale from 0 to ~sigma is present. Pairs of
a 'delta' data set (`ebgan-mdn dataset --action delta`) with `<joint>.position` conditions only.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ebgan_mdn_ros.config_base import require
from ebgan_mdn_ros.spec import GOAL, POSITION, joint_condition, parse_condition_name


def corrective_copies(conditions: np.ndarray, actions: np.ndarray, condition_names, action_names,
                      sigma: float, copies: int, rng: np.random.Generator, min_motion: float = 0.0,
                      horizon: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(conditions, actions) with ``copies`` perturbed copies after the originals (rows in that order).

    Only pairs whose action moves the joints by at least ``min_motion`` (rad, Euclidean) are copied:
    a copy of a state at rest (the start, the goal) says "go back to where you were", and at the
    start, where the expert's first motion is a millimetre, that turns the start into a trap.
    Action chunks (``horizon`` steps, [N, H*A]): every step's label moves by -eps (each step's target
    is the same future position), and the motion is judged over the first step."""
    require(sigma > 0, "sigma", sigma, "> 0 rad")
    require(copies >= 1, "copies", copies, ">= 1")
    require(min_motion >= 0, "min_motion", min_motion, ">= 0 rad")
    columns = []
    for joint in action_names:
        name = joint_condition(joint, POSITION)
        if name not in condition_names:
            raise ValueError(f"condition {name!r} is missing: the copies perturb the positions the actions move "
                             f"(conditions {list(condition_names)})")
        columns.append(list(condition_names).index(name))
    for name in condition_names:
        if parse_condition_name(name)[0] not in (GOAL, POSITION):
            raise ValueError(f"condition {name!r}: only goal and position conditions can be perturbed consistently "
                             "(a velocity would contradict the perturbed position)")
    moving = np.linalg.norm(actions[:, :len(action_names)], axis=1) >= min_motion
    base_c, base_a = conditions[moving], actions[moving]
    out_c, out_a = [conditions], [actions]
    for _ in range(copies):
        eps = rng.normal(0.0, sigma, (len(base_a), len(columns))) * rng.uniform(0.0, 1.0, (len(base_a), 1))
        perturbed = base_c.copy()
        perturbed[:, columns] += eps
        out_c.append(perturbed)
        out_a.append(base_a - np.tile(eps, horizon))
    return np.concatenate(out_c), np.concatenate(out_a)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ebgan_mdn_ros.sim.box_reach_data",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("demos", help="a delta-action .npz from `ebgan-mdn dataset`")
    parser.add_argument("--out", required=True, help="the .npz to write (originals, then the copies)")
    parser.add_argument("--sigma", type=float, default=0.04, help="rad: the largest perturbation's std (default 0.04)")
    parser.add_argument("--copies", type=int, default=1, help="perturbed copies per pair (default 1)")
    parser.add_argument("--every", type=int, default=1, help="keep every Nth pair first (default 1: all)")
    parser.add_argument("--min-motion", type=float, default=0.0,
                        help="rad: copy only pairs whose action moves the joints at least this far (default 0: all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    with np.load(args.demos, allow_pickle=False) as archive:
        data = {key: archive[key] for key in archive.files}
    if str(data.get("action_kind", "")) != "delta":
        print(f"{args.demos}: action_kind is {str(data.get('action_kind', 'missing'))!r}; the copies need delta "
              "actions (ebgan-mdn dataset --action delta)", file=sys.stderr)
        return 2
    keep = np.arange(len(data["actions"])) % max(args.every, 1) == 0
    try:
        conditions, actions = corrective_copies(
            data["conditions"][keep], data["actions"][keep], [str(n) for n in data["condition_names"]],
            [str(n) for n in data["action_names"]], args.sigma, args.copies, np.random.default_rng(args.seed),
            args.min_motion, int(data.get("chunk_horizon", 1)))
    except ValueError as exc:
        print(f"{args.demos}: {exc}", file=sys.stderr)
        return 2
    moving = np.linalg.norm(data["actions"][keep][:, :len(data["action_names"])], axis=1) >= args.min_motion
    data.update(conditions=conditions, actions=actions)
    for key in ("episode_ids", "times", "bag_index"):
        if key in data:
            kept = data[key][keep]
            data[key] = np.concatenate([kept] + [kept[moving]] * args.copies)
    data["corrective"] = np.array(f"sigma={args.sigma} copies={args.copies} every={args.every} "
                                  f"min_motion={args.min_motion} seed={args.seed}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, **data)
    print(f"wrote {args.out}: {len(actions)} pairs ({keep.sum()} originals, {args.copies} corrective "
          f"cop{'y' if args.copies == 1 else 'ies'} of the {moving.sum()} moving at least {args.min_motion} rad, "
          f"sigma {args.sigma} rad)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
