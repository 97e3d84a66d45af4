"""`ebgan-mdn train` under torchrun: DistributedDataParallel on the gloo backend (CPU).

    torchrun --standalone --nproc_per_node=2 -m ebgan_mdn_ros.cli train --task ik --method rnce --out runs/ik
    # two machines, the same line on each (c10d rendezvous at HOST, any free port):
    torchrun --nnodes=2 --nproc_per_node=2 --rdzv_backend=c10d --rdzv_endpoint=HOST:29400 --rdzv_id=JOB \
        -m ebgan_mdn_ros.cli train --task ik --method rnce --out runs/ik

The same config trains the same networks as `trainer.train`; what changes is who does what:
- Every rank builds the networks from `config.seed`; DistributedDataParallel broadcasts rank 0's
  weights at wrapping and averages the gradients in every backward, so the ranks stay identical.
- `epoch_batches` is sharded: every rank draws the same permutation (the shuffle generator is
  seeded with `config.seed` on all ranks) and takes every world_size-th batch of it, padded like
  torch's DistributedSampler so each rank runs the same number of steps (a rank one step short
  would leave its peers blocked in an all-reduce). `optim.batch_size` is per rank: one optimiser
  step sees world_size x batch_size pairs and an epoch has 1/world_size of the steps.
- Random draws inside a step (negatives, MDN samples) are seeded with `config.seed + rank`, so the
  ranks do not repeat each other's noise.
- Rank 0 alone prints and saves the checkpoint (the mean of the ranks' final losses goes into its
  metrics). Before saving, rank 0 collects one line per rank (steps, pairs, gradient all-reduces,
  a digest of the parameters) and refuses to save if the ranks' parameters differ.

The loop itself is trainer.train_loop, unchanged; it takes this rank's shard through its
`batches_of` argument.
Frozen-energy evaluation (objectives.energies_with_frozen_parameters: torch.func.functional_call
with detached parameters) runs through the DDP wrapper as it is: with torch 2.13 all nine methods
end with identical parameters on every rank (ebgan-mdn, which uses it, in test/test_torchrun.py;
rnce-ml, whose energy takes the level as a third argument, and diffusion, by hand on 2 ranks).
"""
from __future__ import annotations

import dataclasses
import gc
import hashlib
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.nn.parallel import DistributedDataParallel

from ebgan_mdn_ros.training import trainer
from ebgan_mdn_ros.spec import PolicySpec
from ebgan_mdn_ros.training.checkpoint import CHECKPOINT_FILE, Checkpoint, save_checkpoint
from ebgan_mdn_ros.training.config import TrainConfig

BACKEND = "gloo"  # CPU; NCCL would need one GPU per rank


def launched_by_torchrun(environ=os.environ) -> bool:
    """True in a torchrun worker of a job with more than one process (WORLD_SIZE > 1)."""
    try:
        return int(environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def shard_batches(batches: list[torch.Tensor], rank: int, world_size: int) -> list[torch.Tensor]:
    """Every world_size-th batch from `rank` on, after padding the list with its own head to a
    multiple of world_size (as DistributedSampler pads): every rank gets the same number of batches
    and every batch goes to some rank."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside a world of {world_size}")
    per_rank = math.ceil(len(batches) / world_size)
    padded = [batches[i % len(batches)] for i in range(per_rank * world_size)]
    return padded[rank::world_size]


@dataclass
class RankReport:
    """What one rank did; rank 0 gathers these and prints one line each."""
    rank: int
    steps: int              # batches it trained on, all epochs
    pairs: int              # (condition, action) pairs in those batches
    allreduces: int         # gradient buckets it averaged with its peers
    parameter_digest: str   # sha256 prefix over every parameter, identical on every rank if DDP worked
    final_losses: dict

    def line(self, world_size: int) -> str:
        losses = ", ".join(f"{k} {v:.4f}" for k, v in self.final_losses.items())
        return (f"rank {self.rank}/{world_size}: {self.steps} steps on {self.pairs} pairs, "
                f"{self.allreduces} gradient all-reduces, parameters {self.parameter_digest}, last epoch {losses}")


def train_distributed(config: TrainConfig, conditions: np.ndarray, actions: np.ndarray, spec: PolicySpec,
                      out_dir: str | Path, config_name: str = "") -> int:
    """One torchrun worker's share of `trainer.train`; returns the command's exit code."""
    dist.init_process_group(BACKEND)  # env:// from torchrun's RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT
    try:
        rank, world_size = dist.get_rank(), dist.get_world_size()
        if rank == 0:
            print(f"training {config.method} on {config.task} (seed {config.seed}, config "
                  f"{config_name or 'built-in defaults'}, {len(actions)} pairs) on {world_size} processes "
                  f"({BACKEND}), batch {config.optim.batch_size} per process", flush=True)
        checkpoint, reports = _train(config, conditions, actions, spec, rank, world_size)
        if rank == 0:
            for report in reports:
                print(report.line(world_size), flush=True)
            digests = {report.parameter_digest for report in reports}
            if len(digests) != 1:
                raise RuntimeError(f"the ranks' parameters differ after training ({sorted(digests)}): "
                                   "gradients were not averaged; no checkpoint written")
            path = Path(out_dir) / CHECKPOINT_FILE
            save_checkpoint(path, checkpoint)
            print(f"train time: {checkpoint.train_seconds:.1f} s; checkpoint: {path}", flush=True)
        dist.barrier()  # the job ends when the checkpoint is on disk, on every rank
    finally:
        # DDP's reducer and gloo's pending work can sit in reference cycles until the interpreter is
        # torn down, where destroying them aborts the rank ("terminate called without an active
        # exception", seen now and then in test_torchrun): collect them while Python is still whole.
        gc.collect()
        dist.destroy_process_group()
    return 0


def _train(config: TrainConfig, conditions: np.ndarray, actions: np.ndarray, spec: PolicySpec,
           rank: int, world_size: int) -> tuple[Checkpoint, list[RankReport]]:
    """trainer.train's body with DDP-wrapped networks and sharded batches; the checkpoint holds the plain networks."""
    torch.manual_seed(config.seed)  # same initial weights everywhere (DDP broadcasts rank 0's anyway)
    np.random.seed(config.seed + rank)
    torch.set_num_threads(config.threads)
    data, condition_norm, action_norm = trainer.prepare_data(conditions, actions, spec)
    networks = trainer.build_networks(config.method, spec.condition_dim, spec.flat_action_dim, config)
    plain = (networks.generator, networks.energy)
    allreduces = [0]
    wrapped = trainer.Networks(_wrap(networks.generator, allreduces), _wrap(networks.energy, allreduces))
    optimizers = trainer.build_optimizers(wrapped, config)
    torch.manual_seed(config.seed + rank)  # the ranks draw different negatives and samples
    loop_config = config if rank == 0 else dataclasses.replace(config, progress=False)
    shuffle = torch.Generator().manual_seed(config.seed)  # same permutation on every rank: disjoint shards
    started = time.perf_counter()
    seen = _Seen()
    history = trainer.train_loop(wrapped, optimizers, data, loop_config, shuffle,
                                 batches_of=_sharded_batches(rank, world_size, seen))
    seconds = time.perf_counter() - started
    final_losses = _mean_over_ranks(history[-1], world_size)
    checkpoint = trainer.make_checkpoint(
        config, spec, condition_norm, action_norm, networks, conditions,
        {"final_losses": final_losses, "distributed": {"world_size": world_size, "backend": BACKEND}}, seconds)
    report = RankReport(rank, seen.steps, seen.pairs, allreduces[0], _parameter_digest(plain), history[-1])
    reports: list = [None] * world_size
    dist.all_gather_object(reports, report)
    return checkpoint, reports


def _wrap(module: nn.Module | None, allreduces: list[int]) -> nn.Module | None:
    if module is None:
        return None
    wrapped = DistributedDataParallel(module)

    def counting_allreduce(process_group, bucket):  # DDP's own averaging, counted
        allreduces[0] += 1
        return default_hooks.allreduce_hook(process_group, bucket)

    wrapped.register_comm_hook(None, counting_allreduce)
    return wrapped


@dataclass
class _Seen:
    epochs: int = 0
    steps: int = 0
    pairs: int = 0


def _sharded_batches(rank: int, world_size: int, seen: _Seen) -> Callable:
    """train_loop's batch source for this rank: its shard of every epoch's batches, counted in ``seen``."""
    def sharded_epoch_batches(count, batch_size, generator):
        mine = shard_batches(trainer.epoch_batches(count, batch_size, generator), rank, world_size)
        seen.epochs += 1
        seen.steps += len(mine)
        seen.pairs += sum(len(batch) for batch in mine)
        return mine
    return sharded_epoch_batches


def _mean_over_ranks(losses: dict, world_size: int) -> dict:
    keys = sorted(losses)
    values = torch.tensor([losses[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(values)
    return {k: float(v) / world_size for k, v in zip(keys, values)}


def _parameter_digest(modules) -> str:
    digest = hashlib.sha256()
    for module in modules:
        if module is not None:
            for name, value in sorted(module.state_dict().items()):
                digest.update(name.encode())
                digest.update(value.detach().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]
