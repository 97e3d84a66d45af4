"""Every console script and scripts/* executable names a module that imports and has `main`."""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENTRY = re.compile(r'"([\w-]+) = ([\w.]+):(\w+)"')
SCRIPT_IMPORT = re.compile(r"^from ([\w.]+) import main$", re.M)


def setup_entry_points() -> list[tuple[str, str, str]]:
    return ENTRY.findall((ROOT / "setup.py").read_text())


def script_targets() -> list[tuple[str, str]]:
    found = []
    for path in sorted((ROOT / "scripts").iterdir()):
        text = path.read_text()
        if text.startswith("#!/usr/bin/env python3"):
            match = SCRIPT_IMPORT.search(text)
            assert match, f"scripts/{path.name} does not import a main"
            found.append((path.name, match.group(1)))
    return found


def test_there_are_entry_points_and_scripts():
    expected = {"ebgan-mdn", "policy_node", "sim_arm", "mujoco_sim", "goal_pose_relay", "box_reach_goal_source"}
    assert {name for name, _, _ in setup_entry_points()} >= expected
    assert {name for name, _ in script_targets()} >= expected


def test_every_launched_executable_is_installed_under_the_same_name():
    """launch_ros starts `executable` from lib/<package>: setup.py, scripts/ and CMake must all have it."""
    from ebgan_mdn_ros.node.launch_plan import MODULES
    cmake = (ROOT / "CMakeLists.txt").read_text()
    installed = set(re.search(r"foreach\(script ([^)]*)\)", cmake).group(1).split())
    scripts = dict(script_targets())
    entry = {name: module for name, module, _ in setup_entry_points()}
    for executable, module in MODULES.items():
        assert executable in installed, executable
        assert scripts[executable] == module == entry[executable], executable


@pytest.mark.parametrize("name,module,function", setup_entry_points())
def test_setup_entry_point_imports(name, module, function):
    assert callable(getattr(importlib.import_module(module), function)), name


@pytest.mark.parametrize("name,module", script_targets())
def test_script_target_imports(name, module):
    assert callable(getattr(importlib.import_module(module), "main")), name
