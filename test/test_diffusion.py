"""The diffusion baseline (docs/method.md section 11): DDIM, a 1-D bimodal toy, export, the runtime, errors."""
import json
import shutil

import numpy as np
import onnxruntime as ort
import pytest
import torch

from ebgan_mdn_ros.config_base import ConfigError
from ebgan_mdn_ros.evaluation.evaluate import PolicySampler
from ebgan_mdn_ros.export.exporter import export_model
from ebgan_mdn_ros.runtime import diffusion
from ebgan_mdn_ros.runtime.manifest import load_manifest
from ebgan_mdn_ros.runtime.model_loader import ModelValidationError, load_model
from ebgan_mdn_ros.runtime.policy_runtime import PolicyRuntime
from ebgan_mdn_ros.runtime.runtime_config import RuntimeConfig
from ebgan_mdn_ros.spec import PolicySpec
from ebgan_mdn_ros.training.config import load_train_config
from ebgan_mdn_ros.training.networks import squared_cosine_alpha_bar
from ebgan_mdn_ros.training.trainer import train

SPEC = PolicySpec(("c",), ("a",), (-2.0,), (2.0,))


def bimodal(n, rng):
    """y = +-1 (equally likely) + 0.05 N(0, 1), whatever the condition c ~ U(-1, 1)."""
    return np.where(rng.random(n) < 0.5, -1.0, 1.0) + 0.05 * rng.standard_normal(n)


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(0)
    conditions = rng.uniform(-1, 1, (2000, 1)).astype(np.float32)
    actions = bimodal(2000, rng)[:, None].astype(np.float32)
    config = load_train_config(None, {"task": "toy", "method": "diffusion", "progress": False, "optim.epochs": 60,
                                      "optim.batch_size": 128, "optim.generator_lr": 3e-3,
                                      "optim.lr_schedule": "cosine", "model.generator_hidden": [64, 64]})
    return train(config, conditions, actions, SPEC)  # ~3 s


def test_ddim_takes_distinct_evenly_spaced_steps_and_refuses_others():
    for steps in (1, 8, 16, 32, 100):
        timesteps = diffusion.ddim_timesteps(100, steps)
        assert timesteps[0] == 99 and timesteps[-1] == (0 if steps > 1 else 99)
        assert len(set(timesteps.tolist())) == steps and np.all(np.diff(timesteps) < 0)
    for bad in (0, 101, 2.5, True):
        with pytest.raises(ValueError, match="ddim steps"):
            diffusion.ddim_timesteps(100, bad)


def test_ddim_with_the_true_noise_recovers_the_data():
    """With the exact eps of a point mass at y0, eps = (y_t - sqrt(ab) y0) / sqrt(1 - ab), any step count
    lands on y0."""
    alpha_bar = squared_cosine_alpha_bar(100).double().numpy()
    y0 = np.array([[0.7, -0.2]])
    state = {}

    def denoise(sample, t):
        state["t"] = t
        return (sample - np.sqrt(alpha_bar[t]) * y0) / np.sqrt(1 - alpha_bar[t])
    for steps in (8, 16, 32):
        out = diffusion.ddim_sample(denoise, alpha_bar, steps, np.random.default_rng(0).standard_normal((1, 2)))
        np.testing.assert_allclose(out, y0, atol=1e-6)
        assert state["t"] == 0


def test_a_denoiser_that_overshoots_cannot_blow_the_sample_up():
    """A denoiser off its training data can answer eps growing with the sample (here 10 x). Taken as
    it is, that eps multiplies the sample by up to 10 per step, and by 100 steps it is inf, then NaN
    (an IK diffusion model did this at S = T on 1 decision in 5,000). Bounded, the sample stays finite
    and the clipped prediction inside the box."""
    alpha_bar = squared_cosine_alpha_bar(100).double().numpy()
    noise = np.random.default_rng(0).standard_normal((4, 2))
    for steps in (8, 32, 100):
        out = diffusion.ddim_sample(lambda sample, t: 10.0 * sample, alpha_bar, steps, noise, -1.0, 1.0)
        assert np.all(np.isfinite(out)) and np.all(np.abs(out) <= 1.0), steps


def test_the_sampler_reproduces_a_bimodal_distribution(trained):
    policy = PolicySampler(trained)
    bins = np.linspace(-2, 2, 41)
    truth = np.histogram(bimodal(200_000, np.random.default_rng(5)), bins)[0] / 200_000
    for rule in ("ddim_16", "ddim_32"):
        drawn = policy.decide(np.full((4000, 1), 0.3, np.float32), rule, np.random.default_rng(1))[0][:, 0]
        assert 0.35 < np.mean(drawn < 0) < 0.65, rule        # both modes, in about equal shares
        assert np.mean(np.abs(drawn) < 0.5) < 0.05, rule     # little mass between them
        generated = np.histogram(drawn, bins)[0] / drawn.size
        kl = np.sum(truth * np.log(np.maximum(truth, 1e-12) / np.maximum(generated, 1e-4)))
        assert kl < 0.3, (rule, kl)


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    out = tmp_path_factory.mktemp("diffusion") / "model"
    export_model(trained, out)
    return out


def test_the_export_is_a_denoiser_with_its_schedule_and_matches_torch(trained, exported):
    manifest = load_manifest(exported)
    assert manifest.policy_kind == "diffusion" and manifest.generator is None and manifest.energy is None
    assert sorted(p.name for p in exported.iterdir()) == ["denoiser.onnx", "manifest.json"]
    assert manifest.diffusion.train_steps == 100 and manifest.diffusion.sampling_steps == 16
    np.testing.assert_allclose(manifest.diffusion.alpha_bar, trained.generator.alpha_bar.numpy())
    assert manifest.energy_threshold is None and manifest.parity["denoiser"]["max_scaled_error"] <= 1e-4
    session = ort.InferenceSession(str(exported / "denoiser.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    condition = rng.uniform(-3, 3, (32, 1)).astype(np.float32)
    sample = rng.standard_normal((32, 1)).astype(np.float32)
    timestep = rng.integers(0, 100, 32).astype(np.float32)
    (got,) = session.run(None, {"condition": condition, "sample": sample, "timestep": timestep})
    with torch.no_grad():
        want = trained.generator(trained.condition_normalizer(torch.from_numpy(condition)), torch.from_numpy(sample),
                                 torch.from_numpy(timestep)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_the_runtime_serves_one_action_per_decision_as_the_evaluator_samples(trained, exported):
    runtime = PolicyRuntime(exported, RuntimeConfig(seed=3), ddim_steps=8)
    calls = []
    inner = runtime._denoiser_run
    runtime._denoiser_run = lambda: (calls.append(float(runtime._timestep[0])), inner())[1]
    decision = runtime.decide(np.array([0.3]))
    assert len(calls) == 8 and calls[0] == 99 and calls[-1] == 0
    assert decision.action.shape == (1,) and decision.candidates.shape == (1, 1) and decision.trusted
    assert np.isnan(decision.energy) and decision.chosen_component == 0
    # the same start noise through the torch network and the same DDIM code
    noise = np.random.default_rng(3).standard_normal((1, 1), dtype=np.float32)
    policy = PolicySampler(trained)
    condition = policy._condition(np.array([[0.3]], np.float32))
    with torch.no_grad():
        expected = diffusion.ddim_sample(
            lambda x, t: trained.generator(condition, torch.from_numpy(x), torch.full((1,), float(t))).numpy(),
            trained.generator.alpha_bar.double().numpy(), 8, noise, policy.action_low, policy.action_high)
    expected = trained.action_normalizer.inverse(torch.tensor(expected, dtype=torch.float32)).numpy()[0]
    np.testing.assert_allclose(decision.action, expected, atol=1e-4)
    again = PolicyRuntime(exported, RuntimeConfig(seed=3), ddim_steps=8)
    assert again.decide(np.array([0.3])).action.tolist() == decision.action.tolist()


def test_bad_steps_and_a_missing_schedule_are_refused_by_name(exported, tmp_path):
    with pytest.raises(ConfigError, match=r"ddim steps: 101 must be an integer in \[1, 100\]"):
        PolicyRuntime(exported, ddim_steps=101)
    bad = tmp_path / "bad"
    shutil.copytree(exported, bad)
    data = json.loads((bad / "manifest.json").read_text())
    del data["diffusion"]
    (bad / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ModelValidationError, match="diffusion: a diffusion model .* needs its noise schedule"):
        load_model(bad)
    # a schedule that reaches alpha_bar = 1 has a step with no noise to predict (nor to divide by)
    data = json.loads((exported / "manifest.json").read_text())
    data["diffusion"]["alpha_bar"][0] = 1.0
    (bad / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ModelValidationError, match=r"diffusion.alpha_bar: must be .* in \(0, 1\), strictly decreasing"):
        load_model(bad)
