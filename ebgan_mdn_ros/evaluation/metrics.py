"""Quality metrics of docs/method.md sec. 7 (numpy). Samples are [T, S, A]: S decisions at each of T conditions.

Percentages are in 0..100. A mode is captured at a condition when some sample lies within tau of
it; a sample is off-manifold when it lies farther than tau from every mode (coverage alone would
reward a sampler that sprays everywhere).
"""
from __future__ import annotations

import numpy as np
from scipy.stats import wasserstein_distance

from ebgan_mdn_ros.tasks.routes import ROUTE_NAMES
from ebgan_mdn_ros.tasks.catalog import forward_kinematics


def _distances_to_modes(samples: np.ndarray, modes: np.ndarray) -> np.ndarray:
    """samples [T,S,A], modes [T,M,A] -> Euclidean distances [T,S,M]."""
    return np.linalg.norm(samples[:, :, None, :] - modes[:, None, :, :], axis=-1)


def captured_modes(samples: np.ndarray, modes: np.ndarray, tau: float) -> np.ndarray:
    """[T, M] bool: some sample within tau of each mode."""
    return (_distances_to_modes(samples, modes) <= tau).any(axis=1)


def total_mode_coverage(captured: np.ndarray) -> float:
    """TMC: % of conditions at which every mode is captured."""
    return 100.0 * float(captured.all(axis=1).mean())


def average_mode_coverage(captured: np.ndarray) -> float:
    """AMC: mean number of modes captured per condition."""
    return float(captured.sum(axis=1).mean())


def off_manifold_rate(samples: np.ndarray, modes: np.ndarray, tau: float) -> float:
    """% of samples farther than tau from every mode."""
    return 100.0 * float((_distances_to_modes(samples, modes).min(axis=2) > tau).mean())


def histogram_kl(real: np.ndarray, generated: np.ndarray, bounds: tuple[tuple[float, float], tuple[float, float]],
                 bins: int = 50, epsilon: float = 1e-8) -> float:
    """KL(real || generated) between 2-D histograms of [N, 2] points on a bins x bins grid.

    Generated mass that falls outside `bounds` is lost (it counts against the generator); epsilon
    keeps empty generated bins finite.
    """
    real_hist, _, _ = np.histogram2d(real[:, 0], real[:, 1], bins=bins, range=bounds)
    gen_hist, _, _ = np.histogram2d(generated[:, 0], generated[:, 1], bins=bins, range=bounds)
    p = real_hist.ravel() / max(real_hist.sum(), 1.0) + epsilon
    q = gen_hist.ravel() / max(len(generated), 1) + epsilon
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum(p * np.log(p / q)))


def conditional_wasserstein(real: np.ndarray, generated: np.ndarray) -> float:
    """Mean over conditions of the 1-D W1 distance between real and generated [T, S, 1] samples."""
    return float(np.mean([wasserstein_distance(r[:, 0], g[:, 0]) for r, g in zip(real, generated)]))


def sliced_wasserstein(real: np.ndarray, generated: np.ndarray, projections: int = 64, seed: int = 0) -> float:
    """Mean W1 over random 1-D projections of [N, A] point sets (W1 itself for A = 1)."""
    directions = np.random.default_rng(seed).standard_normal((projections, real.shape[1]))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return float(np.mean([wasserstein_distance(real @ d, generated @ d) for d in directions]))


def mode_metrics(samples: np.ndarray, modes: np.ndarray, tau: float) -> dict:
    captured = captured_modes(samples, modes, tau)
    return {"tmc": total_mode_coverage(captured), "amc": average_mode_coverage(captured),
            "modes": int(modes.shape[1]), "off_manifold": off_manifold_rate(samples, modes, tau)}


def curve_metrics(conditions: np.ndarray, samples: np.ndarray, modes: np.ndarray, real: np.ndarray,
                  tau: float, action_bounds: tuple[float, float]) -> dict:
    """1-D conditional shapes: TMC/AMC/off-manifold plus KL over (c, y) and mean conditional W1."""
    def pairs(values):
        c = np.broadcast_to(conditions[:, None, :1], values.shape[:2] + (1,))
        return np.concatenate([c, values[..., :1]], -1).reshape(-1, 2)

    bounds = ((-1.0, 1.0), action_bounds)
    return {**mode_metrics(samples, modes, tau), "kl": histogram_kl(pairs(real), pairs(samples), bounds),
            "wasserstein": conditional_wasserstein(real, samples)}


def grid_metrics(samples: np.ndarray, modes: np.ndarray, real: np.ndarray, tau: float,
                 bounds: tuple[tuple[float, float], tuple[float, float]]) -> dict:
    """Unconditional grid: coverage of the 49 centres, off-manifold, KL over (x, y), sliced W1."""
    flat_samples, flat_real = samples.reshape(-1, 2), real.reshape(-1, 2)
    return {**mode_metrics(samples, modes, tau), "kl": histogram_kl(flat_real, flat_samples, bounds),
            "wasserstein": sliced_wasserstein(flat_real, flat_samples)}


def ik_metrics(targets: np.ndarray, angles: np.ndarray, tolerance: float) -> dict:
    """targets [T,2], angles [T,S,2] -> success rate, end-effector errors, elbow-mode coverage.

    Elbow mode = sign of the elbow angle; a target's mode counts as captured only by a successful
    sample, so spraying angles cannot buy coverage.
    """
    errors = np.linalg.norm(forward_kinematics(angles.astype(np.float64)) - targets[:, None, :], axis=-1)
    success = errors < tolerance
    elbow_up = angles[..., 1] > 0
    both = (success & elbow_up).any(axis=1) & (success & ~elbow_up).any(axis=1)
    return {"success": 100.0 * float(success.mean()), "error_mean": float(errors.mean()),
            "error_median": float(np.median(errors)), "elbow_coverage": 100.0 * float(both.mean()),
            "elbow_up_share": 100.0 * float(elbow_up.mean())}


def planning_metrics(reached: np.ndarray, routes: np.ndarray, steps_taken: np.ndarray | None = None) -> dict:
    """Closed-loop success over rollouts and how the successful rollouts split over the routes."""
    reached = np.asarray(reached, bool)
    successful_routes = np.asarray(routes)[reached]
    usage = {name: 100.0 * float((successful_routes == i).mean()) if len(successful_routes) else 0.0
             for i, name in enumerate(ROUTE_NAMES)}
    result = {"success": 100.0 * float(reached.mean()), "rollouts": int(len(reached)),
              "route_usage": usage, "routes_used": int(sum(v > 0 for v in usage.values()))}
    if steps_taken is not None and reached.any():
        result["steps_mean"] = float(np.asarray(steps_taken)[reached].mean())
    return result
