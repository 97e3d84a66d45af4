import json
import math

import numpy as np
import onnxruntime as ort
import pytest
import torch

from ebgan_mdn_ros.export import onnx_graphs as _onnx_wrappers

from ebgan_mdn_ros.runtime import sampler
from ebgan_mdn_ros.training.checkpoint import save_checkpoint
from ebgan_mdn_ros.cli import main as cli_main
from ebgan_mdn_ros.export.exporter import ExportError, export_model
from ebgan_mdn_ros.runtime.manifest import MANIFEST_FORMAT, load_manifest, sha256_of
from ebgan_mdn_ros.tasks.catalog import get_task
from ebgan_mdn_ros.training.config import load_train_config
from ebgan_mdn_ros.training.trainer import train
from model_factory import export_checkpoint, random_checkpoint

CONDITIONS = ("joint_1.position", "joint_2.position", "goal.0")
ACTIONS = ("joint_1", "joint_2")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    ckpt = random_checkpoint(CONDITIONS, ACTIONS, action_low=(-2.0, -1.0), action_high=(2.0, 3.0),
                             num_components=4, hidden_sizes=(32, 32), seed=3, metrics={"tmc": 0.97, "kl": float("nan")})
    out = export_checkpoint(ckpt, tmp_path_factory.mktemp("export") / "model", model_version="test-1")
    return ckpt, out


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_directory_holds_the_contract_and_a_manifest_that_describes_it(exported):
    ckpt, out = exported
    names = sorted(p.name for p in out.iterdir())
    assert names == ["decision.onnx", "energy.onnx", "generator.onnx", "manifest.json"]  # no staging, no .data
    manifest = load_manifest(out)
    assert manifest.format == MANIFEST_FORMAT and manifest.model_version == "test-1"
    assert manifest.condition_names == CONDITIONS and manifest.condition_size == 3
    assert manifest.action_names == ACTIONS and manifest.action_size == 2
    assert manifest.action_low == (-2.0, -1.0) and manifest.action_high == (2.0, 3.0)
    assert manifest.action_kind == "absolute" and manifest.num_components == 4
    assert manifest.energy_source == "network"
    for graph in manifest.graphs.values():
        assert sha256_of(out / graph.file) == graph.sha256
    assert manifest.metrics == {"tmc": 0.97, "kl": None}  # NaN is not JSON
    assert manifest.training_config == ckpt.config
    assert math.isfinite(manifest.energy_threshold)
    assert manifest.energy_calibration.num_candidates == 256
    for role in ("generator", "energy", "decision"):
        assert manifest.parity[role]["max_abs_diff"] <= 1e-4
    raw = json.loads((out / "manifest.json").read_text())
    assert raw["generator"]["inputs"][0] == {"name": "condition", "dtype": "float32", "shape": ["batch", 3]}


def test_onnxruntime_matches_torch_in_raw_units(exported):
    ckpt, out = exported
    rng = np.random.default_rng(0)
    mean, std = ckpt.condition_normalizer.mean.numpy(), ckpt.condition_normalizer.std.numpy()
    for spread in (1.0, 4.0):  # training-like, then far outside
        condition = (mean + spread * std * rng.standard_normal((16, 3))).astype(np.float32)
        actions = rng.uniform(-3, 3, (16, 9, 2)).astype(np.float32)
        with torch.no_grad():
            cond_n = ckpt.condition_normalizer(torch.from_numpy(condition))
            logits, means, scales = ckpt.generator(cond_n)
            means = ckpt.action_normalizer.inverse(means)
            scales = scales * ckpt.action_normalizer.std
            energy = ckpt.energy(cond_n, ckpt.action_normalizer(torch.from_numpy(actions)))
        got = _session(out / "generator.onnx").run(None, {"condition": condition})
        for want, have in zip((logits, means, scales), got):
            assert np.max(np.abs(want.numpy() - have)) < 1e-4
        (got_energy,) = _session(out / "energy.onnx").run(None, {"condition": condition, "actions": actions})
        assert got_energy.shape == (16, 9)
        assert np.max(np.abs(energy.numpy() - got_energy)) < 1e-4


def test_decision_graph_samples_as_sampler_does(exported):
    _, out = exported
    rng = np.random.default_rng(1)
    condition = rng.standard_normal((5, 3)).astype(np.float32)
    noise = rng.standard_normal((5, 7, 2)).astype(np.float32)
    uniforms = rng.random((5, 7), dtype=np.float32)
    previous = np.array([-1, 0, 1, 2, 3], dtype=np.int64)
    candidates, energies, components, logits, means, scales = _session(out / "decision.onnx").run(None, {
        "condition": condition, "noise": noise, "uniforms": uniforms, "previous_component": previous,
        "keep_min_weight": np.array([0.2], dtype=np.float32)})
    probs = sampler.mixture_weights(logits)
    expected = sampler.draw_components(probs, uniforms)
    for b in range(1, 5):
        if probs[b, previous[b]] >= 0.2:
            expected[b] = previous[b]
    np.testing.assert_array_equal(components, expected)
    drawn = np.clip(sampler.draw_candidates(means, scales, components, noise), (-2.0, -1.0), (2.0, 3.0))
    np.testing.assert_allclose(candidates, drawn, atol=1e-5)
    (direct,) = _session(out / "energy.onnx").run(None, {"condition": condition, "actions": candidates})
    np.testing.assert_allclose(energies, direct, atol=1e-5)


def test_parity_failure_stops_the_export_and_publishes_nothing(tmp_path, monkeypatch):
    original = _onnx_wrappers.ReferenceEnergy.forward
    monkeypatch.setattr(_onnx_wrappers.ReferenceEnergy, "forward", lambda self, c, a: original(self, c, a) + 1e-3)
    out = tmp_path / "model"
    with pytest.raises(ExportError, match=r"energy: onnxruntime differs from torch.*> 0.0001"):
        export_model(random_checkpoint(), out, max_calibration_conditions=16)
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("activation, scale_type", [("silu", "isotropic"), ("gelu", "diagonal"), ("tanh", "isotropic")])
def test_other_activations_and_isotropic_scales_export_within_tolerance(tmp_path, activation, scale_type):
    ckpt = random_checkpoint(("goal.0", "goal.1"), ("a", "b", "c"), activation=activation, scale_type=scale_type)
    manifest = load_manifest(export_checkpoint(ckpt, tmp_path / "m"))
    assert max(manifest.parity[role]["max_scaled_error"] for role in manifest.graphs) <= 1e-4


def test_run_without_energy_exports_the_mixture_negative_log_density(tmp_path):
    out = export_checkpoint(random_checkpoint(("goal.0", "goal.1"), ("a", "b"), with_energy=False), tmp_path / "m")
    assert load_manifest(out).energy_source == "mixture_negative_log_density"
    condition = np.array([[0.1, -0.3]], dtype=np.float32)
    actions = np.random.default_rng(0).uniform(-1, 1, (1, 5, 2)).astype(np.float32)
    logits, means, scales = _session(out / "generator.onnx").run(None, {"condition": condition})
    (energy,) = _session(out / "energy.onnx").run(None, {"condition": condition, "actions": actions})
    np.testing.assert_allclose(energy, -sampler.mixture_log_density(logits, means, scales, actions), atol=1e-4)
    candidates, energies = _session(out / "decision.onnx").run(["candidates", "energies"], {
        "condition": condition, "noise": actions, "uniforms": np.full((1, 5), 0.5, np.float32),
        "previous_component": np.array([-1]), "keep_min_weight": np.array([0.0], np.float32)})
    np.testing.assert_allclose(energies, -sampler.mixture_log_density(logits, means, scales, candidates), atol=1e-4)


def test_re_export_replaces_the_directory_and_drops_a_graph_it_no_longer_has(tmp_path):
    out = export_checkpoint(random_checkpoint(seed=1), tmp_path / "m")
    first = load_manifest(out).generator.sha256
    export_checkpoint(random_checkpoint(seed=2), out, decision_graph=False)
    manifest = load_manifest(out)
    assert manifest.decision is None and not (out / "decision.onnx").exists()
    assert manifest.generator.sha256 != first


def test_export_and_validate_commands(tmp_path, capsys):
    ckpt = random_checkpoint(("goal.0", "goal.1"), ("j1", "j2"), num_components=2, hidden_sizes=(8,))
    run_dir = tmp_path / "run"
    save_checkpoint(run_dir / "checkpoint.pt", ckpt)
    out = tmp_path / "models" / "toy"
    assert cli_main(["export", str(run_dir), "--out", str(out), "--candidates", "32"]) == 0
    printed = capsys.readouterr().out
    assert "parity decision: max abs diff" in printed and "normalizer_gaussian" in printed
    assert cli_main(["validate", str(out)]) == 0
    assert "valid: test-ebgan-mdn-" in capsys.readouterr().out


def _short_run(run_dir, conditions, actions, spec, **overrides):
    config = load_train_config(None, {"task": "hyperbola", "method": "mdn", "progress": False, "optim.epochs": 1,
                                      **overrides})
    return train(config, conditions, actions, spec, run_dir)


def test_export_calibrates_on_the_conditions_the_run_trained_on(tmp_path, capsys):
    # A hyperbola run trained on 300 conditions of its own, not the task's 500: export must use these.
    task = get_task("hyperbola")
    conditions = np.linspace(0.5, 0.9, 300, dtype=np.float32)[:, None]
    actions = np.sqrt(0.01 + conditions ** 2) * np.where(np.arange(300) % 2, 1, -1)[:, None]
    _short_run(tmp_path / "run", conditions, actions.astype(np.float32), task.spec)
    out = tmp_path / "model"
    assert cli_main(["export", str(tmp_path / "run"), "--out", str(out), "--candidates", "16"]) == 0
    calibration = load_manifest(out).energy_calibration
    assert calibration.source == "training:hyperbola" and calibration.num_conditions == 300


def test_a_laplace_run_is_refused_at_export_with_the_reason(tmp_path, capsys):
    task = get_task("hyperbola")
    _short_run(tmp_path / "run", task.conditions, task.actions, task.spec, **{"model.distribution": "laplace"})
    with pytest.raises(ExportError, match="laplace"):
        export_model(tmp_path / "run", tmp_path / "model")
    assert not (tmp_path / "model" / "manifest.json").exists()
    assert cli_main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "model")]) == 1
    assert "laplace" in capsys.readouterr().err
