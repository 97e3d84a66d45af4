"""benchmarks/latency.py runs end to end and writes the tables the README and the closing note cite.

Timings are not judged here (speed is the benchmark's business); what is checked is that every
method row is measured, with finite numbers, and that the ratios are computed against the runtime.
"""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_latency_benchmark_writes_every_row(tmp_path):
    out = tmp_path / "latency.md"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "latency.py"), "--widths", "16", "--threads", "1",
         "--candidates", "16", "64", "--compare-candidates", "16", "--scale", "0.02", "--out", str(out)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    text = out.read_text()
    sweep = re.findall(r"^\| 16 \| 1 \| (\d+) \| (\d+) \| (\d+) \| \d+ \|$", text, re.M)
    assert [int(k) for k, _, _ in sweep] == [16, 64]
    assert all(0 < int(p50) <= int(p99) for _, p50, p99 in sweep)
    label = r"((?:this|torch|IBC|16-step)[^|]*?)"
    rows = dict(re.findall(rf"^\| 16 \| 1 \| {label} \| \d+ \| \d+ \| ([\d.]+) \|$", text, re.M))
    assert set(rows) == {
        "this runtime (onnxruntime, fused)", "this runtime, two sessions + numpy sampling", "torch eager, same step",
        "IBC DFO 16384 x 3 (onnxruntime energy)", "16-step denoiser, 1 sample, 16 runs",
        "16-step denoiser, 1 sample, unrolled graph", "16-step denoiser, 16 samples, unrolled graph"}
    assert float(rows["this runtime (onnxruntime, fused)"]) == 1.0
    # 16,384 x 3 energy evaluations cannot be cheaper than one pass over 16 candidates
    assert float(rows["IBC DFO 16384 x 3 (onnxruntime energy)"]) > 1.0
    assert "active in the runtime: ['CPUExecutionProvider']" in text
    # the served diffusion model (DDIM through PolicyRuntime) and the annealed rule, ratios to the runtime
    served = dict(re.findall(r"^\| 16 \| 1 \| ((?:DDIM|annealed)[^|]*?) \| \d+ \| \d+ \| ([\d.]+) \|$", text, re.M))
    assert set(served) == ({f"DDIM {steps} steps, trained-format diffusion model through PolicyRuntime"
                            for steps in (8, 16, 32)}
                           | {"annealed SMC (mode first), 4 levels x 16 particles, through PolicyRuntime"})
    assert all(float(ratio) > 0 for ratio in served.values())


def test_e2e_robot_publishes_what_a_shipped_model_is_conditioned_on():
    """benchmarks/e2e_latency.py --model: the UR5e model's joints, a state and goal at its training mean."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import e2e_latency
    setup = e2e_latency.robot_setup(ROOT / "models" / "ur5e_box_reach")
    assert setup.joints[0] == "shoulder_pan_joint" and len(setup.joints) == 6
    assert setup.delta and len(setup.position) == 6
    assert setup.goal is not None and abs(setup.goal[0] - 0.3) < 0.01 and abs(setup.goal[2] - 0.35) < 0.01
    random_model = e2e_latency.robot_setup(None)
    assert random_model.goal is None and len(random_model.joints) == 7 and not random_model.delta
