"""One stage as a process of its own (``vidtrack worker grabber|detector|tracker``), for an
orchestrator (systemd, Kubernetes, Nomad) that runs and restarts each stage on its host.

The stages meet over tcp as the service lays the ports out: the tracker binds the
detections socket on ``transport.base_port``, the grabber of source i binds its frames on
``base_port + 1 + i``, and every detector connects to all of them (``[hosts]`` says where
the grabbers and the tracker are; binding is on ``transport.host``). With
``security.keys_dir`` every socket uses CURVE. Any number of detectors may come and go:
the grabbers' PUSH sockets share frames among the connected ones, and the tracker restores
each stream's order.

Nothing of a file is lost when a detector dies holding frames (its socket queues and its
batch): each file grabber also binds a resend socket on ``base_port + 1 + n + i`` (n sources),
and the tracker, once a missing frame's later ones have waited ``reorder_timeout_s`` (2 s),
asks that grabber to send again from the frame missing (:class:`wire.messages.ResendRequest`;
asked again with doubling waits, given up and counted as skipped only after six asks, as
under the service). The grabber takes a request only for its own stream and never past what
it has sent. A live stream's missing frames are given up after the reorder timeout and
counted as skipped (``stream.ended``'s ``skipped``, ``vidtrack_skipped_frames_total``).
"""
from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass

import zmq

from base.errors import ConfigError
from pipeline.config import Config
from pipeline.http_server import MetricsServer, parse_endpoint
from pipeline.metrics import ServiceMetrics
from pipeline.sinks import SinkSettings
from wire import messages
from wire.transport import Security, SocketFactory, check_bind_host
from workers.detector_worker import DetectorStage, DetectorStageSpec, load_models
from workers.grabber import Grabber, GrabberSpec, RewindRequest
from workers.sources import quiet_native_logs
from workers.tracker_worker import TrackerStage, TrackerStageSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TcpLayout:
    """The tcp endpoints of a config's stages: where each binds and where the others connect."""

    detections_bind: str
    detections_connect: str
    frames_bind: list[str]
    frames_connect: list[str]
    resend_bind: list[str]  # source i's grabber takes the tracker's resend requests here
    resend_connect: list[str]

    @classmethod
    def of(cls, config: Config) -> "TcpLayout":
        t = config.transport
        if t.kind != "tcp":
            raise ConfigError(f'transport.kind: vidtrack worker connects stages over "tcp", got {t.kind!r}')
        grabbers, tracker = config.hosts.grabbers or t.host, config.hosts.tracker or t.host
        n = len(config.sources)
        ports = [t.base_port + 1 + i for i in range(n)]
        resend = [p + n for p in ports]
        return cls(detections_bind=f"tcp://{t.host}:{t.base_port}", detections_connect=f"tcp://{tracker}:{t.base_port}",
                   frames_bind=[f"tcp://{t.host}:{p}" for p in ports], frames_connect=[f"tcp://{grabbers}:{p}" for p in ports],
                   resend_bind=[f"tcp://{t.host}:{p}" for p in resend],
                   resend_connect=[f"tcp://{grabbers}:{p}" for p in resend])


class WorkerReports:
    """What a stage reports, without a supervisor: metrics added up (served on ``--metrics``),
    errors and stream ends logged, the last ``ended`` kept."""

    def __init__(self, stage: str, name: str = "", on_gap=None):
        self.stage, self.name = stage, name or stage  # name: e.g. "grabber cam1"
        self.metrics = ServiceMetrics(processes_up=lambda: {stage: True})
        self.errors: list[str] = []
        self.ended: dict | None = None
        self.on_gap = on_gap  # (stream id, next seq) of a tracker's ask for lost frames

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
        elif event == "gap" and self.on_gap is not None:
            self.on_gap(str(report["stream"]), int(report["next_seq"]))

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


RESEND_HWM = 16  # resend requests queued; the tracker asks again if one is lost
RESEND_MAX_BYTES = 4096  # a resend request is ~60 bytes


class ResendListener:
    """A file grabber's resend socket: the tracker's :class:`~wire.messages.ResendRequest` for
    this stream becomes a rewind of the grabber, never past the frames it has sent; anything
    else is counted (the grabber's bad messages) and dropped. Runs on a thread of its own."""

    def __init__(self, security: Security, endpoint: str, grabber: Grabber, stop: threading.Event):
        self.endpoint, self.grabber, self.stop = endpoint, grabber, stop
        self._factory = SocketFactory(security)
        self._sock = self._factory.bind(zmq.PULL, endpoint, hwm=RESEND_HWM, max_message_bytes=RESEND_MAX_BYTES)
        self._thread = threading.Thread(target=self._run, name="resend-listener", daemon=True)

    def start(self) -> "ResendListener":
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                if self._sock.poll(100):
                    self.take(self._sock.recv_multipart())
        finally:
            self._factory.close()

    def take(self, parts) -> bool:
        """Act on one message; whether it was a valid request (now a rewind)."""
        stream, sent = self.grabber.spec.stream_id, self.grabber.stats.sent
        try:
            request = messages.decode(parts)
        except messages.ProtocolError as exc:
            return self._refuse("malformed", f"a bad message on the resend socket: {exc}")
        if not isinstance(request, messages.ResendRequest):
            return self._refuse("wrong_type", f"a {request.TYPE} message on the resend socket")
        if request.stream_id != stream:
            return self._refuse("foreign", f"a resend request for stream {request.stream_id!r} on {stream!r}'s")
        if request.seq > sent:
            return self._refuse("out_of_range", f"a resend request from frame {request.seq}: {sent} sent so far")
        log.warning("%s: the tracker asks for frames from %d again", stream, request.seq)
        self.grabber.rewind.request(request.seq)
        return True

    def _refuse(self, reason: str, text: str) -> bool:
        self.grabber.meter.count("bad_messages", reason)
        log.warning("grabber %s: dropped %s", self.grabber.spec.stream_id, text)
        return False

    def join(self, timeout: float = 2.0) -> None:
        self._thread.join(timeout)


class ResendAsker:
    """The tracker's side: its asks for lost file frames ("gap" reports), each sent to the
    grabber of its stream; one not taken at once (that grabber is down) is dropped: the
    tracker asks again."""

    def __init__(self, security: Security, endpoints: dict[str, str]):
        self._factory = SocketFactory(security)
        self._socks = {sid: self._factory.connect(zmq.PUSH, ep, hwm=RESEND_HWM) for sid, ep in endpoints.items()}

    def __call__(self, stream_id: str, seq: int) -> None:
        sock = self._socks.get(stream_id)
        if sock is None:
            return
        try:
            sock.send_multipart(messages.encode(messages.ResendRequest(stream_id, seq)), flags=zmq.NOBLOCK)
        except zmq.Again:
            log.warning("%s: the grabber does not take resend requests now; asking again later", stream_id)

    def close(self) -> None:
        self._factory.close()


def _file_sources(config: Config) -> list[int]:
    """Indices of the sources that are files (lossless: their grabbers take resend requests)."""
    return [i for i, s in enumerate(config.sources) if not s.is_live]


def run_grabber(config: Config, source_id: str, metrics_endpoint: str = "", hold_open_s: float = 30.0) -> int:
    """Serve one source's frames on its tcp port until the source ends (then hold the socket
    open ``hold_open_s`` or until a signal) or a stop. 0 when the stream ended well."""
    ids = [s.id for s in config.sources]
    if source_id not in ids:
        raise ConfigError(f"--source: no source with id {source_id!r} (known: {', '.join(ids)})")
    i = ids.index(source_id)
    quiet_native_logs()
    layout = TcpLayout.of(config)
    check_bind_host(layout.frames_bind[i], config.transport.allow_remote)
    spec = GrabberSpec(config.sources[i], endpoint=layout.frames_bind[i], security=config.security,
                       hwm=config.transport.hwm,
                       queue_bytes=int(config.transport.queue_mb * 2**20), hold_open_s=hold_open_s)
    signals, reports = StopSignals(), WorkerReports("grabber", f"grabber {source_id}")
    server = reports.serve(metrics_endpoint, config.transport.allow_remote)
    is_file = not config.sources[i].is_live
    grabber = Grabber(spec, signals.stop, _marking_finished(reports, signals), signals.release,
                      RewindRequest() if is_file else None)
    done = threading.Event()
    listener = ResendListener(config.security, layout.resend_bind[i], grabber, done).start() if is_file else None
    try:
        grabber.run()
    except Exception as exc:  # noqa: BLE001 - a source that cannot be opened: reported, exit 1
        log.error("grabber %s: %s", source_id, exc)
        return 1
    finally:
        done.set()
        if listener is not None:
            listener.join()
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
                            security=config.security, resent_on_loss=True)  # file grabbers take resend requests
    asker = ResendAsker(config.security, {config.sources[i].id: layout.resend_connect[i] for i in _file_sources(config)})
    signals, reports = StopSignals(), WorkerReports("tracker", on_gap=asker)
    server = reports.serve(metrics_endpoint, config.transport.allow_remote)
    stage = TrackerStage(spec, signals.stop, reports)
    try:
        stage.run()
    finally:
        asker.close()
        if server is not None:
            server.close()
    failed = False
    for state in stage.streams.values():
        reason = state.end.reason if state.end is not None else "no end marker"
        failed |= reason.startswith("error") or bool(reports.errors)
        log.info("tracker %s: %d frames tracked, %d skipped (%s)", state.stream_id, state.frames, state.skipped, reason)
    log.info("tracker: %d bad messages", stage.bad_messages)
    return 1 if failed else 0
