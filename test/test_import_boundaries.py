"""The layers the folders show are the layers the imports keep.

Two checks, each able to fail on one stray import:
- static: every `import` statement (module level or inside a function) of a layer names only the
  layers it may depend on;
- in a child process with torch (or rclpy) unimportable, every module of the torch-free (or
  rclpy-free) layers imports, and nothing of the training layers is loaded on the way.
"""
from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PACKAGE = "ebgan_mdn_ros"
SOURCE = Path(__file__).resolve().parent.parent / PACKAGE
ROOT_MODULES = {"config_base", "spec", "paths"}  # the torch-free, ROS-free foundation every layer may use
# layer -> the layers (besides itself and the root modules) it may import
ALLOWED = {
    "runtime": set(),
    "control": {"runtime"},
    "tasks": set(),
    "sim": {"tasks", "data"},
    "data": set(),
    "training": {"tasks", "data"},
    "evaluation": {"training", "tasks", "data", "runtime"},
    "export": {"training", "runtime", "tasks", "data"},
    "node": {"runtime", "control", "tasks", "sim", "data"},
}
TORCH_FREE = ("runtime", "control", "data", "tasks", "sim")
ROS_LAYERS = ("node",)
ROS_ROOT_MODULES = {"demo"}  # `python -m ebgan_mdn_ros.demo`: an entry into node/demo.py, nothing else


def modules_of(layer: str) -> list[str]:
    return sorted(f"{PACKAGE}.{layer}.{p.stem}" for p in (SOURCE / layer).glob("*.py") if p.stem != "__init__")


def root_modules() -> list[str]:
    return sorted(p.stem for p in SOURCE.glob("*.py") if p.stem != "__init__")


def imported_names(path: Path) -> set[str]:
    """Every module an import statement in ``path`` names, resolved to absolute names."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package_parts = [PACKAGE, *path.relative_to(SOURCE).parent.parts]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def layer_of(module: str) -> str | None:
    """The layer (or root module) a package module belongs to; None outside the package."""
    parts = module.split(".")
    if parts[0] != PACKAGE or len(parts) < 2:
        return None
    return parts[1]


def test_every_layer_is_a_folder_with_an_init():
    for layer in ALLOWED:
        assert (SOURCE / layer / "__init__.py").is_file(), f"{layer}/ has no __init__.py"
        assert (SOURCE / layer / "__init__.py").read_text().strip() == "", f"{layer}/__init__.py is not empty"


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_what_it_may(layer):
    allowed = ALLOWED[layer] | {layer} | ROOT_MODULES | {"msg"}
    if layer not in ROS_LAYERS:
        allowed -= {"msg"}
    violations = []
    for path in sorted((SOURCE / layer).glob("*.py")):
        for name in imported_names(path):
            target = layer_of(name)
            if target is not None and target not in allowed and target in set(ALLOWED) | ROOT_MODULES | {"msg", "node"} | set(root_modules()):
                violations.append(f"{path.relative_to(SOURCE)} imports {name}")
            top = name.split(".")[0]
            if top == "rclpy" and layer not in ROS_LAYERS:
                violations.append(f"{path.relative_to(SOURCE)} imports rclpy outside the node layer")
            if top in ("torch", "onnx", "onnxscript") and layer in TORCH_FREE:
                violations.append(f"{path.relative_to(SOURCE)} imports {top} in a torch-free layer")
    assert not violations, "\n".join(violations)


def test_root_modules_stay_below_the_layers():
    for stem in sorted(ROOT_MODULES):
        path = SOURCE / f"{stem}.py"
        assert path.is_file(), path
        for name in imported_names(path):
            target = layer_of(name)
            assert target is None or target in ROOT_MODULES, f"{stem}.py imports {name}"
            assert name.split(".")[0] not in ("torch", "rclpy", "onnxruntime"), f"{stem}.py imports {name}"


def test_the_main_jobs_entry_point_only_enters_the_node_layer():
    """The README's `python -m ebgan_mdn_ros.demo` keeps its name, but what talks ROS lives in node/."""
    for stem in sorted(ROS_ROOT_MODULES):
        names = imported_names(SOURCE / f"{stem}.py") - {"__future__", "__future__.annotations"}
        assert names and all(layer_of(name) == "node" for name in names), f"{stem}.py imports {sorted(names)}"


CHILD = textwrap.dedent("""
    import importlib, sys

    blocked = tuple(sys.argv[1].split(","))

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in blocked:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
            return None

    sys.meta_path.insert(0, Blocker())
    forbidden = tuple(sys.argv[2].split(",")) if sys.argv[2] else ()
    for module in sys.argv[3:]:
        importlib.import_module(module)
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in blocked or m.startswith(forbidden))
    assert not leaked, leaked
    print("imported", len(sys.argv) - 3)
""")


def run_child(blocked: str, forbidden: str, modules: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CHILD, blocked, forbidden, *modules],
                          capture_output=True, text=True, timeout=120)


def test_torch_free_layers_import_without_torch():
    modules = [m for layer in TORCH_FREE for m in modules_of(layer)]
    modules += [f"{PACKAGE}.{stem}" for stem in sorted(ROOT_MODULES)]
    forbidden = ",".join(f"{PACKAGE}.{layer}" for layer in ("training", "evaluation", "export"))
    result = run_child("torch,onnx,onnxscript", forbidden, modules)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"imported {len(modules)}" in result.stdout


def test_everything_outside_the_node_layer_imports_without_rclpy():
    modules = [m for layer in ALLOWED if layer not in ROS_LAYERS for m in modules_of(layer)]
    modules += [f"{PACKAGE}.{stem}" for stem in root_modules() if stem not in ROS_ROOT_MODULES]
    modules += [f"{PACKAGE}.commands.{p.stem}" for p in (SOURCE / "commands").glob("*.py") if p.stem != "__init__"]
    result = run_child("rclpy", f"{PACKAGE}.node", modules)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"imported {len(modules)}" in result.stdout


def test_no_module_is_left_outside_a_layer():
    strays = set(root_modules()) - ROOT_MODULES - ROS_ROOT_MODULES - {"cli"}
    assert not strays, f"modules at the package root that belong in a layer: {sorted(strays)}"
