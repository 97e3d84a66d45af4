"""Episodes of the box-reach task for a policy driving the MuJoCo UR5e, and their score.

    python -m ebgan_mdn_ros.node.box_reach_goal_source --ros-args -p episodes:=50 -p seed:=0

Per episode (tasks.box_reach: start and goal each within +-5 cm of (-0.3, 0.5, 0.35) and
(0.3, 0.5, 0.35), the box between them):
1. stop the policy (~/stop): the reset below must not look like a jump to its safety filter, and a
   stopped policy commands nothing;
2. reset the arm at rest to the start (mujoco_sim/reset_position; the joints from the same damped
   least-squares IK, tool down, that the expert's demos start from) and wait until joint_states
   shows it there;
3. publish the goal as geometry_msgs/PoseStamped on goal_pose (as RViz would; the relay turns it into
   the policy's goal array) and wait until the relayed goal carries it, so the policy never decides
   a new episode with the last episode's goal;
4. start the policy (~/start: a new episode, seeded from the measured state);
5. score from flange_pose and contacts: reached = the flange within `tolerance` of the goal before
   `timeout_s`; any arm contact (box, table or itself) while running; the route taken past the box
   (tasks.box_reach.route_of on the flange path); time to goal from the ~/start answer.
One JSON line per episode goes to goal_events; summary() (printed at shutdown) totals them.

Times are the node clock (ROS time): the closed loop runs the sim in real time.
"""
from __future__ import annotations

import sys
import json
import math
import statistics
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import Trigger

from ebgan_mdn_ros.config_base import ConfigError, require
from ebgan_mdn_ros.node import conversions
from ebgan_mdn_ros.node.mujoco_sim_node import RESET_TOPIC
from ebgan_mdn_ros.sim.box_reach_expert import box_reach_arm, draw_episode
from ebgan_mdn_ros.tasks.box_reach import BoxReachConfig, route_of

NODE_NAME = "box_reach_goal_source"
WAITING, STOPPING, RESETTING, GOAL, STARTING, RUNNING, DONE = (
    "waiting", "stopping", "resetting", "goal", "starting", "running", "done")


@dataclass(frozen=True)
class GoalSourceConfig:
    policy_node: str = "policy_node"       # whose ~/stop and ~/start to call
    episodes: int = 0                      # stop after this many (0 = until shutdown)
    timeout_s: float = 8.0                 # s per episode, from the ~/start answer
    tolerance: float = 0.02                # m, flange to goal that counts as reached
    seed: int = 0                          # start and goal draws
    frame_id: str = "world"                # of goal_pose: the sim's base frame (flange_pose's)
    goal_pose_topic: str = "goal_pose"
    relayed_goal_topic: str = "goal"       # the policy's goal array: the episode starts once it shows the goal
    start_tolerance: float = 1e-3          # rad: the arm counts as at the reset position
    patience_s: float = 2.0                # s for a service answer or a reset to show before retrying
    tick_period_s: float = 0.01            # s between looks at the episode's state

    def __post_init__(self):
        require(bool(self.policy_node), "policy_node", self.policy_node, "a node name")
        require(self.episodes >= 0, "episodes", self.episodes, ">= 0 (0 = until shutdown)")
        require(self.timeout_s > 0, "timeout_s", self.timeout_s, "> 0 s")
        require(self.tolerance > 0, "tolerance", self.tolerance, "> 0 m")
        require(self.seed >= 0, "seed", self.seed, ">= 0")
        require(bool(self.frame_id), "frame_id", self.frame_id, "a frame id")
        require(self.start_tolerance > 0, "start_tolerance", self.start_tolerance, "> 0 rad")
        require(self.patience_s > 0, "patience_s", self.patience_s, "> 0 s")
        require(0 < self.tick_period_s <= 0.1, "tick_period_s", self.tick_period_s, "in (0, 0.1] s")


@dataclass
class Episode:
    index: int
    start: np.ndarray               # flange, m
    goal: np.ndarray
    start_joints: np.ndarray        # rad
    started: float = math.nan       # s, node clock, when ~/start answered
    ended: float = math.nan         # s, node clock, when the episode was scored
    reached_after: float = math.nan  # s from started
    min_error: float = math.inf     # m
    error: float = math.inf         # m, at the end
    contacts: Counter = field(default_factory=Counter)  # "arm-other" -> contact messages
    path: list = field(default_factory=list)           # flange positions while running

    def record(self, outcome: str, route: str) -> dict:
        return {"episode": self.index, "outcome": outcome, "reached": outcome == "reached",
                "seconds": None if math.isnan(self.reached_after) else round(self.reached_after, 3),
                "error": round(self.error, 5), "min_error": round(self.min_error, 5), "route": route,
                "contact": bool(self.contacts), "contacts": dict(self.contacts),
                "start": self.start.round(4).tolist(), "goal": self.goal.round(4).tolist(),
                "t_start": self.started, "t_end": self.ended}


class BoxReachGoalSource(Node):
    def __init__(self, node_name: str = NODE_NAME, task: BoxReachConfig = BoxReachConfig(), **kwargs):
        super().__init__(node_name, **kwargs)
        d = GoalSourceConfig()
        self.config = c = GoalSourceConfig(**{name: self.declare_parameter(name, value).value
                                              for name, value in vars(d).items()})
        self.task = task
        self.rng = np.random.default_rng(c.seed)
        self.arm = box_reach_arm(task)  # kinematics only (IK of the start), never stepped
        self.records: list[dict] = []
        self.episode: Episode | None = None
        self.phase, self._since = WAITING, self._now()
        self._position: np.ndarray | None = None
        self._relayed: np.ndarray | None = None
        self._touching: dict = {}
        self._answered: str | None = None   # which service call answered since the phase began
        self._pose_pub = self.create_publisher(PoseStamped, c.goal_pose_topic, QoSProfile(depth=10))
        self._event_pub = self.create_publisher(String, "goal_events", QoSProfile(depth=50))
        self._reset_pub = self.create_publisher(Float64MultiArray, RESET_TOPIC, QoSProfile(depth=10))
        self._stop = self.create_client(Trigger, f"{c.policy_node}/stop")
        self._start = self.create_client(Trigger, f"{c.policy_node}/start")
        self.create_subscription(JointState, "joint_states", self._on_state, qos_profile_sensor_data)
        self.create_subscription(PoseStamped, "flange_pose", self._on_flange, QoSProfile(depth=50))
        self.create_subscription(String, "contacts", self._on_contacts, QoSProfile(depth=50))
        self.create_subscription(Float64MultiArray, c.relayed_goal_topic, self._on_relayed, QoSProfile(depth=10))
        self.create_timer(c.tick_period_s, self._tick)

    @property
    def finished(self) -> bool:
        return self.phase == DONE

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # -- inputs -----------------------------------------------------------------------------------
    def _on_state(self, msg: JointState) -> None:
        self._position = np.asarray(msg.position, dtype=np.float64)

    def _on_relayed(self, msg: Float64MultiArray) -> None:
        self._relayed = conversions.multiarray_values(msg)

    def _on_contacts(self, msg: String) -> None:
        report = json.loads(msg.data)
        self._touching = {f"{c['arm']}-{c['other']}": True for c in report.get("contacts", [])}
        if self.phase == RUNNING and self.episode is not None:
            self.episode.contacts.update(self._touching.keys())

    def _on_flange(self, msg: PoseStamped) -> None:
        if self.phase != RUNNING or self.episode is None:
            return
        p = msg.pose.position
        position = np.array([p.x, p.y, p.z])
        episode = self.episode
        episode.path.append(position)
        episode.error = float(np.linalg.norm(position - episode.goal))
        episode.min_error = min(episode.min_error, episode.error)
        if episode.error <= self.config.tolerance and math.isnan(episode.reached_after):
            episode.reached_after = self._now() - episode.started
            self._finish("reached")

    # -- the episode ------------------------------------------------------------------------------
    def _tick(self) -> None:
        c, now = self.config, self._now()
        waited = now - self._since
        if self.phase == WAITING:
            # Discovery: the policy's services, the relay and the sim must all be there.
            if (self._stop.service_is_ready() and self._start.service_is_ready()
                    and self._pose_pub.get_subscription_count() > 0 and self._position is not None):
                self._begin_episode()
        elif self.phase == STOPPING:
            if self._answered == "stop" or waited > c.patience_s:
                self._reset_arm()
        elif self.phase == RESETTING:
            target = self.episode.start_joints
            if self._position is not None and np.abs(self._position - target).max() < c.start_tolerance:
                self._publish_goal()
            elif waited > c.patience_s:
                self._reset_arm()
        elif self.phase == GOAL:
            if self._relayed is not None and self._relayed.shape == (3,) and \
                    np.allclose(self._relayed, self.episode.goal, atol=1e-9):
                self._set_phase(STARTING)
                self._call(self._start, "start")
            elif waited > c.patience_s:
                self.get_logger().warning(f"{c.relayed_goal_topic} does not show goal {self.episode.goal.round(4).tolist()}"
                                          f" after {waited:.1f} s (did the relay refuse it? its log says why): resending",
                                          throttle_duration_sec=5.0)
                self._publish_goal()
        elif self.phase == STARTING:
            if self._answered == "start":
                self.episode.started = self._now()
                if self._touching:  # already touching when the policy takes over counts too
                    self.episode.contacts.update(self._touching.keys())
                self._set_phase(RUNNING)
            elif waited > c.patience_s:
                self._call(self._start, "start")
                self._since = now
        elif self.phase == RUNNING:
            if now - self.episode.started > c.timeout_s:
                self._finish("timeout")

    def _set_phase(self, phase: str) -> None:
        self.phase, self._since, self._answered = phase, self._now(), None

    def _call(self, client, name: str) -> None:
        def done(future) -> None:
            if self.phase in (STOPPING, STARTING):
                self._answered = name
        client.call_async(Trigger.Request()).add_done_callback(done)  # never wait inside a callback

    def _begin_episode(self) -> None:
        c = self.config
        if c.episodes and len(self.records) >= c.episodes:
            self._set_phase(DONE)
            return
        self.episode = self._draw_episode(len(self.records))
        self._set_phase(STOPPING)
        self._call(self._stop, "stop")

    def _draw_episode(self, index: int) -> Episode:
        return Episode(index, *draw_episode(self.arm, self.rng, self.task))

    def _reset_arm(self) -> None:
        self._set_phase(RESETTING)
        self._position = None  # only a state after this reset may show the arm there
        self._reset_pub.publish(Float64MultiArray(data=conversions.float64s(self.episode.start_joints)))

    def _publish_goal(self) -> None:
        self._set_phase(GOAL)
        msg = PoseStamped()
        msg.header.frame_id = self.config.frame_id
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in self.episode.goal)
        # tool pointing down (the task's orientation; the relay and the model ignore it): x 180 deg
        msg.pose.orientation.w, msg.pose.orientation.x = 0.0, 1.0
        self._pose_pub.publish(msg)

    def _finish(self, outcome: str) -> None:
        episode = self.episode
        episode.ended = self._now()
        route = route_of(np.array(episode.path), self.task) if episode.path else "none"
        record = episode.record(outcome, route)
        self.records.append(record)
        self._event_pub.publish(String(data=json.dumps(record)))
        self.get_logger().info(f"episode {episode.index}: {outcome}, route {route}, "
                               f"{record['seconds']} s, error {record['error']:.4f} m"
                               + (f", CONTACT {dict(episode.contacts)}" if episode.contacts else ""))
        self._begin_episode()  # stops the policy first

    def summary(self) -> dict:
        return summarize(self.records)

    def summary_text(self) -> str:
        return summary_text(self.summary())


def summarize(records: list[dict]) -> dict:
    n = len(records)
    reached = [r for r in records if r["reached"]]
    routes = Counter(r["route"] for r in records)
    times = [r["seconds"] for r in reached]
    return {"episodes": n, "reached": len(reached), "success_rate": len(reached) / n if n else math.nan,
            "contact_episodes": sum(r["contact"] for r in records),
            "contact_rate": sum(r["contact"] for r in records) / n if n else math.nan,
            "routes": dict(routes), "route_shares": {k: v / n for k, v in routes.items()} if n else {},
            "mean_seconds_to_goal": statistics.fmean(times) if times else math.nan,
            "median_seconds_to_goal": statistics.median(times) if times else math.nan,
            "mean_final_error": statistics.fmean(r["error"] for r in records) if n else math.nan}


def summary_text(s: dict) -> str:
    if not s["episodes"]:
        return "box reach: no episode finished"
    routes = ", ".join(f"{k} {v} ({100 * s['route_shares'][k]:.0f} %)" for k, v in sorted(s["routes"].items()))
    return (f"box reach: reached {s['reached']}/{s['episodes']} ({100 * s['success_rate']:.1f} %), "
            f"contact in {s['contact_episodes']} ({100 * s['contact_rate']:.1f} %), routes: {routes}, "
            f"time to goal mean {s['mean_seconds_to_goal']:.2f} s (median {s['median_seconds_to_goal']:.2f} s)")


def main(argv: list[str] | None = None) -> int:
    from ebgan_mdn_ros.node.process import run_nodes
    return run_nodes(NODE_NAME, BoxReachGoalSource, argv, startup_errors=(ConfigError, ValueError),
                     on_stop=lambda nodes: print(f"[{NODE_NAME}] {nodes[0].summary_text()}", flush=True),
                     done=lambda nodes: nodes[0].finished)

if __name__ == "__main__":
    sys.exit(main())
