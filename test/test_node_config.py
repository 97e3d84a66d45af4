"""The node's parameters: defaults, validation naming key and value, the shipped YAML files."""
import math
import sys
from pathlib import Path

import pytest

from ebgan_mdn_ros.config_base import ConfigError
from ebgan_mdn_ros.node.parameters import (
    NodeConfig, config_from_parameters, load_parameter_file, parameter_values, resolve_model_directory)

ROOT = Path(__file__).resolve().parent.parent
BASE = {"model_directory": "models/ik_2link", "joint_names": ["shoulder", "elbow"]}


def test_defaults_are_the_real_arm_defaults():
    config = config_from_parameters(BASE)
    assert config.dry_run is True and config.output_mode == "forward_command"
    assert config.command_topic == "forward_position_controller/commands"
    assert config.joint_names == ("shoulder", "elbow")


def test_ros_builtins_and_unset_values_are_ignored():
    config = config_from_parameters({**BASE, "use_sim_time": False, "start_type_description_service": True,
                                     "qos_overrides./x.publisher.depth": 3, "max_step": None})
    assert config.max_step == NodeConfig(**{**BASE, "joint_names": ("a",)}).max_step


@pytest.mark.parametrize("overrides,needle", [
    ({"output_mode": "velocity"}, "output_mode: 'velocity'"),
    ({"control_rate_hz": -1.0}, "control_rate_hz: -1.0"),
    ({"num_candidates": 0}, "num_candidates: 0"),
    ({"joint_names": ["a", "a"]}, "joint_names"),
    ({"position_lower": [0.0]}, "position_lower: [0.0]"),
    ({"position_lower": [1.0, 1.0], "position_upper": [0.0, 2.0]}, "position_lower"),
    ({"energy_threshold": "maybe"}, "energy_threshold: 'maybe'"),
    ({"energy_threshold": math.inf}, "energy_threshold: inf"),
    ({"dry_run": "no"}, "dry_run"),
    ({"max_step": 0}, "max_step: 0"),
    ({"state_queue_depth": 0}, "state_queue_depth: 0"),
    ({"decision_publish_every": 0}, "decision_publish_every: 0"),
    ({"sped": 1.0}, "unknown config key: 'sped'"),
])
def test_bad_values_name_the_key_and_value(overrides, needle):
    with pytest.raises(ConfigError) as info:
        config_from_parameters({**BASE, **overrides})
    assert needle in str(info.value)


def test_required_parameters_are_named_when_missing():
    with pytest.raises(ConfigError, match="model_directory"):
        config_from_parameters({"joint_names": ["a"]})


def test_trajectory_mode_topic_and_event_driven():
    config = config_from_parameters({**BASE, "output_mode": "joint_trajectory", "controller_name": "jtc",
                                     "control_rate_hz": 0})
    assert config.command_topic == "jtc/joint_trajectory" and config.event_driven


def test_energy_threshold_words_map_to_the_runtime():
    pytest.importorskip("onnxruntime")
    assert config_from_parameters(BASE).runtime_config().energy_threshold is None  # the manifest's
    assert config_from_parameters({**BASE, "energy_threshold": "none"}).runtime_config().energy_threshold == sys.float_info.max
    assert config_from_parameters({**BASE, "energy_threshold": 2}).runtime_config().energy_threshold == 2.0


def test_every_parameter_can_be_declared_with_its_effective_value():
    values = parameter_values(config_from_parameters({**BASE, "max_step": 0.1}))
    assert values["joint_names"] == ["shoulder", "elbow"] and values["max_step"] == 0.1
    assert values["energy_threshold"] == "model" and "position_lower" not in values  # empty: left out
    assert config_from_parameters(values) == config_from_parameters({**BASE, "max_step": 0.1})


@pytest.mark.parametrize("name", ["sim_ik.yaml", "sim_multiroute.yaml", "real_arm.yaml"])
def test_shipped_files_are_valid_policy_configurations(name):
    parameters = load_parameter_file(ROOT / "config" / name, "policy_node")
    config = config_from_parameters(parameters)
    assert config.model_directory
    if name == "real_arm.yaml":
        assert config.dry_run is True and len(config.joint_names) == 6
    else:
        assert config.dry_run is False


def test_sim_sections_do_not_leak_into_the_policy():
    policy = load_parameter_file(ROOT / "config" / "sim_ik.yaml", "policy_node")
    sim = load_parameter_file(ROOT / "config" / "sim_ik.yaml", "sim_arm")
    assert "task" not in policy and sim["task"] == "ik" and "joint_names" in sim


def test_model_directory_resolves_against_the_package(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "here").mkdir()
    assert resolve_model_directory("here") == (tmp_path / "here").resolve()
    assert resolve_model_directory("config") == (ROOT / "config").resolve()  # from the checkout / share
    assert resolve_model_directory("nowhere") == Path("nowhere")
