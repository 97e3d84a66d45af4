"""The pip set-up (scripts/setup.sh) gives the venv the layout of a colcon install, so `ros2 launch` works on it.

launch_ros finds a package through the ament index (`<prefix>/share/ament_index/resource_index/packages/
<package>`) and its executables only in `<prefix>/lib/<package>/`; `.venv/bin` (pip's console scripts)
is not looked at. This mirrors test_colcon_build.py for the venv prefix (`sys.prefix`) as setup.sh left it.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = "ebgan_mdn_ros"
PREFIX = Path(sys.prefix)
EXECUTABLES = ("policy_node", "sim_arm", "mujoco_sim", "goal_pose_relay", "box_reach_goal_source", "ebgan-mdn")
ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(sys.prefix == sys.base_prefix, reason="not running in the venv scripts/setup.sh makes")


def _bare_env() -> dict[str, str]:
    """An environment without the venv activated (no venv bin on PATH): what a launch system may pass."""
    venv_bin = str(PREFIX / "bin")
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != venv_bin)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    return {**env, "PATH": path or "/usr/bin:/bin", "AMENT_PREFIX_PATH": str(PREFIX),
            "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_DOMAIN_ID": os.environ.get("ROS_DOMAIN_ID", "75")}


def test_the_ament_index_names_the_package_in_the_venv():
    assert (PREFIX / "share" / "ament_index" / "resource_index" / "packages" / PACKAGE).is_file()
    assert (PREFIX / "share" / PACKAGE / "package.xml").is_file()
    assert (PREFIX / "share" / PACKAGE / "launch" / "policy.launch.py").is_file()


@pytest.mark.parametrize("name", EXECUTABLES)
def test_executables_are_where_launch_ros_looks(name):
    # launch_ros: get_package_prefix(package) (the ament index) + lib/<package>/<executable>
    from ament_index_python.packages import get_package_prefix
    os.environ.setdefault("AMENT_PREFIX_PATH", str(PREFIX))
    path = Path(get_package_prefix(PACKAGE)) / "lib" / PACKAGE / name
    assert path.is_file(), f"{path} is missing: scripts/setup.sh must install it"
    assert os.access(path, os.X_OK), f"{path} is not executable"
    shebang = path.read_text().splitlines()[0]
    # The venv's own interpreter: launch may start it without the venv on PATH.
    assert shebang.startswith("#!") and Path(shebang[2:].split()[0]).resolve() == Path(sys.executable).resolve(), shebang


def test_the_installed_policy_node_runs_with_the_venv_python_and_refuses_a_missing_model(tmp_path):
    executable = PREFIX / "lib" / PACKAGE / "policy_node"
    result = subprocess.run(
        [str(executable), "--ros-args", "-p", "model_directory:=models/no_such_model",
         "-p", "joint_names:=[shoulder, elbow]"],
        env=_bare_env(), capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert "is not a directory" in result.stderr and "no_such_model" in result.stderr, result.stderr


def test_the_installed_cli_runs_with_the_venv_python():
    result = subprocess.run([str(PREFIX / "lib" / PACKAGE / "ebgan-mdn"), "validate",
                             str(PREFIX / "share" / PACKAGE / "models" / "ik_2link")],
                            env=_bare_env(), capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
