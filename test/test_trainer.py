import numpy as np
import pytest
import torch

from ebgan_mdn_ros.training.checkpoint import load_checkpoint
from ebgan_mdn_ros.config_base import ConfigError
from ebgan_mdn_ros.evaluation.evaluate import PolicySampler
from ebgan_mdn_ros.evaluation.metrics import mode_metrics
from ebgan_mdn_ros.tasks.catalog import get_task
from ebgan_mdn_ros.training.config import METHODS, load_train_config, parse_override
from ebgan_mdn_ros.training.trainer import TrainingData, build_networks, build_optimizers, train, train_loop

HYPERBOLA = get_task("hyperbola")


def _train(method, tmp_path=None, **overrides):
    config = load_train_config(None, {"method": method, "progress": False, **overrides})
    return train(config, HYPERBOLA.conditions, HYPERBOLA.actions, HYPERBOLA.spec, tmp_path)


@pytest.fixture(scope="module")
def short_ebgan_mdn(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    _train("ebgan-mdn", out, **{"optim.epochs": 40, "model.num_components": 2,
                                "objective.energy_updates_per_batch": 1, "optim.lr_schedule": "constant"})
    return load_checkpoint(out)


def test_short_hyperbola_run_separates_the_two_modes(short_ebgan_mdn):
    policy = PolicySampler(short_ebgan_mdn, num_candidates=32)
    conditions = np.linspace(-1, 1, 41)[:, None].astype(np.float32)
    conditions = conditions[np.abs(conditions[:, 0]) > 0.25]
    samples = policy.sample(conditions, 40, "mode_first", np.random.default_rng(0))
    result = mode_metrics(samples, HYPERBOLA.true_modes(conditions), 0.075)
    assert result["tmc"] >= 90.0
    assert result["off_manifold"] < 5.0
    upper_share = (samples[..., 0] > 0).mean()
    assert 0.3 < upper_share < 0.7


def test_lowest_energy_collapses_where_mode_first_does_not(short_ebgan_mdn):
    policy = PolicySampler(short_ebgan_mdn, num_candidates=64)
    conditions = np.array([[0.6], [-0.6]], np.float32)
    collapsed = policy.sample(conditions, 50, "lowest_energy", np.random.default_rng(0))
    spread = policy.sample(conditions, 50, "mode_first", np.random.default_rng(0))
    assert min((collapsed[..., 0] > 0).mean(1).min(), (collapsed[..., 0] < 0).mean(1).min()) < 0.1
    assert 0.2 < (spread[..., 0] > 0).mean() < 0.8


def test_explicit_bc_averages_the_modes():
    ckpt = _train("bc", **{"optim.epochs": 30})
    policy = PolicySampler(ckpt)
    conditions = np.array([[-0.8], [0.8]], np.float32)
    predicted = policy.sample(conditions, 1, "raw", np.random.default_rng(0))[..., 0]
    assert np.all(np.abs(predicted) < 0.35)  # between the branches at +-0.81: on neither


def test_checkpoint_rebuilds_networks_with_normalisation(short_ebgan_mdn, tmp_path):
    ckpt = short_ebgan_mdn
    assert ckpt.method == "ebgan-mdn" and ckpt.task == "hyperbola"
    assert ckpt.action_normalizer.mean.shape == (1,)
    assert ckpt.action_normalizer.std.item() == pytest.approx(float(np.std(HYPERBOLA.actions, ddof=1)), rel=1e-4)
    assert ckpt.generator.num_components == 2 and ckpt.energy is not None
    assert "final_losses" in ckpt.metrics and ckpt.train_seconds > 0


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_and_saves(method, tmp_path):
    _train(method, tmp_path, **{"optim.epochs": 1, "optim.batch_size": 128})
    ckpt = load_checkpoint(tmp_path)
    assert (ckpt.generator is None) == (method == "ibc")
    assert (ckpt.energy is None) == (method in ("mdn", "bc", "diffusion"))
    policy = PolicySampler(ckpt, num_candidates=4)
    actions = policy.sample(np.zeros((2, 1), np.float32), 3, "raw", np.random.default_rng(0))
    assert actions.shape == (2, 3, 1) and np.all(np.isfinite(actions))


def test_energy_waits_for_its_start_epoch():
    config = load_train_config(None, {"method": "rnce", "progress": False, "optim.epochs": 3,
                                      "optim.energy_start_epoch": 2, "optim.batch_size": 250})
    networks = build_networks("rnce", 1, 1, config)
    energy_before = [p.detach().clone() for p in networks.energy.parameters()]
    data = TrainingData(torch.tensor(HYPERBOLA.conditions), torch.tensor(HYPERBOLA.actions),
                        torch.tensor([-1.25]), torch.tensor([1.25]))
    history = train_loop(networks, build_optimizers(networks, config), data, config, torch.Generator().manual_seed(0))
    assert ["energy" in epoch for epoch in history] == [False, False, True]
    assert any(not torch.equal(a, b) for a, b in zip(energy_before, networks.energy.parameters()))
    with pytest.raises(ConfigError, match="energy_start_epoch"):
        load_train_config(None, {"optim.epochs": 5, "optim.energy_start_epoch": 5})


def test_bad_config_values_name_their_key():
    with pytest.raises(ConfigError, match="optim.generator_lr: -0.001 is invalid"):
        load_train_config(None, {"optim.generator_lr": -1e-3})
    with pytest.raises(ConfigError, match="unknown config key in optim: 'learning_rate'"):
        load_train_config(None, {"optim.learning_rate": 1e-3})
    with pytest.raises(ConfigError, match="method: 'gan' is invalid"):
        load_train_config(None, {"method": "gan"})
    with pytest.raises(ConfigError, match="proposal_negatives"):
        load_train_config(None, {"objective.proposal_negatives": 10, "objective.proposal_scales": [1, 4, 16]})


def test_yaml_method_sections_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("optim: {epochs: 7}\nmethods:\n  rnce: {optim: {epochs: 9}}\n")
    assert load_train_config(path, {"method": "mdn"}).optim.epochs == 7
    assert load_train_config(path, {"method": "rnce"}).optim.epochs == 9
    assert load_train_config(path, {"method": "rnce", "optim.epochs": 3}).optim.epochs == 3
    path.write_text("methods:\n  rnc: {optim: {epochs: 9}}\n")
    with pytest.raises(ConfigError, match="unknown method.*rnc"):
        load_train_config(path)


def test_yaml_task_sections_apply_before_the_method_sections(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: {num_components: 2}\ntasks:\n  lines: {model: {num_components: 3}, optim: {epochs: 4}}\n"
                    "methods:\n  rnce: {optim: {epochs: 9}}\n")
    assert load_train_config(path, {"task": "circle"}).model.num_components == 2
    assert load_train_config(path, {"task": "lines"}).model.num_components == 3
    assert load_train_config(path, {"task": "lines", "method": "mdn"}).optim.epochs == 4
    assert load_train_config(path, {"task": "lines", "method": "rnce"}).optim.epochs == 9
    path.write_text("tasks:\n  line: {model: {num_components: 3}}\n")
    with pytest.raises(ConfigError, match="unknown task.*line"):
        load_train_config(path)


def test_parse_override_reads_numbers_lists_and_strings():
    assert parse_override("optim.generator_lr=1e-3") == ("optim.generator_lr", 1e-3)
    assert parse_override("model.generator_hidden=[32, 32]") == ("model.generator_hidden", [32, 32])
    assert parse_override("method=rnce") == ("method", "rnce")
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("optim.epochs")
