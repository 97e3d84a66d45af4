"""Chunk targets from recordings (bag_dataset chunk_horizon): worked out by hand on test_bag_dataset's bag."""
import numpy as np
import pytest

from ebgan_mdn_ros.data.bag_dataset import BagDatasetError, ExtractionConfig, extract
from ebgan_mdn_ros.data.demonstrations import load_demonstrations
from ebgan_mdn_ros.spec import ChunkSpec
from test_bag_dataset import ik_events, write_bag_dir

JOINTS = ("shoulder", "elbow")


def test_chunks_hold_the_episode_end(tmp_path):
    # shoulder = t, elbow = -0.5 t at 10 Hz; episode 0's last state is 1.0 s, episode 1's 1.9 s
    bag = write_bag_dir(tmp_path / "ik", [ik_events()])
    demos = extract([bag], ExtractionConfig(joints=JOINTS, horizon=0.3, chunk_horizon=3, chunk_n_exec=2))
    t = np.round(demos.times, 6)
    np.testing.assert_allclose(t, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6])
    end = np.where(t < 1.05, 1.0, 1.9)
    steps = np.minimum(t[:, None] + 0.3 * np.arange(1, 4)[None, :], end[:, None])  # [N, H] shoulder
    chunks = demos.actions.reshape(-1, 3, 2)
    np.testing.assert_allclose(chunks[:, :, 0], steps, atol=1e-9)
    np.testing.assert_allclose(chunks[:, :, 1], -0.5 * steps, atol=1e-9)
    assert demos.chunk == (3, 2, 0.3)
    delta = extract([bag], ExtractionConfig(joints=JOINTS, horizon=0.3, chunk_horizon=3, action="delta"))
    np.testing.assert_allclose(delta.actions.reshape(-1, 3, 2)[:, :, 0], steps - t[:, None], atol=1e-9)
    assert delta.chunk == (3, 1, 0.3)  # n_exec 0: half the horizon, at least 1


def test_chunks_dropped_at_the_episode_end_and_saved_for_the_trainer(tmp_path):
    bag = write_bag_dir(tmp_path / "ik", [ik_events()])
    demos = extract([bag], ExtractionConfig(joints=JOINTS, horizon=0.2, chunk_horizon=3, chunk_end="drop"))
    # kept: t + 0.6 <= the episode's last state (1.0 s, 1.9 s)
    np.testing.assert_allclose(np.round(demos.times, 6), [0.1, 0.2, 0.3, 0.4, 1.1, 1.2, 1.3])
    assert demos.dropped["episode ends within the chunk (3 x 0.2 s)"] == 4 + 4  # 0.5-0.8 s, 1.4-1.7 s
    loaded = load_demonstrations(demos.save(tmp_path / "chunks.npz"))
    assert loaded.chunk == ChunkSpec(3, 1, 0.2) and loaded.action_names == JOINTS
    assert loaded.actions.shape == (7, 6)


@pytest.mark.parametrize("kwargs, words", [
    ({"chunk_horizon": 0}, "chunk_horizon"), ({"chunk_horizon": 2, "chunk_n_exec": 3}, "chunk_n_exec"),
    ({"chunk_horizon": 2, "chunk_end": "pad"}, "chunk_end"),
    ({"chunk_horizon": 2, "command_topic": "/c"}, "cannot be combined with command_topic")])
def test_bad_chunk_settings_are_named(kwargs, words):
    with pytest.raises(BagDatasetError, match=words):
        ExtractionConfig(**kwargs)
