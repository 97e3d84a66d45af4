"""benchmarks/candidates.py runs on the shipped models and reports quality and latency per K.

The numbers themselves are the benchmark's business; checked here: every K gets a row per model,
the metrics are in range, and the plot is written.
"""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_candidates_benchmark_reports_every_k(tmp_path):
    out = tmp_path / "candidates.md"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "candidates.py"), "--candidates", "1", "8", "--seeds", "1",
         "--targets", "40", "--samples", "2", "--rollouts", "3", "--out", str(out)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    text = out.read_text()
    ik = re.findall(r"^\| (\d+) \| ([\d.]+) ± [\d.e-]+ \| ([\d.]+) ± [\d.e-]+ \| ([\d.]+) ± [\d.e-]+ \| (\d+) \|$",
                    text.split("### multiroute")[0], re.M)
    assert [int(row[0]) for row in ik] == [1, 8]
    for _, success, median_error, both, p50 in ik:
        assert 0 <= float(success) <= 100 and 0 <= float(both) <= 100
        assert 0 < float(median_error) < 1 and int(p50) > 0
    route = re.findall(r"^\| (\d+) \| ([\d.]+) ± [\d.e-]+ \| ([\d.]+|nan) ± \S+ \| (\d+) \|$",
                       text.split("### multiroute")[1], re.M)
    assert [int(row[0]) for row in route] == [1, 8]
    assert (tmp_path / "candidates.png").stat().st_size > 10_000
