"""pip install path for the Python sources (the trainer, exporter, runtime and nodes).

The messages in msg/ are built by CMakeLists.txt (rosidl); scripts/setup.sh does both.
In a ROS 2 workspace, colcon builds this package through CMakeLists.txt (build_type ament_cmake).
"""
from setuptools import find_packages, setup

setup(
    name="ebgan-mdn",  # not "ebgan_mdn_ros": that distribution is the CMake-installed message package
    version="0.1.0",
    description="EBGAN-MDN multi-modal policies for ROS 2: trainer, ONNX exporter, runtime and node",
    packages=find_packages(include=["ebgan_mdn_ros", "ebgan_mdn_ros.*"]),
    python_requires=">=3.10",
    install_requires=["numpy", "onnxruntime", "PyYAML", "tqdm", "matplotlib", "Pillow", "scipy",
                      "mcap", "mcap-ros2-support", "zstandard"],
    extras_require={"train": ["torch==2.13.0", "onnx", "onnxscript"], "test": ["pytest"]},
    entry_points={"console_scripts": [
        "ebgan-mdn = ebgan_mdn_ros.cli:main",
        "policy_node = ebgan_mdn_ros.node.policy_node:main",
        "sim_arm = ebgan_mdn_ros.node.sim_nodes:main",
        "mujoco_sim = ebgan_mdn_ros.node.mujoco_sim_node:main",
        "goal_pose_relay = ebgan_mdn_ros.node.goal_pose_relay:main",
        "box_reach_goal_source = ebgan_mdn_ros.node.box_reach_goal_source:main",
    ]},
)
