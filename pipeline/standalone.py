"""One stage as a process of its own (``vidtrack worker grabber|detector|tracker``), for an
orchestrator (systemd, Kubernetes, Nomad) that runs and restarts each stage on its host.

The stages meet over tcp as the service lays the ports out: the tracker binds the
detections socket on ``transport.base_port``, the grabber of source i binds its frames on
``base_port + 1 + i``, and every detector connects to all of them (``[hosts]`` says where
the grabbers and the tracker are; binding is on ``transport.host``). With
``security.keys_dir`` every socket uses CURVE. Any number of detectors may come and go:
the grabbers' PUSH sockets share frames among the connected ones, and the tracker restores
each stream's order.

What a killed detector held (frames in its socket queues and its batch) is lost in this
mode: there is no supervisor to re-send them. The tracker gives each missing frame up once
later frames of its stream have waited ``reorder_timeout_s`` (2 s), counts it as skipped
(``stream.ended``'s ``skipped``, ``vidtrack_skipped_frames_total``) and goes on in order;
other streams only lose the frames of theirs the killed detector held. A file grabber's end
marker goes to a live detector, so the streams still end.
"""
from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass

from base.errors import ConfigError
from pipeline.config import Config
from pipeline.http_server import MetricsServer, parse_endpoint
from pipeline.metrics import ServiceMetrics
from pipeline.sinks import SinkSettings
from wire.transport import check_bind_host
from workers.detector_worker import DetectorStage, DetectorStageSpec, load_models
from workers.grabber import Grabber, GrabberSpec
from workers.tracker_worker import TrackerStage, TrackerStageSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TcpLayout:
    """The tcp endpoints of a config's stages: where each binds and where the others connect."""

    detections_bind: str
    detections_connect: str
    frames_bind: list[str]
    frames_connect: list[str]

    @classmethod
    def of(cls, config: Config) -> "TcpLayout":
        t = config.transport
        if t.kind != "tcp":
            raise ConfigError(f'transport.kind: vidtrack worker connects stages over "tcp", got {t.kind!r}')
        grabbers, tracker = config.hosts.grabbers or t.host, config.hosts.tracker or t.host
        ports = [t.base_port + 1 + i for i in range(len(config.sources))]
        return cls(detections_bind=f"tcp://{t.host}:{t.base_port}", detections_connect=f"tcp://{tracker}:{t.base_port}",
                   frames_bind=[f"tcp://{t.host}:{p}" for p in ports], frames_connect=[f"tcp://{grabbers}:{p}" for p in ports])


class WorkerReports:
    """What a stage reports, without a supervisor: metrics added up (served on ``--metrics``),
    errors and stream ends logged, the last ``ended`` kept."""

    def __init__(self, stage: str, name: str = ""):
        self.stage, self.name = stage, name or stage  # name: e.g. "grabber cam1"
        self.metrics = ServiceMetrics(processes_up=lambda: {stage: True})
        self.errors: list[str] = []
        self.ended: dict | None = None

    def __call__(self, **report) -> None:
        event = report.get("event")
        if event == "metrics":
            self.metrics.add(self.stage, report)
        elif event == "error":
            self.errors.append(f"{report.get('stream', self.name)}: {report.get('message')}")
            log.error("%s", self.errors[-1])
        elif event in ("ended", "stream.ended"):
            self.ended = report
            log.info("%s ended: %s", f"{self.stage} {report['stream']}" if "stream" in report else self.name,
                     report.get("reason"))
        elif event == "ready":
            log.info("%s ready", self.stage)

    def serve(self, endpoint: str, allow_remote: bool) -> MetricsServer | None:
        """``/metrics`` and ``/healthz`` of this worker on ``endpoint`` ("" = none)."""
        address = parse_endpoint(endpoint)
        if address is None:
            return None
        check_bind_host(f"tcp://{address[0]}:{address[1]}", allow_remote)
        return MetricsServer(address, self.metrics.registry, lambda: {"status": "ok", "stages": {self.stage: "running"}}).start()


class StopSignals:
    """SIGTERM and SIGINT set ``stop``; a later one (or the first after ``finished``) also
    sets ``release``: a grabber that sent its end marker keeps its socket open until then."""

    def __init__(self):
        self.stop, self.release, self.finished = threading.Event(), threading.Event(), threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum, frame) -> None:
        if self.stop.is_set() or self.finished.is_set():
            self.release.set()
        self.stop.set()
        log.info("%s: stopping", signal.Signals(signum).name)


def run_grabber(config: Config, source_id: str, metrics_endpoint: str = "", hold_open_s: float = 30.0) -> int:
    """Serve one source's frames on its tcp port until the source ends (then hold the socket
    open ``hold_open_s`` or until a signal) or a stop. 0 when the stream ended well."""
    ids = [s.id for s in config.sources]
    if source_id not in ids:
        raise ConfigError(f"--source: no source with id {source_id!r} (known: {', '.join(ids)})")
    i = ids.index(source_id)
    layout = TcpLayout.of(config)
    check_bind_host(layout.frames_bind[i], config.transport.allow_remote)
    spec = GrabberSpec(config.sources[i], endpoint=layout.frames_bind[i], security=config.security,
                       hwm=config.transport.hwm,
                       queue_bytes=int(config.transport.queue_mb * 2**20), hold_open_s=hold_open_s)
    signals, reports = StopSignals(), WorkerReports("grabber", f"grabber {source_id}")
    server = reports.serve(metrics_endpoint, config.transport.allow_remote)
    grabber = Grabber(spec, signals.stop, _marking_finished(reports, signals), signals.release)
    try:
        grabber.run()
    except Exception as exc:  # noqa: BLE001 - a source that cannot be opened: reported, exit 1
        log.error("grabber %s: %s", source_id, exc)
        return 1
    finally:
        if server is not None:
            server.close()
    reason = str((reports.ended or {}).get("reason", ""))
    return 1 if reports.errors or reason.startswith("error") else 0


def _marking_finished(reports: WorkerReports, signals: StopSignals):
    """``reports``, and ``signals.finished`` set once the grabber's stream ended."""
    def report(**kw):
        reports(**kw)
        if kw.get("event") == "ended":
            signals.finished.set()
    return report


def run_detector(config: Config, metrics_endpoint: str = "") -> int:
    """Detect the frames of every grabber that answers, send them to the tracker, until a signal."""
    layout = TcpLayout.of(config)
    spec = DetectorStageSpec(frame_endpoints=layout.frames_connect, detections_endpoint=layout.detections_connect,
                             detector=config.detector, hwm=config.transport.hwm, security=config.security,
                             threads=config.detector.threads)
    signals, reports = StopSignals(), WorkerReports("detector")
    detector, embedder = load_models(spec)
    server = reports.serve(metrics_endpoint, config.transport.allow_remote)
    log.info("detector ready: frames from %s, detections to %s", ", ".join(layout.frames_connect),
             layout.detections_connect)
    try:
        stats = DetectorStage(spec, detector, embedder, signals.stop, reports).run()
    finally:
        if server is not None:
            server.close()
    log.info("detector: %d frames in %d batches, %d detections, %d bad messages", stats.frames, stats.batches,
             stats.detections, stats.bad_messages)
    return 0


def run_tracker(config: Config, metrics_endpoint: str = "") -> int:
    """Track every configured stream until each has ended (file sources) or a signal; 0 when
    every stream ended without an error."""
    layout = TcpLayout.of(config)
    for endpoint in (layout.detections_bind, config.events.endpoint):
        check_bind_host(endpoint, config.transport.allow_remote)
    o = config.output
    outputs = SinkSettings(o.dir, mot=o.mot, jsonl=o.jsonl, video=o.video) if o.dir else None
    spec = TrackerStageSpec(detections_endpoint=layout.detections_bind, tracker=config.tracker, events=config.events,
                            open_outputs=outputs, expected_streams=[s.id for s in config.sources],
                            security=config.security, resent_on_loss=False)  # no supervisor to send again
    signals, reports = StopSignals(), WorkerReports("tracker")
    server = reports.serve(metrics_endpoint, config.transport.allow_remote)
    stage = TrackerStage(spec, signals.stop, reports)
    try:
        stage.run()
    finally:
        if server is not None:
            server.close()
    failed = False
    for state in stage.streams.values():
        reason = state.end.reason if state.end is not None else "no end marker"
        failed |= reason.startswith("error") or bool(reports.errors)
        log.info("tracker %s: %d frames tracked, %d skipped (%s)", state.stream_id, state.frames, state.skipped, reason)
    log.info("tracker: %d bad messages", stage.bad_messages)
    return 1 if failed else 0
