"""Corrective copies of box-reach pairs: beside the path, labelled back to the expert's next position."""
from __future__ import annotations

import numpy as np
import pytest

from ebgan_mdn_ros.config_base import ConfigError
from ebgan_mdn_ros.sim.box_reach_data import corrective_copies, main

JOINTS = ["a", "b"]
NAMES = ["goal.0", "goal.1", "goal.2", "a.position", "b.position"]


def test_each_copy_aims_at_the_same_future_position():
    rng = np.random.default_rng(0)
    conditions = rng.normal(size=(500, 5))
    actions = rng.normal(scale=0.01, size=(500, 2))
    c, a = corrective_copies(conditions, actions, NAMES, JOINTS, sigma=0.04, copies=2, rng=rng)
    assert c.shape == (1500, 5) and a.shape == (1500, 2)
    np.testing.assert_array_equal(c[:500], conditions)  # the originals first, untouched
    np.testing.assert_array_equal(c[:, :3], np.tile(conditions[:, :3], (3, 1)))  # the goal is never perturbed
    target = conditions[:, 3:] + actions
    for k in (1, 2):
        rows = slice(500 * k, 500 * (k + 1))
        np.testing.assert_allclose(c[rows, 3:] + a[rows], target, atol=1e-12)
        eps = c[rows, 3:] - conditions[:, 3:]
        assert 0.005 < eps.std() < 0.04 and np.abs(eps).max() < 0.3


def test_what_cannot_be_perturbed_consistently_is_refused(tmp_path):
    with pytest.raises(ValueError, match="velocity"):
        corrective_copies(np.zeros((3, 6)), np.zeros((3, 2)), NAMES + ["a.velocity"], JOINTS, 0.04, 1,
                          np.random.default_rng(0))
    with pytest.raises(ValueError, match="b.position"):
        corrective_copies(np.zeros((3, 4)), np.zeros((3, 2)), NAMES[:4], JOINTS, 0.04, 1, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="sigma"):
        corrective_copies(np.zeros((3, 5)), np.zeros((3, 2)), NAMES, JOINTS, 0.0, 1, np.random.default_rng(0))
    absolute = tmp_path / "absolute.npz"
    np.savez(absolute, conditions=np.zeros((3, 5)), actions=np.zeros((3, 2)), condition_names=np.array(NAMES),
             action_names=np.array(JOINTS), action_kind=np.array("absolute"))
    assert main([str(absolute), "--out", str(tmp_path / "out.npz")]) == 2


def test_the_command_keeps_the_dataset_format(tmp_path):
    source = tmp_path / "delta.npz"
    np.savez(source, conditions=np.ones((10, 5)), actions=np.zeros((10, 2)), condition_names=np.array(NAMES),
             action_names=np.array(JOINTS), action_kind=np.array("delta"), episode_ids=np.arange(10) // 5,
             times=np.arange(10.0))
    out = tmp_path / "out.npz"
    assert main([str(source), "--out", str(out), "--every", "2"]) == 0
    with np.load(out) as data:
        assert data["conditions"].shape == (10, 5) and str(data["action_kind"]) == "delta"
        assert data["episode_ids"].tolist() == [0, 0, 0, 1, 1] * 2
        assert list(data["condition_names"]) == NAMES


def test_states_at_rest_are_not_copied_when_asked():
    rng = np.random.default_rng(1)
    conditions = rng.normal(size=(100, 5))
    actions = np.zeros((100, 2))
    actions[50:] = 0.05  # half at rest (a start, a goal), half moving
    c, a = corrective_copies(conditions, actions, NAMES, JOINTS, sigma=0.04, copies=1, rng=rng, min_motion=0.01)
    assert len(c) == 150  # the originals, then copies of the 50 moving pairs only
    np.testing.assert_allclose(c[100:, 3:] + a[100:], conditions[50:, 3:] + actions[50:], atol=1e-12)
