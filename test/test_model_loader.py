"""A broken model directory is refused with a clear reason, by load_model and by `ebgan-mdn validate`."""
import json
import shutil

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from ebgan_mdn_ros.cli import main as cli_main
from ebgan_mdn_ros.runtime.manifest import sha256_of
from ebgan_mdn_ros.runtime.model_loader import ModelValidationError, load_model
from ebgan_mdn_ros.runtime.policy_runtime import PolicyRuntime
from model_factory import build_model_dir


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("loader")
    valid = build_model_dir(root / "valid", ("goal.0", "goal.1"), ("j1", "j2"), num_components=3, hidden_sizes=(8,))
    wider = build_model_dir(root / "wider", ("goal.0", "goal.1", "goal.2"), ("j1", "j2"), num_components=3,
                            hidden_sizes=(8,))
    return valid, wider


@pytest.fixture
def model_dir(models, tmp_path):
    return shutil.copytree(models[0], tmp_path / "model")


def _edit_manifest(model_dir, edit):
    path = model_dir / "manifest.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _rehash(model_dir, role):
    """Make the manifest agree with the file again, so a later check is the one that must refuse."""
    def edit(data):
        data[role]["sha256"] = sha256_of(model_dir / data[role]["file"])
    _edit_manifest(model_dir, edit)


def _refused(model_dir, capsys, *fragments):
    assert cli_main(["validate", str(model_dir)]) == 1
    message = capsys.readouterr().err
    assert message.startswith("invalid model directory: ")
    for fragment in fragments:
        assert fragment in message, message
    with pytest.raises(ModelValidationError):
        load_model(model_dir)
    return message


def test_valid_directory_loads_and_validates(model_dir, capsys):
    model = load_model(model_dir)
    assert set(model.sessions) == {"generator", "energy", "decision"}
    assert model.providers == ("CPUExecutionProvider",)
    assert cli_main(["validate", str(model_dir)]) == 0
    assert "valid:" in capsys.readouterr().out


def test_truncated_file_is_refused_by_its_hash(model_dir, capsys):
    data = (model_dir / "energy.onnx").read_bytes()
    (model_dir / "energy.onnx").write_bytes(data[: len(data) // 2])
    _refused(model_dir, capsys, "energy.onnx has sha256", "truncated")


def test_truncated_file_with_a_matching_hash_is_refused_by_onnxruntime(model_dir, capsys):
    data = (model_dir / "generator.onnx").read_bytes()
    (model_dir / "generator.onnx").write_bytes(data[: len(data) // 2])
    _rehash(model_dir, "generator")
    _refused(model_dir, capsys, "generator.onnx cannot be loaded by onnxruntime")


def test_empty_graph_with_a_matching_hash_is_refused_by_onnxruntime(model_dir, capsys):
    (model_dir / "generator.onnx").write_bytes(b"")  # well-formed protobuf (all defaults), not a model
    _rehash(model_dir, "generator")
    _refused(model_dir, capsys, "generator.onnx cannot be loaded by onnxruntime")


def test_manifest_hash_mismatch_is_refused(model_dir, capsys):
    _edit_manifest(model_dir, lambda d: d["decision"].update(sha256="0" * 64))
    _refused(model_dir, capsys, "decision.onnx has sha256", "the manifest says 0000")


def test_wrong_input_name_is_refused(model_dir, capsys):
    model = onnx.load(str(model_dir / "generator.onnx"))
    model.graph.input[0].name = "state"
    for node in model.graph.node:
        node.input[:] = ["state" if name == "condition" else name for name in node.input]
    onnx.save(model, str(model_dir / "generator.onnx"))
    _rehash(model_dir, "generator")
    _refused(model_dir, capsys, "input names ['state']", "the manifest says ['condition']")


def test_graph_of_another_size_is_refused(models, model_dir, capsys):
    shutil.copy(models[1] / "generator.onnx", model_dir / "generator.onnx")  # 3 condition dims, not 2
    _rehash(model_dir, "generator")
    _refused(model_dir, capsys, "generator.onnx: input 'condition' has size 3 on axis 1, the manifest says 2")


def test_manifest_that_disagrees_with_itself_is_refused(model_dir, capsys):
    _edit_manifest(model_dir, lambda d: d.update(action_size=3))
    _refused(model_dir, capsys, "action_size: 3 does not match 2 action_names")


def test_unknown_manifest_key_is_refused(model_dir, capsys):
    _edit_manifest(model_dir, lambda d: d.update(joint_limits=[1, 2]))
    _refused(model_dir, capsys, "unknown config key", "'joint_limits'")


def test_missing_manifest_reads_as_an_incomplete_export(model_dir, capsys):
    (model_dir / "manifest.json").unlink()
    _refused(model_dir, capsys, "manifest.json does not exist", "incomplete")


def test_nan_weights_are_refused_by_the_probe(model_dir, capsys):
    model = onnx.load(str(model_dir / "energy.onnx"))
    weight = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
    poisoned = numpy_helper.to_array(weight).copy()
    poisoned.flat[0] = np.nan
    weight.CopyFrom(numpy_helper.from_array(poisoned, weight.name))
    onnx.save(model, str(model_dir / "energy.onnx"))
    _rehash(model_dir, "energy")
    _refused(model_dir, capsys, "energy.onnx: output 'energy' is not finite on the probe")


def test_runtime_raises_the_same_error(model_dir):
    _edit_manifest(model_dir, lambda d: d["energy"].update(sha256="f" * 64))
    with pytest.raises(ModelValidationError, match="energy.onnx has sha256"):
        PolicyRuntime(model_dir)


def test_unavailable_provider_only_is_refused(model_dir):
    with pytest.raises(ModelValidationError, match="none of the execution providers"):
        load_model(model_dir, providers=["NoSuchExecutionProvider"])
