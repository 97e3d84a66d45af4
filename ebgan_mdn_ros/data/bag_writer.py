"""Write rosbag2 recordings (a directory with metadata.yaml and one .mcap file) without rclpy.

The bag is what `ros2 bag record -s mcap` would write, so `ros2 bag info/play`, Foxglove and
`ebgan-mdn dataset` all read it:
- one MCAP file with profile "ros2"; one schema per message type, encoding "ros2msg", whose text is
  the complete message definition concatenated the way rosbag2 does it (`message_definition`);
- one channel per topic, message encoding "cdr", channel metadata `offered_qos_profiles` and
  `topic_type_hash` as rosbag2 writes them;
- message log_time = receive time, publish_time = send time (nanoseconds);
- metadata.yaml (rosbag2 metadata version 9) written on close, with per-topic message counts.

Messages go in either already serialised (`write_serialized`: the CDR bytes a raw rclpy subscription
delivers, written as they are) or as plain field values (`write_message`: encoded to CDR here with
mcap_ros2's encoder, for recordings made without a ROS graph, such as the in-process simulation).
"""
from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml
from mcap.well_known import MessageEncoding, SchemaEncoding
from mcap.writer import CompressionType, Writer as McapWriter
from mcap_ros2._dynamic import serialize_dynamic  # the encoder mcap_ros2.writer.Writer uses

METADATA_VERSION = 9
DEFINITION_DELIMITER = "=" * 80 + "\n"
PRIMITIVE_TYPES = frozenset({
    "bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16",
    "int32", "uint32", "int64", "uint64", "string", "wstring"})
# A field line of a .msg file: optional indent, the type (with package), optional array suffix, space.
_FIELD_TYPE = re.compile(r"(?:^|\n)\s*([a-zA-Z0-9_/]+)(?:\[[^\]]*\])?\s+")
# rosbag2's QoS of a recorded topic when nothing else is known: reliable, volatile, keep-last.
DEFAULT_QOS = [{
    "history": "keep_last", "depth": 10, "reliability": "reliable", "durability": "volatile",
    "deadline": {"sec": 2147483647, "nsec": 4294967295},
    "lifespan": {"sec": 2147483647, "nsec": 4294967295},
    "liveliness": "automatic",
    "liveliness_lease_duration": {"sec": 2147483647, "nsec": 4294967295},
    "avoid_ros_namespace_conventions": False,
}]


class RecorderError(RuntimeError):
    """A recording cannot be written (unknown type, bad path, unknown topic)."""


def share_directories() -> list[Path]:
    """Where `<package>/msg/<Type>.msg` files are looked for: AMENT_PREFIX_PATH, then this venv."""
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    prefixes.append(sys.prefix)
    seen, out = set(), []
    for prefix in prefixes:
        share = Path(prefix) / "share"
        if share.is_dir() and share not in seen:
            seen.add(share)
            out.append(share)
    return out


def _split_type_name(type_name: str) -> tuple[str, str, str]:
    parts = type_name.split("/")
    if len(parts) == 2:
        return parts[0], "msg", parts[1]
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    raise RecorderError(f"message type {type_name!r} is not of the form package/msg/Type")


def _read_definition(type_name: str, shares: list[Path]) -> tuple[str, str]:
    package, namespace, name = _split_type_name(type_name)
    for share in shares:
        path = share / package / namespace / f"{name}.msg"
        if path.is_file():
            return path.read_text(), package
    raise RecorderError(
        f"no .msg definition for {type_name} under {', '.join(str(s) for s in shares) or '(no share dirs)'}")


def _dependencies(text: str, package: str) -> list[str]:
    found = set()
    for match in _FIELD_TYPE.finditer(text):
        field_type = match.group(1)
        if field_type in PRIMITIVE_TYPES:
            continue
        found.add(field_type if "/" in field_type else f"{package}/{field_type}")
    return sorted(found)  # rosbag2 keeps them in a std::set: sorted


def message_definition(type_name: str, shares: Iterable[Path] | None = None) -> str:
    """The complete ros2msg definition of ``type_name`` as rosbag2 stores it in an MCAP schema.

    The type's own .msg text comes first, undelimited; then, depth first, each dependency not
    yet written, as "\\n" + 80 '=' + "\\nMSG: <package>/<Type>\\n" + its text (rosbag2_cpp's
    LocalMessageDefinitionSource::get_full_text). Dependencies are sorted per message.
    """
    shares = list(share_directories() if shares is None else shares)
    seen: set[str] = set()

    def append(name: str, depth: int) -> str:
        if depth <= 0:
            raise RecorderError(f"message definition of {type_name} nests too deeply")
        text, package = _read_definition(name, shares)
        result = text
        for dependency in _dependencies(text, package):
            if dependency not in seen:
                seen.add(dependency)
                result += "\n" + DEFINITION_DELIMITER + f"MSG: {dependency}\n" + append(dependency, depth - 1)
        return result

    return append(type_name, 50)


def type_description_hash(type_name: str, shares: Iterable[Path] | None = None) -> str:
    """The RIHS01 type hash from the installed type description (.json), or "" if there is none."""
    package, namespace, name = _split_type_name(type_name)
    full_name = f"{package}/{namespace}/{name}"
    for share in (share_directories() if shares is None else shares):
        path = Path(share) / package / namespace / f"{name}.json"
        if path.is_file():
            try:
                hashes = json.loads(path.read_text()).get("type_hashes", [])
            except (OSError, ValueError):
                return ""
            for entry in hashes:
                if entry.get("type_name") == full_name:
                    return str(entry.get("hash_string", ""))
    return ""


def _qos_yaml(profiles: list[dict]) -> str:
    return yaml.safe_dump(profiles, default_flow_style=False, sort_keys=False)


@dataclass
class _Topic:
    name: str
    type_name: str
    channel_id: int
    encoder: Callable[[Any], bytes] | None
    schema_text: str
    type_hash: str
    qos: list[dict]
    message_count: int = 0


class BagWriter:
    """A rosbag2 directory being written: `add_topic`, then `write_*`, then `close` (or use `with`).

    ``directory`` must not exist yet (rosbag2 refuses to overwrite a bag either); the MCAP file is
    ``<directory name>_0.mcap`` inside it.
    """

    def __init__(self, directory: str | os.PathLike, *, compression: str = "zstd"):
        self.directory = Path(directory)
        if self.directory.exists():
            raise RecorderError(f"{self.directory} already exists; a bag is never written over another")
        self.directory.mkdir(parents=True)
        self.file_name = f"{self.directory.name}_0.mcap"
        self._file = open(self.directory / self.file_name, "wb")
        self._mcap = McapWriter(self._file, compression=_compression(compression))
        self._mcap.start(profile="ros2", library="ebgan_mdn_ros recorder")
        self._topics: dict[str, _Topic] = {}
        self._schemas: dict[str, int] = {}
        self._sequence = 0
        self._first_ns: int | None = None
        self._last_ns: int | None = None
        self._closed = False

    def add_topic(self, topic: str, type_name: str, qos_profiles: list[dict] | None = None) -> None:
        """Register ``topic`` of ROS type ``type_name`` (e.g. "sensor_msgs/msg/JointState")."""
        topic = normalize_topic(topic)
        if topic in self._topics:
            if self._topics[topic].type_name != type_name:
                raise RecorderError(f"topic {topic} is already recorded as {self._topics[topic].type_name}")
            return
        package, namespace, name = _split_type_name(type_name)
        type_name = f"{package}/{namespace}/{name}"
        text = message_definition(type_name)
        schema_id = self._schemas.get(type_name)
        if schema_id is None:
            schema_id = self._mcap.register_schema(type_name, SchemaEncoding.ROS2, text.encode())
            self._schemas[type_name] = schema_id
        type_hash = type_description_hash(type_name)
        qos = list(qos_profiles or DEFAULT_QOS)
        channel_id = self._mcap.register_channel(
            topic, MessageEncoding.CDR, schema_id,
            metadata={"offered_qos_profiles": _qos_yaml(qos), "topic_type_hash": type_hash})
        self._topics[topic] = _Topic(topic, type_name, channel_id, None, text, type_hash, qos)

    def write_serialized(self, topic: str, data: bytes, log_time_ns: int, publish_time_ns: int | None = None) -> None:
        """Write one already CDR-serialised message (as a raw rclpy subscription delivers it)."""
        record = self._topic(topic)
        log_time_ns = int(log_time_ns)
        self._mcap.add_message(
            channel_id=record.channel_id, log_time=log_time_ns,
            publish_time=int(log_time_ns if publish_time_ns is None else publish_time_ns),
            data=bytes(data), sequence=self._sequence)
        self._sequence += 1
        record.message_count += 1
        self._first_ns = log_time_ns if self._first_ns is None else min(self._first_ns, log_time_ns)
        self._last_ns = log_time_ns if self._last_ns is None else max(self._last_ns, log_time_ns)

    def write_message(self, topic: str, message: Any, log_time_ns: int, publish_time_ns: int | None = None) -> None:
        """Encode ``message`` (a dict or object with the type's fields) to CDR and write it."""
        record = self._topic(topic)
        if record.encoder is None:
            record.encoder = serialize_dynamic(record.type_name, record.schema_text)[record.type_name]
        self.write_serialized(topic, record.encoder(message), log_time_ns, publish_time_ns)

    def _topic(self, topic: str) -> _Topic:
        record = self._topics.get(normalize_topic(topic))
        if record is None:
            raise RecorderError(f"topic {topic} was not added to the bag (added: {sorted(self._topics)})")
        if self._closed:
            raise RecorderError(f"bag {self.directory} is closed")
        return record

    @property
    def message_counts(self) -> dict[str, int]:
        return {name: t.message_count for name, t in self._topics.items()}

    def close(self) -> Path:
        """Finish the MCAP file and write metadata.yaml; returns the bag directory."""
        if self._closed:
            return self.directory
        self._closed = True
        self._mcap.finish()
        self._file.close()
        metadata = self._metadata()
        tmp = self.directory / "metadata.yaml.tmp"
        tmp.write_text(yaml.dump(metadata, Dumper=_PlainDumper, default_flow_style=False, sort_keys=False))
        tmp.replace(self.directory / "metadata.yaml")
        return self.directory

    def _metadata(self) -> dict:
        start = self._first_ns or 0
        duration = (self._last_ns - self._first_ns) if self._first_ns is not None else 0
        total = sum(t.message_count for t in self._topics.values())
        topics = [{
            "topic_metadata": {
                "name": t.name, "type": t.type_name, "serialization_format": "cdr",
                "offered_qos_profiles": t.qos, "type_description_hash": t.type_hash},
            "message_count": t.message_count,
        } for t in self._topics.values()]
        return {"rosbag2_bagfile_information": {
            "version": METADATA_VERSION,
            "storage_identifier": "mcap",
            "duration": {"nanoseconds": int(duration)},
            "starting_time": {"nanoseconds_since_epoch": int(start)},
            "message_count": int(total),
            "topics_with_message_count": topics,
            "compression_format": "",
            "compression_mode": "",
            "relative_file_paths": [self.file_name],
            "files": [{
                "path": self.file_name,
                "starting_time": {"nanoseconds_since_epoch": int(start)},
                "duration": {"nanoseconds": int(duration)},
                "message_count": int(total)}],
            "custom_data": {},
            "ros_distro": os.environ.get("ROS_DISTRO", "kilted"),
        }}

    def __enter__(self) -> "BagWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _PlainDumper(yaml.SafeDumper):
    """No &anchors / *aliases: every topic's QoS list is written out in full, as rosbag2 does."""

    def ignore_aliases(self, data) -> bool:
        return True


def normalize_topic(topic: str) -> str:
    """Bags store fully qualified names: "goal" -> "/goal"."""
    topic = topic.strip()
    if not topic:
        raise RecorderError("empty topic name")
    return topic if topic.startswith("/") else "/" + topic


def _compression(name: str) -> CompressionType:
    name = name.lower()
    if name == "zstd":
        try:
            import zstandard  # noqa: F401  (mcap needs it for zstd chunks)
        except ImportError:
            return CompressionType.NONE
        return CompressionType.ZSTD
    if name == "lz4":
        return CompressionType.LZ4
    if name == "none":
        return CompressionType.NONE
    raise RecorderError(f"compression {name!r} is unknown, expected zstd, lz4 or none")
