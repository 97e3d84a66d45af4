import dataclasses
import json

import numpy as np
import pytest
import torch

from ebgan_mdn_ros.cli import main
from ebgan_mdn_ros.commands.train import default_config_path
from ebgan_mdn_ros.runtime.manifest import load_manifest
from ebgan_mdn_ros.training.config import load_train_config


def _train(tmp_path, *extra):
    return main(["train", "--out", str(tmp_path / "run"), "--no-progress", *extra])


def test_train_then_eval_smoke(tmp_path, capsys):
    assert _train(tmp_path, "--task", "hyperbola", "--method", "ebgan-mdn", "--seed", "1",
                  "--set", "optim.epochs=2", "--set", "objective.energy_updates_per_batch=1") == 0
    out = capsys.readouterr().out
    assert "train time:" in out and "curve.yaml" in out  # the curve tasks' config was picked up
    run = tmp_path / "run"
    trained = (run / "checkpoint.pt").read_bytes()
    assert main(["eval", str(run), "--samples", "4"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert set(metrics["rules"]) == {"raw", "lowest_energy", "mode_first", "importance"}
    assert 0.0 <= metrics["rules"]["mode_first"]["tmc"] <= 100.0
    assert (run / "samples.png").stat().st_size > 1000
    assert (run / "energy.png").is_file()
    assert (run / "checkpoint.pt").read_bytes() == trained  # evaluating never rewrites the trained artefact
    assert json.loads((run / "eval.json").read_text()) == metrics
    stored = torch.load(run / "checkpoint.pt", weights_only=False)
    assert stored["config"]["seed"] == 1

    # export ships the evaluation beside the training metrics; training again drops the stale one
    assert main(["export", str(run), "--out", str(tmp_path / "model"), "--candidates", "16"]) == 0
    shipped = load_manifest(tmp_path / "model").metrics
    assert shipped["evaluation"]["rules"]["raw"] == metrics["rules"]["raw"] and "final_losses" in shipped
    assert _train(tmp_path, "--task", "hyperbola", "--method", "mdn", "--set", "optim.epochs=1") == 0
    assert not (run / "eval.json").exists()


@pytest.mark.parametrize("task", ["hyperbola", "lines", "circle", "parabola"])
def test_the_curve_tasks_share_one_config_file(task):
    path = default_config_path(task, "rnce")
    assert path.name == "curve.yaml"
    config = load_train_config(path, {"task": task, "method": "rnce"})
    assert config.model.num_components == (3 if task == "lines" else 2)  # lines has three branches
    reference = load_train_config(path, {"task": "hyperbola", "method": "rnce"})
    assert dataclasses.replace(config, task="hyperbola", model=reference.model) == reference
    assert load_train_config(path, {"task": task, "method": "ebgan"}).model.noise_dim == 1


def test_planning_eval_reports_routes(tmp_path, capsys):
    assert _train(tmp_path, "--task", "multiroute", "--method", "mdn", "--set", "optim.epochs=1") == 0
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "run"), "--rollouts", "4", "--no-plots"]) == 0
    raw = json.loads(capsys.readouterr().out)["rules"]["raw"]
    assert raw["rollouts"] == 4 and set(raw["route_usage"]) == {"via_10_0", "via_5_5", "via_0_10"}


def test_train_on_csv_demonstrations(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, 64)
    y = np.where(rng.random(64) < 0.5, x, -x)
    lines = ["stamp,x,target"] + [f"{i},{a},{b}" for i, (a, b) in enumerate(zip(x, y))]
    (tmp_path / "demos.csv").write_text("\n".join(lines) + "\n")
    assert _train(tmp_path, "--data", str(tmp_path / "demos.csv"), "--condition-columns", "x",
                  "--action-columns", "target", "--method", "mdn", "--set", "optim.epochs=2") == 0
    stored = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert stored["spec"]["condition_names"] == ["x"] and stored["spec"]["action_names"] == ["target"]
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "run"), "--samples", "3"]) == 0
    assert json.loads(capsys.readouterr().out)["rules"]["raw"]["best_error"] >= 0


@pytest.mark.parametrize("args, message", [
    (["--task", "hyperbole"], "task 'hyperbole' is unknown, expected one of hyperbola"),
    (["--method", "gail"], "method: 'gail' is invalid"),
    (["--set", "optim.lr=0.1"], "unknown config key in optim: 'lr'"),
    (["--set", "optim.energy_lr=-0.1"], "optim.energy_lr: -0.1 is invalid, expected > 0"),
    (["--set", "optim.epochs"], "must look like key=value"),
])
def test_bad_train_arguments_are_named(tmp_path, capsys, args, message):
    assert _train(tmp_path, *args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_bad_datasets_are_named(tmp_path, capsys):
    np.savez(tmp_path / "nan.npz", conditions=np.array([[0.0], [np.nan], [1.0]]), actions=np.zeros((3, 1)))
    assert _train(tmp_path, "--data", str(tmp_path / "nan.npz")) == 2
    assert "NaN" in capsys.readouterr().err
    (tmp_path / "d.csv").write_text("x,q\n0,1\n1,2\n")
    assert _train(tmp_path, "--data", str(tmp_path / "d.csv"), "--condition-columns", "x",
                  "--action-columns", "q", "r") == 2
    assert "missing column(s) ['r']" in capsys.readouterr().err


def test_unknown_key_in_config_file(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("model:\n  hiden: [8]\n")
    assert _train(tmp_path, "--config", str(tmp_path / "c.yaml")) == 2
    assert "unknown config key in model: 'hiden'" in capsys.readouterr().err


def test_eval_of_a_missing_run(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "nothing")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
