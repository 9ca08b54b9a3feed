"""``config.toml``: load and validate the service configuration.

Every value has a default, so a config naming one source works::

    [[sources]]
    url = "video.mp4"

Each table is a settings dataclass kept beside the stage or library that reads it (built
and checked by :mod:`base.settings`); this module composes them into :class:`Config` and
checks the knobs that only make sense together. Errors name the key and the problem
(:class:`base.errors.ConfigError`). The tables and their keys are documented in the
repository's ``config.toml``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from base.errors import ConfigError
from base.settings import check_fields, from_table, read_toml, setting
from pipeline.http_server import parse_endpoint
from pipeline.supervision import SupervisionConfig
from tracker import TrackerConfig
from wire.transport import Security, TransportConfig, check_bind_host
from workers.detector_config import DetectorConfig
from workers.grabber import SourceConfig
from workers.tracker_worker import EventsConfig

MAX_PORT = 65535
WILDCARD_HOSTS = {"*", "0.0.0.0", "::"}  # bind every interface


@dataclass
class OutputConfig:
    """The ``[output]`` table: files written per stream under ``dir``."""

    dir: str | None = "runs/latest"  # None or "" = no files
    mot: bool = True
    jsonl: bool = True
    video: bool = False
    progress: bool = True


def _metrics_endpoint_problem(endpoint: str) -> str | None:
    try:
        address = parse_endpoint(endpoint)
    except ConfigError:
        return 'must be HOST:PORT (e.g. "127.0.0.1:9560"), or "" for no metrics'
    return "port must be at most 65535" if address and address[1] > MAX_PORT else None


@dataclass
class MetricsConfig:
    """The ``[metrics]`` table: the supervisor's HTTP port for ``/metrics`` and ``/healthz``."""

    endpoint: str = setting("", check=_metrics_endpoint_problem)  # "HOST:PORT"; "" or port 0 = off


@dataclass
class HostsConfig:
    """The ``[hosts]`` table: where ``vidtrack worker`` processes reach the other stages
    over tcp ("" = ``transport.host``). Each stage binds on ``transport.host``."""

    grabbers: str = ""  # the host serving every source's frame socket (base_port + 1 + i)
    tracker: str = ""  # the host of the tracker's detections socket (base_port)


def service_tracker_config(detector: DetectorConfig | None = None, table: dict | None = None) -> TrackerConfig:
    """The service's tracker settings: ``table`` over the tracker's defaults, except that
    ``low_score_threshold`` left out follows ``detector.conf_threshold`` where that is
    higher (the detector sends no box below it, so the tracking is the same)."""
    detector = detector or DetectorConfig()
    table = {} if table is None else table
    if not isinstance(table, dict):
        raise ConfigError(f"tracker: expected a table, got {table!r}")
    low = max(TrackerConfig.low_score_threshold, detector.conf_threshold)
    return TrackerConfig.from_dict({"low_score_threshold": low, **table})


@dataclass
class Config:
    sources: list[SourceConfig] = field(default_factory=list)
    transport: TransportConfig = field(default_factory=TransportConfig)
    security: Security = field(default_factory=Security)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    tracker: TrackerConfig = field(default_factory=service_tracker_config)
    events: EventsConfig = field(default_factory=EventsConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    supervision: SupervisionConfig = field(default_factory=SupervisionConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    hosts: HostsConfig = field(default_factory=HostsConfig)


TABLES = {"transport": TransportConfig, "security": Security, "detector": DetectorConfig,
          "events": EventsConfig, "output": OutputConfig, "supervision": SupervisionConfig,
          "metrics": MetricsConfig, "hosts": HostsConfig}  # besides [[sources]] and [tracker]


def config_from_dict(data: dict) -> Config:
    """Validate a parsed TOML document into a :class:`Config`."""
    known = ["sources", "tracker", *TABLES]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown table (known: {', '.join(sorted(known))})")
    raw_sources = data.get("sources", [])
    if not isinstance(raw_sources, list):
        raise ConfigError("sources: expected an array of tables ([[sources]])")
    tables = {name: from_table(cls, data.get(name, {}), name) for name, cls in TABLES.items()}
    config = Config(sources=[_build_source(raw, i) for i, raw in enumerate(raw_sources)],
                    tracker=service_tracker_config(tables["detector"], data.get("tracker", {})), **tables)
    check_together(config)
    return config


def _build_source(raw: Any, i: int) -> SourceConfig:
    if isinstance(raw, dict) and "url" not in raw:
        raise ConfigError(f"sources[{i}].url: missing (a file path, camera index or rtsp/http URL)")
    if isinstance(raw, dict) and isinstance(raw["url"], int) and not isinstance(raw["url"], bool):
        raw = {**raw, "url": str(raw["url"])}  # a camera index
    source = from_table(SourceConfig, raw, f"sources[{i}]")
    if not source.id:
        source.id = _default_stream_id(source.url, i)
    return source


def _default_stream_id(url: str, i: int) -> str:
    stem = Path(url).stem if not url.isdigit() else f"camera{url}"
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", stem)[:48].strip(".") or "stream"
    return stem if i == 0 else f"{stem}-{i}"


def check_config(config: Config) -> None:
    """Check a config however it was built (from TOML or in code): every table's settings,
    then the knobs that interact (:func:`check_together`)."""
    for i, source in enumerate(config.sources):
        check_fields(source, f"sources[{i}]")
    for name in TABLES:
        check_fields(getattr(config, name), name)
    check_fields(config.tracker, "tracker")
    check_together(config)


def check_together(config: Config) -> None:
    """The settings of different tables that only make sense together; each error names both keys."""
    _check_stream_ids(config.sources)
    _check_score_thresholds(config.detector, config.tracker)
    _check_ports(config)
    _check_metrics_bind(config)
    if config.output.video and not config.output.dir:
        raise ConfigError(f"output.video: true needs an output.dir to write the video to, got output.dir = "
                          f"{config.output.dir!r}")


def _check_stream_ids(sources: list[SourceConfig]) -> None:
    ids = [s.id for s in sources]
    if "" in ids:
        raise ConfigError(f"sources[{ids.index('')}].id: missing")
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ConfigError(f"sources.id: duplicate stream id {duplicates[0]!r}")


def _check_score_thresholds(detector: DetectorConfig, tracker: TrackerConfig) -> None:
    """ByteTrack's low-score round sees [low_score_threshold, high_score_threshold), but the
    detector sends nothing below its conf_threshold: a lower low_score_threshold does nothing."""
    low, conf = tracker.low_score_threshold, detector.conf_threshold
    if low < conf and low < tracker.high_score_threshold:
        raise ConfigError(
            f"tracker.low_score_threshold: below detector.conf_threshold ({conf:g}), which drops every box under it "
            f"before the tracker sees it; raise it to at least {conf:g} or lower detector.conf_threshold, got {low!r}")


def _check_ports(config: Config) -> None:
    """tcp: detections on base_port, frames of source i on base_port + 1 + i, none beyond
    65535 nor on the events port."""
    t, n = config.transport, len(config.sources)
    if t.kind != "tcp":
        return
    last = t.base_port + n
    if last > MAX_PORT:
        raise ConfigError(f"transport.base_port: with {n} sources the frame ports go up to {last}, beyond "
                          f"{MAX_PORT}; lower it, got {t.base_port}")
    events_host, events_port = _tcp_address(config.events.endpoint)
    same_interface = events_host == t.host or bool({events_host, t.host} & WILDCARD_HOSTS)
    if events_host is not None and same_interface and t.base_port <= events_port <= last:
        raise ConfigError(f"transport.base_port: ports {t.base_port}..{last} (detections and {n} sources) take "
                          f"the port of events.endpoint {config.events.endpoint!r}, got {t.base_port}")


def _check_metrics_bind(config: Config) -> None:
    """The metrics port binds to loopback unless transport.allow_remote says otherwise."""
    address = parse_endpoint(config.metrics.endpoint)
    if address is not None:
        try:
            check_bind_host(f"tcp://{address[0]}:{address[1]}", config.transport.allow_remote)
        except ConfigError as exc:
            raise ConfigError(f"metrics.endpoint: {exc}") from None


def _tcp_address(endpoint: str) -> tuple[str | None, int]:
    """(host, port) of a tcp endpoint; (None, 0) for another kind."""
    match = re.fullmatch(r"tcp://(.*):(\d+)", endpoint)
    return (match.group(1).strip("[]"), int(match.group(2))) if match else (None, 0)


def load_config(path: str | Path, require_sources: bool = True, overrides: dict | None = None) -> Config:
    """Read and validate a ``config.toml``; relative source paths are taken from the file's
    folder. ``overrides`` (tables of keys, ``sources`` a list) replace what the file says
    before validation."""
    path = Path(path)
    data = read_toml(path)
    for name, table in (overrides or {}).items():
        data[name] = table if name == "sources" or not isinstance(data.get(name), dict) else {**data[name], **table}
    config = config_from_dict(data)
    for source in config.sources:
        if source.url and not source.url.isdigit() and "://" not in source.url and not Path(source.url).is_absolute():
            source.url = str((path.parent / source.url).resolve())
    if require_sources and not config.sources:
        raise ConfigError("sources: at least one [[sources]] table with a url is needed")
    return config
