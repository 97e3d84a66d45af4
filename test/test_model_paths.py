"""node/model_paths.py: the roots a node may load models from, and the names peers see."""
from pathlib import Path

from ebgan_mdn_ros.node.model_paths import model_label, model_roots, without_paths


def test_a_model_inside_a_root_is_named_by_the_root_folder_and_its_path_inside(tmp_path):
    model = tmp_path / "share" / "models" / "ur5e" / "v2"
    model.mkdir(parents=True)
    assert model_label(str(model), [str(tmp_path / "other"), str(tmp_path / "share" / "models")]) == "models/ur5e/v2"
    # outside every root: its own name only, never where it lives
    assert model_label(str(model), [str(tmp_path / "other")]) == "v2"
    # a sibling whose name starts like the root is not inside it
    (tmp_path / "share" / "models_old" / "m").mkdir(parents=True)
    assert model_label(str(tmp_path / "share" / "models_old" / "m"), [str(tmp_path / "share" / "models")]) == "m"


def test_a_link_is_named_by_where_it_points(tmp_path):
    (tmp_path / "models" / "real").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "models" / "real")
    assert model_label(str(tmp_path / "link"), [str(tmp_path / "models")]) == "models/real"


def test_absolute_paths_in_a_message_keep_their_last_two_parts():
    text = "manifest.json: sha256 mismatch in /home/ops/deploy/models/ur5e/generator.onnx (expected 1f2e)"
    assert without_paths(text) == "manifest.json: sha256 mismatch in ur5e/generator.onnx (expected 1f2e)"
    assert without_paths("'/srv/a/b/c/' refused; ./rel/path kept") == "'b/c' refused; ./rel/path kept"


def test_roots_default_to_the_shipped_models_and_the_start_up_models_folder(tmp_path):
    assert model_roots(("/data/models",), str(tmp_path / "m")) == ["/data/models"]
    roots = model_roots((), str(tmp_path / "runs" / "m"))
    assert roots[-1] == str(tmp_path / "runs") and len(roots) >= 2
    assert all(Path(r).name == "models" for r in roots[:-1])
