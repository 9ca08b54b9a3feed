"""Tracker stage: per stream, restore frame order, track, publish events, write sinks.

Detections may arrive out of order when several detector processes share the work; each
stream keeps a reorder buffer keyed by the grabber's gap-free ``seq`` and processes frames
strictly in order. A frame that has not arrived ``reorder_timeout_s`` after later ones were
buffered is given up (counted), so a lost message never stalls a live stream.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import zmq

from wire import messages
from wire.events import EventBuilder
from wire.transport import Security, SocketFactory
from base.settings import setting
from tracker import Tracker, TrackerConfig, TrackState

log = logging.getLogger(__name__)

# Tracked-frame counts go to the supervisor (progress bars, the run summary) at most this
# often per stream, not once per frame: each report is a pickle, a pipe write and a wake-up
# of the supervisor, on cores the detector needs.
PROGRESS_INTERVAL_S = 0.25


class StreamOutputs(Protocol):
    """One stream's file outputs (the service's sinks): written in step with the tracker.
    A failed output is left out by the object itself; its message waits in ``errors``."""

    errors: list[str]

    def write_frame(self, frame: int, snapshots, events) -> None: ...
    def write_events(self, events: list[dict]) -> None: ...
    def close(self) -> None: ...


# (stream id, source url, live, class names) -> that stream's outputs; picklable (the
# service passes :class:`pipeline.sinks.SinkSettings`)
OpenOutputs = Callable[[str, str, bool, list], StreamOutputs]


def _endpoint_problem(endpoint: str) -> str | None:
    return None if endpoint.startswith(("tcp://", "ipc://", "inproc://")) else "must start with tcp://, ipc:// or inproc://"


@dataclass
class EventsConfig:
    """The ``[events]`` table: where track events are published, and how."""

    endpoint: str = setting("tcp://127.0.0.1:5560", check=_endpoint_problem)  # PUB socket; topic = stream id
    mode: str = setting("tracks", choices=("tracks", "frame"))  # "tracks": one track.updated per track; "frame": one per frame


@dataclass
class TrackerStageSpec:
    """Everything the tracker process needs (picklable): the ``[tracker]`` and ``[events]``
    settings and what the service decides at start (endpoint, outputs, streams, security)."""

    detections_endpoint: str
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    open_outputs: OpenOutputs | None = None  # None: events only, no files
    expected_streams: list[str] = field(default_factory=list)
    exit_when_done: bool = True  # leave once every expected stream has ended
    reorder_timeout_s: float = 2.0
    security: Security = field(default_factory=Security)

    # the events settings, as the stage reads them
    events_endpoint = property(lambda spec: spec.events.endpoint)
    event_mode = property(lambda spec: spec.events.mode)


@dataclass
class StreamState:
    stream_id: str
    tracker: Tracker
    events: EventBuilder
    sinks: StreamOutputs | None = None
    started: messages.StreamStarted | None = None
    next_seq: int = 0
    end: messages.StreamEnded | None = None  # its seq: frame messages sent, the stream ends after them
    buffer: dict = field(default_factory=dict)
    buffered_since: float | None = None
    last_frame: int = -1
    embedding_dim: int = 0  # of the stream's detections so far (0: none yet)
    last_ts: float = 0.0
    snapshots: list = field(default_factory=list)
    frames: int = 0
    skipped: int = 0
    ended: bool = False
    unreported: int = 0  # frames tracked since the last progress report
    unreported_first_at: float = 0.0  # time.monotonic() when the first of them was tracked
    unreported_last_at: float = 0.0


class TrackerStage:
    def __init__(self, spec: TrackerStageSpec, stop=None, report=None):
        self.spec = spec
        self.stop = stop
        self.report = report or (lambda **kw: None)
        self.tracker_config = spec.tracker
        self.streams: dict[str, StreamState] = {}
        self.bad_messages = 0
        self._factory = SocketFactory(spec.security)
        self._pull = self._factory.bind(zmq.PULL, spec.detections_endpoint, hwm=64)
        self._pub = self._factory.bind(zmq.PUB, spec.events_endpoint, hwm=10_000)
        self._handlers = {
            messages.DetectionsMessage: self._buffer_detections, messages.StreamStarted: self._start_stream,
            messages.StreamStalled: self._stall_stream, messages.StreamResumed: self._resume_stream,
            messages.StreamEnded: self._note_end,
        }

    # ---- publishing
    def publish(self, state: StreamState, events: list[dict]) -> None:
        topic = state.stream_id.encode()
        for event in events:
            self._pub.send_multipart([topic, json.dumps(event, separators=(",", ":")).encode()])
        if state.sinks is not None:
            state.sinks.write_events(events)
            self._report_sink_errors(state)

    def _report_sink_errors(self, state: StreamState) -> None:
        """A failed sink was left out by its stream's StreamSinks: tell the supervisor."""
        while state.sinks.errors:
            self.report(event="error", stream=state.stream_id, message=state.sinks.errors.pop(0))

    # ---- streams
    def _stream(self, stream_id: str) -> StreamState:
        state = self.streams.get(stream_id)
        if state is None:
            state = StreamState(stream_id, Tracker(self.tracker_config),
                                EventBuilder(stream_id, mode=self.spec.event_mode))
            self.streams[stream_id] = state
        return state

    def _start_stream(self, started: messages.StreamStarted) -> None:
        state = self._stream(started.stream_id)
        state.started = started
        if started.classes:
            state.events.class_names = list(started.classes)
        if self.spec.open_outputs is not None and state.sinks is None:
            state.sinks = self.spec.open_outputs(state.stream_id, started.source, started.live,
                                                 state.events.class_names)
        self.publish(state, [state.events.stream_started(
            source=started.source, width=started.width, height=started.height, fps=started.fps,
            live=started.live, frames=started.frames)])
        self.report(event="stream.started", stream=state.stream_id, frames=started.frames)

    def _handle(self, parts) -> None:
        """Decode one message and act on it; a bad or unexpected one is counted and dropped."""
        try:
            message = messages.decode(parts)
        except messages.ProtocolError as exc:
            self._drop(f"dropped a bad message: {exc}")
            return
        handler = self._handlers.get(type(message))
        if handler is None:
            self._drop(f"dropped a {message.TYPE} message: the tracker takes detections and control only")
            return
        handler(message)
        self._drain(self._stream(message.stream_id))

    def _drop(self, why: str) -> None:
        self.bad_messages += 1
        log.warning("%s", why)

    def _buffer_detections(self, msg: messages.DetectionsMessage) -> None:
        state = self._stream(msg.stream_id)
        if msg.seq < state.next_seq or state.ended or msg.seq in state.buffer:
            self._drop(f"dropped detections {msg.seq} of {msg.stream_id}: duplicate, or late after a skip")
            return
        state.buffer[msg.seq] = msg
        if state.buffered_since is None:
            state.buffered_since = time.monotonic()

    def _stall_stream(self, stalled: messages.StreamStalled) -> None:
        """A live source stopped sending: its tracks end now (``reason: "stream stalled"``)
        and it is tracked afresh when it resumes (the objects will have moved on)."""
        state = self._stream(stalled.stream_id)
        if state.ended:
            return
        events = [state.events.stream_stalled(state.last_frame, state.last_ts, seconds=stalled.seconds)]
        events += state.events.end_all(state.last_frame, state.last_ts, state.snapshots, reason="stream stalled")
        state.tracker.restart()
        state.snapshots = []
        self.publish(state, events)

    def _resume_stream(self, resumed: messages.StreamResumed) -> None:
        state = self._stream(resumed.stream_id)
        if not state.ended:
            self.publish(state, [state.events.stream_resumed(state.last_frame, state.last_ts, seconds=resumed.seconds)])

    def _note_end(self, ended: messages.StreamEnded) -> None:
        self._stream(ended.stream_id).end = ended

    def _drain(self, state: StreamState) -> None:
        """Process buffered frames in order; give up a missing one after the reorder timeout."""
        while True:
            msg = state.buffer.pop(state.next_seq, None)
            if msg is not None:
                self._track(state, msg)
                state.next_seq += 1
                state.buffered_since = time.monotonic() if state.buffer else None
                continue
            if state.buffer and time.monotonic() - (state.buffered_since or 0) > self.spec.reorder_timeout_s:
                first = min(state.buffer)  # give up every missing frame before it at once (a gap may be huge)
                state.skipped += first - state.next_seq
                state.next_seq = first
                continue
            break
        if state.end is not None and state.next_seq >= state.end.seq and not state.ended:
            self._end_stream(state)

    def _fits_stream(self, state: StreamState, msg: messages.DetectionsMessage) -> bool:
        """Whether ``msg`` can follow the stream's frames so far: a later frame index, and
        the embedding size of its earlier detections (the tracker refuses either)."""
        dim = msg.detections.embeddings.shape[1] if len(msg.detections) else 0
        if msg.index <= state.last_frame or (dim and state.embedding_dim and dim != state.embedding_dim):
            self._drop(f"dropped detections {msg.seq} of {msg.stream_id}: frame {msg.index} after {state.last_frame}, "
                       f"embedding size {dim} after {state.embedding_dim}")
            return False
        state.embedding_dim = state.embedding_dim or dim
        return True

    def _track(self, state: StreamState, msg: messages.DetectionsMessage) -> None:
        if not self._fits_stream(state, msg):
            return
        snapshots = state.tracker.update(msg.detections, msg.index)
        events = state.events.update(msg.index, msg.timestamp, snapshots)
        state.snapshots = [s for s in snapshots if s.state != TrackState.DELETED]
        state.last_frame, state.last_ts = msg.index, msg.timestamp
        state.frames += 1
        if state.sinks is not None:
            state.sinks.write_frame(msg.index, snapshots, events)
        self.publish(state, events)
        now = time.monotonic()
        if state.unreported == 0:
            state.unreported_first_at = now
        state.unreported += 1
        state.unreported_last_at = now
        self._report_progress_if_due(state, now)

    def _report_progress_if_due(self, state: StreamState, now: float) -> None:
        if state.unreported and now - state.unreported_first_at >= PROGRESS_INTERVAL_S:
            self._report_progress(state)

    def _report_progress(self, state: StreamState) -> None:
        """Tell the supervisor how many frames were tracked since the last report, and when
        (``time.monotonic()`` of the first and the last: the clock is system-wide)."""
        if state.unreported:
            self.report(event="frames", stream=state.stream_id, count=state.unreported,
                        first_at=state.unreported_first_at, last_at=state.unreported_last_at)
            state.unreported = 0

    def _end_stream(self, state: StreamState) -> None:
        state.ended = True
        self._report_progress(state)
        events = state.events.end_all(state.last_frame, state.last_ts, state.snapshots)
        end = state.end
        events.append(state.events.stream_ended(state.last_frame, state.last_ts, frames=state.frames,
                                                skipped=state.skipped, reason=end.reason, dropped=end.dropped,
                                                decode_errors=end.decode_errors))
        self.publish(state, events)
        if state.sinks is not None:
            state.sinks.close()
            self._report_sink_errors(state)
        self.report(event="stream.ended", stream=state.stream_id, frames=state.frames, reason=end.reason,
                    dropped=end.dropped, decode_errors=end.decode_errors)

    def done(self) -> bool:
        expected = self.spec.expected_streams
        return bool(expected) and all(s in self.streams and self.streams[s].ended for s in expected)

    def run(self) -> None:
        try:
            while self.stop is None or not self.stop.is_set():
                if self._pull.poll(100):
                    self._handle(self._pull.recv_multipart(copy=False))
                else:
                    for state in list(self.streams.values()):
                        if state.buffer:
                            self._drain(state)
                        self._report_progress_if_due(state, time.monotonic())  # a stalled or slow stream
                if self.spec.exit_when_done and self.done():
                    break
        finally:
            for state in self.streams.values():
                self._report_progress(state)
                if not state.ended and state.sinks is not None:
                    state.sinks.close()
                    self._report_sink_errors(state)
            time.sleep(0.2)  # let subscribers receive the last events
            self._factory.close()


def tracker_main(spec: TrackerStageSpec, stop=None, report_queue=None) -> None:
    """Process entry point."""

    def report(**kw):
        if report_queue is not None:
            report_queue.put({"stage": "tracker", **kw})

    TrackerStage(spec, stop, report).run()
