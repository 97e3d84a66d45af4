"""One selection rule (runtime/selection.py) and the places that must follow it.

The fused decision graph draws on the device for speed; here it is held to the numpy reference on the
same noise. The exporter's threshold calibration and the evaluator call the reference, so they draw,
clip and choose as the runtime does.
"""
import numpy as np
import onnxruntime as ort
import pytest
import torch

from ebgan_mdn_ros.evaluation.evaluate import RULES, PolicySampler
from ebgan_mdn_ros.runtime import sampler, selection
from ebgan_mdn_ros.runtime.manifest import load_manifest
from ebgan_mdn_ros.spec import PolicySpec
from ebgan_mdn_ros.training.config import load_train_config
from ebgan_mdn_ros.training.trainer import train
from model_factory import export_checkpoint, random_checkpoint

LOW, HIGH = np.array([-0.3, -0.2], np.float32), np.array([0.3, 0.2], np.float32)


def tight_box_checkpoint():
    """Random weights whose mixture spills well outside a small action box, so clipping matters."""
    return random_checkpoint(("goal.0", "goal.1"), ("a", "b"), action_low=tuple(LOW), action_high=tuple(HIGH),
                             num_components=3, hidden_sizes=(16,), seed=4)


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    out = export_checkpoint(tight_box_checkpoint(), tmp_path_factory.mktemp("selection") / "m")
    return {role: ort.InferenceSession(str(out / f"{role}.onnx"), providers=["CPUExecutionProvider"])
            for role in ("generator", "energy", "decision")}


@pytest.mark.parametrize("rule", selection.SELECTION_RULES)
def test_decision_graph_draws_and_chooses_as_the_reference(sessions, rule):
    rng = np.random.default_rng(7)
    batch, count = 6, 32
    condition = rng.standard_normal((batch, 2)).astype(np.float32)
    noise = rng.standard_normal((batch, count, 2), dtype=np.float32)
    uniforms, previous = selection.graph_inputs(rule, rng.random((batch, count), dtype=np.float32),
                                                np.array([-1, 0, 1, 2, 0, 1], np.int64))
    keep = np.array([0.2], np.float32)
    candidates, energies, components, logits, means, scales = sessions["decision"].run(None, {
        "condition": condition, "noise": noise, "uniforms": uniforms, "previous_component": previous,
        "keep_min_weight": keep})

    ref_logits, ref_means, ref_scales = sessions["generator"].run(None, {"condition": condition})
    ref_candidates, ref_components = selection.draw(rule, ref_logits, ref_means, ref_scales, uniforms, noise,
                                                    LOW, HIGH, previous, float(keep[0]))
    np.testing.assert_array_equal(components, ref_components)
    np.testing.assert_allclose(candidates, ref_candidates, atol=1e-6)
    assert np.any(candidates == LOW) or np.any(candidates == HIGH)  # the box did clip something
    (ref_energies,) = sessions["energy"].run(None, {"condition": condition, "actions": ref_candidates})
    np.testing.assert_allclose(energies, ref_energies, atol=1e-5)

    previous_action = rng.uniform(LOW, HIGH, (batch, 2))
    uniform = rng.random(batch)

    def chosen(energies, candidates, logits, means, scales):
        return selection.choose(rule, energies, candidates=candidates, previous_action=previous_action,
                                continuity_weight=0.5, uniform=uniform, temperature=0.5,
                                log_q=sampler.mixture_log_density(logits, means, scales, candidates))
    index = chosen(energies, candidates, logits, means, scales)
    ref_index = chosen(ref_energies, ref_candidates, ref_logits, ref_means, ref_scales)
    np.testing.assert_array_equal(index, ref_index)
    rows = np.arange(batch)
    np.testing.assert_allclose(candidates[rows, index], ref_candidates[rows, ref_index], atol=1e-6)


def test_threshold_calibration_is_the_same_with_or_without_the_decision_graph(tmp_path):
    ckpt = tight_box_checkpoint()
    fused = load_manifest(export_checkpoint(ckpt, tmp_path / "fused")).energy_calibration
    two = load_manifest(export_checkpoint(ckpt, tmp_path / "two", decision_graph=False)).energy_calibration
    assert fused.num_conditions == two.num_conditions
    assert fused.quantile_energy == pytest.approx(two.quantile_energy, rel=1e-5, abs=1e-6)
    assert fused.median_energy == pytest.approx(two.median_energy, rel=1e-5, abs=1e-6)


def test_the_evaluator_clips_every_rule_to_the_action_box():
    policy = PolicySampler(tight_box_checkpoint(), num_candidates=16)
    conditions = np.random.default_rng(0).standard_normal((512, 2)).astype(np.float32)
    for rule in RULES:
        actions, _ = policy.decide(conditions, rule, np.random.default_rng(1))
        assert np.all(actions >= LOW - 1e-6) and np.all(actions <= HIGH + 1e-6), rule


def test_a_laplace_run_is_evaluated_with_laplace_components():
    rng = np.random.default_rng(0)
    conditions = rng.uniform(-1, 1, (256, 1)).astype(np.float32)
    actions = rng.laplace(0.0, 1.0, (256, 1)).astype(np.float32)
    spec = PolicySpec(("c",), ("a",), (-100.0,), (100.0,))  # wide: nothing is clipped
    config = load_train_config(None, {"task": "toy", "method": "mdn", "progress": False, "optim.epochs": 1,
                                      "model.num_components": 1, "model.distribution": "laplace"})
    ckpt = train(config, conditions, actions, spec)
    at = np.zeros((20000, 1), np.float32)
    drawn, _ = PolicySampler(ckpt).decide(at, "raw", np.random.default_rng(1))
    with torch.no_grad():
        _, means, scales = ckpt.generator(ckpt.condition_normalizer(torch.zeros(1, 1)))
    mean = ckpt.action_normalizer.inverse(means[0, 0]).numpy()
    scale = (scales[0, 0] * ckpt.action_normalizer.std).numpy()
    # E|z| is 1 for a standard Laplace and sqrt(2 / pi) = 0.80 for a standard normal
    assert np.mean(np.abs((drawn - mean) / scale)) == pytest.approx(1.0, abs=0.03)
