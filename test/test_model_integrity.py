"""What load_model reads, and how: only files inside the model directory, each once, each bounded.

A model directory may come from anywhere (a parameter, a service call, a copied folder), so the
loader must not be a way to read other files (symlinks out, a JSON file that is not a manifest
echoed back in an error), must serve exactly the bytes it hashed (no reopening by path, no external
data files), must not be made to read without bound (huge or growing files, FIFOs), and can be
limited to allowed model roots.
"""
import hashlib
import json
import os
import shutil
import threading

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from ebgan_mdn_ros.cli import main as cli_main
from ebgan_mdn_ros.runtime import manifest as manifest_module
from ebgan_mdn_ros.runtime import model_loader
from ebgan_mdn_ros.runtime.manifest import ManifestError, load_manifest, sha256_of
from ebgan_mdn_ros.runtime.model_loader import ModelValidationError, load_model
from model_factory import build_model_dir

SECRET = "hunter2-s3cr3t"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("integrity")
    names = dict(condition_names=("goal.0", "goal.1"), action_names=("j1", "j2"), num_components=3, hidden_sizes=(8,))
    return build_model_dir(root / "valid", **names), build_model_dir(root / "other", seed=1, **names)


@pytest.fixture
def model_dir(models, tmp_path):
    return shutil.copytree(models[0], tmp_path / "model")


def _rehash(model_dir, role):
    path = model_dir / "manifest.json"
    data = json.loads(path.read_text())
    data[role]["sha256"] = sha256_of(model_dir / data[role]["file"])
    path.write_text(json.dumps(data))


def _refusal(model_dir, **kwargs) -> str:
    with pytest.raises(ModelValidationError) as info:
        load_model(model_dir, **kwargs)
    return str(info.value)


def _cli_refusal(model_dir, capsys) -> str:
    assert cli_main(["validate", str(model_dir)]) == 1
    return capsys.readouterr().err


# -- 1. nothing outside the model directory is read ------------------------------------------------

@pytest.mark.parametrize("name", ["generator.onnx", "energy.onnx", "decision.onnx", "manifest.json"])
def test_a_file_symlinked_out_of_the_directory_is_refused(model_dir, tmp_path, name):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.move(model_dir / name, outside / name)
    (model_dir / name).symlink_to(outside / name)           # same bytes, so only where it lies is wrong
    message = _refusal(model_dir)
    assert f"{name} resolves outside the model directory" in message, message
    assert str(outside) not in message                      # where the link points is not echoed


def test_a_graph_linked_to_an_unrelated_file_is_not_opened_or_hashed(model_dir, tmp_path, capsys):
    secret = tmp_path / "id_ed25519"
    secret.write_text(SECRET)
    (model_dir / "energy.onnx").unlink()
    (model_dir / "energy.onnx").symlink_to(secret)
    digest = hashlib.sha256(SECRET.encode()).hexdigest()
    for message in (_refusal(model_dir), _cli_refusal(model_dir, capsys)):
        assert "energy.onnx resolves outside the model directory" in message, message
        assert digest not in message and "has sha256" not in message


def test_symlinks_that_stay_inside_the_directory_are_followed(model_dir, tmp_path):
    (model_dir / "blobs").mkdir()
    for name in ("generator.onnx", "manifest.json"):
        shutil.move(model_dir / name, model_dir / "blobs" / name)
        (model_dir / name).symlink_to(os.path.join("blobs", name))
    current = tmp_path / "current"
    current.symlink_to(model_dir)                           # models/current -> models/v3 is a normal layout
    model = load_model(current)
    assert model.directory == current and model.real_directory == model_dir.resolve()


@pytest.mark.skipif(not os.path.exists("/proc/self/fd"), reason="needs Linux /proc")
def test_a_directory_swapped_for_a_symlink_after_resolving_is_caught_on_the_open_file(model_dir, tmp_path,
                                                                                       monkeypatch):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "manifest.json").write_text(SECRET)
    (model_dir / "sub").symlink_to(outside)
    root = str(model_dir.resolve())
    # As if realpath ran just before "sub" became a symlink: it resolves to a path inside the directory.
    monkeypatch.setattr(os.path, "realpath", os.path.abspath)
    with pytest.raises(manifest_module.ModelFileError, match="changed while opening"):
        manifest_module.read_model_file(root, "sub/manifest.json", 1 << 20)


@pytest.mark.parametrize("content", [
    {"password": SECRET, "nested": {"token": SECRET}},
    [SECRET, {"password": SECRET}],
    SECRET,
    {"format": SECRET, "password": SECRET},
])
def test_a_json_file_that_is_not_a_manifest_is_refused_without_quoting_it(model_dir, capsys, content):
    (model_dir / "manifest.json").write_text(json.dumps(content))
    with pytest.raises(ManifestError) as info:
        load_manifest(model_dir)
    for message in (str(info.value), _refusal(model_dir), _cli_refusal(model_dir, capsys)):
        assert "manifest.json" in message and "not an ebgan-mdn-model/1 manifest" in message, message
        assert SECRET not in message and "password" not in message and "token" not in message


def test_what_an_invalid_manifest_error_quotes_is_bounded(model_dir):
    path = model_dir / "manifest.json"
    data = json.loads(path.read_text())
    data["model_version"] = ["x" * 100_000]
    path.write_text(json.dumps(data))
    message = _refusal(model_dir)
    assert "model_version" in message and "expected a string" in message and len(message) < 1000, message[:2000]


# -- 2. the bytes hashed are the bytes served ------------------------------------------------------

def test_a_graph_replaced_after_it_was_hashed_is_not_served(models, model_dir, monkeypatch):
    verified = (model_dir / "generator.onnx").read_bytes()
    real_session = ort.InferenceSession

    def replace_then_open(source, *args, **kwargs):
        # The swap lands in the window between the hash check and onnxruntime opening the graph.
        shutil.copy(models[1] / "generator.onnx", model_dir / "generator.onnx")
        return real_session(source, *args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", replace_then_open)
    served = load_model(model_dir, roles=["generator"]).sessions["generator"]
    monkeypatch.undo()
    condition = np.array([[0.3, -0.2]], dtype=np.float32)
    expected = real_session(verified, providers=["CPUExecutionProvider"]).run(None, {"condition": condition})
    for have, want in zip(served.run(None, {"condition": condition}), expected):
        np.testing.assert_array_equal(have, want)


def _externalise(model_dir, location, data=None):
    """energy.onnx with its largest weight moved to the external file ``location`` (manifest rehashed)."""
    model = onnx.load(str(model_dir / "energy.onnx"))
    tensor = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
    payload = numpy_helper.to_array(tensor).tobytes()
    target = model_dir / location
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(payload if data is None else data)
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(len(payload)))):
        tensor.external_data.add(key=key, value=value)
    (model_dir / "energy.onnx").write_bytes(model.SerializeToString())
    _rehash(model_dir, "energy")


@pytest.mark.parametrize("location", ["weights.bin", "../outside.bin"])
def test_graphs_with_external_data_are_refused(model_dir, location):
    _externalise(model_dir, location)
    message = _refusal(model_dir)
    assert "energy.onnx uses external data" in message, message


def _tensor(name="w", external=False):
    tensor = numpy_helper.from_array(np.ones((2, 2), dtype=np.float32), name)
    if external:
        tensor.ClearField("raw_data")
        tensor.data_location = onnx.TensorProto.EXTERNAL
        tensor.external_data.add(key="location", value="/etc/passwd")
    return tensor


def _graph(external_initializer=False, nodes=(), sparse=()):
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 2])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 2])
    nodes = list(nodes) or [helper.make_node("Add", ["x", "w"], ["y"])]
    return helper.make_graph(nodes, "g", [x], [y], initializer=[_tensor(external=external_initializer)],
                             sparse_initializer=list(sparse))


def _constant(external):
    return helper.make_node("Constant", [], ["c"], value=_tensor("c", external))


def _if(external):
    branch = helper.make_graph([_constant(external)], "b", [],
                               [helper.make_tensor_value_info("c", onnx.TensorProto.FLOAT, [2, 2])])
    return helper.make_node("If", ["flag"], ["y"], then_branch=branch, else_branch=branch)


def _sparse(external):
    values = _tensor("sv", external)
    indices = numpy_helper.from_array(np.array([0, 1], dtype=np.int64), "si")
    return helper.make_sparse_tensor(values, indices, [2, 2])


def _model(external, where):
    if where == "initializer":
        return helper.make_model(_graph(external_initializer=external))
    if where == "constant":
        return helper.make_model(_graph(nodes=[_constant(external), helper.make_node("Add", ["x", "c"], ["y"])]))
    if where == "subgraph":
        return helper.make_model(_graph(nodes=[_if(external)]))
    if where == "sparse":
        return helper.make_model(_graph(sparse=[_sparse(external)]))
    if where == "function":
        function = helper.make_function("local", "f", [], ["c"], [_constant(external)],
                                        [helper.make_opsetid("", 17)])
        model = helper.make_model(_graph(), functions=[function])
        return model
    raise ValueError(where)


@pytest.mark.parametrize("where", ["initializer", "constant", "subgraph", "sparse", "function"])
def test_external_data_is_found_wherever_a_tensor_can_be(where):
    assert model_loader.uses_external_data(_model(True, where).SerializeToString())
    assert not model_loader.uses_external_data(_model(False, where).SerializeToString())


def test_a_graph_that_is_not_a_protobuf_is_refused_before_onnxruntime(model_dir):
    (model_dir / "generator.onnx").write_bytes(b"\x0a\xff\xff\xff\xff\x0f" + b"\x00" * 64)  # length past the end
    _rehash(model_dir, "generator")
    message = _refusal(model_dir)
    assert "generator.onnx cannot be loaded by onnxruntime: not a well-formed ONNX model" in message, message
    assert "found before onnxruntime parsed it" in message


def test_a_graph_in_ort_format_is_refused(model_dir, tmp_path, monkeypatch):
    # onnxruntime loads its own flatbuffer format from bytes too; the external-data check reads
    # protobuf only, so bytes must reach onnxruntime as ONNX or not at all. Pretend the check passed.
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "generator.ort")
    options.add_session_config_entry("session.save_model_format", "ORT")
    ort.InferenceSession(str(model_dir / "generator.onnx"), options, providers=["CPUExecutionProvider"])
    shutil.copy(tmp_path / "generator.ort", model_dir / "generator.onnx")
    _rehash(model_dir, "generator")
    monkeypatch.setattr(model_loader, "uses_external_data", lambda data: False)
    assert "generator.onnx cannot be loaded by onnxruntime" in _refusal(model_dir)


# -- 3. every read is bounded -----------------------------------------------------------------------

def test_an_oversized_manifest_is_refused_by_its_size(model_dir):
    path = model_dir / "manifest.json"
    path.write_text(path.read_text() + " " * (1 << 20))  # still a valid manifest, only too large
    assert "manifest.json is" in _refusal(model_dir) and "over the limit of 1048576" in _refusal(model_dir)


def test_a_sparse_huge_manifest_is_refused_without_reading_it(model_dir):
    with open(model_dir / "manifest.json", "r+b") as handle:
        handle.truncate(64 << 20)                        # 64 MiB that take no disk and must take no memory
    assert "over the limit" in _refusal(model_dir)


def test_an_oversized_graph_is_refused_by_its_size(model_dir, monkeypatch):
    monkeypatch.setattr(model_loader, "MAX_GRAPH_BYTES", 1024)
    message = _refusal(model_dir)
    assert "generator.onnx is" in message and "over the limit of 1024 bytes" in message, message


@pytest.mark.timeout(60)  # a regression would block on open(); fail instead of hanging the suite
@pytest.mark.parametrize("name", ["manifest.json", "decision.onnx"])
def test_a_fifo_is_refused_without_blocking(model_dir, name):
    (model_dir / name).unlink()
    os.mkfifo(model_dir / name)
    result = {}
    worker = threading.Thread(target=lambda: result.update(message=_refusal(model_dir)), daemon=True)
    worker.start()
    worker.join(30)
    if worker.is_alive():  # unblock the stuck open() so the thread can end
        with open(model_dir / name, "wb"):
            pass
        pytest.fail(f"opening the FIFO {name} blocked")
    assert f"{name} is not a regular file" in result["message"], result


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_a_file_longer_than_its_stat_size_is_refused():
    # /proc files stat as 0 bytes and read as more: the same as a file growing between stat and read.
    with pytest.raises(manifest_module.ModelFileError, match="grew while being read"):
        manifest_module.read_model_file(os.path.realpath("/proc/self"), "status", 1 << 20)


# -- 4. allowed model roots -----------------------------------------------------------------------------

@pytest.fixture
def roots(model_dir, tmp_path):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    inside = shutil.copytree(model_dir, allowed / "v1")
    return allowed, inside


def test_a_directory_inside_an_allowed_root_passes_as_its_real_path(roots, tmp_path):
    allowed, inside = roots
    link = tmp_path / "roots_link"
    link.symlink_to(allowed)                            # the root itself may be given through a link
    assert model_loader.check_model_root(link / "v1", [tmp_path / "other", link]) == inside.resolve()
    assert load_model(inside, allowed_roots=[str(allowed)], probe=False).real_directory == inside.resolve()


def test_a_directory_outside_every_allowed_root_is_refused(roots, model_dir, tmp_path):
    allowed, _ = roots
    sibling = shutil.copytree(model_dir, tmp_path / "allowed-evil" / "v1")  # a name prefix is not inside
    for candidate in (model_dir, sibling):
        with pytest.raises(ModelValidationError, match="is not inside any allowed model root"):
            model_loader.check_model_root(candidate, [allowed])
        assert "is not inside any allowed model root" in _refusal(candidate, allowed_roots=[allowed])
    assert load_model(model_dir, allowed_roots=None, probe=False).manifest is not None  # None: no restriction


def test_a_symlinked_directory_that_escapes_the_root_is_refused(roots, model_dir):
    allowed, _ = roots
    (allowed / "escape").symlink_to(model_dir)
    with pytest.raises(ModelValidationError, match="is not inside any allowed model root"):
        model_loader.check_model_root(allowed / "escape", [allowed])
    assert "is not inside any allowed model root" in _refusal(allowed / "escape", allowed_roots=[allowed])


def test_allowed_roots_must_be_a_list_of_paths(roots):
    allowed, inside = roots
    with pytest.raises(ModelValidationError, match="no allowed model roots"):
        model_loader.check_model_root(inside, [])
    with pytest.raises(ModelValidationError, match="empty path"):
        model_loader.check_model_root(inside, [""])
    with pytest.raises(TypeError, match="a list of paths"):
        model_loader.check_model_root(inside, str(allowed))  # would otherwise be read as roots "/", "t", ...
