"""The model directory contract: manifest.json beside generator.onnx, energy.onnx (and decision.onnx).

The manifest says everything a consumer needs without the training code: what the condition and
action dimensions are called, the action box, the graphs' files, hashes and tensor signatures, the
energy threshold suggestion, and where the model came from (training config, metrics, parity).
Parsing is strict (config_base.from_dict): an unknown key or a wrong type is an error naming it.
No torch, no onnxruntime: the node and `ebgan-mdn validate` import this on a robot.

A model directory may come from anyone who can set a parameter, so its files are read only through
read_model_file: inside the directory's real path, regular files, bounded in size, read once. An
error names the file and the kind of problem; it never quotes a file that is not one of our
manifests, and what it quotes of one is bounded.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ebgan_mdn_ros.config_base import ConfigError, from_dict, to_dict
from ebgan_mdn_ros.runtime import diffusion
from ebgan_mdn_ros.spec import ACTION_KINDS

MANIFEST_FORMAT = "ebgan-mdn-model/1"
MANIFEST_FILE = "manifest.json"
ENERGY_SOURCES = ("network", "mixture_negative_log_density", "none")  # none: a diffusion model
POLICY_KINDS = ("mixture", "diffusion")
# Keys added after ebgan-mdn-model/1 first shipped, with their defaults: a manifest leaves them out at
# their default, so a mixture model exported today still reads in a runtime that predates them.
OPTIONAL_KEYS = {"policy_kind": "mixture", "noise_ladder": None, "level_embedding": None, "denoiser": None,
                 "diffusion": None, "chunk": None}
DTYPES = ("float32", "int64")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9_.-]+\.onnx$")
MAX_MANIFEST_BYTES = 1 << 20  # ours are a few KiB; anything near this is not a manifest
MAX_QUOTED_CHARS = 500        # of an error message quoting a manifest (the known-keys list is ~350)


class ManifestError(ValueError):
    """manifest.json is missing, malformed or inconsistent with itself."""


class ModelFileError(ValueError):
    """A file of a model directory cannot be read safely: outside the directory, not a regular file, too large."""


class ModelFileMissing(ModelFileError):
    """The file does not exist (or is a link to nothing)."""


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
class LevelEmbedding:
    """How a multi-level energy sees its level (inside energy.onnx; recorded to describe the model):
    sinusoidal features of log(sigma + floor) at `frequencies` octaves (docs/method.md sec. 10)."""
    kind: str
    frequencies: int
    floor: float


@dataclass(frozen=True)
class DiffusionSchedule:
    """A diffusion model's noise schedule (docs/method.md sec. 11): alpha_bar_t for the training steps
    t = 0..train_steps-1, and the DDIM steps the runtime takes by default."""
    kind: str
    train_steps: int
    alpha_bar: tuple[float, ...]
    sampling_steps: int
    prediction: str = "epsilon"
    clip_sample: bool = True

    def __post_init__(self):
        if len(self.alpha_bar) != self.train_steps or self.train_steps < 2:
            raise ConfigError(f"diffusion.alpha_bar: {len(self.alpha_bar)} values for train_steps "
                              f"{self.train_steps} (expected one per training step, at least 2)")
        try:
            diffusion.check_schedule(self.alpha_bar)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if not 1 <= self.sampling_steps <= self.train_steps:
            raise ConfigError(f"diffusion.sampling_steps: {self.sampling_steps} must be in [1, {self.train_steps}]")
        if self.prediction != "epsilon":
            raise ConfigError(f"diffusion.prediction: {self.prediction!r} is unknown, expected 'epsilon'")


@dataclass(frozen=True)
class Chunk:
    """An action-chunk model (docs/chunks.md): each decision is ``horizon`` actions, action i the target
    for the answered state's time + (i + 1) * dt seconds, flattened step-major in every graph (the
    action tensors' last axis is horizon * action_size, and so is the action normalisation). A robot
    executes ``n_exec`` of them before it asks again (the node may replan earlier, never later)."""
    horizon: int
    n_exec: int
    dt: float

    def __post_init__(self):
        if self.horizon < 1 or not 1 <= self.n_exec <= self.horizon:
            raise ConfigError(f"chunk: horizon {self.horizon} and n_exec {self.n_exec} must satisfy "
                              "1 <= n_exec <= horizon")
        if not (math.isfinite(self.dt) and self.dt > 0):
            raise ConfigError(f"chunk.dt: {self.dt!r} must be a finite number of seconds > 0")


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
    generator: GraphSpec | None          # null only for a diffusion model
    energy: GraphSpec | None
    normalization: Normalization
    decision: GraphSpec | None = None
    energy_threshold: float | None = None
    energy_calibration: EnergyCalibration | None = None
    parity: dict | None = None
    training_config: dict | None = None
    metrics: dict | None = None
    exported_with: dict | None = None
    exported_at: str = ""
    policy_kind: str = "mixture"
    noise_ladder: tuple[float, ...] | None = None  # multi-level energy: sigma per level, noise first, 0 last
    level_embedding: LevelEmbedding | None = None
    denoiser: GraphSpec | None = None
    diffusion: DiffusionSchedule | None = None
    chunk: Chunk | None = None

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
        if self.chunk is not None and (self.policy_kind != "mixture" or self.noise_ladder is not None):
            raise ConfigError("chunk: action chunks are served for one-level mixture models only "
                              f"(this is a {self.policy_kind} model{' with a noise ladder' if self.noise_ladder else ''})")
        flat = self.flat_action_size
        for key, size in (("condition_mean", self.condition_size), ("condition_std", self.condition_size),
                          ("action_mean", flat), ("action_std", flat)):
            if len(getattr(norm, key)) != size:
                raise ConfigError(f"normalization.{key}: expected {size} entries, got {len(getattr(norm, key))}")
        self._check_kind()
        for role, graph in self.graphs.items():
            expected = graph_io(role, self.condition_size, flat, self.num_components,
                                levels=self.noise_ladder is not None)
            if (graph.inputs, graph.outputs) != expected:
                raise ConfigError(f"{role}: its inputs/outputs {signature(graph.inputs, graph.outputs)} differ from "
                                  f"the {MANIFEST_FORMAT} contract {signature(*expected)}")

    def _check_kind(self) -> None:
        if self.policy_kind not in POLICY_KINDS:
            raise ConfigError(f"policy_kind: {self.policy_kind!r} is unknown, expected one of {POLICY_KINDS}")
        if self.noise_ladder is not None:
            ladder = self.noise_ladder
            if (not ladder or not all(math.isfinite(s) for s in ladder) or ladder[-1] != 0
                    or any(a <= b for a, b in zip(ladder, ladder[1:]))):
                raise ConfigError(f"noise_ladder: {list(ladder)} must be strictly decreasing to 0 "
                                  "(noise levels first, the data's level 0 last)")
        if (self.noise_ladder is None) != (self.level_embedding is None):
            raise ConfigError("noise_ladder and level_embedding: a multi-level energy needs both, other models neither")
        if self.policy_kind == "diffusion":
            if self.diffusion is None:
                raise ConfigError("diffusion: a diffusion model (policy_kind 'diffusion') needs its noise schedule "
                                  "(the manifest's 'diffusion': alpha_bar, train_steps, sampling_steps)")
            if self.denoiser is None:
                raise ConfigError("denoiser: a diffusion model (policy_kind 'diffusion') needs its denoiser graph")
            extra = [role for role in ("generator", "energy", "decision") if getattr(self, role) is not None]
            if extra or self.noise_ladder is not None or self.energy_source != "none":
                raise ConfigError(f"policy_kind 'diffusion': no generator, energy, decision graph or noise_ladder, "
                                  f"and energy_source 'none' (found {extra or self.energy_source})")
            return
        if self.generator is None or self.energy is None:
            missing = "generator" if self.generator is None else "energy"
            raise ConfigError(f"{missing}: a mixture model needs its {missing} graph")
        if self.denoiser is not None or self.diffusion is not None:
            raise ConfigError("denoiser and diffusion belong to policy_kind 'diffusion', not 'mixture'")
        if self.energy_source == "none":
            raise ConfigError("energy_source: 'none' is for diffusion models; a mixture model has an energy")

    @property
    def horizon(self) -> int:
        return 1 if self.chunk is None else self.chunk.horizon

    @property
    def flat_action_size(self) -> int:
        """The graphs' action width: horizon * action_size (action_size for a one-step model)."""
        return self.horizon * self.action_size

    @property
    def flat_action_low(self) -> tuple[float, ...]:
        return tuple(self.action_low) * self.horizon

    @property
    def flat_action_high(self) -> tuple[float, ...]:
        return tuple(self.action_high) * self.horizon

    @property
    def graphs(self) -> dict[str, GraphSpec]:
        """The graphs present, by role."""
        return {role: g for role in ("generator", "energy", "decision", "denoiser")
                if (g := getattr(self, role)) is not None}


def _tensor(name: str, shape: tuple, dtype: str = "float32") -> TensorSpec:
    return TensorSpec(name, dtype, tuple(shape))


def graph_io(role: str, condition_size: int, action_size: int, num_components: int,
             levels: bool = False) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """The contract: the inputs and outputs each graph role must have. "batch"/"candidates" are dynamic.

    levels: the energy of a multi-level model also takes the level (an index into noise_ladder) per row.
    """
    c, a, m = condition_size, action_size, num_components
    condition = _tensor("condition", ("batch", c))
    mixture = (_tensor("logits", ("batch", m)), _tensor("means", ("batch", m, a)), _tensor("scales", ("batch", m, a)))
    if role == "generator":
        return (condition,), mixture
    if role == "energy":
        level = (_tensor("level", ("batch",), "int64"),) if levels else ()
        return ((condition, _tensor("actions", ("batch", "candidates", a))) + level,
                (_tensor("energy", ("batch", "candidates")),))
    if role == "denoiser":  # sample: a noisy action in normalised units; timestep: the training step t
        return ((condition, _tensor("sample", ("batch", a)), _tensor("timestep", ("batch",))),
                (_tensor("eps", ("batch", a)),))
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
    """For files the caller wrote itself (the exporter); the loader hashes the bytes it read instead."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def bounded(text: str, limit: int = MAX_QUOTED_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def is_inside(path: str, root: str) -> bool:
    """Whether the absolute ``path`` is ``root`` or below it (by path components, not string prefix)."""
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives (Windows)
        return False


def read_model_file(root: str | Path, name: str, limit: int) -> bytes:
    """The bytes of ``name`` in the model directory ``root``, read once, at most ``limit`` of them.

    ``root`` is the directory's real path, resolved once by the caller (os.path.realpath) and used
    as given, so that one load reads every file against the same directory. Refused
    (ModelFileError) unless the file's real path is inside ``root`` (a symlink within the directory
    is fine, one out of it is not), it is a regular file (a FIFO would block, a device never ends)
    and it is no larger than ``limit``. The checks apply to the one open file whose bytes are
    returned; the caller hashes and uses those bytes, never the path again.
    """
    root = os.path.abspath(root)
    shown = os.path.join(root, name)
    real = os.path.realpath(shown)
    if not is_inside(real, root):
        raise ModelFileError(f"{shown} resolves outside the model directory (a symlink out of it?); not read")
    try:
        # O_NOFOLLOW: if the resolved file was swapped for a symlink since, refuse rather than follow it.
        # O_NONBLOCK: opening a FIFO returns at once (and is then refused) instead of waiting for a writer.
        flags = os.O_RDONLY | getattr(os, "O_BINARY", 0)
        for flag in ("O_NOFOLLOW", "O_NONBLOCK", "O_CLOEXEC"):  # POSIX; Windows has none of them
            flags |= getattr(os, flag, 0)
        fd = os.open(real, flags)
    except FileNotFoundError:
        raise ModelFileMissing(f"{shown} is missing") from None
    except OSError as exc:
        raise ModelFileError(f"{shown} cannot be opened: {exc.strerror}") from None
    with open(fd, "rb", closefd=True) as handle:
        opened = _path_of(fd)  # a directory above the file swapped for a symlink after realpath shows here
        if opened is not None and not is_inside(opened, root):
            raise ModelFileError(f"{shown} resolves outside the model directory (it changed while opening); not read")
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ModelFileError(f"{shown} is not a regular file")
        if info.st_size > limit:
            raise ModelFileError(f"{shown} is {info.st_size} bytes, over the limit of {limit} bytes")
        # One byte more than stat said: a file still being written shows up here instead of being
        # read past the limit.
        data = handle.read(info.st_size + 1)
    if len(data) > info.st_size:
        raise ModelFileError(f"{shown} grew while being read (is it still being written?)")
    return data


def _path_of(fd: int) -> str | None:
    """The path the kernel has for an open file (Linux /proc); None where that is not available."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}").removesuffix(" (deleted)")
    except OSError:
        return None


def manifest_from_dict(data: Any, where: str = "manifest") -> Manifest:
    # A JSON file that is not one of our manifests (any readable file can be offered as one) is
    # refused without naming its keys or values; only a real manifest's errors quote, and bounded.
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        found = data.get("format") if isinstance(data, dict) else None
        if isinstance(found, str) and found.startswith(MANIFEST_FORMAT.split("/")[0] + "/"):
            raise ManifestError(f"{where}: format {bounded(found, 40)!r} is not supported, "
                                f"expected {MANIFEST_FORMAT!r}")
        raise ManifestError(f"{where}: not an {MANIFEST_FORMAT} manifest (a JSON object whose \"format\" is "
                            f"{MANIFEST_FORMAT!r}); its contents are not shown")
    try:
        return from_dict(Manifest, data)
    except (ConfigError, TypeError) as exc:
        raise ManifestError(f"{where}: {bounded(str(exc))}") from None


def load_manifest(model_dir: str | Path) -> Manifest:
    return read_manifest(os.path.realpath(model_dir))


def read_manifest(root: str | Path) -> Manifest:
    """The manifest of the model directory whose real path is ``root`` (used as given, see read_model_file)."""
    path = Path(root) / MANIFEST_FILE
    try:
        raw = read_model_file(root, MANIFEST_FILE, MAX_MANIFEST_BYTES)
    except ModelFileMissing:
        raise ManifestError(f"{path} does not exist (an export writes it last: "
                            "the directory may be incomplete)") from None
    except ModelFileError as exc:
        raise ManifestError(str(exc)) from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, a 5000-digit number, [[[[...]]]]
        raise ManifestError(f"{path} is not readable JSON: {bounded(str(exc) or type(exc).__name__)}") from None
    return manifest_from_dict(data, str(path))


def manifest_to_dict(manifest: Manifest) -> dict:
    data = to_dict(manifest)
    return {k: v for k, v in data.items() if not (k in OPTIONAL_KEYS and v == OPTIONAL_KEYS[k])}


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
