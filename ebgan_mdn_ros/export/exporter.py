"""Export a trained run to a self-describing ONNX model directory, checked against torch.

    export_model("runs/ship_ik", "models/ik_2link")

writes generator.onnx, energy.onnx, decision.onnx (the fused control step) and, last, manifest.json.
Every graph is compared with the torch modules on training-like and on random inputs; an error above
the tolerance stops the export before anything is moved into ``out_dir``. The staged directory is
then loaded with model_loader (hashes, signatures, probe) exactly as the node will load it.
Everything comes from the run itself: the checkpoint (networks, normalisation, the conditions it
trained on, for the threshold) and the run's eval.json (metrics); no task data is regenerated.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnxruntime as ort
import torch

from ebgan_mdn_ros.export import onnx_graphs as wrappers
from ebgan_mdn_ros.runtime import selection
from ebgan_mdn_ros.runtime.manifest import (MANIFEST_FILE, Chunk, MANIFEST_FORMAT, DiffusionSchedule, EnergyCalibration,
                                            GraphSpec, LevelEmbedding, Manifest, Normalization, graph_io, json_safe,
                                            sha256_of, write_manifest)
from ebgan_mdn_ros.runtime.model_loader import load_model, session_options
from ebgan_mdn_ros.training.checkpoint import Checkpoint, load_checkpoint, read_evaluation
from ebgan_mdn_ros.training.networks import LEVEL_FLOOR, Denoiser, EnergyMLP, LevelEnergyMLP, MixtureDensityNetwork

OPSET = 17
GRAPH_FILES = {"generator": "generator.onnx", "energy": "energy.onnx", "decision": "decision.onnx",
               "denoiser": "denoiser.onnx"}


class ExportError(RuntimeError):
    """The run cannot be exported, or the exported graphs do not match torch."""


@dataclass(frozen=True)
class ExportReport:
    out_dir: Path
    manifest: Manifest
    parity: dict  # role -> {"max_abs_diff": float, "max_scaled_error": float, ...}
    file_bytes: dict  # file name -> size


def export_model(source: str | Path | Checkpoint, out_dir: str | Path, *, model_version: str | None = None,
                 decision_graph: bool = True, calibration_conditions: np.ndarray | None = None,
                 calibration_source: str | None = None, calibration_candidates: int = 256,
                 max_calibration_conditions: int = 2048, threshold_quantile: float = 0.999,
                 threshold_margin: float = 0.25, tolerance: float = 1e-4, seed: int = 0,
                 log: Callable[[str], None] | None = None) -> ExportReport:
    """Export a run directory, a checkpoint.pt or a Checkpoint to ``out_dir`` (created or replaced).

    calibration_conditions [N,C] raw: conditions for the energy threshold suggestion; by default the
    ones the run trained on (kept in the checkpoint); for a checkpoint without them, conditions are
    drawn from the condition normaliser (mean, std) and the manifest says so.
    tolerance: each output must satisfy |onnxruntime - torch| <= tolerance * max(1, |torch|).
    """
    log = log or (lambda message: None)
    ckpt = source if isinstance(source, Checkpoint) else load_checkpoint(source)
    evaluation = None if isinstance(source, Checkpoint) else read_evaluation(source)
    if calibration_conditions is None and ckpt.training_conditions is not None:
        calibration_conditions, calibration_source = ckpt.training_conditions, f"training:{ckpt.task}"
    modules, references = _wrap(ckpt)
    if not decision_graph:
        modules.pop("decision", None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = out_dir / f".staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        spec = ckpt.spec
        sizes = (spec.condition_dim, spec.flat_action_dim, _num_components(ckpt))
        for role, module in modules.items():
            _export_graph(module, role, staging / GRAPH_FILES[role], *sizes, levels=_ladder(ckpt) is not None)
        sessions = {role: ort.InferenceSession(str(staging / GRAPH_FILES[role]), sess_options=session_options(),
                                               providers=["CPUExecutionProvider"]) for role in modules}
        parity = check_parity(ckpt, references, sessions, tolerance, seed)
        for role, result in parity.items():
            log(f"parity {role}: max abs diff {result['max_abs_diff']:.3g}, "
                f"max scaled error {result['max_scaled_error']:.3g} (tolerance {tolerance:g})")
        calibration = threshold = None
        if not isinstance(ckpt.generator, Denoiser):  # a diffusion model has no energy to threshold
            calibration = calibrate_threshold(ckpt, sessions, calibration_conditions, calibration_source,
                                              calibration_candidates, max_calibration_conditions, threshold_quantile,
                                              threshold_margin, seed)
            threshold = calibration.quantile_energy + calibration.margin * (
                calibration.quantile_energy - calibration.median_energy)
            log(f"energy threshold suggestion {threshold:.4g} ({calibration.source}, {calibration.num_conditions} "
                f"conditions, K={calibration.num_candidates})")
        del sessions
        metrics = {**ckpt.metrics, "evaluation": evaluation} if evaluation is not None else ckpt.metrics
        manifest = _manifest(ckpt, staging, list(modules), model_version, threshold, calibration, parity, tolerance,
                             metrics)
        write_manifest(manifest, staging)
        load_model(staging, roles=None, probe=True)  # exactly the node's checks, before anything ships
        _publish(staging, out_dir, [GRAPH_FILES[role] for role in modules])
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    sizes_on_disk = {p.name: p.stat().st_size for p in sorted(out_dir.iterdir()) if p.is_file()}
    return ExportReport(out_dir, manifest, parity, sizes_on_disk)


def _num_components(ckpt: Checkpoint) -> int:
    return 1 if isinstance(ckpt.generator, Denoiser) else ckpt.generator.num_components


def _ladder(ckpt: Checkpoint) -> tuple[float, ...] | None:
    return ckpt.energy.noise_ladder if isinstance(ckpt.energy, LevelEnergyMLP) else None


def _wrap(ckpt: Checkpoint) -> tuple[dict[str, torch.nn.Module], dict[str, torch.nn.Module]]:
    """(modules to export, reference modules built from the checkpoint as trained) by role."""
    if isinstance(ckpt.generator, Denoiser):  # the diffusion baseline: one graph, the DDIM loop is the runtime's
        denoiser = wrappers.DenoiserGraph(ckpt.generator, ckpt.condition_normalizer).eval()
        return {"denoiser": denoiser}, {"denoiser": denoiser}
    if not isinstance(ckpt.generator, MixtureDensityNetwork):
        raise ExportError(f"only MixtureDensityNetwork generators can be exported (the runtime samples a "
                          f"mixture); this run's generator is {type(ckpt.generator).__name__}")
    if ckpt.generator.distribution != "gaussian":
        # The runtime draws Gaussian noise and the manifest (ebgan-mdn-model/1) has no field to say otherwise:
        # a Laplace model would be served with candidates from the wrong family, silently.
        raise ExportError(f"this run's mixture components are {ckpt.generator.distribution!r} "
                          f"(model.distribution); the runtime samples 'gaussian' components only and "
                          f"{MANIFEST_FORMAT} cannot record another family: retrain with "
                          f"model.distribution: gaussian to deploy")
    if ckpt.energy is not None and not isinstance(ckpt.energy, (EnergyMLP, LevelEnergyMLP)):
        raise ExportError(f"energy model {type(ckpt.energy).__name__} is not supported, expected EnergyMLP "
                          "or LevelEnergyMLP")
    generator = wrappers.GeneratorGraph(ckpt.generator, ckpt.condition_normalizer, ckpt.action_normalizer).eval()
    if ckpt.energy is None:
        energy = reference_energy = wrappers.MixtureEnergyGraph(generator).eval()
    elif isinstance(ckpt.energy, LevelEnergyMLP):
        energy = wrappers.LevelEnergyGraph(ckpt.energy, ckpt.condition_normalizer, ckpt.action_normalizer).eval()
        reference_energy = wrappers.ReferenceLevelEnergy(ckpt.energy, ckpt.condition_normalizer,
                                                         ckpt.action_normalizer).eval()
        clean = len(ckpt.energy.noise_ladder) - 1  # the decision graph scores real actions: the data's level
        low, high = torch.tensor(ckpt.spec.flat_action_low), torch.tensor(ckpt.spec.flat_action_high)
        return ({"generator": generator, "energy": energy, "decision": wrappers.DecisionGraph(
                    generator, wrappers.CleanLevel(energy, clean), low, high).eval()},
                {"generator": generator, "energy": reference_energy, "decision": wrappers.DecisionGraph(
                    generator, wrappers.CleanLevel(reference_energy, clean), low, high).eval()})
    else:
        energy = wrappers.EnergyGraph(ckpt.energy, ckpt.condition_normalizer, ckpt.action_normalizer).eval()
        reference_energy = wrappers.ReferenceEnergy(ckpt.energy, ckpt.condition_normalizer,
                                                    ckpt.action_normalizer).eval()
    low, high = torch.tensor(ckpt.spec.flat_action_low), torch.tensor(ckpt.spec.flat_action_high)
    modules = {"generator": generator, "energy": energy,
               "decision": wrappers.DecisionGraph(generator, energy, low, high).eval()}
    references = {"generator": generator, "energy": reference_energy,
                  "decision": wrappers.DecisionGraph(generator, reference_energy, low, high).eval()}
    return modules, references


def _example_inputs(role: str, condition_dim: int, action_dim: int, num_components: int, levels: bool) -> tuple:
    batch, count = 2, 3
    condition = torch.zeros(batch, condition_dim)
    if role == "generator":
        return (condition,)
    if role == "energy":
        level = (torch.zeros(batch, dtype=torch.int64),) if levels else ()
        return (condition, torch.zeros(batch, count, action_dim)) + level
    if role == "denoiser":
        return condition, torch.zeros(batch, action_dim), torch.zeros(batch)
    return (condition, torch.zeros(batch, count, action_dim), torch.full((batch, count), 0.5),
            torch.full((batch,), -1, dtype=torch.int64), torch.tensor([0.05]))


def _export_graph(module: torch.nn.Module, role: str, path: Path, condition_dim: int, action_dim: int,
                  num_components: int, levels: bool = False) -> None:
    inputs, outputs = graph_io(role, condition_dim, action_dim, num_components, levels)
    dynamic_axes = {t.name: {axis: dim for axis, dim in enumerate(t.shape) if isinstance(dim, str)}
                    for t in inputs + outputs}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        # The TorchScript exporter (dynamo=False) writes one self-contained file at opset 17;
        # the dynamo exporter would put weights in a separate .onnx.data file (which onnxruntime would then reopen by path, and the loader refuses).
        torch.onnx.export(module, _example_inputs(role, condition_dim, action_dim, num_components, levels), str(path),
                          input_names=[t.name for t in inputs], output_names=[t.name for t in outputs],
                          dynamic_axes={k: v for k, v in dynamic_axes.items() if v}, opset_version=OPSET,
                          dynamo=False, do_constant_folding=True)
    _stamp_signature(path, inputs + outputs)


def _stamp_signature(path: Path, specs) -> None:
    """Write the contract's shapes onto the graph's inputs and outputs.

    The exporter's shape inference sometimes leaves a fixed size symbolic (e.g. an action size of 1
    after a broadcast); the contract says what it is, and the parity check and probe confirm it.
    """
    import onnx

    model = onnx.load(str(path))
    by_name = {spec.name: spec for spec in specs}
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        wanted = by_name[value.name].shape
        del dims[:]
        for size in wanted:
            dim = dims.add()
            if isinstance(size, int):
                dim.dim_value = size
            else:
                dim.dim_param = size
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _parity_inputs(ckpt: Checkpoint, rng: np.random.Generator, batch: int, count: int, spread: float):
    """Conditions around the training data (spread 1) or far from it (spread 3), with actions in the box."""
    mean = ckpt.condition_normalizer.mean.numpy()
    std = ckpt.condition_normalizer.std.numpy()
    condition = (mean + spread * std * rng.standard_normal((batch, mean.size))).astype(np.float32)
    low, high = np.asarray(ckpt.spec.flat_action_low), np.asarray(ckpt.spec.flat_action_high)
    centre, half = (low + high) / 2, (high - low) / 2
    actions = (centre + spread * half * rng.uniform(-1, 1, (batch, count, low.size))).astype(np.float32)
    return condition, actions


def check_parity(ckpt: Checkpoint, references: dict, sessions: dict, tolerance: float, seed: int = 0) -> dict:
    """Max |onnxruntime - torch| per graph over training-like and random inputs; raise above tolerance.

    ``references`` are the networks as trained (normalisation outside, not folded into weights), so
    this also checks the rewrites in onnx_graphs, not only the exporter.
    """
    rng = np.random.default_rng(seed)
    m, a, ladder = _num_components(ckpt), ckpt.spec.flat_action_dim, _ladder(ckpt)
    report = {}
    for role in sessions:
        worst_abs, worst_scaled, mismatched_components = 0.0, 0.0, 0
        for label, spread in (("training-like", 1.0), ("random", 3.0)):
            condition, actions = _parity_inputs(ckpt, rng, 64, 32, spread)
            if role == "generator":
                feeds = {"condition": condition}
            elif role == "energy":
                feeds = {"condition": condition, "actions": actions}
                if ladder is not None:  # every level, in random order
                    feeds["level"] = rng.integers(0, len(ladder), 64).astype(np.int64)
            elif role == "denoiser":
                steps = ckpt.generator.diffusion_steps
                feeds = {"condition": condition, "sample": (spread * rng.standard_normal((64, a))).astype(np.float32),
                         "timestep": rng.integers(0, steps, 64).astype(np.float32)}
            else:
                uniforms = rng.random((64, 32), dtype=np.float32)
                uniforms[:32] = uniforms[:32, :1]  # half the rows as the runtime's "mode first" draw
                previous = rng.integers(-1, m, 64).astype(np.int64)
                feeds = {"condition": condition, "noise": rng.standard_normal((64, 32, a), dtype=np.float32),
                         "uniforms": uniforms, "previous_component": previous,
                         "keep_min_weight": np.array([0.05], dtype=np.float32)}
            with torch.no_grad():
                expected = references[role](*(torch.from_numpy(v) for v in feeds.values()))
            expected = [e.numpy() for e in (expected if isinstance(expected, tuple) else (expected,))]
            actual = sessions[role].run(None, feeds)
            for name, want, have in zip([o.name for o in sessions[role].get_outputs()], expected, actual):
                if want.shape != have.shape:
                    raise ExportError(f"{role}: output {name!r} has shape {have.shape} in onnxruntime, "
                                      f"{want.shape} in torch")
                if want.dtype.kind == "i":
                    mismatched_components += int(np.sum(want != have))
                    continue
                if not (np.all(np.isfinite(want)) and np.all(np.isfinite(have))):
                    raise ExportError(f"{role}: output {name!r} is not finite on {label} inputs (NaN/inf weights?)")
                diff = np.abs(want.astype(np.float64) - have)
                worst_abs = max(worst_abs, float(diff.max()))
                worst_scaled = max(worst_scaled, float((diff / np.maximum(1.0, np.abs(want))).max()))
        if worst_scaled > tolerance or mismatched_components:
            raise ExportError(f"{role}: onnxruntime differs from torch: max abs diff {worst_abs:.3g}, max scaled "
                              f"error {worst_scaled:.3g} > {tolerance:g}, {mismatched_components} component draws differ")
        report[role] = {"max_abs_diff": worst_abs, "max_scaled_error": worst_scaled}
    return report


def calibrate_threshold(ckpt: Checkpoint, sessions: dict, conditions: np.ndarray | None, source: str | None,
                        num_candidates: int, max_conditions: int, quantile: float, margin: float,
                        seed: int = 0) -> EnergyCalibration:
    """Chosen energies at training-like conditions, drawn and chosen by the runtime's rule (mode first,
    no previous mode) through the exported graphs: the fused one when there is one, else the two."""
    rng = np.random.default_rng(seed + 1)
    if conditions is None:
        mean = ckpt.condition_normalizer.mean.numpy()
        std = ckpt.condition_normalizer.std.numpy()
        conditions = mean + std * rng.standard_normal((max_conditions, mean.size))
        source = "normalizer_gaussian"
    conditions = np.asarray(conditions, dtype=np.float32).reshape(-1, ckpt.spec.condition_dim)
    if len(conditions) > max_conditions:
        conditions = conditions[rng.choice(len(conditions), max_conditions, replace=False)]
    low, high = np.asarray(ckpt.spec.flat_action_low, np.float32), np.asarray(ckpt.spec.flat_action_high, np.float32)
    chosen = []
    for start in range(0, len(conditions), 32):
        condition = conditions[start:start + 32]
        batch = len(condition)
        noise = rng.standard_normal((batch, num_candidates, ckpt.spec.flat_action_dim), dtype=np.float32)
        uniforms, previous = selection.graph_inputs("mode_first", rng.random((batch, num_candidates), dtype=np.float32),
                                                    np.full(batch, -1, dtype=np.int64))
        if "decision" in sessions:
            energies = sessions["decision"].run(["energies"], {
                "condition": condition, "noise": noise, "uniforms": uniforms, "previous_component": previous,
                "keep_min_weight": np.array([0.0], dtype=np.float32)})[0]
        else:
            logits, means, scales = sessions["generator"].run(None, {"condition": condition})
            candidates, _ = selection.draw("mode_first", logits, means, scales, uniforms, noise, low, high, previous)
            feeds = {"condition": condition, "actions": candidates}
            if _ladder(ckpt) is not None:  # real actions: the data's level
                feeds["level"] = np.full(batch, len(_ladder(ckpt)) - 1, np.int64)
            energies = sessions["energy"].run(None, feeds)[0]
        chosen.append(energies[np.arange(batch), selection.choose("mode_first", energies)])
    chosen = np.concatenate(chosen).astype(np.float64)
    return EnergyCalibration(quantile=quantile, margin=margin, quantile_energy=float(np.quantile(chosen, quantile)),
                             median_energy=float(np.median(chosen)), num_conditions=int(chosen.size),
                             num_candidates=num_candidates, source=source or "given")


def _manifest(ckpt: Checkpoint, staging: Path, roles: list[str], model_version: str | None, threshold: float | None,
              calibration: EnergyCalibration | None, parity: dict, tolerance: float, metrics: dict) -> Manifest:
    spec = ckpt.spec
    sizes = (spec.condition_dim, spec.flat_action_dim, _num_components(ckpt))
    ladder = _ladder(ckpt)
    graphs = {}
    for role in roles:
        inputs, outputs = graph_io(role, *sizes, levels=ladder is not None)
        graphs[role] = GraphSpec(GRAPH_FILES[role], sha256_of(staging / GRAPH_FILES[role]), inputs, outputs)
    kind: dict = {}
    energy_source = "network" if ckpt.energy is not None else "mixture_negative_log_density"
    if ladder is not None:
        kind = {"noise_ladder": tuple(ladder), "level_embedding": LevelEmbedding(
            "sinusoidal_log_sigma", ckpt.energy.level_frequencies, LEVEL_FLOOR)}
    if isinstance(ckpt.generator, Denoiser):
        energy_source = "none"
        steps = int((ckpt.config.get("inference") or {}).get("ddim_steps", 16))
        kind = {"policy_kind": "diffusion", "denoiser": graphs["denoiser"], "diffusion": DiffusionSchedule(
            "squared_cosine", ckpt.generator.diffusion_steps, tuple(ckpt.generator.alpha_bar.tolist()),
            min(steps, ckpt.generator.diffusion_steps))}
    if model_version is None:
        combined = hashlib.sha256("".join(graphs[r].sha256 for r in roles).encode()).hexdigest()
        model_version = f"{ckpt.task}-{ckpt.method}-{combined[:12]}"
    return Manifest(
        format=MANIFEST_FORMAT, model_version=model_version, method=ckpt.method, task=ckpt.task,
        condition_names=spec.condition_names, condition_size=spec.condition_dim,
        action_names=spec.action_names, action_size=spec.action_dim,
        action_low=tuple(float(v) for v in spec.action_low), action_high=tuple(float(v) for v in spec.action_high),
        action_kind=spec.action_kind, num_components=_num_components(ckpt), energy_source=energy_source,
        generator=graphs.get("generator"), energy=graphs.get("energy"), decision=graphs.get("decision"),
        normalization=Normalization(
            tuple(ckpt.condition_normalizer.mean.tolist()), tuple(ckpt.condition_normalizer.std.tolist()),
            tuple(ckpt.action_normalizer.mean.tolist()), tuple(ckpt.action_normalizer.std.tolist())),
        energy_threshold=None if threshold is None else float(threshold), energy_calibration=calibration,
        parity={"tolerance": tolerance, "rule": "|onnxruntime - torch| <= tolerance * max(1, |torch|)", **parity},
        training_config=json_safe(ckpt.config), metrics=json_safe(metrics),
        exported_with={"torch": torch.__version__, "onnxruntime": ort.__version__, "opset": OPSET,
                       "exporter": "torch.onnx.export(dynamo=False)"},
        exported_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        chunk=None if spec.chunk is None else Chunk(spec.chunk.horizon, spec.chunk.n_exec, float(spec.chunk.dt)), **kind)


def _publish(staging: Path, out_dir: Path, files: list[str]) -> None:
    """Move the staged files into out_dir, manifest last, so a watcher never sees a mixed directory.

    The old manifest goes first: between the two, the directory has no manifest and reads as
    "incomplete" rather than as the old model with new files under it.
    """
    (out_dir / MANIFEST_FILE).unlink(missing_ok=True)
    for name in GRAPH_FILES.values():
        if name not in files:
            (out_dir / name).unlink(missing_ok=True)  # a graph of the previous export that this one lacks
    for name in files:
        os.replace(staging / name, out_dir / name)
    os.replace(staging / MANIFEST_FILE, out_dir / MANIFEST_FILE)
