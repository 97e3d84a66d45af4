"""benchmarks/quality.py rewrites quality.md; sections others write there (the UR5e's) must survive it.
benchmarks/multilevel_ablation.py's arms: every multi-level arm has its matched single-level total.
"""
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_ur5e_section_survives_a_rewrite_and_generated_sections_do_not_repeat(tmp_path):
    quality = _load("quality")
    path = tmp_path / "quality.md"
    path.write_text("# Quality benchmark\n\nold intro\n\n## ik\n\n| old | row |\n\n"
                    "## UR5e box reach (by hand)\n\n| reached % |\n|---|\n| 100 |\n\n"
                    "## grid\n\nold grid\n")
    generated = "# Quality benchmark\n\n## ik\n\n| new | row |\n\n## grid\n\nnew grid\n"
    kept = quality._preserved_sections(path, generated)
    assert kept == ["## UR5e box reach (by hand)\n\n| reached % |\n|---|\n| 100 |"]
    # a section the report now generates itself under that title is not kept twice
    assert quality._preserved_sections(path, generated + "\n## UR5e box reach (by hand)\n") == []
    assert quality._preserved_sections(tmp_path / "missing.md", generated) == []


def test_latency_cells_show_runtime_and_torch_or_say_why_not():
    quality = _load("quality")
    latency = {"ik": {"rnce": {"mode_first": {"runtime_p50_us": 151.2, "torch_p50_us": 402.7, "k": 64}},
                      "ibc": {"lowest_energy": {"torch_p50_us": 4850.0, "k": 64}}}}
    assert quality._latency_cells(latency, "ik", "rnce", "mode_first") == "151 | 403"
    assert quality._latency_cells(latency, "ik", "ibc", "lowest_energy") == "- | 4850"
    assert quality._latency_cells(latency, "ik", "rnce", "annealed") == "n/a | n/a"


def test_every_annealed_arm_has_its_matched_single_level_total():
    ablation = _load("multilevel_ablation")
    for task in ablation.LADDERS:
        arms = set(ablation.quality_arms(task))
        for name, rule, k in arms:
            if rule.startswith("annealed"):
                matched = "mode_first" if rule == "annealed_mode_first" else "importance"
                assert ("L1", matched, k * ablation.levels_of(name)) in arms
                assert (name, "mode_first", k) in arms  # (b): the same model at its data level
        for ladder in ablation.LADDERS[task].values():
            assert ladder is None or (ladder[-1] == 0.0 and list(ladder) == sorted(ladder, reverse=True))
