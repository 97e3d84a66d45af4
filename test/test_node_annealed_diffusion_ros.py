"""A multi-level model through the node's annealed rule, and a diffusion model by DDIM, over rclpy/DDS.

The node's parameters annealing_rule / annealing_start_level / ddim_steps reach the runtime; a node's
decision is the runtime's on the same condition and seed; a setting the model cannot serve stops
start-up naming it. Small models: a random multi-level R-NCE and a diffusion model trained ~1 s.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
torch = pytest.importorskip("torch")
from std_msgs.msg import Float64MultiArray  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from ebgan_mdn_ros.config_base import ConfigError  # noqa: E402
from ebgan_mdn_ros.control.model_swap import make_runtime_validator  # noqa: E402
from ebgan_mdn_ros.msg import Decision  # noqa: E402
from ebgan_mdn_ros.node.parameters import config_from_parameters  # noqa: E402
from ebgan_mdn_ros.runtime.policy_runtime import PolicyRuntime  # noqa: E402
from model_factory import export_checkpoint, random_checkpoint  # noqa: E402
from test_node_ros import DISCOVERY_S, domain_id, joint_state, ros  # noqa: E402,F401

pytestmark = pytest.mark.ros
JOINTS = ["a", "b"]
LIMITS = {"position_lower": [-5.0, -5.0], "position_upper": [5.0, 5.0], "max_step": 10.0, "max_velocity": 1e4,
          "seed_confirmations": 1, "control_rate_hz": 0.0, "num_candidates": 16, "seed": 7}


@pytest.fixture(scope="module")
def multilevel(tmp_path_factory):
    from ebgan_mdn_ros.training.networks import LevelEnergyMLP
    ckpt = random_checkpoint(("goal.0", "goal.1"), tuple(JOINTS), num_components=3, hidden_sizes=(16, 16), seed=5)
    torch.manual_seed(5)
    ckpt.energy = LevelEnergyMLP(2, 2, (0.5, 0.2, 0.0), (16, 16)).eval()
    ckpt.method = "rnce-ml"
    return export_checkpoint(ckpt, tmp_path_factory.mktemp("node_ml") / "model")


@pytest.fixture(scope="module")
def diffusion_model(tmp_path_factory):
    from ebgan_mdn_ros.export.exporter import export_model
    from ebgan_mdn_ros.spec import PolicySpec
    from ebgan_mdn_ros.training.config import load_train_config
    from ebgan_mdn_ros.training.trainer import train
    rng = np.random.default_rng(0)
    conditions = rng.uniform(-1, 1, (500, 2)).astype(np.float32)
    actions = np.stack([conditions[:, 0], -conditions[:, 1]], 1).astype(np.float32)
    config = load_train_config(None, {"task": "toy", "method": "diffusion", "progress": False, "optim.epochs": 5,
                                      "optim.batch_size": 128, "model.generator_hidden": [32, 32]})
    spec = PolicySpec(("goal.0", "goal.1"), tuple(JOINTS), (-2.0, -2.0), (2.0, 2.0))
    out = tmp_path_factory.mktemp("node_diffusion") / "model"
    export_model(train(config, conditions, actions, spec), out)
    return out


def serve(ros, model, goal=(0.3, -0.2), **parameters):
    """The node on one state and goal; its first published decision (the runtime's first draw: the
    seeding decisions before the first command are published too)."""
    node = ros.policy(model, joint_names=JOINTS, **{**LIMITS, **parameters})
    decisions = ros.collect(Decision, "/policy_node/decision")
    states = ros.probe.create_publisher(type(joint_state(JOINTS, (0.0, 0.0))), "joint_states", 10)
    goals = ros.probe.create_publisher(Float64MultiArray, "goal", 1)
    assert ros.spin_until(lambda: states.get_subscription_count() >= 1 and goals.get_subscription_count() >= 1,
                          DISCOVERY_S)
    ros.spin_for(1.0)

    def publish():
        goals.publish(Float64MultiArray(data=list(goal)))
        states.publish(joint_state(JOINTS, (0.0, 0.0), stamp_ns=ros.probe.get_clock().now().nanoseconds))
    timer = ros.probe.create_timer(0.05, publish)
    assert ros.spin_until(lambda: any(len(d.command) for d in decisions), DISCOVERY_S + 5.0), "no decision"
    timer.cancel()
    return node, decisions[0]


def reference(model, node) -> PolicyRuntime:
    """A runtime of the same model and config, after the validation the node runs (its probe decisions)."""
    runtime = PolicyRuntime(model, node.config.runtime_config())
    make_runtime_validator(JOINTS)(runtime)
    return runtime


def test_the_node_anneals_a_multilevel_model_as_the_runtime_does(ros, multilevel):
    node, decision = serve(ros, multilevel, annealing_rule="annealed_mode_first", annealing_start_level=1)
    assert node.runtime.annealing.rule == "annealed_mode_first" and node.runtime.annealing.start_level == 1
    expected = reference(multilevel, node).decide(np.array([0.3, -0.2]))  # same seed, condition, validation
    np.testing.assert_allclose(decision.action, expected.action, rtol=1e-6, atol=1e-7)


def test_the_node_serves_a_diffusion_model_at_its_ddim_steps(ros, diffusion_model):
    node, decision = serve(ros, diffusion_model, ddim_steps=8)
    assert node.runtime.is_diffusion and node.runtime.ddim_steps == 8
    assert np.all(np.isfinite(decision.action)) and decision.trusted and np.isnan(decision.energy)
    expected = reference(diffusion_model, node).decide(np.array([0.3, -0.2]))
    np.testing.assert_allclose(decision.action, expected.action, rtol=1e-6, atol=1e-7)


def test_settings_a_model_cannot_serve_are_refused_by_name(multilevel, diffusion_model):
    base = {"model_directory": str(multilevel), "joint_names": JOINTS, **LIMITS}
    with pytest.raises(ConfigError, match="annealing_rule"):
        config_from_parameters({**base, "annealing_rule": "annealed_fast"})
    with pytest.raises(ConfigError, match="annealing_start_level"):
        PolicyRuntime(multilevel, config_from_parameters({**base, "annealing_rule": "annealed",
                                                          "annealing_start_level": 3}).runtime_config())
    with pytest.raises(ConfigError, match="ddim_steps"):
        PolicyRuntime(multilevel, config_from_parameters({**base, "ddim_steps": 8}).runtime_config())
    diffusion = {**base, "model_directory": str(diffusion_model)}
    with pytest.raises(ConfigError, match="annealing"):
        PolicyRuntime(diffusion_model, config_from_parameters({**diffusion, "annealing_rule": "annealed"}).runtime_config())
