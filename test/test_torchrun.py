"""`ebgan-mdn train` under torchrun: two gloo ranks on CPU train one checkpoint that loads and evaluates.

The distributed run prints, from rank 0, one line per rank (steps, pairs, gradient all-reduces and a
digest of that rank's parameters after training). The ranks trained on different shards with
different noise, so equal digests mean the gradients really were averaged.
"""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ebgan_mdn_ros.training.checkpoint import load_checkpoint
from ebgan_mdn_ros.cli import main
from ebgan_mdn_ros.training.distributed import _parameter_digest, launched_by_torchrun, shard_batches

ROOT = Path(__file__).resolve().parent.parent
RANK_LINE = re.compile(r"^rank (\d+)/2: (\d+) steps on (\d+) pairs, (\d+) gradient all-reduces, "
                       r"parameters (\w+), last epoch (.*)$", re.M)


def test_shards_cover_every_batch_with_equal_counts_per_rank():
    batches = [torch.tensor([i]) for i in range(5)]
    shards = [shard_batches(batches, rank, 2) for rank in range(2)]
    assert [[int(b) for b in shard] for shard in shards] == [[0, 2, 4], [1, 3, 0]]  # padded with the head
    assert [int(b) for b in shard_batches(batches[:1], 1, 3)] == [0]  # fewer batches than ranks: all still step
    assert [int(b) for b in shard_batches(batches[:4], 1, 2)] == [1, 3]  # a multiple: no padding
    with pytest.raises(ValueError, match="rank 2 is outside a world of 2"):
        shard_batches(batches, 2, 2)


def test_only_a_multi_process_launch_is_distributed():
    assert launched_by_torchrun({"WORLD_SIZE": "2", "RANK": "0"})
    assert not launched_by_torchrun({"WORLD_SIZE": "1", "RANK": "0"})  # torchrun --nproc_per_node=1
    assert not launched_by_torchrun({})


def test_two_ranks_train_one_checkpoint_that_loads_and_evaluates(tmp_path, capsys):
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    # ebgan-mdn: both networks under DDP, and the generator's loss reads the energy with frozen parameters.
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "ebgan_mdn_ros.cli", "train", "--task", "hyperbola", "--method", "ebgan-mdn", "--seed", "3",
               "--out", str(run), "--no-progress", "--set", "optim.epochs=2",
               "--set", "objective.energy_updates_per_batch=1"]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert result.stdout.count("training ebgan-mdn on hyperbola") == 1, output  # rank 0 alone prints
    assert "on 2 processes (gloo)" in result.stdout

    ranks = {int(m[0]): m for m in RANK_LINE.findall(result.stdout)}
    assert sorted(ranks) == [0, 1], output
    batches_per_epoch = 500 // 32  # hyperbola: 500 pairs; the last, partial batch is dropped
    for rank, steps, pairs, allreduces, _, _ in ranks.values():
        # Each rank trained half of every epoch (rounded up: the shards are padded to equal length) ...
        assert int(steps) == 2 * math.ceil(batches_per_epoch / 2) and int(pairs) == 32 * int(steps)
        # ... and averaged its gradients in every backward: one energy and one generator update per step.
        assert int(allreduces) >= 2 * int(steps)
    assert ranks[0][3] == ranks[1][3]
    # Different shards and noise (the last-epoch losses differ), yet identical parameters afterwards.
    assert ranks[0][5] != ranks[1][5]
    assert ranks[0][4] == ranks[1][4]

    checkpoint = load_checkpoint(run)
    assert _parameter_digest((checkpoint.generator, checkpoint.energy)) == ranks[0][4]  # what the ranks agreed on
    assert checkpoint.metrics["distributed"] == {"world_size": 2, "backend": "gloo"}
    assert set(checkpoint.metrics["final_losses"]) == {"energy", "nll"}
    assert checkpoint.config["seed"] == 3 and checkpoint.config["optim"]["epochs"] == 2

    assert main(["eval", str(run), "--samples", "4", "--no-plots"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert set(metrics["rules"]) == {"raw", "lowest_energy", "mode_first", "importance"}
    assert 0.0 <= metrics["rules"]["mode_first"]["tmc"] <= 100.0
