"""Per-decision latency of PolicyRuntime, and of the alternatives on the same energy network width.

    python benchmarks/latency.py                      # full sweep, markdown on stdout
    python benchmarks/latency.py --out benchmarks/results/latency.md
    python benchmarks/latency.py --providers CUDAExecutionProvider CPUExecutionProvider --torch-device cuda
                                                      # on a GPU machine (onnxruntime-gpu installed)

Networks are randomly initialised (latency does not depend on the weights) at robot-like sizes:
condition 14, action 7, 8 mixture components, 2 hidden layers of the stated width for the MDN, the
energy and the denoiser. Each decision is one condition; times are wall clock around one call.

Sweep: PolicyRuntime (fused graph, mode first) for K in {16..4096}, widths, intra-op threads.
Comparison at K=256, per width and thread count, all in this process:
- torch eager: the same MDN + sampling + energy in PyTorch, then the runtime's choice
  (runtime/selection.py) on the energies brought to the host, as the runtime brings them;
- this runtime (onnxruntime, fused graph, IO binding);
- IBC derivative-free optimisation: 16,384 uniform samples, 3 energy evaluations with resampling
  and shrinking noise between them (IBC evaluates once more at the end; we don't: in its favour),
  on the same energy network through onnxruntime, same threads;
- a 16-step iterative denoiser (DDIM-like update, eps-prediction MLP of the same width on
  [condition, action, t]) drawing one action: 16 onnxruntime runs of the step network, and the same
  16 steps unrolled into one graph. A row with K=256 denoised samples shows the same-sample-count case;
- a diffusion model as the package trains and exports it (training/networks.Denoiser, MLP of the same
  width on [condition, action, time features]), served by PolicyRuntime through the same one-decision
  call: DDIM at 8, 16 and 32 steps, one denoiser run per step (runtime/diffusion.py);
- a multi-level model (LevelEnergyMLP over a 4-level ladder) through PolicyRuntime's annealed rule:
  SMC with K particles, one generator run and 4 energy runs (runtime/annealing.py).
"""
from __future__ import annotations

import argparse
import functools
import math
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ebgan_mdn_ros.spec import PolicySpec  # noqa: E402
from ebgan_mdn_ros.training.checkpoint import Checkpoint  # noqa: E402
from ebgan_mdn_ros.export.exporter import export_model  # noqa: E402
from ebgan_mdn_ros.runtime.model_loader import session_options  # noqa: E402
from ebgan_mdn_ros.training.networks import (Denoiser, EnergyMLP, LevelEnergyMLP, MixtureDensityNetwork,  # noqa: E402
                                             Normalizer, mlp)
from ebgan_mdn_ros.runtime import selection  # noqa: E402
from ebgan_mdn_ros.runtime.policy_runtime import AnnealingConfig, PolicyRuntime  # noqa: E402
from ebgan_mdn_ros.runtime.runtime_config import RuntimeConfig  # noqa: E402

CONDITION, ACTION, COMPONENTS = 14, 7, 8
DFO_SAMPLES, DFO_ITERATIONS = 16384, 3
DENOISER_STEPS = 16
DDIM_STEPS = (8, 16, 32)
LADDER = (0.3, 0.1, 0.03, 0.0)


def percentiles(seconds) -> tuple[float, float]:
    us = np.asarray(seconds) * 1e6
    return float(np.percentile(us, 50)), float(np.percentile(us, 99))


def timed(step, count: int, warmup: int) -> tuple[float, float]:
    for _ in range(warmup):
        step()
    seconds = np.empty(count)
    for i in range(count):
        start = time.perf_counter()
        step()
        seconds[i] = time.perf_counter() - start
    return percentiles(seconds)


def repetitions(k: int, width: int, scale: float) -> int:
    """Enough decisions for a stable p99 without spending minutes on K=4096."""
    cost = k * width * width
    return max(50, int(scale * min(3000, 3e10 / cost)))


def make_checkpoint(width: int, seed: int = 0, kind: str = "mixture") -> Checkpoint:
    """kind: "mixture" (MDN + energy), "multilevel" (MDN + a 4-level energy) or "diffusion" (a denoiser)."""
    torch.manual_seed(seed)
    spec = PolicySpec(tuple(f"state.{i}" for i in range(CONDITION)), tuple(f"joint_{i}" for i in range(ACTION)),
                      (-math.pi,) * ACTION, (math.pi,) * ACTION)
    generator = MixtureDensityNetwork(CONDITION, ACTION, COMPONENTS, (width, width)).eval()
    energy = EnergyMLP(CONDITION, ACTION, (width, width)).eval()
    if kind == "multilevel":
        energy = LevelEnergyMLP(CONDITION, ACTION, LADDER, (width, width)).eval()
    elif kind == "diffusion":
        generator, energy = Denoiser(CONDITION, ACTION, (width, width)).eval(), None
    return Checkpoint("ebgan-mdn", "latency", spec, Normalizer([0.0] * CONDITION, [1.0] * CONDITION),
                      Normalizer([0.0] * ACTION, [1.0] * ACTION), generator, energy, config={"width": width})


# ---- torch eager: the same step in PyTorch --------------------------------------------------------

def torch_step(ckpt: Checkpoint, k: int, device: str = "cpu"):
    condition = torch.randn(1, CONDITION, device=device)
    generator, energy = ckpt.generator.to(device), ckpt.energy.to(device)
    low, high = torch.full((ACTION,), -math.pi, device=device), torch.full((ACTION,), math.pi, device=device)

    def step():
        with torch.inference_mode():
            logits, means, scales = generator(condition)
            component = torch.multinomial(torch.softmax(logits, -1), 1)[0, 0]
            candidates = means[0, component] + scales[0, component] * torch.randn(k, ACTION, device=device)
            candidates = torch.clamp(candidates, low, high).unsqueeze(0)
            energies = energy(condition, candidates).cpu().numpy()
            return candidates[0, int(selection.choose("mode_first", energies)[0])]
    return step


# ---- IBC derivative-free optimisation on the same energy ------------------------------------------

def dfo_step(energy_session: ort.InferenceSession, rng: np.random.Generator):
    condition = rng.standard_normal((1, CONDITION)).astype(np.float32)
    low, high = -math.pi, math.pi

    def step():
        samples = rng.uniform(low, high, (1, DFO_SAMPLES, ACTION)).astype(np.float32)
        noise_scale = 0.33 * (high - low)
        for iteration in range(DFO_ITERATIONS):
            (energies,) = energy_session.run(None, {"condition": condition, "actions": samples})
            if iteration == DFO_ITERATIONS - 1:
                break
            logits = -energies[0]
            probs = np.exp(logits - logits.max())
            probs /= probs.sum()
            index = rng.choice(DFO_SAMPLES, DFO_SAMPLES, p=probs)
            samples = samples[:, index] + rng.normal(0, noise_scale, samples.shape).astype(np.float32)
            np.clip(samples, low, high, out=samples)
            noise_scale *= 0.5
        return samples[0, int(np.argmin(energies[0]))]
    return step


# ---- 16-step iterative denoiser ------------------------------------------------------------------

class DenoiserStep(nn.Module):
    """eps = net([condition, x, t]); x <- a_t * x - b_t * eps (DDIM-like, coefficients as inputs)."""

    def __init__(self, width: int):
        super().__init__()
        self.net = mlp(CONDITION + ACTION + 1, (width, width), ACTION)

    def forward(self, condition, x, t, coefficients):
        eps = self.net(torch.cat([condition, x, t], dim=-1))
        return coefficients[0] * x - coefficients[1] * eps


class UnrolledDenoiser(nn.Module):
    def __init__(self, step: DenoiserStep, schedule: torch.Tensor):
        super().__init__()
        self.step = step
        self.register_buffer("schedule", schedule)  # [steps, 3]: t, a_t, b_t

    def forward(self, condition, x):
        batch = x.shape[0]
        condition = condition.expand(batch, -1)
        for i in range(self.schedule.shape[0]):
            t = self.schedule[i, 0].reshape(1, 1).expand(batch, 1)
            x = self.step(condition, x, t, self.schedule[i, 1:])
        return x


def denoiser_schedule(steps: int) -> np.ndarray:
    alpha_bar = np.cos(np.linspace(0.05, 1.0, steps + 1) * np.pi / 2) ** 2
    rows = []
    for i in range(steps, 0, -1):
        a_now, a_prev = alpha_bar[i], alpha_bar[i - 1]
        a_t = math.sqrt(a_prev / a_now)
        b_t = a_t * math.sqrt(1 - a_now) - math.sqrt(1 - a_prev)
        rows.append((i / steps, a_t, b_t))
    return np.asarray(rows, dtype=np.float32)


def export_denoisers(width: int, directory: Path) -> tuple[Path, Path, np.ndarray]:
    torch.manual_seed(1)
    step = DenoiserStep(width).eval()
    schedule = denoiser_schedule(DENOISER_STEPS)
    step_path, unrolled_path = directory / f"denoise_step_{width}.onnx", directory / f"denoise_unrolled_{width}.onnx"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(step, (torch.zeros(1, CONDITION), torch.zeros(1, ACTION), torch.zeros(1, 1),
                                 torch.zeros(2)), str(step_path), input_names=["condition", "x", "t", "coefficients"],
                          output_names=["x_next"], dynamic_axes={"condition": {0: "b"}, "x": {0: "b"}, "t": {0: "b"}},
                          opset_version=17, dynamo=False)
        torch.onnx.export(UnrolledDenoiser(step, torch.from_numpy(schedule)),
                          (torch.zeros(1, CONDITION), torch.zeros(1, ACTION)), str(unrolled_path),
                          input_names=["condition", "x"], output_names=["action"], dynamic_axes={"x": {0: "b"}},
                          opset_version=17, dynamo=False)
    return step_path, unrolled_path, schedule


def denoiser_loop_step(session, schedule, rng, samples: int = 1):
    condition = rng.standard_normal((samples, CONDITION)).astype(np.float32)
    t = np.zeros((samples, 1), np.float32)

    def step():
        x = rng.standard_normal((samples, ACTION), dtype=np.float32)
        for t_value, a_t, b_t in schedule:
            t[:] = t_value
            (x,) = session.run(None, {"condition": condition, "x": x, "t": t,
                                      "coefficients": np.array([a_t, b_t], np.float32)})
        return x
    return step


def denoiser_unrolled_step(session, rng, samples: int = 1):
    condition = rng.standard_normal((1, CONDITION)).astype(np.float32)

    def step():
        return session.run(None, {"condition": condition, "x": rng.standard_normal((samples, ACTION),
                                                                                   dtype=np.float32)})[0]
    return step


# ---- the run --------------------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--candidates", type=int, nargs="+", default=[16, 64, 256, 1024, 4096])
    parser.add_argument("--compare-candidates", type=int, default=256)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the number of timed decisions")
    parser.add_argument("--providers", nargs="+", default=["CPUExecutionProvider"],
                        help="onnxruntime execution providers, in order, for every onnxruntime row")
    parser.add_argument("--torch-device", default="cpu", help="device of the torch eager row (cpu, cuda)")
    parser.add_argument("--out", default=None, help="also write the markdown here")
    args = parser.parse_args(argv)

    lines = ["# Decision latency (benchmarks/latency.py)", "",
             f"Command: `python benchmarks/latency.py {' '.join(sys.argv[1:] if argv is None else argv)}`".rstrip(),
             f"Machine: {platform.machine()}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}, "
             f"onnxruntime {ort.__version__}, torch {torch.__version__}, numpy {np.__version__}. "
             f"Randomly initialised networks: condition {CONDITION}, action {ACTION}, {COMPONENTS} components, "
             f"2 hidden layers of the stated width. Times in microseconds per decision (one condition). "
             f"Load average at the start: {os.getloadavg()[0]:.2f} (other processes share these cores).", ""]
    sweep = ["## PolicyRuntime sweep (fused graph, mode first)", "",
             "| width | threads | K | p50 us | p99 us | decisions |", "|---|---|---|---|---|---|"]
    compare = ["## Comparison at K = {k} on the same network width".format(k=args.compare_candidates), "",
               "| width | threads | method | p50 us | p99 us | p50 / runtime p50 |", "|---|---|---|---|---|---|"]
    active: set[str] = set()  # the provider that actually ran each runtime
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for width in args.widths:
            ckpt = make_checkpoint(width)
            model_dir = tmp / f"model_{width}"
            export_model(ckpt, model_dir, max_calibration_conditions=32, calibration_candidates=64)
            for kind in ("multilevel", "diffusion"):
                export_model(make_checkpoint(width, kind=kind), tmp / f"{kind}_{width}", max_calibration_conditions=32,
                             calibration_candidates=64)
            step_path, unrolled_path, schedule = export_denoisers(width, tmp)
            for threads in args.threads:
                condition = np.random.default_rng(0).standard_normal(CONDITION).astype(np.float32)
                for k in args.candidates:
                    runtime = PolicyRuntime(model_dir, RuntimeConfig(num_candidates=k, intra_op_threads=threads,
                                                                     providers=tuple(args.providers)))
                    active.update(runtime.providers[:1])
                    count = repetitions(k, width, args.scale)
                    p50, p99 = timed(functools.partial(runtime.decide, condition), count, warmup=20)
                    sweep.append(f"| {width} | {threads} | {k} | {p50:.0f} | {p99:.0f} | {count} |")
                    print(sweep[-1], flush=True)
                    del runtime
                compare += compare_at(ckpt, model_dir, step_path, unrolled_path, schedule, width, threads,
                                      args.compare_candidates, args.scale, args.providers, args.torch_device)
    footer = ["", f"onnxruntime providers requested {args.providers}, active in the runtime: {sorted(active)}; "
                  f"torch eager on {args.torch_device}.", f"Load average at the end: {os.getloadavg()[0]:.2f}."]
    text = "\n".join(lines + sweep + [""] + compare + footer) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


def compare_at(ckpt, model_dir, step_path, unrolled_path, schedule, width, threads, k, scale, providers,
               torch_device) -> list[str]:
    rng = np.random.default_rng(0)
    options = session_options(threads, 1)
    energy_session = ort.InferenceSession(str(model_dir / "energy.onnx"), options, providers=providers)
    step_session = ort.InferenceSession(str(step_path), options, providers=providers)
    unrolled_session = ort.InferenceSession(str(unrolled_path), options, providers=providers)
    served = dict(intra_op_threads=threads, providers=tuple(providers))
    ddim = {steps: PolicyRuntime(model_dir.parent / f"diffusion_{width}", RuntimeConfig(**served), ddim_steps=steps)
            for steps in DDIM_STEPS}
    annealed = PolicyRuntime(model_dir.parent / f"multilevel_{width}", RuntimeConfig(num_candidates=k, **served),
                             annealing=AnnealingConfig("annealed_mode_first"))
    runtime = PolicyRuntime(model_dir, RuntimeConfig(num_candidates=k, intra_op_threads=threads,
                                                     providers=tuple(providers)))
    two_sessions = PolicyRuntime(model_dir, RuntimeConfig(num_candidates=k, intra_op_threads=threads,
                                                          providers=tuple(providers), use_fused_graph=False))
    condition = rng.standard_normal(CONDITION).astype(np.float32)
    torch.set_num_threads(threads)
    count = repetitions(k, width, scale)
    # (label, step, calls per round): cheap methods many times, DFO once per round
    rows = [
        ("this runtime (onnxruntime, fused)", lambda: runtime.decide(condition), count),
        ("this runtime, two sessions + numpy sampling", lambda: two_sessions.decide(condition), count),
        ("torch eager, same step", torch_step(ckpt, k, torch_device), count),
        (f"IBC DFO {DFO_SAMPLES} x {DFO_ITERATIONS} (onnxruntime energy)", dfo_step(energy_session, rng), 0),
        (f"{DENOISER_STEPS}-step denoiser, 1 sample, {DENOISER_STEPS} runs",
         denoiser_loop_step(step_session, schedule, rng), count),
        (f"{DENOISER_STEPS}-step denoiser, 1 sample, unrolled graph", denoiser_unrolled_step(unrolled_session, rng),
         count),
        (f"{DENOISER_STEPS}-step denoiser, {k} samples, unrolled graph",
         denoiser_unrolled_step(unrolled_session, rng, samples=k), count // 8),
        *[(f"DDIM {steps} steps, trained-format diffusion model through PolicyRuntime",
           functools.partial(ddim[steps].decide, condition), count) for steps in DDIM_STEPS],
        (f"annealed SMC (mode first), {len(LADDER)} levels x {k} particles, through PolicyRuntime",
         functools.partial(annealed.decide, condition), count),
    ]
    # Round robin, so that load from other processes on a shared machine hits every method alike
    # and the ratios stay meaningful even when the absolute numbers move.
    rounds = max(10, int(20 * scale))
    seconds = {label: [] for label, _, _ in rows}
    for label, step, _ in rows:
        for _ in range(3):
            step()  # warm-up
    for _ in range(rounds):
        for label, step, total in rows:
            for _ in range(max(1, total // rounds)):
                start = time.perf_counter()
                step()
                seconds[label].append(time.perf_counter() - start)
    results = []
    for label, _, _ in rows:
        p50, p99 = percentiles(seconds[label])
        results.append((label, p50, p99))
        print(f"width {width} threads {threads}: {label}: p50 {p50:.0f} us, p99 {p99:.0f} us", flush=True)
    base = results[0][1]
    return [f"| {width} | {threads} | {label} | {p50:.0f} | {p99:.0f} | {p50 / base:.2f} |"
            for label, p50, p99 in results]


if __name__ == "__main__":
    sys.exit(main())
