"""PNG plots of an evaluated run: samples per rule, the energy landscape, IK arms, planning rollouts."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: runs write files, never open windows
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ebgan_mdn_ros.tasks.routes import ARENA, GOAL_BOX, ROUTE_NAMES  # noqa: E402
from ebgan_mdn_ros.tasks.catalog import Task, forward_kinematics  # noqa: E402
from ebgan_mdn_ros.tasks.planar_arm import LINK_LENGTHS  # noqa: E402

ROUTE_COLOURS = ("tab:blue", "tab:orange", "tab:green")


def plot_run(run_dir: Path, task: Task, policy, material: dict) -> list[str]:
    """Write every plot that applies to this task and method; return the file names."""
    written = [_samples_per_rule(run_dir / "samples.png", task, material)]
    if task.kind == "curve" and policy.has_energy:
        written.append(plot_energy_landscape(run_dir / "energy.png", task, policy))
    if task.kind == "ik":
        rule = "mode_first" if "mode_first" in material else "raw"
        written.append(plot_ik_arms(run_dir / "ik_arms.png", task, material[rule]["samples"], rule))
    return [Path(p).name for p in written]


def _samples_per_rule(path: Path, task: Task, material: dict) -> str:
    rules = list(material)
    fig, axes = plt.subplots(1, len(rules), figsize=(4 * len(rules), 4), squeeze=False)
    for ax, rule in zip(axes[0], rules):
        {"curve": _draw_curve, "grid": _draw_grid, "ik": _draw_ik_joint_space,
         "planning": _draw_rollouts}[task.kind](ax, task, material[rule])
        ax.set_title(rule)
    fig.suptitle(f"{task.name}: one panel per selection rule")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return str(path)


def _draw_curve(ax, task: Task, material: dict) -> None:
    samples = material["samples"]
    conditions = np.asarray(task.test_conditions)
    c = np.broadcast_to(conditions[:, None, 0], samples.shape[:2])
    ax.scatter(c.ravel(), samples[..., 0].ravel(), s=1, alpha=0.15, color="tab:blue", label="samples")
    sweep = np.linspace(-1, 1, 400)[:, None]
    for mode in np.moveaxis(task.true_modes(sweep)[..., 0], 1, 0):
        ax.plot(sweep[:, 0], mode, color="black", lw=0.8)
    ax.set_xlabel("condition c")
    ax.set_ylabel("action y")
    ax.set_ylim(task.spec.action_low[0], task.spec.action_high[0])


def _draw_grid(ax, task: Task, material: dict) -> None:
    samples = material["samples"].reshape(-1, 2)
    ax.scatter(samples[:, 0], samples[:, 1], s=1, alpha=0.2)
    centres = task.true_modes(np.zeros((1, 1)))[0]
    ax.scatter(centres[:, 0], centres[:, 1], marker="x", color="black", s=12)
    ax.set_aspect("equal")


def _draw_ik_joint_space(ax, task: Task, material: dict) -> None:
    samples = material["samples"]
    targets = np.asarray(task.test_conditions, dtype=np.float64)
    errors = np.linalg.norm(forward_kinematics(samples.astype(np.float64)) - targets[:, None], axis=-1)
    ok = errors < task.mode_tolerance
    flat, ok = samples.reshape(-1, 2), ok.ravel()
    ax.scatter(flat[ok, 0], flat[ok, 1], s=1, alpha=0.3, color="tab:green", label="success")
    ax.scatter(flat[~ok, 0], flat[~ok, 1], s=2, alpha=0.6, color="tab:red", label="miss")
    ax.set_xlabel("shoulder [rad]")
    ax.set_ylabel("elbow [rad]")
    ax.legend(loc="lower left", fontsize=7, markerscale=4)


def _draw_rollouts(ax, task: Task, material: dict) -> None:
    env = material["env"]
    paths, routes = np.stack(env.trajectories, 1), env.routes()
    for path, route, reached in zip(paths, routes, env.reached):
        colour = ROUTE_COLOURS[route] if route >= 0 else "grey"
        ax.plot(path[:, 0], path[:, 1], color=colour, lw=0.6, alpha=0.6 if reached else 0.25,
                ls="-" if reached else ":")
    goal = GOAL_BOX
    ax.add_patch(plt.Rectangle((goal[0], goal[0]), goal[1] - goal[0], goal[1] - goal[0], fill=False, color="red"))
    ax.set_xlim(*ARENA)
    ax.set_ylim(*ARENA)
    ax.set_aspect("equal")
    handles = [plt.Line2D([], [], color=c, label=n) for c, n in zip(ROUTE_COLOURS, ROUTE_NAMES)]
    ax.legend(handles=handles, loc="lower right", fontsize=7)


@torch.no_grad()
def plot_energy_landscape(path: Path, task: Task, policy, resolution: int = 200) -> str:
    """exp(-E) normalised per condition column: the conditional density the energy implies."""
    ckpt = policy.ckpt
    c = np.linspace(-1, 1, resolution, dtype=np.float32)
    y = np.linspace(task.spec.action_low[0], task.spec.action_high[0], resolution, dtype=np.float32)
    condition = ckpt.condition_normalizer(torch.as_tensor(c[:, None]))
    candidates = ckpt.action_normalizer(torch.as_tensor(y[:, None])).expand(resolution, resolution, 1)
    energies = ckpt.energy(condition, candidates).numpy()  # [c, y]
    density = np.exp(-(energies - energies.min(axis=1, keepdims=True)))
    density /= density.sum(axis=1, keepdims=True)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.imshow(density.T, origin="lower", aspect="auto", extent=(-1, 1, y[0], y[-1]), cmap="magma")
    sweep = np.linspace(-1, 1, 400)[:, None]
    for mode in np.moveaxis(task.true_modes(sweep)[..., 0], 1, 0):
        ax.plot(sweep[:, 0], mode, color="cyan", lw=0.5, ls="--")
    ax.set_xlabel("condition c")
    ax.set_ylabel("action y")
    ax.set_title(f"{task.name}: exp(-E(c, y)) per c ({ckpt.method})")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return str(path)


def plot_ik_arms(path: Path, task: Task, samples: np.ndarray, rule: str, targets_shown: int = 4) -> str:
    """Arm configurations of the sampled angles at a few targets: both elbows should appear."""
    targets = np.asarray(task.test_conditions, dtype=np.float64)
    fig, axes = plt.subplots(1, targets_shown, figsize=(3.2 * targets_shown, 3.2))
    for ax, target, angles in zip(axes, targets[:targets_shown], samples[:targets_shown]):
        for shoulder, elbow in angles:
            joint = LINK_LENGTHS[0] * np.array([np.cos(shoulder), np.sin(shoulder)])
            tip = forward_kinematics(np.array([shoulder, elbow]))
            colour = "tab:blue" if elbow > 0 else "tab:orange"
            ax.plot([0, joint[0], tip[0]], [0, joint[1], tip[1]], color=colour, lw=0.8, alpha=0.5)
        ax.plot(*target, marker="*", color="red", ms=10)
        ax.set_xlim(-6.5, 6.5)
        ax.set_ylim(-6.5, 6.5)
        ax.set_aspect("equal")
        ax.set_title(f"target ({target[0]:.1f}, {target[1]:.1f})", fontsize=8)
    fig.suptitle(f"IK samples under {rule} (blue: elbow +, orange: elbow -)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return str(path)
