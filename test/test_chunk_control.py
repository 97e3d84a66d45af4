"""Chunk execution without ROS: the schedule (exact times, stale points, velocities), the player's
splice, and the chunk loop's request -> decide -> accept with a scripted runtime."""
from types import SimpleNamespace

import numpy as np
import pytest

from ebgan_mdn_ros.control import chunk_schedule as schedule
from ebgan_mdn_ros.control.chunk_loop import ChunkLoop, ChunkRequest, ChunkTiming
from ebgan_mdn_ros.control.chunk_player import ChunkPlayer, TemporalEnsemble
from ebgan_mdn_ros.control.safety_filter import SafetyConfig
from ebgan_mdn_ros.runtime.manifest import Chunk

JOINTS = ("j1", "j2")
SAFETY = SafetyConfig(position_lower=(-3.0, -3.0), position_upper=(3.0, 3.0), max_step=0.5, max_velocity=10.0,
                      state_timeout_s=0.5, seed_confirmations=1)
MS = 1_000_000


def test_duration_parts_are_exact_integers():
    assert schedule.duration_parts(1_999_999_999) == (1, 999_999_999)
    assert schedule.duration_parts(3 * schedule.seconds_to_ns(0.1)) == (0, 300_000_000)  # 3 * 0.1 s is not 0.3 in floats
    assert schedule.duration_parts(schedule.seconds_to_ns(0.7)) == (0, 700_000_000)
    with pytest.raises(ValueError, match="in the past"):
        schedule.duration_parts(-1)


def test_due_times_and_stale_steps():
    due = schedule.due_times_ns(1_000 * MS, 100 * MS, 4)
    assert due.tolist() == [1_100 * MS, 1_200 * MS, 1_300 * MS, 1_400 * MS]
    assert schedule.first_live_step(due, 1_000 * MS, 20 * MS) == 0
    assert schedule.first_live_step(due, 1_150 * MS, 20 * MS) == 1      # step 0 is past
    assert schedule.first_live_step(due, 1_185 * MS, 20 * MS) == 2      # step 1 is 15 ms away: too close
    assert schedule.first_live_step(due, 1_500 * MS, 20 * MS) == 4


def test_finite_difference_velocities_by_hand():
    times = np.array([0.1, 0.2, 0.3])
    points = np.array([[1.0], [2.0], [4.0]])
    v = schedule.finite_difference_velocities(times, points, 0.0, np.array([0.0]))
    assert v[:, 0].tolist() == pytest.approx([(2.0 - 0.0) / 0.2, (4.0 - 1.0) / 0.2, 0.0])


def test_player_splices_at_the_point_being_executed():
    player = ChunkPlayer(1, 4)
    player.start(0.0, np.array([0.0]))
    player.splice(0.0, np.array([0.1, 0.2, 0.3]), np.array([[1.0], [2.0], [3.0]]))
    assert player.sample(0.15)[0] == pytest.approx(1.5)
    player.splice(0.15, np.array([0.2, 0.3]), np.array([[10.0], [20.0]]))
    assert player.sample(0.15)[0] == pytest.approx(1.5)        # no jump where it is now
    assert player.sample(0.2)[0] == pytest.approx(10.0)        # the new chunk after now; nothing averaged
    assert player.sample(9.0)[0] == pytest.approx(20.0)        # holds the last point after the end
    np.testing.assert_allclose(player.at(np.array([0.2, 0.3, 0.4])), [[10.0], [20.0]])  # past the end: left out


def test_temporal_ensemble_averages_overlapping_chunks():
    ensemble = TemporalEnsemble(1, 16, decay=0.0, keep=4)
    ensemble.start(0.0, np.array([0.0]))
    ensemble.splice(0.0, np.array([0.1, 0.2]), np.array([[1.0], [1.0]]))
    ensemble.splice(0.05, np.array([0.1, 0.2]), np.array([[-1.0], [-1.0]]))
    assert ensemble.sample(0.2)[0] == pytest.approx(0.0)  # two modes averaged into neither: what the splice avoids


class ScriptedRuntime:
    """Returns the chunks it is given, in order, and records the tails it was asked to continue."""

    def __init__(self, chunks, kind="absolute", horizon=4):
        self.manifest = SimpleNamespace(condition_names=("j1.position", "j2.position"), action_kind=kind,
                                        chunk=Chunk(horizon, 2, 0.1))
        self.chunks, self.tails = list(chunks), []

    def decide(self, condition, tail=None):
        self.tails.append(None if tail is None else np.array(tail))
        return SimpleNamespace(action=np.asarray(self.chunks.pop(0), float).reshape(-1), trusted=True)

    def reset(self):
        pass


def chunk(values):
    return np.repeat(np.asarray(values, float)[:, None], 2, axis=1)  # both joints alike


def loop_for(runtime, trajectory=True, safety=SAFETY):
    timing = ChunkTiming.of(runtime.manifest.chunk, 0, 50.0, 0.02)
    return ChunkLoop(runtime, JOINTS, safety, timing, trajectory)


def run_chunk(loop, now_ns, position=(0.0, 0.0), age=0.0, accept_after_ns=0):
    request = loop.request(JOINTS, position, None, None, age, now_ns)
    assert isinstance(request, ChunkRequest), request
    return request, loop.accept(request, loop.decide(request), now_ns + accept_after_ns, np.asarray(position), age)


def test_trajectory_points_are_exact_increasing_and_stale_ones_dropped():
    runtime = ScriptedRuntime([chunk([0.1, 0.2, 0.3, 0.4])])
    loop = loop_for(runtime)
    # observed 30 ms before now (age), answered 85 ms later: step 0 (due at +100 ms) is 15 ms away: dropped
    now = 10_000 * MS
    request, points = run_chunk(loop, now, age=0.03, accept_after_ns=85 * MS)
    assert request.observed_ns == now - 30 * MS
    assert points.time_from_start_ns.tolist() == [85 * MS, 185 * MS, 285 * MS]   # due - (now + 85 ms)
    assert np.all(np.diff(points.time_from_start_ns) > 0)
    np.testing.assert_allclose(points.positions[:, 0], [0.2, 0.3, 0.4])
    assert loop.counters["points_stale"] == 1
    assert points.velocities[-1].tolist() == [0.0, 0.0]


def test_next_chunk_continues_the_tail_and_splices_without_a_jump():
    first = chunk([0.1, 0.2, 0.3, 0.4])
    runtime = ScriptedRuntime([first, chunk([0.3, 0.4, 0.5, 0.6])])
    loop = loop_for(runtime)
    now = 10_000 * MS
    run_chunk(loop, now)
    assert runtime.tails[0] is None
    assert not loop.due(now + 150 * MS, 0) and loop.due(now + 180 * MS, 0)  # n_exec = 2 steps, minus a period
    _, points = run_chunk(loop, now + 200 * MS, position=(0.2, 0.2))
    # the tail is the running plan at the new chunk's due times (+300, +400 ms; its end at +400)
    np.testing.assert_allclose(runtime.tails[1][:, 0], [0.3, 0.4])
    np.testing.assert_allclose(points.positions[:, 0], [0.3, 0.4, 0.5, 0.6])
    assert loop.counters["splice_clamped"] == 0 and loop.counters["chunks"] == 2


def test_a_jump_at_the_splice_is_clamped_and_counted():
    tight = SafetyConfig(position_lower=(-3.0, -3.0), position_upper=(3.0, 3.0), max_step=0.05,
                         max_velocity=10.0, state_timeout_s=0.5, seed_confirmations=1)
    runtime = ScriptedRuntime([chunk([0.0, 0.0, 0.0, 0.0]), chunk([1.0, 1.0, 1.0, 1.0])])
    loop = loop_for(runtime, safety=tight)
    run_chunk(loop, 10_000 * MS)
    _, points = run_chunk(loop, 10_200 * MS)
    np.testing.assert_allclose(points.positions[:, 0], [0.05, 0.10, 0.15, 0.20])  # 0.05 rad per point
    assert loop.counters["splice_clamped"] == 1


def test_forward_command_plays_the_chunk_at_the_control_rate_through_the_filter():
    runtime = ScriptedRuntime([chunk([0.1, 0.2, 0.3, 0.4])])
    loop = loop_for(runtime, trajectory=False)
    now = 10_000 * MS
    _, points = run_chunk(loop, now)
    assert points is None  # nothing to send at once: the ticks send it
    commands = [loop.tick((now + k * 20 * MS) * 1e-9, np.zeros(2), 0.0)[0] for k in range(1, 26)]
    assert commands[4] == pytest.approx(0.1) and commands[9] == pytest.approx(0.2)   # +100 ms, +200 ms
    assert commands[-1] == pytest.approx(0.4) and loop.counters["idle_ticks"] == 5    # past +400 ms: holds, idle


def test_delta_chunks_are_targets_from_the_answered_position():
    runtime = ScriptedRuntime([chunk([0.1, 0.2, 0.3, 0.4])], kind="delta")
    loop = loop_for(runtime)
    _, points = run_chunk(loop, 10_000 * MS, position=(1.0, -1.0))
    np.testing.assert_allclose(points.positions, [[1.1, -0.9], [1.2, -0.8], [1.3, -0.7], [1.4, -0.6]])


@pytest.mark.parametrize("chunk_spec, n_exec, rate, lead, words", [
    (Chunk(8, 4, 0.1), 0, 25.0, 0.02, "chunk.dt: the model's 0.1 s steps do not fit control_rate_hz 25"),
    (Chunk(8, 4, 0.1), 9, 50.0, 0.02, "chunk_n_exec: 9 is outside 1..8"),
    (Chunk(2, 1, 0.01), 0, 100.0, 0.02, "chunk.horizon: 2 steps of 0.01 s end before"),
    (Chunk(8, 4, 0.1), 0, 0.0, 0.02, "control_rate_hz"),
])
def test_timing_that_cannot_be_served_is_refused_by_name(chunk_spec, n_exec, rate, lead, words):
    with pytest.raises(ValueError, match=words.replace(".", r"\.")):
        ChunkTiming.of(chunk_spec, n_exec, rate, lead)


def test_hold_replaces_the_running_trajectory_with_the_point_it_is_at():
    runtime = ScriptedRuntime([chunk([0.1, 0.2, 0.3, 0.4])])
    loop = loop_for(runtime)
    now = 10_000 * MS
    run_chunk(loop, now)
    hold = loop.hold(now + 150 * MS)
    assert hold.time_from_start_ns.tolist() == [20 * MS]
    np.testing.assert_allclose(hold.positions, [[0.15, 0.15]])   # halfway between the +100 and +200 ms steps
    assert hold.velocities.tolist() == [[0.0, 0.0]]
