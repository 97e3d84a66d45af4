"""The model directory contract: manifest.json beside generator.onnx, energy.onnx (and decision.onnx).

The manifest says everything a consumer needs without the training code: what the condition and
action dimensions are called, the action box, the graphs' files, hashes and tensor signatures, the
energy threshold suggestion, and where the model came from (training config, metrics, parity).
Parsing is strict (config_base.from_dict): an unknown key or a wrong type is an error naming it.
No torch, no onnxruntime: the node and `ebgan-mdn validate` import this on a robot.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ebgan_mdn_ros.config_base import ConfigError, from_dict, to_dict
from ebgan_mdn_ros.spec import ACTION_KINDS

MANIFEST_FORMAT = "ebgan-mdn-model/1"
MANIFEST_FILE = "manifest.json"
ENERGY_SOURCES = ("network", "mixture_negative_log_density")
DTYPES = ("float32", "int64")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9_.-]+\.onnx$")


class ManifestError(ValueError):
    """manifest.json is missing, malformed or inconsistent with itself."""


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output; a str dimension is dynamic (its name), an int is fixed."""
    name: str
    dtype: str
    shape: tuple[int | str, ...]

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype: {self.dtype!r} is unknown, expected one of {DTYPES}")


@dataclass(frozen=True)
class GraphSpec:
    file: str
    sha256: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def __post_init__(self):
        if not _FILE_NAME.match(self.file) or self.file.startswith("."):
            raise ConfigError(f"file: {self.file!r} must be a plain *.onnx file name inside the model directory")
        if not _SHA256.match(self.sha256):
            raise ConfigError(f"sha256: {self.sha256!r} is not 64 lower-case hex digits")


@dataclass(frozen=True)
class Normalization:
    """The statistics baked into the graphs; shipped so a consumer can check them against its setup."""
    condition_mean: tuple[float, ...]
    condition_std: tuple[float, ...]
    action_mean: tuple[float, ...]
    action_std: tuple[float, ...]


@dataclass(frozen=True)
class EnergyCalibration:
    """How energy_threshold was suggested: quantile_energy + margin * (quantile_energy - median_energy)
    over the chosen (mode-first) energies at num_conditions training-like conditions."""
    quantile: float
    margin: float
    quantile_energy: float
    median_energy: float
    num_conditions: int
    num_candidates: int
    source: str


@dataclass(frozen=True)
class Manifest:
    format: str
    model_version: str
    method: str
    task: str
    condition_names: tuple[str, ...]
    condition_size: int
    action_names: tuple[str, ...]
    action_size: int
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]
    action_kind: str
    num_components: int
    energy_source: str
    generator: GraphSpec
    energy: GraphSpec
    normalization: Normalization
    decision: GraphSpec | None = None
    energy_threshold: float | None = None
    energy_calibration: EnergyCalibration | None = None
    parity: dict | None = None
    training_config: dict | None = None
    metrics: dict | None = None
    exported_with: dict | None = None
    exported_at: str = ""

    def __post_init__(self):
        if self.format != MANIFEST_FORMAT:
            raise ConfigError(f"format: {self.format!r} is not supported, expected {MANIFEST_FORMAT!r}")
        if self.condition_size != len(self.condition_names) or self.condition_size < 1:
            raise ConfigError(f"condition_size: {self.condition_size} does not match "
                              f"{len(self.condition_names)} condition_names")
        if self.action_size != len(self.action_names) or self.action_size < 1:
            raise ConfigError(f"action_size: {self.action_size} does not match {len(self.action_names)} action_names")
        for key in ("action_low", "action_high"):
            if len(getattr(self, key)) != self.action_size:
                raise ConfigError(f"{key}: {getattr(self, key)} must have {self.action_size} entries")
        if any(not (lo < hi) for lo, hi in zip(self.action_low, self.action_high)):
            raise ConfigError(f"action_low {self.action_low} must be below action_high {self.action_high}")
        if len(set(self.condition_names)) != self.condition_size or len(set(self.action_names)) != self.action_size:
            raise ConfigError("condition_names and action_names must be unique")
        if self.action_kind not in ACTION_KINDS:
            raise ConfigError(f"action_kind: {self.action_kind!r} is unknown, expected one of {ACTION_KINDS}")
        if self.energy_source not in ENERGY_SOURCES:
            raise ConfigError(f"energy_source: {self.energy_source!r} is unknown, expected one of {ENERGY_SOURCES}")
        if self.num_components < 1:
            raise ConfigError(f"num_components: {self.num_components} must be >= 1")
        if self.energy_threshold is not None and not math.isfinite(self.energy_threshold):
            raise ConfigError(f"energy_threshold: {self.energy_threshold!r} must be finite or null")
        norm = self.normalization
        for key, size in (("condition_mean", self.condition_size), ("condition_std", self.condition_size),
                          ("action_mean", self.action_size), ("action_std", self.action_size)):
            if len(getattr(norm, key)) != size:
                raise ConfigError(f"normalization.{key}: expected {size} entries, got {len(getattr(norm, key))}")
        for role, graph in self.graphs.items():
            expected = graph_io(role, self.condition_size, self.action_size, self.num_components)
            if (graph.inputs, graph.outputs) != expected:
                raise ConfigError(f"{role}: its inputs/outputs {signature(graph.inputs, graph.outputs)} differ from "
                                  f"the {MANIFEST_FORMAT} contract {signature(*expected)}")

    @property
    def graphs(self) -> dict[str, GraphSpec]:
        """The graphs present, by role."""
        return {role: g for role in ("generator", "energy", "decision") if (g := getattr(self, role)) is not None}


def _tensor(name: str, shape: tuple, dtype: str = "float32") -> TensorSpec:
    return TensorSpec(name, dtype, tuple(shape))


def graph_io(role: str, condition_size: int, action_size: int,
             num_components: int) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """The contract: the inputs and outputs each graph role must have. "batch"/"candidates" are dynamic."""
    c, a, m = condition_size, action_size, num_components
    condition = _tensor("condition", ("batch", c))
    mixture = (_tensor("logits", ("batch", m)), _tensor("means", ("batch", m, a)), _tensor("scales", ("batch", m, a)))
    if role == "generator":
        return (condition,), mixture
    if role == "energy":
        return ((condition, _tensor("actions", ("batch", "candidates", a))),
                (_tensor("energy", ("batch", "candidates")),))
    if role == "decision":
        inputs = (condition, _tensor("noise", ("batch", "candidates", a)), _tensor("uniforms", ("batch", "candidates")),
                  _tensor("previous_component", ("batch",), "int64"), _tensor("keep_min_weight", (1,)))
        outputs = (_tensor("candidates", ("batch", "candidates", a)), _tensor("energies", ("batch", "candidates")),
                   _tensor("components", ("batch", "candidates"), "int64")) + mixture
        return inputs, outputs
    raise ValueError(f"graph role {role!r} is unknown")


def signature(inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]) -> str:
    def fmt(specs):
        return ", ".join(f"{t.name}:{t.dtype}{list(t.shape)}" for t in specs)
    return f"({fmt(inputs)}) -> ({fmt(outputs)})"


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest_from_dict(data: Any) -> Manifest:
    try:
        return from_dict(Manifest, data)
    except (ConfigError, TypeError) as exc:
        raise ManifestError(f"manifest: {exc}") from None


def load_manifest(model_dir: str | Path) -> Manifest:
    path = Path(model_dir) / MANIFEST_FILE
    if not path.is_file():
        raise ManifestError(f"{path} does not exist (an export writes it last: the directory may be incomplete)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path} is not readable JSON: {exc}") from None
    return manifest_from_dict(data)


def manifest_to_dict(manifest: Manifest) -> dict:
    return to_dict(manifest)


def json_safe(value: Any) -> Any:
    """Plain JSON (no NaN/inf, which strict parsers reject): non-finite floats become null."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "item"):  # numpy / torch scalars
        return json_safe(value.item())
    return str(value)


def write_manifest(manifest: Manifest, model_dir: str | Path) -> Path:
    """Write manifest.json atomically (temporary file, then rename): a reader sees all of it or none."""
    path = Path(model_dir) / MANIFEST_FILE
    tmp = path.with_name(f".{MANIFEST_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(json_safe(manifest_to_dict(manifest)), indent=2, allow_nan=False) + "\n",
                   encoding="utf-8")
    os.replace(tmp, path)
    return path
