"""Joint states lost per model swap: the policy node event-driven at 500 Hz and 1 kHz, default queue depth.

    python benchmarks/swap_cost.py [--rates 100 500 1000] [--swaps 10] [--candidates 16]

A driver process plays the robot (benchmarks/e2e_latency.py's Robot: JointState on a timer, answers
matched by stamp) and the model is its robot-sized one (7 joints, width 256). Per rate: a baseline of the same length with no swap, then `--swaps` swaps between
two copies of the model (model_directory set through the parameter service, one per second). A state
counts as lost when no ~/decision answers it; "per swap" is the loss in the second after each request
minus the baseline's loss per second. The node runs with the shipped configs' state_queue_depth (1).
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "test"))
import e2e_latency as e2e  # noqa: E402
from rcl_interfaces.msg import Parameter as ParameterMsg  # noqa: E402
from rcl_interfaces.msg import ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile  # noqa: E402

from ebgan_mdn_ros.msg import ModelInfo  # noqa: E402


def lost_between(robot, start: float, end: float) -> tuple[int, int]:
    """(sent, unanswered) among the states sent in [start, end) (perf_counter seconds)."""
    window = [stamp for stamp, sent_at in robot.sent.items() if start <= sent_at < end]
    return len(window), sum(stamp not in robot.latency for stamp in window)


def run(rate: float, models: list[Path], args, workdir: Path) -> dict:
    args.rate, args.decision_every = rate, 1
    target = e2e.start_target("policy", models[0], args, workdir / f"swap_{rate:g}.log", args.candidates)
    context = e2e.rclpy.Context()
    e2e.rclpy.init(context=context, domain_id=args.domain_id)
    executor = e2e.EventsExecutor(context=context)
    robot = e2e.Robot(context, rate)
    executor.add_node(robot.node)
    client = robot.node.create_client(SetParameters, f"{e2e.NAMESPACE}/policy_node/set_parameters")
    results: list[str] = []
    robot.node.create_subscription(ModelInfo, "policy_node/model_info", lambda m: results.append(m.last_swap_result),
                                   QoSProfile(depth=50, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    try:
        up = e2e.spin_for(executor, e2e.DISCOVERY_S + 20.0, lambda: client.service_is_ready()
                          and robot.publisher.get_subscription_count() >= 1)
        if not up or target.poll() is not None:
            raise RuntimeError(f"the policy node did not come up; see {workdir}")
        robot.timer.reset()
        e2e.spin_for(executor, e2e.WARMUP_S)
        robot.recording = True
        base_start = time.perf_counter()
        e2e.spin_for(executor, args.swaps)            # the baseline: as long as the swap phase, no swap
        base_end = time.perf_counter()
        windows = []
        for i in range(args.swaps):
            value = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=str(models[(i + 1) % 2]))
            requested = time.perf_counter()
            future = client.call_async(SetParameters.Request(parameters=[ParameterMsg(name="model_directory",
                                                                                      value=value)]))
            e2e.spin_for(executor, 1.0)
            windows.append((requested, requested + 1.0, future.done() and future.result().results[0].successful))
        robot.recording = False
        robot.timer.cancel()
        e2e.spin_for(executor, 1.0)                   # the last answers
    finally:
        executor.shutdown(timeout_sec=1.0)
        robot.node.destroy_node()
        e2e.rclpy.try_shutdown(context=context)
        target.terminate()
        target.wait(10)
    base_sent, base_lost = lost_between(robot, base_start, base_end)
    per_second = base_lost / max(base_end - base_start, 1e-9)
    losses = [lost_between(robot, start, end)[1] for start, end, _ in windows]
    return {"rate": rate, "baseline_states": base_sent, "baseline_lost": base_lost,
            "swaps": len(windows), "accepted": sum(ok for *_, ok in windows),
            "swapped": sum(r == "swapped" for r in results), "refused": [r for r in results if r.startswith("rejected")][:1],
            "lost_per_swap_mean": float(np.mean(losses)) - per_second, "lost_per_swap_max": max(losses),
            "lost_per_swap": losses}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[100.0, 500.0, 1000.0])
    parser.add_argument("--swaps", type=int, default=10)
    parser.add_argument("--candidates", type=int, default=16)
    parser.add_argument("--domain-id", type=int, default=87)
    parser.add_argument("--executor", default="events")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        source = e2e.build_model(workdir / "built")   # the e2e benchmark's robot-sized model (7 joints)
        models = [Path(shutil.copytree(source, workdir / "models" / name)) for name in ("a", "b")]
        print("| rate Hz | swaps requested (swapped) | baseline lost / states | lost per swap: mean over baseline, max | each |")
        print("|---|---|---|---|---|")
        for rate in args.rates:
            row = run(rate, models, args, workdir)
            print(f"| {row['rate']:g} | {row['swaps']} ({row['swapped']}) | {row['baseline_lost']} / "
                  f"{row['baseline_states']} | {row['lost_per_swap_mean']:.1f}, {row['lost_per_swap_max']} | "
                  f"{row['lost_per_swap']} |", flush=True)
            if row["refused"]:
                print(f"  refused: {row['refused'][0][:160]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
