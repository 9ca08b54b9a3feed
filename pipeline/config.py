"""``config.toml``: load and validate the service configuration.

Every value has a default, so a config naming one source works::

    [[sources]]
    url = "video.mp4"

Errors name the key and the problem (:class:`base.errors.ConfigError`). The tables and
their keys are documented in the repository's ``config.toml``.
"""
from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from base.errors import ConfigError

STREAM_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass
class SourceConfig:
    url: str = ""
    id: str = ""
    live: bool | None = None  # None: decided from the source (files lossless, cameras/URLs live)
    encoding: str = "raw"  # "raw" (zero-copy pixels) or "jpeg" (for slow links)
    max_frames: int = 0  # 0 = whole source
    stall_seconds: float = 5.0
    reconnect_attempts: int = 3
    decode_threads: int = 1  # FFmpeg decoding threads for files/URLs (0 = OpenCV's default, one per core)


@dataclass
class TransportConfig:
    kind: str = "ipc"  # "ipc" (one machine) or "tcp"
    host: str = "127.0.0.1"
    base_port: int = 5550
    allow_remote: bool = False  # bind beyond loopback only when true
    hwm: int = 4  # frames queued per socket
    shared_memory: bool = True  # ipc + raw frames: pixels go through a shared-memory ring, not the socket


@dataclass
class SecurityConfig:
    keys_dir: str | None = None  # CURVE keys made by `vidtrack keys DIR`; None = plain sockets


@dataclass
class DetectorConfig:
    model: str = "default"
    embedder: str = "histogram"  # "histogram", "default" (learned CNN), "none", or a .keras path
    conf_threshold: float = 0.25
    iou_threshold: float = 0.45
    batch_size: int = 8
    batch_wait_ms: float = 2.0
    workers: int = 1  # detector processes pulling from the same frame sockets
    threads: int = 0  # TensorFlow intra-op threads per process, 0 = all cores but one (with pin_cpus: its cores)
    pin_cpus: bool = True  # detector processes on cores of their own, grabbers + tracker on the rest (workers.affinity)
    prefetch: bool = True  # a second thread receives and letterboxes the next batch while the network runs
    # (the network thread letterboxes what is left of it when it gets there first)


@dataclass
class EventsConfig:
    endpoint: str = "tcp://127.0.0.1:5560"
    mode: str = "tracks"  # "tracks": one track.updated per track; "frame": one frame event per frame


@dataclass
class OutputConfig:
    dir: str | None = "runs/latest"  # None or "" = no files
    mot: bool = True
    jsonl: bool = True
    video: bool = False
    progress: bool = True


@dataclass
class Config:
    sources: list[SourceConfig] = field(default_factory=list)
    transport: TransportConfig = field(default_factory=TransportConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    tracker: dict = field(default_factory=dict)
    events: EventsConfig = field(default_factory=EventsConfig)
    output: OutputConfig = field(default_factory=OutputConfig)


CHOICES = {
    "sources.encoding": ("raw", "jpeg"),
    "transport.kind": ("ipc", "tcp"),
    "events.mode": ("tracks", "frame"),
}
POSITIVE = {"detector.batch_size", "detector.workers", "transport.hwm"}
UNIT_INTERVAL = {"detector.conf_threshold", "detector.iou_threshold"}
NON_NEGATIVE = {"detector.threads"}


def _check_value(key: str, value: Any, default: Any, annotation: str) -> Any:
    optional = "None" in annotation
    if value is None and optional:
        return None
    if "bool" in annotation:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if "float" in annotation:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if "int" in annotation:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if "str" in annotation:
        if isinstance(value, str):
            return value
        if key.endswith("].url") and isinstance(value, int) and not isinstance(value, bool):
            return str(value)  # camera index
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return value


def _build(cls, table: Any, prefix: str):
    if not isinstance(table, dict):
        raise ConfigError(f"{prefix}: expected a table, got {table!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise ConfigError(f"{prefix}.{unknown[0]}: unknown key (known: {', '.join(sorted(fields))})")
    values = {}
    for name, value in table.items():
        key = f"{prefix}.{name}"
        value = _check_value(key, value, None, str(fields[name].type))
        generic = re.sub(r"\[\d+\]", "", key)
        choices = CHOICES.get(generic)
        if choices and value not in choices:
            raise ConfigError(f"{key}: must be one of {', '.join(choices)}, got {value!r}")
        if key in POSITIVE and value < 1:
            raise ConfigError(f"{key}: must be at least 1, got {value!r}")
        if key in NON_NEGATIVE and value < 0:
            raise ConfigError(f"{key}: must be 0 or more, got {value!r}")
        if key in UNIT_INTERVAL and not 0.0 <= value <= 1.0:
            raise ConfigError(f"{key}: must be between 0 and 1, got {value!r}")
        values[name] = value
    return cls(**values)


def config_from_dict(data: dict) -> Config:
    """Validate a parsed TOML document into a :class:`Config`."""
    known = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown table (known: {', '.join(sorted(known))})")
    raw_sources = data.get("sources", [])
    if not isinstance(raw_sources, list):
        raise ConfigError("sources: expected an array of tables ([[sources]])")
    sources = []
    for i, raw in enumerate(raw_sources):
        sources.append(_build_source(raw, i))
    ids = [s.id for s in sources]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ConfigError(f"sources.id: duplicate stream id {duplicates[0]!r}")
    tracker = data.get("tracker", {})
    if not isinstance(tracker, dict):
        raise ConfigError("tracker: expected a table")
    from tracker import TrackerConfig

    TrackerConfig.from_dict(tracker)  # validates, names the bad key
    config = Config(
        sources=sources,
        transport=_build(TransportConfig, data.get("transport", {}), "transport"),
        security=_build(SecurityConfig, data.get("security", {}), "security"),
        detector=_build(DetectorConfig, data.get("detector", {}), "detector"),
        tracker=tracker,
        events=_build(EventsConfig, data.get("events", {}), "events"),
        output=_build(OutputConfig, data.get("output", {}), "output"),
    )
    if not config.events.endpoint.startswith(("tcp://", "ipc://", "inproc://")):
        raise ConfigError(f"events.endpoint: must start with tcp://, ipc:// or inproc://, got {config.events.endpoint!r}")
    return config


def _build_source(raw: Any, i: int) -> SourceConfig:
    if isinstance(raw, dict) and "url" not in raw:
        raise ConfigError(f"sources[{i}].url: missing (a file path, camera index or rtsp/http URL)")
    source = _build(SourceConfig, raw, f"sources[{i}]")
    if not source.id:
        source.id = _default_stream_id(source.url, i)
    if not STREAM_ID.match(source.id):
        raise ConfigError(f"sources[{i}].id: {source.id!r} must be 1-64 letters, digits, '_', '-' or '.'")
    if source.max_frames < 0:
        raise ConfigError(f"sources[{i}].max_frames: must be >= 0, got {source.max_frames}")
    if source.decode_threads < 0:
        raise ConfigError(f"sources[{i}].decode_threads: must be >= 0, got {source.decode_threads}")
    return source


def _default_stream_id(url: str, i: int) -> str:
    stem = Path(url).stem if not url.isdigit() else f"camera{url}"
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", stem)[:48] or "stream"
    return stem if i == 0 else f"{stem}-{i}"


def load_config(path: str | Path, require_sources: bool = True) -> Config:
    """Read and validate a ``config.toml``; relative source paths are taken from the file's folder."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    config = config_from_dict(data)
    for source in config.sources:
        if source.url and not source.url.isdigit() and "://" not in source.url and not Path(source.url).is_absolute():
            source.url = str((path.parent / source.url).resolve())
    if require_sources and not config.sources:
        raise ConfigError("sources: at least one [[sources]] table with a url is needed")
    return config
