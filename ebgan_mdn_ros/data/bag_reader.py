"""Reading rosbag2 MCAP recordings: files of a bag, decoded topics, and their arrays (no rclpy).

Messages are decoded from their CDR bytes with the message definitions stored in the bag
(mcap_ros2), so no ROS installation is needed. Times are integer nanoseconds of MCAP log time
(when the recorder received a message) since the bag's first message. bag_dataset.py turns what
this module reads into aligned demonstration pairs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import yaml

JOINT_STATE_TYPE = "sensor_msgs/msg/JointState"
ARRAY_TYPE = "std_msgs/msg/Float64MultiArray"


class BagDatasetError(ValueError):
    """A recording cannot be turned into demonstrations; the message names the file and the problem."""


def qualified(topic: str) -> str:
    topic = topic.strip()
    return topic if topic.startswith("/") else "/" + topic


def bag_files(bag: str | Path) -> list[Path]:
    """The .mcap files of one recording: a rosbag2 directory (in metadata order) or a bare .mcap."""
    bag = Path(bag)
    if bag.is_file():
        if bag.name == "metadata.yaml":
            return bag_files(bag.parent)
        return [bag]
    if not bag.exists():
        raise BagDatasetError(f"{bag}: no such bag (expected a rosbag2 directory or an .mcap file)")
    metadata_path = bag / "metadata.yaml"
    if metadata_path.is_file():
        try:
            info = yaml.safe_load(metadata_path.read_text())["rosbag2_bagfile_information"]
        except (yaml.YAMLError, KeyError, TypeError) as exc:
            raise BagDatasetError(f"{metadata_path}: not rosbag2 metadata ({exc})") from None
        storage = info.get("storage_identifier", "")
        if storage and storage != "mcap":
            raise BagDatasetError(f"{bag}: storage {storage!r} is not supported, only mcap "
                                  f"(convert with `ros2 bag convert`)")
        if info.get("compression_mode"):
            raise BagDatasetError(f"{bag}: file-compressed bags ({info.get('compression_format')}) are not "
                                  f"supported; decompress them or record with MCAP chunk compression")
        names = info.get("relative_file_paths") or [f["path"] for f in info.get("files") or []]
        files = [bag / name for name in names]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise BagDatasetError(f"{bag}: files named in metadata.yaml are missing: {', '.join(missing)}")
    else:
        files = sorted(bag.glob("*.mcap"))
    if not files:
        raise BagDatasetError(f"{bag}: no .mcap files in this bag")
    return files


@dataclass
class TopicStream:
    """The messages of one topic, in log-time order."""
    type_name: str
    times: list[int] = field(default_factory=list)     # ns since the first message of the bag
    messages: list = field(default_factory=list)       # decoded messages


def read_topics(bag: str | Path, topics: Iterable[str]) -> tuple[dict[str, TopicStream], dict[str, str]]:
    """Decode ``topics`` from every file of ``bag``.

    Returns (streams of the topics that are present, {topic: type} of every topic in the bag).
    Times are integer nanoseconds since the earliest log time in the bag (exact comparisons).
    """
    from mcap.exceptions import McapError
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    wanted = {qualified(t) for t in topics}
    streams: dict[str, TopicStream] = {}
    all_topics: dict[str, str] = {}
    raw: list[tuple[int, str, object]] = []
    for path in bag_files(bag):
        try:
            with open(path, "rb") as stream:
                reader = make_reader(stream, decoder_factories=[DecoderFactory()])
                for _, channel, message, decoded in _iter_decoded(reader, wanted, all_topics):
                    if channel.message_encoding != "cdr":
                        raise BagDatasetError(f"{path}: topic {channel.topic} is encoded as "
                                              f"{channel.message_encoding!r}, expected cdr")
                    raw.append((message.log_time, channel.topic, decoded))
        except BagDatasetError:
            raise
        except (McapError, OSError, EOFError, ValueError, KeyError, IndexError, UnicodeDecodeError,
                NotImplementedError) as exc:
            raise BagDatasetError(f"{path}: unreadable MCAP file ({type(exc).__name__}: {exc}); if the "
                                  f"recording was cut off, `mcap recover` can rescue what was written") from None
    raw.sort(key=lambda item: item[0])
    origin = raw[0][0] if raw else 0
    for log_time, topic, decoded in raw:
        stream = streams.setdefault(topic, TopicStream(all_topics[topic]))
        stream.times.append(log_time - origin)
        stream.messages.append(decoded)
    return streams, all_topics


def _iter_decoded(reader, wanted: set[str], all_topics: dict[str, str]):
    """Decoded messages of the wanted topics; fills ``all_topics`` with every channel seen."""
    summary = reader.get_summary()
    if summary is not None:
        for channel in summary.channels.values():
            schema = summary.schemas.get(channel.schema_id)
            all_topics[channel.topic] = schema.name if schema else "(no schema)"
        present = wanted & set(all_topics)
        if not present:
            return
        yield from reader.iter_decoded_messages(topics=sorted(present), log_time_order=True)
        return
    # No summary (a recording that was not closed cleanly): one linear pass over everything.
    from mcap_ros2.decoder import DecoderFactory
    factory = DecoderFactory()
    for schema, channel, message in reader.iter_messages(log_time_order=True):
        all_topics[channel.topic] = schema.name if schema else "(no schema)"
        if channel.topic in wanted:
            decoder = factory.decoder_for(channel.message_encoding, schema)
            if decoder is None:
                raise BagDatasetError(f"topic {channel.topic}: no ros2msg schema to decode it")
            yield schema, channel, message, decoder(message.data)


# ---- from decoded messages to arrays ------------------------------------------------------------

@dataclass
class JointStates:
    times: np.ndarray             # [S] int64 ns
    names: tuple[str, ...]        # selected joints, in order
    position: np.ndarray          # [S, J]
    velocity: np.ndarray | None   # [S, J] or None if not needed


def joint_states_from(stream: TopicStream, topic: str, joints: Sequence[str] | None,
                      need_velocity: bool) -> JointStates:
    """Reorder every JointState by name into ``joints`` (default: the first message's order)."""
    if not stream.messages:
        raise BagDatasetError(f"{topic}: no JointState messages")
    if joints is None:
        joints = tuple(stream.messages[0].name)
        if not joints:
            raise BagDatasetError(f"{topic}: the first JointState names no joints; pass --joints")
    joints = tuple(joints)
    position = np.empty((len(stream.messages), len(joints)))
    velocity = np.empty_like(position) if need_velocity else None
    cached_names, order = None, None
    for i, (t, msg) in enumerate(zip(stream.times, stream.messages)):
        names = tuple(msg.name)
        if names != cached_names:
            index = {name: k for k, name in enumerate(names)}
            missing = [j for j in joints if j not in index]
            if missing:
                raise BagDatasetError(f"{topic}: joint(s) {missing} not in the JointState at t={t * 1e-9:.3f} s "
                                      f"(it names {list(names)})")
            order = [index[j] for j in joints]
            cached_names = names
        values = np.asarray(msg.position, dtype=np.float64)
        if len(values) != len(names):
            raise BagDatasetError(f"{topic}: JointState at t={t * 1e-9:.3f} s has {len(names)} names but "
                                  f"{len(values)} positions")
        position[i] = values[order]
        if need_velocity:
            speeds = np.asarray(msg.velocity, dtype=np.float64)
            if len(speeds) != len(names):
                raise BagDatasetError(f"{topic}: JointState at t={t * 1e-9:.3f} s has {len(speeds)} velocities for "
                                      f"{len(names)} joints (the condition asks for velocity)")
            velocity[i] = speeds[order]
    if not np.all(np.isfinite(position)):
        bad = int(np.argwhere(~np.isfinite(position))[0, 0])
        raise BagDatasetError(f"{topic}: non-finite joint position at t={stream.times[bad] * 1e-9:.3f} s")
    return JointStates(np.asarray(stream.times, dtype=np.int64), joints, position, velocity)


def arrays_from(stream: TopicStream, topic: str, what: str, size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(times [M] int64 ns, values [M, D]) of a Float64MultiArray topic; every message has D values."""
    if not stream.messages:
        raise BagDatasetError(f"{topic}: no {what} messages")
    values = [np.asarray(msg.data, dtype=np.float64) for msg in stream.messages]
    size = len(values[0]) if size is None else size
    for t, v in zip(stream.times, values):
        if len(v) != size or size == 0:
            raise BagDatasetError(f"{topic}: {what} at t={t * 1e-9:.3f} s has {len(v)} values, expected {size or '> 0'}")
    stacked = np.vstack(values)
    if not np.all(np.isfinite(stacked)):
        bad = int(np.argwhere(~np.isfinite(stacked))[0, 0])
        raise BagDatasetError(f"{topic}: non-finite {what} at t={stream.times[bad] * 1e-9:.3f} s")
    return np.asarray(stream.times, dtype=np.int64), stacked
