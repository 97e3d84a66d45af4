"""colcon builds this package from the pip-wheel ROS environment, as a ROS 2 workspace would.

The package is copied into a temporary workspace (src/ebgan_mdn_ros): a build straight from the
checkout fails, because CMake refuses exported include paths (the venv's numpy headers) that lie
inside the source tree, and the venv lives in the checkout. About 15-30 s on 2 cores.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
SKIP_DIRS = {".venv", "build", "install", "log", "runs", ".git", "__pycache__", ".pytest_cache"}


def _tool(name: str) -> str | None:
    found = VENV_BIN / name
    return str(found) if found.exists() else shutil.which(name)


def _copy_package(destination: Path) -> None:
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, text=True)
    if listed.returncode == 0 and listed.stdout:
        for name in filter(None, listed.stdout.split("\0")):
            source = ROOT / name
            if source.is_file():
                (destination / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, destination / name)
    else:  # not a git checkout (an unpacked archive): everything but the build outputs
        shutil.copytree(ROOT, destination, ignore=lambda d, names: [n for n in names if n in SKIP_DIRS])
    for folder in ("launch", "config", "models"):  # install(DIRECTORY) needs them, even empty
        (destination / folder).mkdir(exist_ok=True)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    colcon = _tool("colcon")
    if colcon is None or _tool("cmake") is None or shutil.which("c++") is None:
        pytest.skip("colcon, cmake or a C++ compiler is missing (bash scripts/setup.sh installs colcon and cmake)")
    workspace = tmp_path_factory.mktemp("colcon_ws")
    _copy_package(workspace / "src" / "ebgan_mdn_ros")
    prefix = str(Path(sys.prefix))
    env = {**os.environ, "AMENT_PREFIX_PATH": prefix, "CMAKE_PREFIX_PATH": prefix,
           "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [colcon, "--log-base", "log", "build", "--base-paths", "src", "--build-base", "build",
         "--install-base", "install", "--event-handlers", "console_direct-",
         "--cmake-args", f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF"],
        cwd=workspace, env=env, capture_output=True, text=True, timeout=300)
    log = workspace / "log" / "latest_build" / "ebgan_mdn_ros" / "stderr.log"
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{log.read_text()[-3000:] if log.exists() else ''}"
    return workspace / "install" / "ebgan_mdn_ros", env


def test_launch_config_and_models_land_in_share(installed):
    prefix, _ = installed
    share = prefix / "share" / "ebgan_mdn_ros"
    for name in ("launch/policy.launch.py", "config/sim_ik.yaml", "config/sim_multiroute.yaml",
                 "config/real_arm.yaml", "package.xml"):
        assert (share / name).is_file(), name
    assert (share / "models").is_dir()
    for model in (ROOT / "models").glob("*/manifest.json"):
        assert (share / "models" / model.parent.name / "manifest.json").is_file(), model.parent.name
    for executable in ("policy_node", "sim_arm"):
        assert os.access(prefix / "lib" / "ebgan_mdn_ros" / executable, os.X_OK), executable


def test_installed_node_imports_its_messages_and_looks_in_share(installed):
    """What `. install/setup.bash` sets, then the installed policy_node: it must import (messages and all)
    and look for a relative model in the installed share directory."""
    prefix, env = installed
    env = {**env, "AMENT_PREFIX_PATH": f"{prefix}{os.pathsep}{sys.prefix}",
           "PYTHONPATH": str(prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"),
           "LD_LIBRARY_PATH": f"{prefix / 'lib'}{os.pathsep}{os.environ.get('LD_LIBRARY_PATH', '')}",
           "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    result = subprocess.run(
        [sys.executable, str(prefix / "lib" / "ebgan_mdn_ros" / "policy_node"), "--ros-args",
         "-p", "model_directory:=models/no_such_model", "-p", "joint_names:=[shoulder, elbow]"],
        env=env, capture_output=True, text=True, timeout=60, cwd=prefix)
    assert result.returncode == 2, result.stderr
    assert "is not a directory" in result.stderr and str(prefix / "share" / "ebgan_mdn_ros") in result.stderr
