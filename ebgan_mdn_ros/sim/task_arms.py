"""The small arms of the 2-D tasks as MuJoCo models, on the same simulator as the UR5e.

- "ik": the planar 2-link arm (tasks/planar_arm.py: links 3 m and 3 m, joints `shoulder` and
  `elbow`, +-pi), lying in the horizontal plane so that gravity does not load it;
- "multiroute": a 2-axis gantry (`x_joint`, `y_joint`, -2 to 22 m) over the task's plane.

Each joint is a position servo (MujocoArm tunes it critically damped at the preset's natural
frequency: a small step rises in ~40 ms on the arm, ~16 ms on the gantry, which must follow a
multi-route displacement of up to 2 m per decision). Targets are clamped to the joint limits (the
actuators' ctrlrange), as a ros2_control joint limiter clamps position commands. The MJCF is generated here from the task's
geometry, so the link lengths have one home. Collisions are off: these tasks have no obstacles.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ebgan_mdn_ros.sim.mujoco_arm import ArmSimConfig, SceneConfig
from ebgan_mdn_ros.tasks.planar_arm import LINK_LENGTHS

TIP_SITE = "tip"


@dataclass(frozen=True)
class TaskArm:
    joint_names: tuple[str, ...]
    position_lower: tuple[float, ...]       # rad or m
    position_upper: tuple[float, ...]
    initial_position: tuple[float, ...]     # the home keyframe
    servo_natural_frequency: float          # rad/s


TASK_ARMS = {
    "ik": TaskArm(("shoulder", "elbow"), (-math.pi, -math.pi), (math.pi, math.pi), (0.3, 1.2), 80.0),
    "multiroute": TaskArm(("x_joint", "y_joint"), (-2.0, -2.0), (22.0, 22.0), (0.0, 0.0), 200.0),
}
ROBOTS = {"planar_2link": "ik", "gantry_xy": "multiroute"}  # the sim node's robot names for them


def _mjcf(model: str, arm: TaskArm, joint_default: str, bodies: str) -> str:
    """What both arms share: no collisions, one position servo per joint whose ctrlrange is the
    joint's range, and the home keyframe."""
    actuators = "\n".join(
        f'    <position name="{name}" joint="{name}" kp="1" ctrlrange="{lo} {hi}"/>'
        for name, lo, hi in zip(arm.joint_names, arm.position_lower, arm.position_upper))
    return f"""<mujoco model="{model}">
  <compiler angle="radian"/>
  <default><geom contype="0" conaffinity="0" rgba="0.3 0.5 0.8 1"/><joint {joint_default} limited="true" damping="0"/></default>
  <worldbody>
{bodies}
  </worldbody>
  <actuator>
{actuators}
  </actuator>
  <keyframe><key name="home" qpos="{' '.join(map(str, arm.initial_position))}"/></keyframe>
</mujoco>"""


def planar_2link_mjcf(arm: TaskArm = TASK_ARMS["ik"], link_lengths=LINK_LENGTHS) -> str:
    l1, l2 = link_lengths
    (s_lo, e_lo), (s_hi, e_hi) = arm.position_lower, arm.position_upper
    return _mjcf("planar_2link", arm, 'axis="0 0 1"', f"""    <body name="upper_arm" pos="0 0 0.5">
      <joint name="{arm.joint_names[0]}" range="{s_lo} {s_hi}"/>
      <geom type="capsule" fromto="0 0 0 {l1} 0 0" size="0.1" mass="10"/>
      <body name="forearm" pos="{l1} 0 0">
        <joint name="{arm.joint_names[1]}" range="{e_lo} {e_hi}"/>
        <geom type="capsule" fromto="0 0 0 {l2} 0 0" size="0.08" mass="6"/>
        <site name="{TIP_SITE}" pos="{l2} 0 0"/>
      </body>
    </body>""")


def gantry_mjcf(arm: TaskArm = TASK_ARMS["multiroute"]) -> str:
    (x_lo, y_lo), (x_hi, y_hi) = arm.position_lower, arm.position_upper
    return _mjcf("gantry_xy", arm, 'type="slide"', f"""    <body name="carriage_x" pos="0 0 0.5">
      <joint name="{arm.joint_names[0]}" axis="1 0 0" range="{x_lo} {x_hi}"/>
      <geom type="box" size="0.3 0.3 0.05" mass="20"/>
      <body name="carriage_y">
        <joint name="{arm.joint_names[1]}" axis="0 1 0" range="{y_lo} {y_hi}"/>
        <geom type="box" size="0.2 0.2 0.05" pos="0 0 -0.1" mass="10"/>
        <site name="{TIP_SITE}" pos="0 0 -0.15"/>
      </body>
    </body>""")


def task_arm_config(task: str, timestep_s: float = 0.001) -> ArmSimConfig:
    """The MujocoArm configuration of a task's arm (no table, no obstacles)."""
    if task not in TASK_ARMS:
        raise ValueError(f"task: {task!r} is unknown, expected one of {sorted(TASK_ARMS)}")
    arm = TASK_ARMS[task]
    mjcf = planar_2link_mjcf(arm) if task == "ik" else gantry_mjcf(arm)
    return ArmSimConfig(robot_mjcf=mjcf, scene=SceneConfig(table=False), timestep_s=timestep_s,
                        servo_natural_frequency=arm.servo_natural_frequency, flange_site=TIP_SITE)
