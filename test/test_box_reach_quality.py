"""benchmarks/box_reach_quality.py's pure parts: the aggregation over seeds and the quality.md section.

No training and no simulation: the rows are built from hand-written per-run metrics.
"""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _benchmark():
    spec = importlib.util.spec_from_file_location("box_reach_quality", ROOT / "benchmarks" / "box_reach_quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _metrics(success, jerk, train=100.0):
    return {"success": success, "contact": 0.0, "near": 50.0, "far": 50.0, "seconds_to_goal": math.nan if not success
            else 2.5, "jerk": jerk, "train_seconds": train}


def test_aggregate_means_and_stds_over_the_seeds_that_have_a_selection():
    q = _benchmark()
    runs = {"bc": {"0": {"deterministic": _metrics(0.0, 10.0)}},
            "rnce": {"0": {"mode_first": _metrics(100.0, 1000.0), "raw": _metrics(90.0, 3000.0)},
                     "1": {"mode_first": _metrics(80.0, 2000.0)},
                     "2": {"mode_first": _metrics(90.0, 3000.0)}}}
    rows = q.aggregate(runs)
    assert [(r["method"], r["selection"], r["seeds"]) for r in rows] == [
        ("rnce", "mode_first", 3), ("rnce", "raw", 1), ("bc", "deterministic", 1)]  # METHODS order
    mean, std, n = rows[0]["cells"]["success"]
    assert (mean, n) == (90.0, 3) and math.isclose(std, math.sqrt(200.0 / 3))
    assert rows[1]["cells"]["jerk"] == (3000.0, 0.0, 1)
    assert rows[2]["cells"]["seconds_to_goal"][2] == 0  # never reached: no time to average
    assert q.format_cell(rows[2]["cells"]["seconds_to_goal"], ".2f") == "n/a"
    assert q.format_cell(rows[1]["cells"]["jerk"], ".0f") == "3000"          # one seed: no ± shown
    assert q.format_cell(rows[0]["cells"]["success"], ".1f") == "90.0 ± 8.2"


def test_the_section_is_replaced_in_place_and_the_rest_of_quality_md_is_kept():
    q = _benchmark()
    text = "# Quality benchmark\n\n## ik\n\n| a |\n\n" + q.SECTION_TITLE + "\n\nold table\n\n## grid\n\ngrid rows\n"
    out = q.replace_section(text, q.SECTION_TITLE + "\n\nnew table\n")
    assert "old table" not in out and "new table" in out
    assert out.index("## ik") < out.index("new table") < out.index("## grid") and out.endswith("grid rows\n")
    appended = q.replace_section("# Quality benchmark\n\n## ik\n", q.SECTION_TITLE + "\n\nnew\n")
    assert appended == "# Quality benchmark\n\n## ik\n\n" + q.SECTION_TITLE + "\n\nnew\n"
    assert q.replace_section(appended, q.SECTION_TITLE + "\n\nnew\n") == appended  # idempotent


def test_the_table_puts_each_rows_measured_latency_beside_it():
    q = _benchmark()
    runs = {"rnce": {"0": {"mode_first": _metrics(100.0, 1000.0), "raw": _metrics(90.0, 3000.0)}}}
    lines = q.table(runs, {"rnce": {"mode_first": {"p50_us": 133.4, "p99_us": 900.0}}})
    assert lines[0].endswith("| p50 us per decision |") and lines[1].count("---") == len(q.COLUMNS) + 4
    assert lines[2].startswith("| rnce | mode_first |") and lines[2].endswith("| 133 |")
    assert lines[3].startswith("| rnce | raw |") and lines[3].endswith("| n/a |")  # not measured: said so
    assert q.table(runs)[2].endswith("| n/a |")


def test_rows_keep_the_selections_order_though_the_store_sorts_its_keys():
    q = _benchmark()
    full = {"through": 0.0, "held": 0, "clamped_step": 0, "missed_min_error_mm": math.nan, "contact_bodies": {},
            "eval_wall_s": 5.0}
    runs = {"diffusion": {"0": {"ddim_16": _metrics(100.0, 3000.0) | full, "ddim_8": _metrics(100.0, 4000.0) | full}}}
    assert [r["selection"] for r in q.aggregate(runs)] == ["ddim_8", "ddim_16"]
    assert [line.split(" | ")[2] for line in q.per_run_lines(runs)[2:]] == ["ddim_8", "ddim_16"]
