"""Load a model directory into onnxruntime sessions, checking it against its manifest first.

Every check raises ModelValidationError with the reason: allowed root, manifest parse, file presence,
place and size, sha256, external data, onnxruntime load, input/output names, types and shapes against
the manifest, finite probe outputs. It does file I/O and builds sessions, so call it off the control
path (the node's hot-swap runs it in a worker and keeps the old model serving if it raises). No
torch, no rclpy, no onnx (the external-data check reads the protobuf wire format itself).

What is served is what was checked: the directory is resolved once to its real path, each file is
read once (manifest.read_model_file: inside that path, regular, bounded), each graph's bytes are
hashed and handed to onnxruntime as bytes, never reopened by path. A graph with external data is
refused, since onnxruntime would open those files itself, unhashed.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import onnxruntime as ort

from ebgan_mdn_ros.runtime.manifest import (GraphSpec, Manifest, ManifestError, ModelFileError, TensorSpec, bounded,
                                            is_inside, read_manifest, read_model_file)

_ORT_TYPES = {"tensor(float)": "float32", "tensor(int64)": "int64"}
DEFAULT_PROVIDERS = ("CPUExecutionProvider",)
# Our graphs are a few MiB; the bound only stops a wrong or hostile file from being read whole. A
# graph is held in memory twice while its session is built (our bytes and onnxruntime's copy).
MAX_GRAPH_BYTES = 512 << 20


class ModelValidationError(Exception):
    """The model directory cannot be served; the message says which file and what is wrong."""


@dataclass(frozen=True)
class LoadedModel:
    directory: Path  # as given
    manifest: Manifest
    sessions: Mapping[str, ort.InferenceSession]  # by role: "generator", "energy", maybe "decision"; or "denoiser"
    providers: tuple[str, ...]  # as the sessions report them, not as requested
    real_directory: Path | None = None  # where the files were read from (symlinks resolved)


def check_model_root(model_dir: str | Path, allowed_roots: Sequence[str | Path]) -> Path:
    """The real path of ``model_dir`` if it lies inside the real path of one of ``allowed_roots``.

    Both sides are resolved (os.path.realpath), so a symlink inside a root that points out of it is
    refused, and a root given through a symlink still holds what is really below it. An empty
    list allows nothing; a caller with no restriction does not call this (load_model: None).
    """
    if isinstance(allowed_roots, (str, bytes, os.PathLike)):
        raise TypeError("allowed_roots: expected a list of paths, not one path")
    roots = []
    for root in allowed_roots:
        if not str(root):
            raise ModelValidationError("allowed model roots: an empty path is not a root (it would mean the "
                                       "current directory)")
        roots.append(os.path.realpath(root))
    if not roots:
        raise ModelValidationError(f"{model_dir}: no allowed model roots are configured, so no model may load")
    real = os.path.realpath(model_dir)
    if not any(is_inside(real, root) for root in roots):
        raise ModelValidationError(f"{model_dir} (real path {real}) is not inside any allowed model root "
                                   f"({', '.join(roots)})")
    return Path(real)


def session_options(intra_op_threads: int = 1, inter_op_threads: int = 1) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = inter_op_threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # The graphs are mostly chains: running nodes side by side (inter-op) rarely pays, so it is
    # only switched on when asked for.
    options.execution_mode = (ort.ExecutionMode.ORT_PARALLEL if inter_op_threads > 1
                              else ort.ExecutionMode.ORT_SEQUENTIAL)
    # Spinning worker threads fight the control loop (and each other) on few cores; measured on the
    # 2-core build machine: p99 ~5 ms with spinning against < 1 ms without at 2 threads.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


def resolve_providers(requested: Iterable[str]) -> list[str]:
    """The requested providers this onnxruntime build has, in the requested order."""
    requested = list(requested)
    available = set(ort.get_available_providers())
    usable = [p for p in requested if p in available]
    if not usable:
        raise ModelValidationError(f"none of the execution providers {requested} is available "
                                   f"(this onnxruntime has {sorted(available)})")
    return usable


def load_model(model_dir: str | Path, providers: Iterable[str] = DEFAULT_PROVIDERS, intra_op_threads: int = 1,
               inter_op_threads: int = 1, roles: Iterable[str] | None = None, probe: bool = True, *,
               allowed_roots: Sequence[str | Path] | None = None) -> LoadedModel:
    """Validate ``model_dir`` and open a session per graph in ``roles`` (default: all in the manifest).

    Every graph's file and hash is checked; names, shapes and the probe apply to the opened ones.
    ``allowed_roots``: when given, the directory must lie inside one of them (check_model_root).
    """
    directory = Path(model_dir)
    # Resolved once: every file below is read relative to this, so a symlinked directory switched
    # mid-load (models/current -> v4) cannot mix files, or leave the allowed roots.
    root = (check_model_root(directory, allowed_roots) if allowed_roots is not None
            else Path(os.path.realpath(directory)))
    if not root.is_dir():
        raise ModelValidationError(f"{directory} is not a directory")
    try:
        manifest = read_manifest(root)
    except ManifestError as exc:
        raise ModelValidationError(str(exc)) from None
    graphs = manifest.graphs
    roles = list(graphs) if roles is None else list(roles)
    for role in roles:
        if role not in graphs:
            raise ModelValidationError(f"{directory}: the manifest has no {role!r} graph")
    # All of them are read and hashed: the directory ships as one unit, even if one graph serves.
    verified = {role: _read_graph(root, graph) for role, graph in graphs.items()}
    usable = resolve_providers(providers)
    options = session_options(intra_op_threads, inter_op_threads)
    # Bytes are parsed as ONNX protobuf only: onnxruntime would otherwise take a flatbuffer (ORT
    # format) too, which the external-data check above does not read.
    options.add_session_config_entry("session.load_model_format", "ONNX")
    sessions = {}
    for role in roles:
        path = root / graphs[role].file
        try:
            session = ort.InferenceSession(verified[role], sess_options=options, providers=usable)
        except Exception as exc:  # onnxruntime raises its own classes for every kind of broken file
            raise ModelValidationError(f"{path} cannot be loaded by onnxruntime: {bounded(str(exc))}") from None
        _check_signature(path, session.get_inputs(), graphs[role].inputs, "input")
        _check_signature(path, session.get_outputs(), graphs[role].outputs, "output")
        sessions[role] = session
    main = sessions.get("decision") or next(iter(sessions.values()))
    model = LoadedModel(directory, manifest, sessions, tuple(main.get_providers()), root)
    if probe:
        probe_model(model)
    return model


def _read_graph(root: Path, graph: GraphSpec) -> bytes:
    """The graph's bytes, once they match the manifest's hash and hold no external-data reference."""
    path = root / graph.file
    try:
        data = read_model_file(root, graph.file, MAX_GRAPH_BYTES)
    except ModelFileError as exc:
        raise ModelValidationError(str(exc)) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != graph.sha256:
        raise ModelValidationError(f"{path} has sha256 {digest}, the manifest says {graph.sha256} "
                                   "(file changed, truncated or from another export)")
    try:
        external = uses_external_data(data)
    except ValueError as exc:
        # The same words as onnxruntime's own refusal: for the operator it is one kind of fault.
        raise ModelValidationError(f"{path} cannot be loaded by onnxruntime: not a well-formed ONNX model "
                                   f"({exc}; found before onnxruntime parsed it)") from None
    if external:
        raise ModelValidationError(f"{path} uses external data (tensors stored in other files, which would be "
                                   "read unhashed); export with the weights inside the graph")
    return data


# -- external data, from the protobuf wire format ----------------------------------------------------
# onnx.proto: for each message that can hold a TensorProto, the fields leading to one (field number ->
# message). Everything else is skipped by its length, so the walk is over structure, not weights.
_MODEL, _TRAINING, _FUNCTION, _GRAPH, _NODE, _ATTRIBUTE, _SPARSE, _TENSOR = range(8)
_CHILDREN = {
    _MODEL: {7: _GRAPH, 20: _TRAINING, 25: _FUNCTION},           # graph, training_info, functions
    _TRAINING: {1: _GRAPH, 2: _GRAPH},                           # initialization, algorithm
    _FUNCTION: {7: _NODE, 11: _ATTRIBUTE},                       # node, attribute_proto
    _GRAPH: {1: _NODE, 5: _TENSOR, 15: _SPARSE},                 # node, initializer, sparse_initializer
    _NODE: {5: _ATTRIBUTE},                                      # attribute
    _ATTRIBUTE: {5: _TENSOR, 6: _GRAPH, 10: _TENSOR, 11: _GRAPH, 22: _SPARSE, 23: _SPARSE},  # t g tensors graphs ...
    _SPARSE: {1: _TENSOR, 2: _TENSOR},                           # values, indices
    _TENSOR: {},
}
_TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION = 13, 14
_MAX_DEPTH = 64  # message nesting; ours is 4, protobuf's own parsers stop at 100


def uses_external_data(data: bytes) -> bool:
    """Whether any tensor of the serialized ModelProto ``data`` refers to external data.

    A tensor counts if it has external_data entries or a non-default data_location, anywhere:
    initializers, Constant and other tensor attributes, sparse tensors, subgraphs, functions,
    training graphs. ValueError if ``data`` is not well-formed protobuf (it would not load either).
    """
    return _walk(memoryview(data), 0, len(data), _MODEL, 0)


def _walk(buf: memoryview, pos: int, end: int, kind: int, depth: int) -> bool:
    if depth > _MAX_DEPTH:
        raise ValueError(f"messages nested more than {_MAX_DEPTH} deep")
    children = _CHILDREN[kind]
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos, end)
            if kind == _TENSOR and number == _TENSOR_DATA_LOCATION and value != 0:
                return True
        elif wire == 2:
            length, pos = _varint(buf, pos, end)
            if length > end - pos:
                raise ValueError(f"a field of {length} bytes runs past the end of its message")
            if kind == _TENSOR and number == _TENSOR_EXTERNAL_DATA:
                return True
            # A known field with another wire type is an unknown field to protobuf too: only
            # length-delimited ones are messages.
            if number in children and _walk(buf, pos, pos + length, children[number], depth + 1):
                return True
            pos += length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:  # groups (3, 4) are proto2-only and no ONNX writer emits them; 6, 7 do not exist
            raise ValueError(f"protobuf wire type {wire}")
    if pos != end:
        raise ValueError("a fixed-size field runs past the end of its message")
    return False


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while pos < end and shift < 64:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    raise ValueError("a truncated or overlong varint")


def _check_signature(path: Path, actual, expected: tuple[TensorSpec, ...], kind: str) -> None:
    actual_names = [arg.name for arg in actual]
    expected_names = [spec.name for spec in expected]
    if actual_names != expected_names:
        raise ModelValidationError(f"{path}: {kind} names {actual_names}, the manifest says {expected_names}")
    for arg, spec in zip(actual, expected):
        dtype = _ORT_TYPES.get(arg.type, arg.type)
        if dtype != spec.dtype:
            raise ModelValidationError(f"{path}: {kind} {arg.name!r} has type {dtype}, the manifest says {spec.dtype}")
        if len(arg.shape) != len(spec.shape):
            raise ModelValidationError(f"{path}: {kind} {arg.name!r} has shape {arg.shape}, "
                                       f"the manifest says {list(spec.shape)}")
        for axis, (have, want) in enumerate(zip(arg.shape, spec.shape)):
            if isinstance(want, int) and have != want:
                raise ModelValidationError(f"{path}: {kind} {arg.name!r} has size {have} on axis {axis}, "
                                           f"the manifest says {want} (shape {arg.shape} against {list(spec.shape)})")
            if isinstance(want, str) and isinstance(have, int):
                raise ModelValidationError(f"{path}: {kind} {arg.name!r} axis {axis} is fixed at {have}, "
                                           f"the manifest says it is dynamic ({want!r})")


def probe_conditions(manifest: Manifest) -> np.ndarray:
    """Three training-like conditions: the normalisation mean and mean +- one std."""
    mean = np.asarray(manifest.normalization.condition_mean, dtype=np.float32)
    std = np.asarray(manifest.normalization.condition_std, dtype=np.float32)
    signs = np.array([[0.0], [1.0], [-1.0]], dtype=np.float32)
    return (mean + signs * std).astype(np.float32)


def probe_model(model: LoadedModel) -> None:
    """Run each session once on training-like input; outputs must be finite and shaped as promised."""
    manifest, sessions = model.manifest, model.sessions
    condition = probe_conditions(manifest)
    batch, m, a = condition.shape[0], manifest.num_components, manifest.flat_action_size
    candidates = np.tile(((np.asarray(manifest.flat_action_low) + np.asarray(manifest.flat_action_high)) / 2)
                         .astype(np.float32), (batch, 4, 1))
    if "generator" in sessions:
        logits, means, scales = _run(model, "generator", {"condition": condition})
        _expect(model, "generator", "logits", logits, (batch, m))
        _expect(model, "generator", "means", means, (batch, m, a))
        _expect(model, "generator", "scales", scales, (batch, m, a))
        if not np.all(scales > 0):
            raise ModelValidationError(f"{model.directory}: generator scales are not all positive on the probe")
        candidates = np.concatenate([candidates, means.astype(np.float32)], axis=1)
    if "energy" in sessions:
        feeds = {"condition": condition, "actions": candidates}
        if manifest.noise_ladder is not None:  # every level of the ladder once: top, clean, and one between
            feeds["level"] = np.array([0, len(manifest.noise_ladder) - 1, len(manifest.noise_ladder) // 2], np.int64)
        (energy,) = _run(model, "energy", feeds)
        _expect(model, "energy", "energy", energy, candidates.shape[:2])
    if "denoiser" in sessions:
        steps = manifest.diffusion.train_steps
        feeds = {"condition": condition, "sample": np.random.default_rng(0).standard_normal((batch, a), np.float32),
                 "timestep": np.array([0, steps - 1, steps // 2], np.float32)}
        (eps,) = _run(model, "denoiser", feeds)
        _expect(model, "denoiser", "eps", eps, (batch, a))
    if "decision" in sessions:
        k = 8
        rng = np.random.default_rng(0)
        feeds = {"condition": condition, "noise": rng.standard_normal((batch, k, a), dtype=np.float32),
                 "uniforms": rng.random((batch, k), dtype=np.float32),
                 "previous_component": np.array([-1, 0, m - 1], dtype=np.int64),
                 "keep_min_weight": np.array([0.05], dtype=np.float32)}
        out = _run(model, "decision", feeds)
        for name, value, shape in zip(("candidates", "energies", "components", "logits", "means", "scales"), out,
                                      ((batch, k, a), (batch, k), (batch, k), (batch, m), (batch, m, a), (batch, m, a))):
            _expect(model, "decision", name, value, shape)
        if np.any(out[2] < 0) or np.any(out[2] >= m):
            raise ModelValidationError(f"{model.directory}: decision components outside [0, {m}) on the probe")


def _run(model: LoadedModel, role: str, feeds: dict) -> list[np.ndarray]:
    try:
        return model.sessions[role].run(None, feeds)
    except Exception as exc:
        raise ModelValidationError(f"{model.directory / model.manifest.graphs[role].file}: "
                                   f"probe run failed: {exc}") from None


def _expect(model: LoadedModel, role: str, name: str, value: np.ndarray, shape: tuple) -> None:
    where = model.directory / model.manifest.graphs[role].file
    if tuple(value.shape) != tuple(shape):
        raise ModelValidationError(f"{where}: output {name!r} has shape {value.shape} on the probe, expected {shape}")
    if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
        raise ModelValidationError(f"{where}: output {name!r} is not finite on the probe "
                                   f"({int(np.sum(~np.isfinite(value)))} of {value.size} values; NaN/inf weights?)")
