"""PolicyRuntime on a hand-set two-mode model whose behaviour is known (model_factory.two_mode_checkpoint):

weights 0.7 / 0.3 at c = 0 (pi_0 = sigmoid(log(7/3) + 4c)), modes at -1 and +1 (scale 0.1),
energy | |a| - 1.05 | + 5 * max(|c| - 2, 0).
"""
import dataclasses

import numpy as np
import pytest

from ebgan_mdn_ros.config_base import ConfigError, from_dict
from ebgan_mdn_ros.runtime.policy_runtime import Decision, PolicyRuntime
from ebgan_mdn_ros.runtime.runtime_config import RuntimeConfig
from model_factory import build_model_dir, export_checkpoint, two_mode_checkpoint

CENTRE = np.array([0.0])


@pytest.fixture(scope="module")
def two_mode(tmp_path_factory):
    return export_checkpoint(two_mode_checkpoint(), tmp_path_factory.mktemp("runtime") / "two_mode")


def runtime(model_dir, **config) -> PolicyRuntime:
    config.setdefault("num_candidates", 64)
    return PolicyRuntime(model_dir, RuntimeConfig(**config))


def known_energy(condition, actions):
    return np.abs(np.abs(actions) - 1.05) + 5 * np.maximum(np.abs(condition) - 2, 0)


@pytest.mark.parametrize("key, value", [("num_candidates", 0), ("selection", "best"), ("temperature", 0.0),
                                        ("keep_mode_min_weight", 1.5), ("continuity_weight", -1.0),
                                        ("energy_threshold", float("nan")), ("providers", ()),
                                        ("intra_op_threads", 0), ("seed", -1)])
def test_config_errors_name_the_key_and_value(key, value):
    with pytest.raises(ConfigError, match=f"{key}: {value!r}"):
        RuntimeConfig(**{key: value})


def test_config_from_a_parameter_dict():
    config = from_dict(RuntimeConfig, {"num_candidates": 32, "providers": ["CUDAExecutionProvider",
                                                                          "CPUExecutionProvider"]})
    assert config.providers == ("CUDAExecutionProvider", "CPUExecutionProvider")
    with pytest.raises(ConfigError, match="unknown config key: 'candidates'"):
        from_dict(RuntimeConfig, {"candidates": 32})


def test_decision_has_the_promised_fields(two_mode):
    rt = runtime(two_mode)
    decision = rt.decide(CENTRE)
    assert isinstance(decision, Decision)
    assert decision.action.shape == (1,) and decision.action.dtype == np.float64
    assert decision.candidates.shape == (64, 1) and decision.candidates.dtype == np.float32
    assert decision.energies.shape == (64,) and decision.energies.dtype == np.float32
    assert decision.components.shape == (64,)
    assert decision.action[0] == decision.candidates[decision.chosen_index, 0]
    assert decision.energy == decision.energies[decision.chosen_index]
    assert np.isnan(decision.energy_gap)  # mode first: every candidate is from the chosen component
    assert 0 < decision.inference_seconds < 1
    assert rt.providers == ["CPUExecutionProvider"] and rt.uses_fused_graph
    assert rt.manifest.action_names == ("joint_1",)
    kept = decision.candidates.copy()
    rt.decide(CENTRE)
    np.testing.assert_array_equal(decision.candidates, kept)  # a kept decision is not overwritten


@pytest.mark.parametrize("fused", [True, False])
def test_modes_visited_in_proportion_and_best_within_the_mode(two_mode, fused):
    rt = runtime(two_mode, stickiness=False, use_fused_graph=fused)
    decisions = [rt.decide(CENTRE) for _ in range(400)]
    share_first = np.mean([d.chosen_component == 0 for d in decisions])
    assert 0.63 < share_first < 0.77  # pi_0 = 0.7; 3 binomial standard deviations
    for d in decisions:
        assert np.all(d.components == d.chosen_component)  # all K candidates from one mode
        np.testing.assert_allclose(d.energies, known_energy(0.0, d.candidates[:, 0]), atol=1e-5)
        assert d.chosen_index == int(np.argmin(d.energies))
        expected_sign = -1 if d.chosen_component == 0 else 1
        assert np.sign(d.action[0]) == expected_sign and abs(abs(d.action[0]) - 1.05) < 0.05


def test_lowest_energy_over_the_mixture_is_an_option(two_mode):
    rt = runtime(two_mode, selection="lowest_energy")
    d = rt.decide(CENTRE)
    assert set(np.unique(d.components)) == {0, 1}
    assert d.chosen_index == int(np.argmin(d.energies))
    assert np.isfinite(d.energy_gap) and d.energy_gap >= 0


def test_stickiness_keeps_the_mode_then_lets_go_when_it_becomes_implausible(two_mode):
    rt = runtime(two_mode, stickiness=True, keep_mode_min_weight=0.05)
    first = rt.decide(CENTRE).chosen_component
    assert all(rt.decide(CENTRE).chosen_component == first for _ in range(50))
    # still plausible (weight 0.24 or 0.76 >= 0.05): kept
    mildly_against = np.array([-0.5 if first == 0 else 0.5])
    assert all(rt.decide(mildly_against).chosen_component == first for _ in range(20))
    # weight of the kept mode below 0.05 (about 0.006): let go at once
    against = np.array([-1.5 if first == 0 else 1.5])
    assert rt.decide(against).chosen_component == 1 - first
    # and the new mode is kept when the condition comes back
    assert all(rt.decide(CENTRE).chosen_component == 1 - first for _ in range(20))


def test_reset_forgets_the_mode(two_mode):
    rt = runtime(two_mode)
    firsts = []
    for _ in range(60):
        rt.reset()
        firsts.append(rt.decide(CENTRE).chosen_component)
    assert 0 < np.mean(firsts) < 1


def test_continuity_prefers_the_candidate_near_the_previous_action(two_mode):
    mode = runtime(two_mode, seed=5).decide(CENTRE).chosen_component  # the seed fixes the mode drawn
    sign = -1.0 if mode == 0 else 1.0
    previous = np.array([0.9 * sign])  # inside the mode, 0.15 from its energy minimum at 1.05
    plain = runtime(two_mode, seed=5).decide(CENTRE, previous)
    smooth = runtime(two_mode, seed=5, continuity_weight=100.0).decide(CENTRE, previous)
    np.testing.assert_array_equal(plain.candidates, smooth.candidates)  # same seed, same draws
    assert abs(plain.action[0] - 1.05 * sign) < 0.03  # no continuity: the energy minimum
    assert abs(smooth.action[0] - previous[0]) < 0.05 < abs(plain.action[0] - previous[0])
    scores = smooth.energies + 100.0 * (smooth.candidates[:, 0] - previous[0]) ** 2
    assert smooth.chosen_index == int(np.argmin(scores))


@pytest.mark.parametrize("previous, mode", [(np.array([1.0]), 1), (np.array([-1.0]), 0)])
def test_continuity_picks_the_mode_near_the_previous_action_when_energies_are_close(two_mode, previous, mode):
    rt = runtime(two_mode, selection="lowest_energy", continuity_weight=1.0, num_candidates=256)
    assert all(rt.decide(CENTRE, previous).chosen_component == mode for _ in range(20))


def test_same_seed_same_decisions(two_mode):
    def sequence(seed, fused=True):
        rt = runtime(two_mode, seed=seed, use_fused_graph=fused)
        rt.warmup(5)  # warming up must not shift the sequence
        out = []
        for i in range(30):
            if i % 7 == 0:
                rt.reset()
            d = rt.decide(np.array([np.sin(i)]))
            out.append((d.chosen_index, d.chosen_component, float(d.action[0])))
        return out

    assert sequence(11) == sequence(11)
    assert sequence(11) != sequence(12)
    fused, two_sessions = sequence(11), sequence(11, fused=False)
    assert [f[:2] for f in fused] == [t[:2] for t in two_sessions]
    np.testing.assert_allclose([f[2] for f in fused], [t[2] for t in two_sessions], atol=1e-5)


def test_energy_threshold_marks_out_of_distribution_untrusted(two_mode):
    rt = runtime(two_mode)
    assert rt.energy_threshold == rt.manifest.energy_threshold and 0 < rt.energy_threshold < 1
    assert rt.decide(CENTRE).trusted
    far = rt.decide(np.array([10.0]))  # energy >= 5 * (10 - 2)
    assert not far.trusted and far.energy > 39
    strict = runtime(two_mode, energy_threshold=-1.0)
    assert not strict.decide(CENTRE).trusted


def test_importance_resampling_follows_the_energy_not_the_proposal(two_mode):
    # exp(-E/T) is symmetric in the two modes, the proposal is 70/30: resampling must undo the 70/30.
    rt = runtime(two_mode, selection="importance", temperature=0.05, num_candidates=128)
    shares = np.mean([rt.decide(CENTRE).chosen_component == 0 for _ in range(300)])
    assert 0.38 < shares < 0.62


def test_condition_of_the_wrong_size_is_refused(two_mode):
    with pytest.raises(ValueError, match=r"condition has shape \(2,\).*\['goal.0'\]"):
        runtime(two_mode).decide(np.zeros(2))


def test_candidates_are_clipped_to_the_action_box(tmp_path):
    model = build_model_dir(tmp_path / "m", ("goal.0",), ("j1", "j2"), action_low=(-0.1, -0.2),
                            action_high=(0.1, 0.2), hidden_sizes=(8,))
    for fused in (True, False):
        d = runtime(model, use_fused_graph=fused).decide(np.array([0.3]))
        assert np.all(d.candidates >= np.array([-0.1, -0.2], np.float32))
        assert np.all(d.candidates <= np.array([0.1, 0.2], np.float32))


def test_cuda_request_falls_back_and_reports_what_is_used(two_mode):
    rt = runtime(two_mode, providers=("CUDAExecutionProvider", "CPUExecutionProvider"))
    assert rt.providers[-1] == "CPUExecutionProvider"
    assert np.isfinite(rt.decide(CENTRE).energy)


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        RuntimeConfig().seed = 3
