"""Multi-level R-NCE (docs/method.md section 10): the level proposal, SMC down the ladder, export, errors."""
import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from ebgan_mdn_ros.config_base import ConfigError
from ebgan_mdn_ros.runtime import annealing, sampler, selection
from ebgan_mdn_ros.runtime.annealing import AnnealingConfig
from ebgan_mdn_ros.runtime.manifest import OPTIONAL_KEYS, load_manifest
from ebgan_mdn_ros.runtime.model_loader import ModelValidationError, load_model
from ebgan_mdn_ros.runtime.policy_runtime import PolicyRuntime
from ebgan_mdn_ros.runtime.runtime_config import RuntimeConfig
from ebgan_mdn_ros.training.config import load_train_config
from ebgan_mdn_ros.training.mixture import level_scales, mixture_log_prob
from ebgan_mdn_ros.training.networks import LevelEnergyMLP
from model_factory import export_checkpoint, random_checkpoint, two_mode_checkpoint

LADDER = (0.5, 0.2, 0.05, 0.0)


def test_the_noised_mdn_is_the_closed_form_mixture():
    """Monte Carlo: MDN samples plus sigma * N(0, 1) follow q_sigma = sum pi_k N(mu_k, s_k^2 + sigma^2)."""
    logits = torch.tensor([[0.3, -0.4]])
    means, scales = torch.tensor([[[-1.0], [0.8]]]), torch.tensor([[[0.1], [0.3]]])
    sigma = torch.tensor([0.4])
    gen = torch.Generator().manual_seed(0)
    n = 200_000
    components = torch.multinomial(torch.softmax(logits, -1), n, replacement=True, generator=gen)[0]
    drawn = means[0, components, 0] + scales[0, components, 0] * torch.randn(n, generator=gen)
    noised = (drawn + sigma * torch.randn(n, generator=gen)).numpy()
    grid = torch.linspace(-4, 4, 4001)
    density = mixture_log_prob(logits, means, level_scales(scales, sigma), grid.reshape(1, -1, 1)).exp()[0].numpy()
    cdf = np.cumsum(density) * float(grid[1] - grid[0])
    empirical = np.searchsorted(np.sort(noised), grid.numpy()) / n
    assert np.max(np.abs(cdf - empirical)) < 0.01  # Kolmogorov-Smirnov distance
    # the runtime's numpy closed form is the same density
    numpy_density = np.exp(sampler.mixture_log_density(logits.numpy(), means.numpy(),
                                                       annealing.level_scales(scales.numpy(), 0.4),
                                                       grid.numpy().reshape(1, -1, 1)))[0]
    np.testing.assert_allclose(numpy_density, density, rtol=1e-5, atol=1e-7)


def random_mixture(rng, batch=5, components=3, action=2):
    return (rng.standard_normal((batch, components)), rng.standard_normal((batch, components, action)),
            rng.uniform(0.05, 0.5, (batch, components, action)))


def test_smc_with_one_level_is_importance_resampling_on_the_same_noise():
    rng = np.random.default_rng(3)
    logits, means, scales = random_mixture(rng)
    low, high = np.full(2, -1.5), np.full(2, 1.5)
    weights = rng.standard_normal(2)

    def energy(level, particles):
        return np.sin(particles @ weights) + 0.5 * np.sum(particles ** 2, -1)
    draws = annealing.draw_noise(np.random.default_rng(9), 1, 5, 64, 2)
    candidates, energies, components, chosen = annealing.anneal(
        "annealed", logits, means, scales, np.zeros((1, 2)), energy, draws, low, high, temperature=0.7)
    ref_candidates, ref_components = selection.draw("importance", logits, means, scales, draws.uniforms[0],
                                                    draws.noise[0], low, high)
    ref_energies = energy(0, ref_candidates)
    ref_chosen = selection.choose("importance", ref_energies, uniform=draws.resample[0], temperature=0.7,
                                  log_q=sampler.mixture_log_density(logits, means, scales, ref_candidates))
    np.testing.assert_array_equal(candidates, ref_candidates)
    np.testing.assert_array_equal(components, ref_components)
    np.testing.assert_array_equal(chosen, ref_chosen)


@pytest.fixture(scope="module")
def two_mode(tmp_path_factory):
    return export_checkpoint(two_mode_checkpoint(), tmp_path_factory.mktemp("multilevel") / "two_mode")


def test_the_runtime_annealing_a_one_level_model_decides_as_importance(two_mode):
    """Same seed, same draws: annealing over a one-level ladder is the importance rule, decision for decision."""
    config = RuntimeConfig(num_candidates=32, selection="importance", use_fused_graph=False, temperature=0.5, seed=4)
    plain, annealed = PolicyRuntime(two_mode, config), PolicyRuntime(two_mode, config, annealing=AnnealingConfig())
    for c in np.linspace(-1.5, 1.5, 12):
        a, b = plain.decide(np.array([c])), annealed.decide(np.array([c]))
        assert a.chosen_index == b.chosen_index and np.array_equal(a.candidates, b.candidates)
        assert a.action[0] == b.action[0] and a.energy == b.energy


@pytest.mark.parametrize("rule", selection.ANNEALED_RULES)
def test_the_annealed_rule_recovers_a_known_minimiser(rule):
    """Energies of N(0.3, 0.02^2) noised to each level, a broad two-component proposal: the draws
    land on the minimiser, which only a few of the proposal's own samples come near."""
    target, width = 0.3, 0.02
    logits, means, scales = np.zeros((1, 2)), np.array([[[-0.8], [0.8]]]), np.full((1, 2, 1), 0.5)
    taus = np.array(LADDER)[:, None]

    def energy(level, particles):
        return 0.5 * (particles[..., 0] - target) ** 2 / (width ** 2 + taus[level, 0] ** 2)
    rng = np.random.default_rng(0)
    picks = []
    for _ in range(300):
        draws = annealing.draw_noise(rng, len(LADDER), 1, 64, 1)
        candidates, _, _, chosen = annealing.anneal(rule, logits, means, scales, taus, energy, draws, [-3.0], [3.0])
        picks.append(candidates[0, chosen[0], 0])
    picks = np.array(picks)
    assert abs(np.median(picks) - target) < 0.01
    assert np.mean(np.abs(picks - target) < 3 * width) > 0.8


@pytest.fixture(scope="module")
def multilevel(tmp_path_factory):
    ckpt = random_checkpoint(("goal.0", "goal.1"), ("a", "b"), num_components=3, hidden_sizes=(16, 16), seed=5)
    torch.manual_seed(5)
    ckpt.energy = LevelEnergyMLP(2, 2, LADDER, (16, 16)).eval()
    ckpt.method = "rnce-ml"
    return ckpt, export_checkpoint(ckpt, tmp_path_factory.mktemp("multilevel") / "model")


def test_the_exported_energy_takes_the_level_and_matches_torch(multilevel):
    ckpt, out = multilevel
    manifest = load_manifest(out)
    assert manifest.noise_ladder == LADDER and manifest.level_embedding.kind == "sinusoidal_log_sigma"
    assert [t.name for t in manifest.energy.inputs] == ["condition", "actions", "level"]
    rng = np.random.default_rng(0)
    condition = rng.standard_normal((6, 2)).astype(np.float32)
    actions = rng.uniform(-3, 3, (6, 5, 2)).astype(np.float32)
    session = ort.InferenceSession(str(out / "energy.onnx"), providers=["CPUExecutionProvider"])
    for level in range(len(LADDER)):
        levels = np.full(6, level, np.int64)
        (got,) = session.run(None, {"condition": condition, "actions": actions, "level": levels})
        with torch.no_grad():
            want = ckpt.energy(ckpt.condition_normalizer(torch.from_numpy(condition)),
                               ckpt.action_normalizer(torch.from_numpy(actions)), torch.from_numpy(levels)).numpy()
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
    # the decision graph scores at the clean level: the plain runtime serves the model unchanged
    decision = ort.InferenceSession(str(out / "decision.onnx"), providers=["CPUExecutionProvider"])
    candidates, energies = decision.run(["candidates", "energies"], {
        "condition": condition, "noise": rng.standard_normal((6, 5, 2), dtype=np.float32),
        "uniforms": rng.random((6, 5), dtype=np.float32), "previous_component": np.full(6, -1, np.int64),
        "keep_min_weight": np.array([0.0], np.float32)})
    (clean,) = session.run(None, {"condition": condition, "actions": candidates, "level": np.full(6, 3, np.int64)})
    np.testing.assert_allclose(energies, clean, atol=1e-5)


def test_the_runtime_anneals_a_multilevel_model_within_its_budget(multilevel):
    _, out = multilevel
    runtime = PolicyRuntime(out, RuntimeConfig(num_candidates=16, seed=1), annealing=AnnealingConfig("annealed"))
    calls = []
    inner = runtime._energy_run
    runtime._energy_run = lambda: (calls.append(int(runtime._level[0])), inner())[1]
    decision = runtime.decide(np.zeros(2))
    assert calls == [0, 1, 2, 3]  # one energy pass of K per level, top first, clean last
    assert decision.candidates.shape == (16, 2) and np.all(np.abs(decision.candidates) <= np.pi)
    again = PolicyRuntime(out, RuntimeConfig(num_candidates=16, seed=1), annealing=AnnealingConfig("annealed"))
    assert again.decide(np.zeros(2)).action.tolist() == decision.action.tolist()  # all noise from the seed
    mode_first = PolicyRuntime(out, RuntimeConfig(num_candidates=16),
                               annealing=AnnealingConfig("annealed_mode_first", 2))
    d = mode_first.decide(np.zeros(2))
    assert len(set(d.components.tolist())) == 1 and np.isnan(d.energy_gap)


def test_a_level_outside_the_ladder_is_refused_by_name(multilevel):
    _, out = multilevel
    with pytest.raises(ConfigError, match=r"annealing_start_level: level: 4 is outside the noise ladder \(levels 0..3"):
        PolicyRuntime(out, annealing=AnnealingConfig(start_level=4))
    with pytest.raises(ValueError, match="level: -1 is outside the noise ladder"):
        annealing.check_level(-1, 4)
    with pytest.raises(ConfigError, match="annealing.rule: 'mode_first'"):
        AnnealingConfig("mode_first")


@pytest.mark.parametrize("ladder", [[0.5, 0.5, 0.0], [0.5, 0.1], [0.1, 0.5, 0.0], []])
def test_a_manifest_ladder_not_strictly_decreasing_to_zero_is_refused(multilevel, tmp_path, ladder):
    import shutil
    _, out = multilevel
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    data = json.loads((bad / "manifest.json").read_text())
    data["noise_ladder"] = ladder
    (bad / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ModelValidationError, match="noise_ladder"):
        load_model(bad)
    with pytest.raises(ValueError, match="noise_ladder"):
        annealing.check_ladder(ladder)


def test_a_training_config_with_a_bad_ladder_names_the_key():
    with pytest.raises(ConfigError, match=r"model.noise_ladder: \(0.1, 0.3, 0.0\) is invalid"):
        load_train_config(None, {"method": "rnce-ml", "model.noise_ladder": [0.1, 0.3, 0.0]})


def test_manifests_without_the_new_keys_still_write_and_read_as_before(two_mode):
    data = json.loads((two_mode / "manifest.json").read_text())
    assert not set(OPTIONAL_KEYS) & set(data)  # an old runtime reads a new single-level export
    manifest = load_manifest(two_mode)
    assert manifest.policy_kind == "mixture" and manifest.noise_ladder is None


def test_rnce_ml_through_the_commands(tmp_path, capsys):
    from ebgan_mdn_ros.cli import main as cli_main
    run, model = tmp_path / "run", tmp_path / "model"
    assert cli_main(["train", "--task", "hyperbola", "--method", "rnce-ml", "--out", str(run), "--no-progress",
                     "--set", "optim.epochs=2", "--set", "model.noise_ladder=[0.2, 0.05, 0.0]"]) == 0
    capsys.readouterr()
    assert cli_main(["eval", str(run), "--samples", "2", "--no-plots", "--rules", "mode_first", "annealed",
                     "annealed_mode_first"]) == 0
    rules = json.loads(capsys.readouterr().out)["rules"]
    assert set(rules) == {"mode_first", "annealed", "annealed_mode_first"}
    assert all(0 <= rules[rule]["tmc"] <= 100 for rule in rules)
    assert cli_main(["export", str(run), "--out", str(model), "--candidates", "16"]) == 0
    assert load_manifest(model).noise_ladder == (0.2, 0.05, 0.0)
    assert cli_main(["eval", str(run), "--rules", "ddim_9"]) == 2
