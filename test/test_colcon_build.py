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
                 "config/real_arm.yaml", "config/sim_ur5e.yaml", "config/real_ur5e.yaml", "package.xml"):
        assert (share / name).is_file(), name
    assert (share / "models").is_dir()
    for model in (ROOT / "models").glob("*/manifest.json"):
        assert (share / "models" / model.parent.name / "manifest.json").is_file(), model.parent.name
    for executable in ("policy_node", "sim_arm", "mujoco_sim", "goal_pose_relay", "box_reach_goal_source"):
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


def _install_env(prefix: Path, env: dict) -> dict:
    """What `. install/setup.bash` sets for this package."""
    return {**env, "AMENT_PREFIX_PATH": f"{prefix}{os.pathsep}{sys.prefix}",
            "PYTHONPATH": str(_site_packages(prefix)),
            "LD_LIBRARY_PATH": f"{prefix / 'lib'}{os.pathsep}{os.environ.get('LD_LIBRARY_PATH', '')}",
            "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}


def _site_packages(prefix: Path) -> Path:
    return prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


IMPORT_ALL = """
import importlib, pkgutil, sys
import ebgan_mdn_ros
site = sys.argv[1]
assert all(p.startswith(site) for p in ebgan_mdn_ros.__path__), ebgan_mdn_ros.__path__
names = [m.name for m in pkgutil.walk_packages(ebgan_mdn_ros.__path__, "ebgan_mdn_ros.")]
for name in names:
    module = importlib.import_module(name)
    assert module.__file__.startswith(site), (name, module.__file__)
print("imported", len(names))
"""


def test_every_module_imports_from_the_install(installed):
    """Each subpackage keeps its __init__.py in the install (no namespace portions, nothing from the checkout)."""
    prefix, env = installed
    site = _site_packages(prefix)
    expected = sorted(p.relative_to(ROOT).with_suffix("") for p in (ROOT / "ebgan_mdn_ros").rglob("*.py"))
    for module in expected:
        assert (site / module).with_suffix(".py").is_file(), module
    result = subprocess.run([sys.executable, "-c", IMPORT_ALL, str(site)], env=_install_env(prefix, env),
                            capture_output=True, text=True, timeout=120, cwd=prefix)
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.split()[-1]) >= len(expected) - 1


def test_installed_validate_accepts_the_installed_model(installed):
    prefix, env = installed
    result = subprocess.run([sys.executable, str(prefix / "lib" / "ebgan_mdn_ros" / "ebgan-mdn"), "validate",
                             str(prefix / "share" / "ebgan_mdn_ros" / "models" / "ik_2link")],
                            env=_install_env(prefix, env), capture_output=True, text=True, timeout=120, cwd=prefix)
    assert result.returncode == 0, result.stdout + result.stderr


DECISION_PROBE = """
import sys, time
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from ebgan_mdn_ros.msg import Decision
rclpy.init()
node = rclpy.create_node("colcon_probe")
decisions = []
node.create_subscription(Decision, "/policy_node/decision", decisions.append, 10)
states = node.create_publisher(JointState, "/joint_states", qos_profile_sensor_data)
goals = node.create_publisher(Float64MultiArray, "/goal", 1)
deadline = time.monotonic() + float(sys.argv[1])
while not decisions and time.monotonic() < deadline:
    msg = JointState(name=["shoulder", "elbow"], position=[0.3, 1.2], velocity=[0.0, 0.0])
    msg.header.stamp = node.get_clock().now().to_msg()
    states.publish(msg)
    goals.publish(Float64MultiArray(data=[3.0, 2.0]))
    rclpy.spin_once(node, timeout_sec=0.05)
print("decisions", len(decisions), list(decisions[0].action) if decisions else None)
sys.exit(0 if decisions else 1)
"""


@pytest.mark.ros
def test_installed_policy_node_serves_the_installed_model(installed):
    prefix, env = installed
    env = {**_install_env(prefix, env), "ROS_DOMAIN_ID": str(int(os.environ.get("ROS_DOMAIN_ID", "0")) % 100 + 110)}
    node = subprocess.Popen(
        [sys.executable, str(prefix / "lib" / "ebgan_mdn_ros" / "policy_node"), "--ros-args",
         "--params-file", str(prefix / "share" / "ebgan_mdn_ros" / "config" / "sim_ik.yaml")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=prefix)
    try:
        probe = subprocess.run([sys.executable, "-c", DECISION_PROBE, "30"], env=env,
                               capture_output=True, text=True, timeout=90, cwd=prefix)
    finally:
        node.terminate()
        output = node.communicate(timeout=20)[0]
    assert probe.returncode == 0, f"{probe.stdout}{probe.stderr[-2000:]}\nnode:\n{output[-3000:]}"
    assert probe.stdout.startswith("decisions")
