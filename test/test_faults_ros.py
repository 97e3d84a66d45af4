"""Fault injection over real rclpy and DDS: the policy node runs as its own process, as on a robot.

An independent probe (its own rclpy context, so its own DDS participant) plays the robot: it
publishes JointState and counts the commands and Decision messages that come back. Claims checked:
- broken or mismatched models (truncated file, wrong tensor sizes, wrong joint names, NaN weights,
  sha256 mismatch, too slow) are refused and the old model keeps serving;
- NaN, inf, too-short, unknown-joint and stale joint states never produce a command;
- a hot swap while states arrive at 1 kHz for >= 10 s costs no tick: every state gets a command;
- the node keeps working when the robot process (state publisher + controller) is killed and restarts.
Assertions are about behaviour, never timing. The figures (ticks lost, latency around swaps) are
printed: `pytest -s test/test_faults_ros.py`.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from rcl_interfaces.msg import Parameter as ParameterMsg  # noqa: E402
from rcl_interfaces.msg import ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.experimental import EventsExecutor  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from ebgan_mdn_ros.runtime.manifest import sha256_of  # noqa: E402
from ebgan_mdn_ros.msg import Decision, ModelInfo  # noqa: E402

pytestmark = pytest.mark.ros
DOMAIN_ID = 187                  # this module's own ROS domain (others use other ids)
# ...and a namespace of its own, in case another run (other tests pick domains at random) shares it
NAMESPACE = f"/faults_{os.getpid()}"
DISCOVERY_S = 10.0               # discovery takes ms, about 1 in 6 times ~3 s: wait well past that
RESULT_S = 30.0                  # a swap request (load + validation on the node's worker) to its result
JOINTS = ("j1", "j2")
CONDITIONS = ("j1.position", "j2.position")
COMMANDS = "forward_position_controller/commands"
NODE = "policy_node"             # relative: inside NAMESPACE
NUM_CANDIDATES = 64


# -- model directories ---------------------------------------------------------------------------------

def _edit_manifest(model_dir: Path, edit) -> None:
    path = model_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest, indent=2))


def _rehash(model_dir: Path, role: str = "decision") -> None:
    digest = sha256_of(model_dir / f"{role}.onnx")
    _edit_manifest(model_dir, lambda m: m[role].__setitem__("sha256", digest))


def _add_dead_weight(model, width: int, layers: int) -> None:
    """Make the decision graph slow without making it big or changing its outputs."""
    from onnx import TensorProto, helper, numpy_helper
    graph = model.graph
    for node in graph.node:
        node.output[:] = ["energies_fast" if name == "energies" else name for name in node.output]
    action_size = graph.input[1].type.tensor_type.shape.dim[-1].dim_value

    def constant(name, shape_name, value):
        return helper.make_node("ConstantOfShape", [shape_name], [name],
                                value=helper.make_tensor("value", TensorProto.FLOAT, [1], [value]))
    nodes = [constant("slow_in", "slow_in_shape", 1e-3), constant("slow_w", "slow_shape", 1.0 / width),
             helper.make_node("MatMul", ["noise", "slow_in"], ["slow_0"])]
    nodes += [helper.make_node("MatMul", [f"slow_{i}", "slow_w"], [f"slow_{i + 1}"]) for i in range(layers)]
    nodes += [helper.make_node("ReduceSum", [f"slow_{layers}"], ["slow_sum"], keepdims=0),
              helper.make_node("Mul", ["slow_sum", "slow_zero"], ["slow_nothing"]),
              helper.make_node("Add", ["energies_fast", "slow_nothing"], ["energies"])]
    graph.initializer.extend([numpy_helper.from_array(np.array([action_size, width], np.int64), "slow_in_shape"),
                              numpy_helper.from_array(np.array([width, width], np.int64), "slow_shape"),
                              numpy_helper.from_array(np.array(0.0, np.float32), "slow_zero")])
    graph.node.extend(nodes)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    sys.path.insert(0, str(Path(__file__).parent))
    from model_factory import build_model_dir
    root = tmp_path_factory.mktemp("fault_models")
    good = {name: build_model_dir(root / name, CONDITIONS, JOINTS, seed=seed, model_version=name,
                                  hidden_sizes=(32, 32)) for name, seed in (("a", 0), ("b", 1))}
    bad = {}

    def copy_of_a(name):
        bad[name] = Path(shutil.copytree(good["a"], root / name))
        return bad[name]

    # truncated: half a file whose manifest hash matches it, so onnxruntime itself must refuse it
    path = copy_of_a("truncated") / "decision.onnx"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    _rehash(bad["truncated"])
    # wrong sizes: a graph with 3 actions under a manifest that promises 2 (hash consistent)
    three = build_model_dir(root / "three_actions", CONDITIONS, JOINTS + ("j3",), seed=3, hidden_sizes=(8,))
    shutil.copyfile(three / "decision.onnx", copy_of_a("wrong_sizes") / "decision.onnx")
    _rehash(bad["wrong_sizes"])
    bad["wrong_joints"] = build_model_dir(root / "wrong_joints", CONDITIONS, ("j1", "j3"), seed=4,
                                          hidden_sizes=(8,))
    # NaN weights: every float initializer of the first MatMul/Gemm weight set to NaN
    import onnx
    from onnx import numpy_helper
    path = copy_of_a("nan_weights") / "decision.onnx"
    graph = onnx.load(str(path))
    for init in graph.graph.initializer:
        values = numpy_helper.to_array(init)
        if values.dtype == np.float32 and values.ndim == 2:
            init.CopyFrom(numpy_helper.from_array(np.full_like(values, np.nan), init.name))
            break
    onnx.save(graph, str(path))
    _rehash(bad["nan_weights"])
    # hash mismatch: the manifest names another file content
    _edit_manifest(copy_of_a("hash_mismatch"), lambda m: m["decision"].__setitem__("sha256", "0" * 64))
    # too slow: model a plus, beside its energy output, 72 products of [K,1024] x [1024,1024] made from
    # constants of shape (no storage) and added as 0 x their sum: the same answers, well over the budget
    path = copy_of_a("too_slow") / "decision.onnx"
    graph = onnx.load(str(path))
    _add_dead_weight(graph, width=1024, layers=72)  # ~3x the 20 ms budget even on an idle machine
    onnx.save(graph, str(path))
    _rehash(bad["too_slow"])
    return {**good, **bad}


# -- the node process ------------------------------------------------------------------------------------

def _ros_env() -> dict:
    return {**os.environ, "ROS_DOMAIN_ID": str(DOMAIN_ID), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
            "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def node(models, tmp_path_factory):
    parameters = {"model_directory": str(models["a"]), "joint_names": list(JOINTS), "control_rate_hz": 0.0,
                  "dry_run": False, "num_candidates": NUM_CANDIDATES, "publish_candidates": False,
                  # the shipped configs' limits (config/sim_ik.yaml), so a jump or a limit breach would show
                  "state_timeout_s": 0.5, "max_step": 0.05, "max_velocity": 2.0,
                  # p99 a new model must meet: good models here take ~0.1 ms, the slow one ~40 ms
                  "swap_latency_budget_s": 0.02, "diagnostics_period_s": 0.2,
                  # a model load holds Python ~10 ms, and this 2-core VM stalls the probe now and then:
                  # queue states through it (answered late, not lost)
                  "state_queue_depth": 200}
    params_file = tmp_path_factory.mktemp("node") / "params.yaml"
    params_file.write_text(json.dumps({"/**": {"ros__parameters": parameters}}))  # JSON is YAML
    log = open(params_file.parent / "node.log", "w")
    command = [sys.executable, "-m", "ebgan_mdn_ros.node.policy_node", "--ros-args", "-r", f"__ns:={NAMESPACE}",
               "--params-file", str(params_file)]
    process = subprocess.Popen(command, env=_ros_env(), stdout=log, stderr=log)
    yield process
    process.send_signal(signal.SIGINT)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
    log.close()
    print(f"\n[policy_node log: {log.name}]")


# -- the probe: a robot stand-in in its own context ------------------------------------------------------

def stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


class Probe:
    """Publishes joint states; records commands, decisions and model info; calls the node's services.

    Spins an EventsExecutor (always with a timeout) on its own thread; the test thread publishes.
    """

    def __init__(self):
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=DOMAIN_ID)
        self.node = rclpy.create_node("fault_probe", namespace=NAMESPACE, context=self.context)
        self.commands: list[tuple[float, list]] = []      # (perf_counter at receipt, values)
        self.decisions: dict[int, Decision] = {}          # by the stamp of the state answered
        self.decision_times: dict[int, float] = {}
        self.infos: list[ModelInfo] = []
        self.diagnostics: list[dict] = []               # the node's status values, oldest first
        n = self.node
        self.state_pub = n.create_publisher(JointState, "joint_states", QoSProfile(depth=10))
        n.create_subscription(Float64MultiArray, COMMANDS,
                              lambda m: self.commands.append((time.perf_counter(), list(m.data))), 1000)
        n.create_subscription(Decision, f"{NODE}/decision", self._on_decision, 1000)
        n.create_subscription(ModelInfo, f"{NODE}/model_info", self.infos.append,
                              QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        n.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.set_parameters_client = n.create_client(SetParameters, f"{NODE}/set_parameters")
        self.triggers = {name: n.create_client(Trigger, f"{NODE}/{name}") for name in ("reload", "rollback")}
        self.executor = EventsExecutor(context=self.context)
        self.executor.add_node(n)
        self._stop = False
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _on_decision(self, msg: Decision) -> None:
        key = stamp_ns(msg)
        self.decisions[key] = msg
        self.decision_times[key] = time.perf_counter()

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:       # /diagnostics is global: keep this module's node only
            if status.hardware_id == f"{NAMESPACE}/{NODE}":
                self.diagnostics.append({kv.key: kv.value for kv in status.values})

    def _spin(self) -> None:
        while not self._stop and self.context.ok():
            self.executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        self._stop = True
        self._thread.join(5.0)
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)

    # waiting and publishing
    @staticmethod
    def wait(predicate, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return bool(predicate())

    def wait_for_node(self) -> None:
        assert self.wait(lambda: self.state_pub.get_subscription_count() >= 1
                         and self.node.count_publishers(COMMANDS) >= 1
                         and self.node.count_publishers(f"{NODE}/decision") >= 1
                         and self.set_parameters_client.service_is_ready()
                         and all(c.service_is_ready() for c in self.triggers.values())
                         and self.infos, DISCOVERY_S + 20.0), "the policy node did not come up (see its log)"

    def publish(self, names=JOINTS, positions=(0.1, -0.2), stamp: int | None = None) -> int:
        stamp = time.time_ns() if stamp is None else stamp
        msg = JointState(name=list(names), position=[float(p) for p in positions])
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        self.state_pub.publish(msg)
        return stamp

    def answered(self, stamp: int, timeout_s: float = 5.0) -> Decision | None:
        self.wait(lambda: stamp in self.decisions, timeout_s)
        return self.decisions.get(stamp)

    # the node's interfaces
    def set_model_directory(self, model_dir) -> None:
        value = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=str(model_dir))
        future = self.set_parameters_client.call_async(
            SetParameters.Request(parameters=[ParameterMsg(name="model_directory", value=value)]))
        assert self.wait(future.done, 10.0) and future.result().results[0].successful

    def trigger(self, name: str) -> Trigger.Response:
        future = self.triggers[name].call_async(Trigger.Request())
        assert self.wait(future.done, 10.0)
        return future.result()

    def swap_result(self, after: int, timeout_s: float = RESULT_S) -> ModelInfo:
        """The first model info published after the first ``after`` ones."""
        assert self.wait(lambda: len(self.infos) > after, timeout_s), "no swap result"
        return self.infos[after]


@pytest.fixture(scope="module")
def probe(node):
    probe = Probe()
    probe.wait_for_node()
    # The node seeds an episode from several agreeing states before it commands anything.
    assert probe.wait(lambda: probe.commands or not probe.publish(), DISCOVERY_S), "the node never commanded"
    yield probe
    probe.close()


def serving_version(probe: Probe) -> str:
    stamp = probe.publish()
    decision = probe.answered(stamp)
    assert decision is not None, "the node did not answer a good state"
    assert len(decision.command) == len(JOINTS), decision.safety_note
    return decision.model_version


# -- models refused, the old one serving ---------------------------------------------------------------

@pytest.mark.parametrize("fault, reason", [
    ("truncated", "cannot be loaded by onnxruntime"),
    ("wrong_sizes", "has size 3 on axis 2"),
    ("wrong_joints", "joint names differ"),
    ("nan_weights", "not finite"),
    ("hash_mismatch", "has sha256"),
    ("too_slow", "over the budget"),
])
def test_a_bad_model_is_refused_and_the_old_one_keeps_serving(probe, models, fault, reason):
    before = serving_version(probe)
    seen = len(probe.infos)
    probe.set_model_directory(models[fault])
    info = probe.swap_result(seen)
    print(f"\n  {fault}: {info.last_swap_result}")
    assert info.last_swap_result.startswith("rejected: ") and reason in info.last_swap_result
    assert info.model_version == before and info.model_directory != str(models[fault])
    assert serving_version(probe) == before


# -- states that must never become a command -----------------------------------------------------------

@pytest.mark.parametrize("kind", ["nan", "inf", "too_short", "unknown_joint", "stale"])
def test_a_bad_state_never_produces_a_command(probe, kind):
    serving_version(probe)                           # the node answers good states
    commands = len(probe.commands)
    names, positions, stamp = JOINTS, (0.1, -0.2), None
    if kind == "nan":
        positions = (math.nan, 0.0)
    elif kind == "inf":
        positions = (0.0, -math.inf)
    elif kind == "too_short":
        positions = (0.1,)
    elif kind == "unknown_joint":
        names = ("j1", "elbow")
    elif kind == "stale":
        stamp = time.time_ns() - 5_000_000_000       # 5 s old, the node's timeout is 0.5 s
    bad = probe.publish(names, positions, stamp)
    time.sleep(0.3)
    good = probe.publish()                           # the answer to this one proves the bad one was read
    assert probe.answered(good) is not None
    decision = probe.decisions.get(bad)
    assert decision is None or (len(decision.command) == 0 and decision.safety_note == "stale_state")
    assert kind != "stale" or decision is not None   # a stale state is decided on, then held back
    assert len(probe.commands) == commands + 1       # the good state's command only


def test_diagnostics_count_the_faults(probe):
    assert probe.wait(lambda: probe.diagnostics, 5.0), "no /diagnostics from the node"
    before = probe.diagnostics[-1]
    probe.publish(positions=(math.nan, 0.0))
    time.sleep(0.1)
    probe.publish(stamp=time.time_ns() - 5_000_000_000)
    time.sleep(0.1)
    serving_version(probe)

    def counted():
        now = probe.diagnostics[-1]
        return (int(now["states_rejected"]) > int(before["states_rejected"])
                and int(now["safety_stale"]) > int(before["safety_stale"])
                and int(now["decisions"]) > int(before["decisions"]))
    assert probe.wait(counted, 5.0), (before, probe.diagnostics[-1])
    now = probe.diagnostics[-1]
    print(f"\n  diagnostics: states_rejected {now['states_rejected']}, safety_stale {now['safety_stale']}, "
          f"safety_held {now['safety_held']}, last_swap_result {now['last_swap_result'][:60]!r}, "
          f"latency p99 {now['latency_p99_us']} us")
    assert now["model_version"] == "a" and "non-finite" in now["last_reject_reason"]


# -- a swap under a 1 kHz state stream -------------------------------------------------------------------

def stream(probe: Probe, seconds: float, rate_hz: float = 1000.0, schedule=(), models=None):
    """Publish states at ``rate_hz`` (sleep-paced, catching up when late) and run ``schedule``'s
    (time into the stream, action) on side threads. Returns (stamps sent, send times, request times)."""
    schedule = list(schedule)
    sent, send_times, requests = [], [], []
    period = 1.0 / rate_hz
    start = time.perf_counter()
    for tick in range(int(seconds * rate_hz)):
        due = start + tick * period
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        send_times.append(time.perf_counter())
        sent.append(probe.publish(positions=(0.1 + 0.01 * math.sin(tick * 1e-3), -0.2)))
        if schedule and tick * period >= schedule[0][0]:
            _, action = schedule.pop(0)
            requests.append(time.perf_counter())
            threading.Thread(target=_run_action, args=(probe, models, action), daemon=True).start()
    probe.wait(lambda: all(s in probe.decisions for s in sent[-20:]), 3.0)
    time.sleep(0.3)
    return sent, np.array(send_times), requests


def _run_action(probe: Probe, models, action: str) -> None:
    if action == "model_directory b":
        probe.set_model_directory(models["b"])
    elif action == "model_directory bad":
        probe.set_model_directory(models["hash_mismatch"])
    else:
        assert probe.trigger(action).success


def ensure_serving(probe: Probe, models, name: str) -> None:
    if serving_version(probe) != name:
        seen = len(probe.infos)
        probe.set_model_directory(models[name])
        assert probe.swap_result(seen).last_swap_result == "swapped"


def test_swaps_under_a_1khz_state_stream_lose_no_tick(probe, models):
    assert serving_version(probe) == "a"
    try:
        # baseline: can this machine carry 1 kHz through the node at all right now?
        commands_before = len(probe.commands)
        base_sent, _, _ = stream(probe, 3.0)
        base_lost = sum(s not in probe.decisions for s in base_sent)
        base_commands = len(probe.commands) - commands_before
        # swap to b, roll back to a, reload b, and refuse a broken model, all inside 12 s at 1 kHz
        infos_before, commands_before = len(probe.infos), len(probe.commands)
        schedule = [(2.0, "model_directory b"), (5.0, "rollback"), (7.0, "reload"), (9.5, "model_directory bad")]
        sent, send_times, requests = stream(probe, 12.0, schedule=schedule, models=models)
        commands = len(probe.commands) - commands_before
    finally:
        time.sleep(1.0)
        ensure_serving(probe, models, "a")       # the other tests expect model a

    answered = np.array([s in probe.decisions for s in sent])
    lost = int(np.sum(~answered))
    stamps = [s for s in sent if s in probe.decisions]
    versions = [probe.decisions[s].model_version for s in stamps]
    changes = [i for i in range(1, len(versions)) if versions[i] != versions[i - 1]]
    results = [info.last_swap_result for info in probe.infos[infos_before:infos_before + 4]]
    # a swap window: from the request to 100 ms after its result (load + validation run meanwhile)
    done = [probe.decision_times[stamps[i]] for i in changes] + [requests[-1] + 3.0]
    window = np.zeros(len(sent), dtype=bool)
    per_request, lost_in = [], {}
    for (_, action), requested, finished in zip(schedule, requests, done):
        inside = (send_times >= requested) & (send_times <= finished + 0.1)
        window |= inside
        lost_in[action] = int(np.sum(~answered & inside))
        per_request.append(f"{action}: {lost_in[action]} of {int(inside.sum())}")
    latency_us = np.array([probe.decisions[s].latency_us for s in stamps])
    in_window = window[answered]
    print(f"\n  baseline 1 kHz, no swap: {len(base_sent)} states, {len(base_sent) - base_lost} answered, "
          f"{base_commands} commands, ticks lost {base_lost}")
    print(f"  1 kHz with 3 swaps + 1 refusal: {len(sent)} states in {send_times[-1] - send_times[0]:.2f} s, "
          f"{len(stamps)} answered, {commands} commands, ticks lost {lost} "
          f"({int(np.sum(~answered & window))} of {int(window.sum())} inside swap windows, "
          f"{int(np.sum(~answered & ~window))} of {int((~window).sum())} outside)")
    print(f"  lost per request window: {'; '.join(per_request)}")
    lost_ticks = np.flatnonzero(~answered)
    if lost_ticks.size:
        print(f"  lost ticks at (ms into the stream): {lost_ticks[:10].tolist()} ... {lost_ticks[-10:].tolist()}")
    print(f"  results: {results}; version changes at ticks {changes} -> {[versions[i] for i in changes]}")
    for label, mask in (("inside swap windows", in_window), ("outside", ~in_window)):
        if mask.any():
            values = latency_us[mask]
            print(f"  node state->command latency {label}: p50 {np.percentile(values, 50):.0f} us, "
                  f"p99 {np.percentile(values, 99):.0f} us, max {values.max():.0f} us ({int(mask.sum())} ticks)")

    # behaviour: each answered state was decided wholly by one model, swaps landed between ticks in the
    # requested order, the refused model never served, and every decision was commanded
    assert results[:3] == ["swapped", "rolled_back", "swapped"] and results[3].startswith("rejected: ")
    assert [versions[i] for i in changes] == ["b", "a", "b"]
    # every answered state was commanded (the node says so in each Decision); the count of command
    # messages the probe read may fall short of it by a message replaced in the writer's keep-last-1
    # history on a loaded machine, which is DDS keeping the freshest command, not the node losing one
    assert all(len(probe.decisions[s].command) == 2 for s in stamps)
    assert len(stamps) - 3 <= commands <= len(stamps), (commands, len(stamps))
    if base_lost:
        pytest.skip(f"this machine drops ticks at 1 kHz without any swap ({base_lost} of {len(base_sent)}): "
                    f"the zero-loss claim cannot be judged now (with swaps: {lost} of {len(sent)} lost)")
    # The claim: a swap (load, validation, swap between ticks, a refusal) costs no tick. With the
    # node's state_queue_depth the ~10 ms load stall is answered late, not lost. Losses outside the
    # swap windows (the machine stalling a process for ~0.1 s now and then on this 2-core VM) are
    # printed above, not judged here: they are not a property of the swap.
    inside_lost = int(np.sum(~answered & window))
    assert inside_lost == 0, f"{inside_lost} states inside swap windows got no command ({'; '.join(per_request)})"


# -- the robot process restarts -----------------------------------------------------------------------------

ROBOT = r"""
import sys, time, rclpy
from rclpy.experimental import EventsExecutor
from rclpy.qos import QoSProfile
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
rclpy.init()
node = rclpy.create_node("robot", namespace=sys.argv[2])
received = [0]
node.create_subscription(Float64MultiArray, sys.argv[1], lambda m: received.__setitem__(0, received[0] + 1), 10)
publisher = node.create_publisher(JointState, "joint_states", QoSProfile(depth=10))
def tick():
    msg = JointState(name=["j1", "j2"], position=[0.1, -0.2])
    msg.header.stamp = node.get_clock().now().to_msg()
    publisher.publish(msg)
node.create_timer(0.005, tick)
node.create_timer(0.1, lambda: print(received[0], flush=True))
executor = EventsExecutor()
executor.add_node(node)
while rclpy.ok():
    executor.spin_once(timeout_sec=0.1)
"""


def _start_robot():
    return subprocess.Popen([sys.executable, "-c", ROBOT, COMMANDS, NAMESPACE], env=_ros_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)


def _commands_received(robot, at_least: int, timeout_s: float) -> int:
    """Read the robot's running count of commands until it reaches ``at_least`` (0 if it never does)."""
    result = [0]

    def read():
        for line in robot.stdout:
            result[0] = int(line)
            if result[0] >= at_least:
                return
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout_s)
    return result[0]


def test_the_node_keeps_working_when_the_robot_process_is_killed_and_restarts(probe):
    counts = []
    for life in range(2):
        robot = _start_robot()
        try:
            counts.append(_commands_received(robot, 50, DISCOVERY_S + 20.0))
        finally:
            robot.kill()                        # a crash: no goodbye to DDS
            robot.wait(5)
        time.sleep(0.5)
    print(f"\n  commands received by the robot process before each kill: {counts}")
    assert all(count >= 50 for count in counts), counts
    assert serving_version(probe) == "a"        # and the probe, which never restarted, is still served


def test_no_command_of_the_whole_run_jumped_or_left_the_limits(probe, models):
    """Over every fault above (bad states, refused models, swaps, rollbacks): max_step and the limits held."""
    from ebgan_mdn_ros.runtime.manifest import load_manifest
    manifest = load_manifest(models["a"])   # no position limits configured: the first model's box bounds
    commands = np.array([values for _, values in probe.commands])
    assert len(commands) > 100
    assert np.abs(np.diff(commands, axis=0)).max() <= 0.05 + 1e-9
    assert np.all(commands >= np.array(manifest.action_low) - 1e-12)
    assert np.all(commands <= np.array(manifest.action_high) + 1e-12)
