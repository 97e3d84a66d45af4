"""Action-chunk models: train -> export -> validate -> runtime, the chunk contract and the splice choice."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from chunk_model_factory import JOINTS, chunk_demonstrations, train_chunk_model
from ebgan_mdn_ros.data.demonstrations import load_demonstrations
from ebgan_mdn_ros.runtime import chunk_selection
from ebgan_mdn_ros.runtime.manifest import ManifestError, load_manifest
from ebgan_mdn_ros.runtime.policy_runtime import PolicyRuntime, RuntimeConfig
from ebgan_mdn_ros.spec import ChunkSpec, PolicySpec


@pytest.fixture(scope="module")
def chunk_model(tmp_path_factory):
    return train_chunk_model(tmp_path_factory.mktemp("chunk") / "model", horizon=4, n_exec=2, dt=0.1)


def test_manifest_records_the_chunk_and_flattened_graphs(chunk_model):
    manifest = load_manifest(chunk_model)
    assert (manifest.chunk.horizon, manifest.chunk.n_exec, manifest.chunk.dt) == (4, 2, 0.1)
    assert manifest.action_names == JOINTS and manifest.action_size == 2 and manifest.flat_action_size == 8
    assert len(manifest.normalization.action_mean) == 8
    assert manifest.decision.outputs[0].shape == ("batch", "candidates", 8)


def test_validate_command_reports_the_chunk(chunk_model):
    done = subprocess.run([sys.executable, "-m", "ebgan_mdn_ros.cli", "validate", str(chunk_model)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "chunk: horizon 4 steps of 0.1 s" in done.stdout and "executes 2" in done.stdout


def test_runtime_decides_whole_chunks_in_one_mode(chunk_model):
    runtime = PolicyRuntime(chunk_model, RuntimeConfig(num_candidates=32, seed=3))
    condition = np.array([0.0, 0.1, -0.1], np.float32)
    signs = set()
    for _ in range(40):
        runtime.reset()
        decision = runtime.decide(condition)
        chunk = decision.action.reshape(4, 2)
        steps = chunk[:, 0]
        # one whole plan, never an average of the two: |step| grows along the chunk, never ~0 at the end
        assert abs(steps[-1]) > 0.1
        assert np.all(np.sign(steps[1:]) == np.sign(steps[-1]))
        signs.add(float(np.sign(steps[-1])))
        assert len(set(decision.components.tolist())) == 1  # mode first: every candidate from one component
    assert signs == {-1.0, 1.0}  # both modes are served across episodes


def test_splice_keeps_the_mode_and_prefers_the_continuing_candidate(chunk_model):
    runtime = PolicyRuntime(chunk_model, RuntimeConfig(num_candidates=32, seed=1, splice_weight=1e4))
    condition = np.array([0.3, 0.0, 0.0], np.float32)
    first = runtime.decide(condition)
    for _ in range(10):  # stickiness: the next chunks stay in the first one's component
        tail = first.action.reshape(4, 2)[2:]
        decision = runtime.decide(condition, tail)
        assert decision.chosen_component == first.chosen_component
        # the chosen candidate is the one of its K closest to the tail (the weight dwarfs the energies)
        distances = chunk_selection.tail_distances(decision.candidates, tail, 2)
        assert distances[decision.chosen_index] == pytest.approx(distances.min())


def test_tail_distances_by_hand():
    candidates = np.array([[0, 0, 1, 1, 2, 2], [1, 1, 1, 1, 1, 1]], np.float32)  # K=2, H=3, A=2
    tail = np.array([[0.0, 0.0], [1.0, 1.0]])
    assert chunk_selection.tail_distances(candidates, tail, 2).tolist() == [0.0, 1.0]  # (2 + 0) / 2
    assert chunk_selection.tail_distances(candidates, tail[:0], 2).tolist() == [0.0, 0.0]


def _edited_copy(model, tmp_path, edit):
    copy = tmp_path / "edited"
    shutil.copytree(model, copy)
    data = json.loads((copy / "manifest.json").read_text())
    edit(data)
    (copy / "manifest.json").write_text(json.dumps(data))
    return copy


@pytest.mark.parametrize("edit, words", [
    (lambda d: d["chunk"].update(n_exec=5), "n_exec 5 must satisfy 1 <= n_exec <= horizon"),
    (lambda d: d["chunk"].update(dt=0.0), "chunk.dt"),
    (lambda d: d["chunk"].update(horizon=3, n_exec=1), "normalization.action_mean: expected 6"),
])
def test_bad_chunk_manifest_is_refused_naming_it(chunk_model, tmp_path, edit, words):
    with pytest.raises(ManifestError, match="chunk|normalization"):
        try:
            load_manifest(_edited_copy(chunk_model, tmp_path, edit))
        except ManifestError as exc:
            assert words in str(exc)
            raise


def test_chunk_spec_checks_and_round_trips():
    with pytest.raises(ValueError, match="n_exec: 9 is more than the horizon 8"):
        ChunkSpec(8, 9, 0.1)
    spec = PolicySpec(("goal.0",), JOINTS, (-1, -1), (1, 1), "delta", ChunkSpec(8, 4, 0.1))
    assert PolicySpec.from_dict(spec.to_dict()) == spec
    assert spec.flat_action_dim == 16 and spec.flat_action_low == (-1, -1) * 8
    plain = PolicySpec(("goal.0",), JOINTS, (-1, -1), (1, 1))
    assert "chunk" not in plain.to_dict() and PolicySpec.from_dict(plain.to_dict()) == plain


def test_chunk_demonstrations_round_trip_through_npz(tmp_path):
    demos = chunk_demonstrations(horizon=4, count=50)
    path = tmp_path / "chunks.npz"
    np.savez(path, conditions=demos.conditions, actions=demos.actions, condition_names=np.array(demos.condition_names),
             action_names=np.array(demos.action_names), chunk_horizon=4, chunk_n_exec=2, chunk_dt=0.1)
    loaded = load_demonstrations(path)
    assert loaded.chunk == ChunkSpec(4, 2, 0.1) and loaded.action_names == JOINTS
    spec = loaded.spec("delta")
    assert spec.chunk == ChunkSpec(4, 2, 0.1) and len(spec.action_low) == 2


def test_one_candidate_is_the_kept_components_mean_chunk(chunk_model):
    condition = np.array([0.2, 0.0, 0.0], np.float32)
    firsts = {}
    for mean in (True, False):
        runtime = PolicyRuntime(chunk_model, RuntimeConfig(num_candidates=8, seed=5, chunk_mean_candidate=mean))
        first = runtime.decide(condition)
        second = runtime.decide(condition, first.action.reshape(4, 2)[2:])  # same component (stickiness)
        assert second.chosen_component == first.chosen_component
        firsts[mean] = (first.candidates[0], second.candidates[0])
    np.testing.assert_array_equal(*firsts[True])   # noise-free: the component's mean, both times
    assert not np.array_equal(*firsts[False])
