import math

import numpy as np
import pytest

from ebgan_mdn_ros.config_base import ConfigError, from_dict
from ebgan_mdn_ros.control.safety_filter import SafetyConfig, SafetyFilter, limits_from_urdf

JOINTS = ("shoulder", "elbow")


def make_filter(**overrides):
    settings = dict(position_lower=(-1.0, -2.0), position_upper=(1.0, 2.0), max_step=0.1, max_velocity=1.0,
                    state_timeout_s=0.05)
    settings.update(overrides)
    safety = SafetyFilter(SafetyConfig(**settings), JOINTS)
    safety.reset(np.array([0.0, 0.0]))
    return safety


def test_target_within_all_limits_passes_unchanged():
    safety = make_filter()
    result = safety.filter(np.array([0.05, -0.08]), np.zeros(2), 0.001, True, dt=0.1)
    np.testing.assert_array_equal(result.command, [0.05, -0.08])
    assert not result.held and result.note == ""
    assert safety.counters["commands"] == 1 and safety.counters["clamped_step"] == 0


def test_step_clamp_uses_the_smaller_of_max_step_and_velocity_times_dt():
    safety = make_filter()
    # max_step 0.1; max_velocity 1 rad/s * dt 0.02 s = 0.02 -> the velocity cap wins
    result = safety.filter(np.array([0.5, -0.5]), np.zeros(2), 0.0, True, dt=0.02)
    np.testing.assert_allclose(result.command, [0.02, -0.02])
    assert result.note == "clamped_step"
    # dt 1 s -> velocity allows 1.0, max_step 0.1 wins; steps accumulate from the previous command
    result = safety.filter(np.array([0.5, -0.5]), np.zeros(2), 0.0, True, dt=1.0)
    np.testing.assert_allclose(result.command, [0.12, -0.12])
    assert safety.counters["clamped_step"] == 2


def test_per_joint_step_limits():
    safety = make_filter(max_step=(0.1, 0.3), max_velocity=(10.0, 10.0))
    result = safety.filter(np.array([1.0, 1.0]), np.zeros(2), 0.0, True, dt=1.0)
    np.testing.assert_allclose(result.command, [0.1, 0.3])


def test_position_clamp_then_step_clamp():
    safety = make_filter(max_step=10.0, max_velocity=100.0)
    result = safety.filter(np.array([5.0, -3.0]), np.zeros(2), 0.0, True, dt=1.0)
    np.testing.assert_array_equal(result.command, [1.0, -2.0])
    assert result.note == "clamped_limits"
    safety = make_filter(max_step=0.5)
    result = safety.filter(np.array([5.0, 0.0]), np.zeros(2), 0.0, True, dt=1.0)
    np.testing.assert_allclose(result.command, [0.5, 0.0])
    assert result.note == "clamped_limits,clamped_step"
    assert safety.counters["clamped_limits"] == 1 and safety.counters["clamped_step"] == 1


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_target_holds_the_last_safe_command(bad):
    safety = make_filter()
    first = safety.filter(np.array([0.05, 0.05]), np.zeros(2), 0.0, True, dt=0.1).command
    result = safety.filter(np.array([bad, 0.0]), np.zeros(2), 0.0, True, dt=0.1)
    np.testing.assert_array_equal(result.command, first)
    assert result.held and result.note == "non_finite"
    assert safety.counters["non_finite"] == 1 and safety.counters["held"] == 1


def test_wrong_size_target_holds():
    safety = make_filter()
    result = safety.filter(np.array([0.1, 0.1, 0.1]), np.zeros(2), 0.0, True, dt=0.1)
    np.testing.assert_array_equal(result.command, [0.0, 0.0])
    assert result.held and result.note == "non_finite"


def test_untrusted_holds_unless_disabled():
    safety = make_filter()
    result = safety.filter(np.array([0.05, 0.05]), np.zeros(2), 0.0, False, dt=0.1)
    np.testing.assert_array_equal(result.command, [0.0, 0.0])
    assert result.held and result.note == "untrusted" and safety.counters["untrusted"] == 1
    relaxed = make_filter(hold_on_untrusted=False)
    result = relaxed.filter(np.array([0.05, 0.05]), np.zeros(2), 0.0, False, dt=0.1)
    np.testing.assert_array_equal(result.command, [0.05, 0.05])


@pytest.mark.parametrize("age", [0.051, 10.0, math.nan, math.inf, -0.051, -math.inf])
def test_stale_or_future_state_publishes_nothing(age):
    safety = make_filter()
    result = safety.filter(np.array([0.05, 0.05]), np.zeros(2), age, True, dt=0.1)
    assert result.command is None and result.note == "stale_state"
    assert safety.counters["stale"] == 1 and safety.counters["commands"] == 0


@pytest.mark.parametrize("measured", [np.array([math.nan, 0.0]), np.array([0.0]), np.array([0.0, math.inf])])
def test_bad_measured_state_publishes_nothing(measured):
    safety = make_filter()
    result = safety.filter(np.array([0.05, 0.05]), measured, 0.0, True, dt=0.1)
    assert result.command is None and result.note == "bad_state" and safety.counters["bad_state"] == 1


@pytest.mark.parametrize("dt", [0.0, -1.0, math.nan, math.inf])
def test_unusable_dt_allows_no_motion(dt):
    safety = make_filter()
    result = safety.filter(np.array([0.05, 0.05]), np.zeros(2), 0.0, True, dt=dt)
    np.testing.assert_array_equal(result.command, [0.0, 0.0])


def test_reset_seeds_from_measured_so_the_first_command_does_not_jump():
    safety = make_filter()
    safety.reset(np.array([0.5, -1.0]))
    result = safety.filter(np.array([-1.0, 2.0]), np.array([0.5, -1.0]), 0.0, True, dt=1.0)
    np.testing.assert_allclose(result.command, [0.4, -0.9])
    with pytest.raises(ValueError, match="finite"):
        safety.reset(np.array([math.nan, 0.0]))


def test_unseeded_filter_seeds_from_the_first_good_state():
    safety = SafetyFilter(SafetyConfig((-1.0, -2.0), (1.0, 2.0), max_step=0.1), JOINTS)
    assert safety.previous_command is None
    result = safety.filter(np.array([0.9, 0.9]), np.array([0.5, 0.5]), 0.0, True, dt=1.0)
    np.testing.assert_allclose(result.command, [0.6, 0.6])


def test_a_seed_outside_the_limits_is_refused_so_no_command_ever_leaves_them():
    safety = make_filter(max_step=0.1)
    with pytest.raises(ValueError, match="outside the position limits"):
        safety.reset(np.array([1.25, 0.0]))
    np.testing.assert_array_equal(safety.previous_command, [0.0, 0.0])  # the old seed stands
    unseeded = SafetyFilter(SafetyConfig((-1.0, -2.0), (1.0, 2.0), max_step=0.1), JOINTS)
    result = unseeded.filter(np.array([1.0, 0.0]), np.array([1.25, 0.0]), 0.0, True, dt=1.0)
    assert result.command is None and result.note == "seed_out_of_limits"


def test_returned_command_is_a_copy():
    safety = make_filter()
    first = safety.filter(np.array([0.05, 0.05]), np.zeros(2), 0.0, True, dt=0.1).command
    safety.filter(np.array([0.1, 0.1]), np.zeros(2), 0.0, True, dt=0.1)
    np.testing.assert_array_equal(first, [0.05, 0.05])


def test_random_garbage_never_yields_a_non_finite_or_out_of_bounds_command():
    rng = np.random.default_rng(0)
    safety = make_filter()
    previous = np.zeros(2)
    choices = np.array([0.0, 1e300, -1e300, math.nan, math.inf, -math.inf, 3.0, -3.0])
    for _ in range(2000):
        target = rng.choice(choices, 2) * rng.random(2)
        result = safety.filter(target, rng.normal(size=2), rng.choice([0.0, 0.01, 1.0]), bool(rng.random() > 0.2),
                               dt=float(rng.choice([0.001, 0.01, 1.0, math.nan])))
        if result.command is None:
            continue
        assert np.all(np.isfinite(result.command))
        assert np.all(result.command >= [-1.0, -2.0]) and np.all(result.command <= [1.0, 2.0])
        assert np.all(np.abs(result.command - previous) <= 0.1 + 1e-12)
        previous = result.command


@pytest.mark.parametrize("settings, message", [
    (dict(position_lower=(0.0,), position_upper=(0.0,)), "lower < upper"),
    (dict(position_lower=(0.0, 0.0), position_upper=(1.0,)), "equal length"),
    (dict(position_lower=(math.nan,), position_upper=(1.0,)), "NaN"),
    (dict(position_lower=(0.0,), position_upper=(1.0,), max_step=0.0), "max_step"),
    (dict(position_lower=(0.0,), position_upper=(1.0,), max_step=(0.1, 0.1)), "max_step"),
    (dict(position_lower=(0.0,), position_upper=(1.0,), max_velocity=math.inf), "max_velocity"),
    (dict(position_lower=(0.0,), position_upper=(1.0,), state_timeout_s=-1.0), "state_timeout_s"),
])
def test_config_rejects_bad_values(settings, message):
    with pytest.raises(ConfigError, match=message):
        SafetyConfig(**settings)


def test_config_from_dict_and_joint_count_check():
    config = from_dict(SafetyConfig, {"position_lower": [-1, -1], "position_upper": [1, 1], "max_step": [0.1, 0.2]})
    assert config.max_step == (0.1, 0.2) and config.position_lower == (-1.0, -1.0)
    with pytest.raises(ConfigError, match="unknown config key"):
        from_dict(SafetyConfig, {"position_lower": [-1], "position_upper": [1], "max_stpe": 0.1})
    with pytest.raises(ConfigError, match="3 joints"):
        SafetyFilter(SafetyConfig((-1.0,) * 3, (1.0,) * 3), JOINTS)


URDF = """<robot name="arm">
  <joint name="shoulder" type="revolute"><limit lower="-1.5" upper="1.5" velocity="2.0" effort="10"/>
    <safety_controller soft_lower_limit="-1.4" soft_upper_limit="1.6" k_position="10" k_velocity="1"/></joint>
  <joint name="elbow" type="continuous"><limit velocity="3.0" effort="10"/></joint>
  <joint name="slide" type="prismatic"><limit lower="0" upper="0.2" velocity="0.1" effort="10"/></joint>
  <joint name="tool" type="fixed"/>
</robot>"""


def test_limits_from_urdf_in_requested_order_with_soft_limits():
    limits = limits_from_urdf(URDF, ["slide", "shoulder", "elbow"])
    assert limits.lower == (0.0, -1.4, -math.inf)
    assert limits.upper == (0.2, 1.5, math.inf)
    assert limits.velocity == (0.1, 2.0, 3.0)
    assert limits_from_urdf(URDF, ["shoulder"], use_soft_limits=False).lower == (-1.5,)
    config = SafetyConfig(limits.lower, limits.upper, max_velocity=limits.velocity)
    assert SafetyFilter(config, ["slide", "shoulder", "elbow"]).filter(
        np.array([1.0, 0.0, 100.0]), np.zeros(3), 0.0, True, 1.0).command.tolist() == [0.05, 0.0, 0.05]


@pytest.mark.parametrize("joint, message", [("wrist", "not in the URDF"), ("tool", "type 'fixed'")])
def test_limits_from_urdf_errors_name_the_joint(joint, message):
    with pytest.raises(ValueError, match=message):
        limits_from_urdf(URDF, ["shoulder", joint])


def test_a_slightly_future_stamp_is_fresh():
    safety = make_filter()
    assert safety.filter(np.array([0.05, 0.05]), np.zeros(2), -0.01, True, dt=0.1).command is not None
