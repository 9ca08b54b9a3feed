"""Tracker stage: per stream, restore frame order, track, publish events, write sinks.

Detections may arrive out of order when several detector processes share the work; each
stream keeps a reorder buffer keyed by the grabber's gap-free ``seq`` and processes frames
strictly in order. For a live stream a frame that has not arrived ``reorder_timeout_s``
after later ones were buffered (or after the end marker, whose ``seq`` says how many frames
there were) is given up (counted), so a lost message never stalls it. Under the in-process
supervisor (``resent_on_loss``) a file stream waits for the missing frame instead: files are
lossless, and the supervisor has the grabber send again what a dead stage lost (the
``next_seq`` in the progress reports is the acknowledgement it rewinds to); copies of frames
already tracked or buffered are dropped. A frame lost while no stage died is asked for again
("gap" reports, with backoff, see ``GAP_RESENDS``) and only given up after that. A tracker
started on its own (``vidtrack worker``) has no one to send frames again and gives up file
frames like live ones.
Detections that arrive before their stream's ``stream.started`` (another detector process
forwarded it and is slower) are held, up to ``EARLY_DETECTIONS`` per stream, until it comes;
a repeated ``stream.started`` (sent again after a rewind) is ignored. Each stream's tracker
counts in that stream's frame rate (``stream.started``'s fps, :func:`stream_frame_rate`), and
is made when ``stream.started`` arrives: no frame is tracked before it.
Each message's camera warp (from its grabber, :mod:`detector.camera_motion`) moves the
stream's tracks before its detections are associated; the warp of a frame given up is lost
with it (the tracks miss that frame's camera motion, a small error for one frame).

With a ``checkpoint_dir`` each stream's state is saved every ``checkpoint_frames`` frames,
at its start and at its end (:mod:`workers.tracker_checkpoint`); a tracker started with
``restore`` loads them, reopens the outputs truncated to the saved offsets and reports
``restored`` with each expected stream's next seq (0 without a checkpoint), from which the
supervisor has the grabbers send again.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Protocol

import zmq

from wire import messages
from wire.events import EventBuilder
from wire.transport import SUBSCRIBERS, Security, SocketFactory
from base.settings import setting
from tracker import DEFAULT_FRAME_RATE, Tracker, TrackerConfig, TrackState
from workers import tracker_checkpoint
from workers.meter import StageMeter

log = logging.getLogger(__name__)

# Tracked-frame counts go to the supervisor (progress bars, the run summary) at most this
# often per stream, not once per frame: each report is a pickle, a pipe write and a wake-up
# of the supervisor, on cores the detector needs.
PROGRESS_INTERVAL_S = 0.25
EARLY_DETECTIONS = 1024  # detections held per stream until its stream.started arrives
# detections messages queued in the receiving socket; each part at most
# messages.MAX_DETECTIONS_PART_BYTES (ZMQ_MAXMSGSIZE), real ones a few kB
DETECTIONS_HWM = 64
MAX_FOREIGN_IDS = 1000  # unconfigured stream ids counted one by one (the rest only in bad_messages)
MAX_STREAM_FPS = 240.0  # a source reporting more (an RTSP 90 kHz clock) is tracked at DEFAULT_FRAME_RATE
# A file frame missing for reorder_timeout_s while later ones (or the end marker) are here may
# have been lost without a stage dying (stolen from a socket, dropped as bad): the supervisor is
# asked to have it sent again ("gap" report), the waits between asks doubling from
# reorder_timeout_s up to GAP_ASK_MAX_S (a restarting stage's frames come late, not never); after
# GAP_RESENDS asks (about two minutes) it is given up like a live one (counted skipped, logged),
# so nothing waits for ever.
GAP_RESENDS = 6
GAP_ASK_MAX_S = 60.0
# A file stream that has sent nothing at all for SILENCE_ASKS x reorder_timeout_s, with no end
# marker, may have lost its last frames and the end marker with a dead stage: it is asked for
# again from next_seq the same way (waits doubling, at most GAP_ASK_MAX_S), for as long as it
# stays silent (nothing later is known, so nothing can be given up).
SILENCE_ASKS = 5
STALE_CHECK_S = 0.1  # streams waiting on a gap are looked at this often, however busy the socket


def stream_frame_rate(fps: float, stream_id: str = "") -> float:
    """The frame rate a stream's tracker counts in: its ``stream.started`` fps, or
    ``DEFAULT_FRAME_RATE`` (logged) where that is not a plausible camera rate, (0, MAX_STREAM_FPS]
    (the config's ``tracker.frame_rate``, when set, overrides either)."""
    if 0 < fps <= MAX_STREAM_FPS:
        return float(fps)
    log.warning("stream %s reports %g frames/s: tracking it at %g (set tracker.frame_rate to override)",
                stream_id, fps, DEFAULT_FRAME_RATE)
    return DEFAULT_FRAME_RATE


class StreamOutputs(Protocol):
    """One stream's file outputs (the service's sinks): written in step with the tracker.
    A failed output is left out by the object itself; its message waits in ``errors``."""

    errors: list[str]

    def write_frame(self, frame: int, snapshots, events) -> None: ...
    def write_events(self, events: list[dict]) -> None: ...
    def offsets(self) -> dict[str, int]: ...
    def close(self) -> None: ...


# (stream id, source url, live, class names, offsets or None, coast_frames) -> that stream's
# outputs; offsets (from StreamOutputs.offsets) reopen the files truncated there; coast_frames:
# the stream tracker's coast in frames (its limits). Picklable (the service passes
# :class:`pipeline.sinks.SinkSettings`)
OpenOutputs = Callable[..., StreamOutputs]


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
    expected_streams: list[str] = field(default_factory=list)  # the only streams taken ([]: any, for tools)
    exit_when_done: bool = True  # leave once every expected stream has ended
    reorder_timeout_s: float = 2.0
    resent_on_loss: bool = True  # file frames lost in a dead stage are sent again: wait for them
    security: Security = field(default_factory=Security)
    checkpoint_dir: str | None = None  # None: no checkpoints
    checkpoint_frames: int = 100  # a stream's state is saved every this many frames
    restore: bool = False  # start from the checkpoints in checkpoint_dir (a restart)

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
    gap_asks: int = 0  # "gap" reports sent for the frame next_seq (file streams)
    gap_asked_at: float = 0.0  # time.monotonic() of the last one
    heard_at: float = field(default_factory=time.monotonic)  # the stream's last message arrived then


class TrackerStage:
    def __init__(self, spec: TrackerStageSpec, stop=None, report=None):
        self.spec = spec
        self.stop = stop
        self.report = report or (lambda **kw: None)
        self.tracker_config = spec.tracker
        self.streams: dict[str, StreamState] = {}
        self.bad_messages = 0
        self.foreign_messages: dict[str, int] = {}  # stream id not configured -> messages dropped
        self.meter = StageMeter()  # per stream frames in (accepted) and out (tracked), bad messages per reason
        self._factory = SocketFactory(spec.security)
        # a part larger than any valid detections message disconnects its sender before it is read
        self._pull = self._factory.bind(zmq.PULL, spec.detections_endpoint, hwm=DETECTIONS_HWM,
                                        max_message_bytes=messages.MAX_DETECTIONS_PART_BYTES)
        self._pub = self._factory.bind(zmq.PUB, spec.events_endpoint, hwm=10_000, domain=SUBSCRIBERS)
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
        if state.started is not None:
            return  # sent again after a rewind
        state.started = started
        # nothing was tracked yet (frames wait for stream.started): the tracker starts at the stream's rate
        state.tracker = Tracker(self.tracker_config, stream_frame_rate(started.fps, started.stream_id))
        if started.classes:
            state.events.class_names = list(started.classes)
        if self.spec.open_outputs is not None and state.sinks is None:
            state.sinks = self.spec.open_outputs(state.stream_id, started.source, started.live,
                                                 state.events.class_names, None, state.tracker.limits.coast_frames)
        self.publish(state, [state.events.stream_started(
            source=started.source, width=started.width, height=started.height, fps=started.fps,
            live=started.live, frames=started.frames)])
        self.report(event="stream.started", stream=state.stream_id, frames=started.frames)
        self._checkpoint(state)

    def _handle(self, parts) -> None:
        """Decode one message and act on it; a bad or unexpected one is counted and dropped."""
        try:
            message = messages.decode(parts)
        except messages.ProtocolError as exc:
            self._drop("malformed", f"dropped a bad message: {exc}")
            return
        handler = self._handlers.get(type(message))
        if handler is None:
            self._drop("wrong_type", f"dropped a {message.TYPE} message: the tracker takes detections and control only")
            return
        if not self._configured(message.stream_id):
            return
        self._stream(message.stream_id).heard_at = time.monotonic()
        handler(message)
        self._drain(self._stream(message.stream_id))

    def _configured(self, stream_id: str) -> bool:
        """Whether the stage was configured with ``stream_id``; a message of any other stream
        is counted and dropped (logged once per stream id)."""
        if not self.spec.expected_streams or stream_id in self.spec.expected_streams:
            return True
        self.bad_messages += 1
        self.meter.count("bad_messages", "foreign")
        if stream_id in self.foreign_messages:
            self.foreign_messages[stream_id] += 1
        elif len(self.foreign_messages) < MAX_FOREIGN_IDS:  # bounded: the ids come from the wire
            self.foreign_messages[stream_id] = 1
            log.warning("dropping messages of stream %r: not a configured stream", stream_id)
        return False

    def _drop(self, reason: str, why: str) -> None:
        """Count a dropped message under ``reason`` (a metrics label) and log ``why``."""
        self.bad_messages += 1
        self.meter.count("bad_messages", reason)
        log.warning("%s", why)

    def _buffer_detections(self, msg: messages.DetectionsMessage) -> None:
        state = self._stream(msg.stream_id)
        if msg.seq < state.next_seq or state.ended or msg.seq in state.buffer:
            log.debug("dropped detections %d of %s: a copy, or late after a skip", msg.seq, msg.stream_id)
            return
        if state.started is None and len(state.buffer) >= EARLY_DETECTIONS:
            self._drop("early", f"dropped detections {msg.seq} of {msg.stream_id}: more than {EARLY_DETECTIONS} "
                       f"before its stream.started")
            return
        state.buffer[msg.seq] = msg
        self.meter.count("frames_in", msg.stream_id)
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
        state = self._stream(ended.stream_id)
        state.end = ended
        if state.buffered_since is None:
            state.buffered_since = time.monotonic()  # a live stream's lost last frames time out from here

    def _drain(self, state: StreamState) -> None:
        """Process buffered frames in order (once the stream has started); a live stream
        gives up a missing one after the reorder timeout, a file stream waits for it."""
        while state.started is not None and not state.ended:
            msg = state.buffer.pop(state.next_seq, None)
            if msg is not None:
                self._track(state, msg)
                state.next_seq += 1
                state.gap_asks = 0
                state.buffered_since = time.monotonic() if state.buffer or state.end else None
                if state.next_seq % self.spec.checkpoint_frames == 0:
                    self._checkpoint(state)
                continue
            if not self._skip_missing(state):
                break
        if state.end is not None and state.next_seq >= state.end.seq and not state.ended:
            self._end_stream(state)

    def _skip_missing(self, state: StreamState) -> bool:
        """After the reorder timeout, give up every missing frame before the first buffered
        one (a gap may be huge), or before the end marker's seq: at once for live streams (and
        every stream without ``resent_on_loss``); for a file stream only once
        :meth:`_ask_again` has asked for it ``GAP_RESENDS`` times in vain."""
        if state.buffered_since is None or time.monotonic() - state.buffered_since <= self.spec.reorder_timeout_s:
            return False
        target = min(state.buffer) if state.buffer else (state.end.seq if state.end is not None else 0)
        if target <= state.next_seq:
            return False
        if self.spec.resent_on_loss and not state.started.live and not self._ask_again(state):
            return False
        state.skipped += target - state.next_seq
        self.meter.count("skipped", state.stream_id, target - state.next_seq)
        state.next_seq = target
        state.gap_asks = 0
        return True

    def _ask_again(self, state: StreamState) -> bool:
        """A file frame is missing while later ones are here: report a "gap" (the supervisor
        has the grabber send again from ``next_seq``), the k-th ask reorder_timeout * 2^k s
        after the one before (at most ``GAP_ASK_MAX_S``). Returns True once ``GAP_RESENDS``
        asks went unanswered: give the frames up."""
        now = time.monotonic()
        wait = min(self.spec.reorder_timeout_s * 2 ** state.gap_asks, GAP_ASK_MAX_S)
        if state.gap_asks and now - state.gap_asked_at <= wait:
            return False
        if state.gap_asks >= GAP_RESENDS:
            log.error("%s: frames %d.. lost and not sent again after %d asks; skipping them",
                      state.stream_id, state.next_seq, GAP_RESENDS)
            return True
        self._ask(state, now, f"frame {state.next_seq} missing without a stage dying; asking for it again")
        return False

    def _ask(self, state: StreamState, now: float, why: str) -> None:
        """One "gap" report for ``state``'s frames from ``next_seq`` (counted, logged with ``why``)."""
        state.gap_asks += 1
        state.gap_asked_at = now
        self.meter.count("gap_resends", state.stream_id)
        log.warning("%s: %s", state.stream_id, why)
        self.report(event="gap", stream=state.stream_id, next_seq=state.next_seq)

    def _fits_stream(self, state: StreamState, msg: messages.DetectionsMessage) -> bool:
        """Whether ``msg`` can follow the stream's frames so far: a later frame index, and
        the embedding size of its earlier detections (the tracker refuses either)."""
        dim = msg.detections.embeddings.shape[1] if len(msg.detections) else 0
        if msg.index <= state.last_frame or (dim and state.embedding_dim and dim != state.embedding_dim):
            self._drop("out_of_order", f"dropped detections {msg.seq} of {msg.stream_id}: frame {msg.index} after "
                       f"{state.last_frame}, "
                       f"embedding size {dim} after {state.embedding_dim}")
            return False
        state.embedding_dim = state.embedding_dim or dim
        return True

    def _track(self, state: StreamState, msg: messages.DetectionsMessage) -> None:
        if not self._fits_stream(state, msg):
            return
        start = time.perf_counter()
        self._update(state, msg)
        self.meter.observe("frame", time.perf_counter() - start)
        self.meter.count("frames_out", state.stream_id)
        if state.started is not None and state.started.live:  # a live frame's timestamp is its capture time
            self.meter.observe("capture_to_event", time.time() - msg.timestamp, state.stream_id)
        now = time.monotonic()
        if state.unreported == 0:
            state.unreported_first_at = now
        state.unreported += 1
        state.unreported_last_at = now
        self._report_progress_if_due(state, now)

    def _update(self, state: StreamState, msg: messages.DetectionsMessage) -> None:
        """Track one frame of detections: the tracker, the sinks, the events."""
        snapshots = state.tracker.update(msg.detections, msg.index, msg.warp)
        events = state.events.update(msg.index, msg.timestamp, snapshots)
        state.snapshots = [s for s in snapshots if s.state != TrackState.DELETED]
        state.last_frame, state.last_ts = msg.index, msg.timestamp
        state.frames += 1
        if state.sinks is not None:
            state.sinks.write_frame(msg.index, snapshots, events)
        self.publish(state, events)

    def _report_progress_if_due(self, state: StreamState, now: float) -> None:
        if state.unreported and now - state.unreported_first_at >= PROGRESS_INTERVAL_S:
            self._report_progress(state)

    def _report_progress(self, state: StreamState) -> None:
        """Tell the supervisor how many frames were tracked since the last report, and when
        (``time.monotonic()`` of the first and the last: the clock is system-wide)."""
        if state.unreported:
            self.report(event="frames", stream=state.stream_id, count=state.unreported,
                        first_at=state.unreported_first_at, last_at=state.unreported_last_at,
                        next_seq=state.next_seq)
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
        self._checkpoint(state)

    # ---- checkpoints
    def _checkpoint(self, state: StreamState) -> None:
        """Save the stream's state and its outputs' offsets (flushed) in ``checkpoint_dir``."""
        if self.spec.checkpoint_dir is None:
            return
        offsets = state.sinks.offsets() if state.sinks is not None and not state.ended else None
        saved = replace(state, sinks=None, buffer={}, buffered_since=None, unreported=0)
        tracker_checkpoint.save(self.spec.checkpoint_dir, state.stream_id,
                                tracker_checkpoint.StreamCheckpoint(saved, offsets))

    def _restore(self) -> None:
        """Load every expected stream's checkpoint, reopen its outputs at the saved offsets,
        and report where each stream goes on (``restored``, its next seq)."""
        for stream_id in self.spec.expected_streams:
            checkpoint = tracker_checkpoint.load(self.spec.checkpoint_dir, stream_id)
            if checkpoint is not None:
                state = self.streams[stream_id] = checkpoint.state
                if state.started is not None and not state.ended and self.spec.open_outputs is not None:
                    started = state.started
                    state.sinks = self.spec.open_outputs(stream_id, started.source, started.live,
                                                         state.events.class_names, checkpoint.offsets,
                                                         state.tracker.limits.coast_frames)
                    self._report_sink_errors(state)
            state = self.streams.get(stream_id)
            next_seq, frames = (state.next_seq, state.frames) if state is not None else (0, 0)
            log.warning("tracker restored %s at frame %d", stream_id, next_seq)
            self.report(event="restored", stream=stream_id, next_seq=next_seq, frames=frames)

    def done(self) -> bool:
        expected = self.spec.expected_streams
        return bool(expected) and all(s in self.streams and self.streams[s].ended for s in expected)

    def _check_waiting(self) -> None:
        """Streams waiting on a missing frame or their end (their timeouts run however busy
        the other streams keep the socket), and progress reports of stalled or slow ones."""
        for state in list(self.streams.values()):
            if state.buffer or (state.end is not None and not state.ended):
                self._drain(state)
            elif self.spec.resent_on_loss and state.started is not None and not state.started.live \
                    and not state.ended:
                self._ask_if_silent(state, time.monotonic())
            self._report_progress_if_due(state, time.monotonic())

    def _ask_if_silent(self, state: StreamState, now: float) -> None:
        """A file stream silent for ``SILENCE_ASKS`` reorder timeouts, nothing buffered and
        no end marker: ask for its frames from ``next_seq`` again (waits doubling)."""
        silence = SILENCE_ASKS * self.spec.reorder_timeout_s
        wait = min(silence * 2 ** max(state.gap_asks - 1, 0), GAP_ASK_MAX_S)
        if now - state.heard_at < silence or (state.gap_asks and now - state.gap_asked_at < wait):
            return
        self._ask(state, now, f"nothing heard for {now - state.heard_at:.0f} s after frame {state.next_seq}; "
                              "asking for the frames from there again")

    def _report_metrics(self, force: bool = False) -> None:
        """The meter to the supervisor when due, with each stream's reorder buffer depth and the
        refused CURVE handshakes."""
        if not (force or self.meter.due()):
            return
        self.meter.count_to("bad_messages", "unauthorised_key", self._factory.refused_clients())
        for state in list(self.streams.values()):
            self.meter.depth("reorder_buffer", len(state.buffer), state.stream_id)
        self.meter.report_if_due(self.report, force)

    def run(self) -> None:
        if self.spec.restore and self.spec.checkpoint_dir is not None:
            self._restore()
        self.report(event="ready")
        try:
            checked = time.monotonic()
            while self.stop is None or not self.stop.is_set():
                if self._pull.poll(100):
                    self._handle(self._pull.recv_multipart(copy=False))
                if time.monotonic() - checked >= STALE_CHECK_S:
                    self._check_waiting()
                    checked = time.monotonic()
                self._report_metrics()
                if self.spec.exit_when_done and self.done():
                    break
        finally:
            self._report_metrics(force=True)
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
