import numpy as np
import pytest

from ebgan_mdn_ros.evaluation import metrics
from ebgan_mdn_ros.tasks.catalog import inverse_kinematics

MODES = np.array([[[1.0], [-1.0]], [[0.1], [-0.1]]])  # two conditions, two 1-D modes each


def test_coverage_and_off_manifold_by_hand():
    samples = np.array([[[1.02], [-0.98], [0.0]],      # both modes, one sample in the gap
                        [[0.12], [0.09], [0.11]]])     # only the upper mode
    captured = metrics.captured_modes(samples, MODES, tau=0.075)
    assert captured.tolist() == [[True, True], [True, False]]
    assert metrics.total_mode_coverage(captured) == 50.0
    assert metrics.average_mode_coverage(captured) == 1.5
    assert metrics.off_manifold_rate(samples, MODES, 0.075) == pytest.approx(100 / 6)


def test_spraying_sampler_covers_but_is_off_manifold():
    sprayed = np.linspace(-1.2, 1.2, 200)[None, :, None].repeat(2, 0)
    result = metrics.mode_metrics(sprayed, MODES, 0.075)
    assert result["tmc"] == 100.0
    assert result["off_manifold"] > 80.0


def test_histogram_kl_zero_for_same_points_and_large_for_collapse():
    rng = np.random.default_rng(0)
    real = rng.uniform(-1, 1, (5000, 2))
    bounds = ((-1, 1), (-1, 1))
    assert metrics.histogram_kl(real, real, bounds) == pytest.approx(0.0, abs=1e-9)
    collapsed = np.zeros((5000, 2))
    assert metrics.histogram_kl(real, collapsed, bounds) > 5.0


def test_wasserstein_of_a_shift_is_the_shift():
    rng = np.random.default_rng(0)
    real = rng.standard_normal((3, 400, 1))
    assert metrics.conditional_wasserstein(real, real + 0.3) == pytest.approx(0.3)
    points = rng.standard_normal((400, 2))
    assert metrics.sliced_wasserstein(points, points) == pytest.approx(0.0)
    assert metrics.sliced_wasserstein(points, points + [1.0, 0.0]) > 0.3


def test_ik_metrics_success_and_elbow_coverage():
    targets = np.array([[3.0, 2.0], [-1.0, 4.0]])
    both = inverse_kinematics(targets)                     # [T, 2 elbows, 2]
    exact = metrics.ik_metrics(targets, both, 0.1)
    assert exact["success"] == 100.0 and exact["elbow_coverage"] == 100.0
    assert exact["error_mean"] < 1e-9
    one_elbow = metrics.ik_metrics(targets, both[:, :1].repeat(2, 1), 0.1)
    assert one_elbow["success"] == 100.0 and one_elbow["elbow_coverage"] == 0.0
    off = both + np.array([0.2, 0.0])                     # shoulder off by 0.2 rad: ~0.2 * reach away
    missed = metrics.ik_metrics(targets, off, 0.1)
    assert missed["success"] == 0.0 and missed["elbow_coverage"] == 0.0  # misses buy no coverage


def test_planning_metrics_count_routes_of_successes_only():
    result = metrics.planning_metrics(np.array([True, True, True, False]), np.array([0, 0, 2, 1]))
    assert result["success"] == 75.0
    assert result["route_usage"]["via_10_0"] == pytest.approx(200 / 3)
    assert result["route_usage"]["via_5_5"] == 0.0
    assert result["routes_used"] == 2
