"""Frame-grabber worker: decode a source, number and timestamp frames, push them over ZeroMQ.

Drop policy (see DESIGN.md): a file is lossless, the grabber blocks while downstream is full
and every frame is sent once, in order. A live source never builds latency: a capture thread
keeps only the newest frame, the sender ships it when downstream has room, and every frame
overwritten before it could be sent is counted as dropped.

A file is also resumable: a grabber started with ``resume_seq`` begins at that frame, and a
:class:`RewindRequest` from the supervisor (frames were lost downstream: a detector or the
tracker died) makes it seek back and send again from the frame named, whether it is still
sending or already waiting after its end marker. For files ``seq`` equals the frame index,
so a frame sent again carries the seq it had, and the tracker drops the copies it has.

Camera motion (``camera_motion = "sparse_flow"``, :mod:`detector.camera_motion`): the grabber
is the one process that sees every frame of its stream in order, so it estimates the 2x3 warp
from the previous *sent* frame to each frame it sends (frames a live source drops are
skipped over) and puts it in the frame message; detectors copy it into the detections, the
tracker moves its tracks by it. The estimate runs on a downscaled grey copy (a few ms per
frame, see the module) and is the identity at the first frame; after a rewind the grabber
replays the frames since the estimator's last scheduled corner detection, so the frames sent
again carry the warps they carried the first time (the tracker's output does not change).
"""
from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import zmq

from wire import messages
from wire.frame_ring import RingWriter
from wire.transport import frame_queue_hwm, Security, SocketFactory
from base.errors import SourceError
from base.settings import setting
from base.types import Frame
from detector.camera_motion import DEFAULT_METHOD as DEFAULT_CAMERA_MOTION, METHODS as CAMERA_MOTION_METHODS, make_estimator
from detector.camera_motion import replay_start
from workers.meter import StageMeter
from workers.sources import VideoSource, quiet_native_logs, source_kind

log = logging.getLogger(__name__)
END_MARKER_TIMEOUT_S = 10.0
RESUME_CONFIRM_S = 0.5  # a stalled live source is resumed once frames come this long again


def stream_id_problem(stream_id: str) -> str | None:
    """What is wrong with a stream id (it names events topics and output files), or None:
    the wire's rule (:func:`wire.messages.valid_stream_id`), so every configured id can be sent."""
    if not messages.valid_stream_id(stream_id):
        return (f"must be 1-{messages.MAX_STREAM_ID} letters, digits, '_', '-' or '.', and not dots only")
    return None


def size_problem(width: int, height: int) -> str | None:
    """Why frames of ``width`` x ``height`` pixels cannot be sent (a side beyond the wire's
    MAX_SIDE), or None."""
    if width > messages.MAX_SIDE or height > messages.MAX_SIDE:
        return f"frames of {width}x{height} pixels are larger than the {messages.MAX_SIDE}-pixel limit per side"
    return None


@dataclass
class SourceConfig:
    """One ``[[sources]]`` table: a video file, a camera index or an rtsp/http URL."""

    url: str = setting("", non_empty=True)
    id: str = setting("", check=lambda s: stream_id_problem(s) if s else None)  # "": made from the url
    live: bool | None = None  # None: decided from the source (files lossless, cameras/URLs live)
    encoding: str = setting("raw", choices=("raw", "jpeg"))  # "raw" (zero-copy pixels) or "jpeg" (slow links)
    max_frames: int = setting(0, minimum=0)  # 0 = whole source
    stall_seconds: float = setting(5.0, above=0.0)  # live: stream.stalled after this long without a frame
    reconnect_attempts: int = setting(0, minimum=0)  # live: reopen tries per outage before the stream ends; 0 = for ever
    reconnect_delay_seconds: float = setting(0.2, above=0.0)  # live: wait before the first reopen, doubled per try
    reconnect_max_delay_seconds: float = setting(2.0, above=0.0)  # live: the longest wait between two reopens
    timeout_seconds: float = setting(5.0, above=0.0)  # network sources: longest wait to open, and for a frame
    decode_threads: int = setting(1, minimum=0)  # FFmpeg decoding threads (0 = OpenCV's default, one per core)
    # camera motion sent with each frame for the tracker: "sparse_flow" (BoT-SORT's GMC) or "none" (a still camera)
    camera_motion: str = setting(DEFAULT_CAMERA_MOTION, choices=CAMERA_MOTION_METHODS)

    @property
    def is_live(self) -> bool:
        """``live``, or where it is None what the url says: a file is not live, cameras and URLs are."""
        return self.live if self.live is not None else source_kind(self.url) != "file"


def _from_source(name: str) -> property:
    return property(lambda spec: getattr(spec.source, name), doc=f"``source.{name}``")


@dataclass
class GrabberSpec:
    """Everything one grabber process needs (picklable): its source's settings and what the
    service decides at start (endpoint, security, ring)."""

    source: SourceConfig
    endpoint: str
    security: Security = field(default_factory=Security)
    hwm: int = 4  # frames queued in the socket at most (transport.hwm) ...
    queue_bytes: int = 64 << 20  # ... and at most this many bytes of pixels (transport.queue_mb)
    hold_open_s: float = 120.0  # longest wait for downstream after the end marker
    ring_slots: int = 0  # >0: raw frames go through a shared-memory ring of this many slots (ipc only)
    ring_prefix: str = "vidtrack-ring"  # ring file names under /dev/shm start with this
    resume_seq: int = 0  # file: start at this frame (a restart); live: first seq and frame index
    end_with_error: str = ""  # set: send only stream.ended(resume_seq, this error), the stream is given up

    # the source settings, as the grabber reads them
    stream_id = _from_source("id")
    url = _from_source("url")
    live = _from_source("live")
    encoding = _from_source("encoding")
    max_frames = _from_source("max_frames")
    stall_seconds = _from_source("stall_seconds")
    reconnect_attempts = _from_source("reconnect_attempts")
    reconnect_delay_seconds = _from_source("reconnect_delay_seconds")
    reconnect_max_delay_seconds = _from_source("reconnect_max_delay_seconds")
    timeout_seconds = _from_source("timeout_seconds")
    decode_threads = _from_source("decode_threads")
    camera_motion = _from_source("camera_motion")


class RewindRequest:
    """The supervisor's request to a file grabber to send again from frame ``seq`` on
    (shared memory, works across processes); requests that pile up keep the lowest seq.
    ``fresh_ring``: slots of the ring may be held by a dead detector, start a new ring.

    Lock-free, because the grabber may be killed at any instruction: a lock it held would
    never be released and the supervisor's next request would wait for ever. Only the
    supervisor writes the request (``seq``, ``fresh``, then ``made``, a count of requests);
    only the grabber writes ``taken`` (the count it has acted on). A request that lands while
    the grabber reads one is seen as still pending and taken again: at worst one more rewind,
    to the lowest seq, which the tracker's duplicate check absorbs."""

    def __init__(self, ctx=None):
        ctx = ctx or multiprocessing
        self._seq, self._fresh = ctx.RawValue("q", -1), ctx.RawValue("b", 0)
        self._made, self._taken = ctx.RawValue("q", 0), ctx.RawValue("q", 0)

    def request(self, seq: int, fresh_ring: bool = False) -> None:
        if self.pending():
            seq, fresh_ring = min(int(seq), self._seq.value), fresh_ring or bool(self._fresh.value)
        self._seq.value, self._fresh.value = int(seq), int(fresh_ring)
        self._made.value += 1

    def pending(self) -> bool:
        return self._made.value > self._taken.value

    def take(self) -> tuple[int, bool] | None:
        """(seq, fresh ring) of the pending request, marked taken; None if there is none."""
        made = self._made.value
        if made <= self._taken.value:
            return None
        seq, fresh = self._seq.value, bool(self._fresh.value)
        self._taken.value = made
        return seq, fresh


@dataclass
class GrabberStats:
    sent: int = 0
    dropped: int = 0
    captured: int = 0
    decode_errors: int = 0  # frames of a file skipped because they did not decode
    reconnects: int = 0  # live: sources reopened after they stopped answering


class Grabber:
    """Runs one source into one PUSH socket until the source ends or ``stop`` is set."""

    def __init__(self, spec: GrabberSpec, stop: threading.Event | None = None, report=None,
                 release: threading.Event | None = None, rewind: RewindRequest | None = None):
        self.spec = spec
        self.stop = stop or threading.Event()
        self.release = release
        self.rewind = rewind
        self.report = report or (lambda **kw: None)
        self.stats = GrabberStats(sent=spec.resume_seq, captured=spec.resume_seq)
        self.meter = StageMeter()  # frames_in: decoded, frames_out: sent; reported as "metrics"
        self._factory = SocketFactory(spec.security)
        self._socket = None  # bound once the source's frame size is known (_bind)
        self.hwm = spec.hwm  # the frame socket's high-water mark, lowered by _bind for large frames
        self._ring = RingWriter(f"{spec.ring_prefix}-{spec.stream_id}", spec.ring_slots) \
            if spec.ring_slots > 0 and spec.encoding == "raw" else None
        self._motion = make_estimator(spec.camera_motion)  # None: no camera motion

    # ---- sending
    def _bind(self, width: int = 0, height: int = 0) -> None:
        """Bind the frame socket (once), its high-water mark lowered for large frames sent
        through it (:func:`wire.transport.frame_queue_hwm`); ``width``/``height`` 0: not known."""
        if self._socket is not None:
            return
        inline = self._ring is None or self.spec.encoding != "raw"  # the pixels travel in the messages
        hwm = frame_queue_hwm(self.spec.hwm, width * height * 3 if inline else 0, self.spec.queue_bytes)
        if hwm < self.spec.hwm:
            log.info("%s: %dx%d frames: at most %d queued in the socket", self.spec.stream_id, width, height, hwm)
        self._socket = self._factory.bind(zmq.PUSH, self.spec.endpoint, hwm=hwm)
        self.hwm = hwm

    def _send(self, parts, blocking: bool = True, timeout_s: float | None = None) -> bool:
        """Send a message; while blocked, keep checking ``stop`` (or, with ``timeout_s``, wait at
        most that long whatever ``stop`` says). False if it was not sent."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while deadline is not None or not (self.stop.is_set() or self._rewind_pending()):
            if self._socket.poll(100, zmq.POLLOUT):
                self._socket.send_multipart(parts, copy=False)
                return True
            if not blocking or (deadline is not None and time.monotonic() > deadline):
                return False
        return False

    def _send_frame(self, timestamp: float, index: int, image, blocking: bool = True,
                    ring_slot: tuple[str, int] | None = None) -> bool:
        """Send one frame; ``ring_slot`` names the ring slot that already holds ``image``. A
        frame larger than the wire allows (a source that reported no size at open) ends the
        stream with a SourceError before it reaches a ring."""
        too_large = size_problem(image.shape[1], image.shape[0])
        if too_large is not None:
            raise SourceError(f"{self.spec.url!r}: {too_large}")
        warp = self._camera_motion(image, self.stats.sent)
        if ring_slot is None and self._ring is not None:
            ring_slot = self._ring.put(image, self.stop)
        encoding = "shm" if ring_slot is not None else self.spec.encoding
        parts = messages.encode(messages.FrameMessage(Frame(self.spec.stream_id, index, timestamp, image),
                                                      self.stats.sent, encoding, ring_slot, warp))
        if self._send(parts, blocking):
            self.stats.sent += 1
            self.meter.count("frames_out", self.spec.stream_id)
            self._report_metrics()
            return True
        if ring_slot is not None:
            self._ring.cancel(*ring_slot)  # no message names the slot: free it
        return False

    def _camera_motion(self, image: np.ndarray, seq: int) -> np.ndarray:
        """The camera's warp float32[2,3] from the previous frame sent to ``image``, frame
        ``seq`` of the stream (timed)."""
        if self._motion is None:
            return messages.identity_warp()
        start = time.perf_counter()
        warp = self._motion.estimate(image, seq)
        self.meter.observe("camera_motion", time.perf_counter() - start, self.spec.stream_id)
        return warp

    def _rewind_pending(self) -> bool:
        return self.rewind is not None and self.rewind.pending()

    def _report_metrics(self, force: bool = False) -> None:
        """The meter to the supervisor when due, with the live drops and the refused CURVE
        handshakes counted since the last time."""
        self.meter.count_to("dropped", self.spec.stream_id, self.stats.dropped)
        self.meter.count_to("bad_messages", "unauthorised_key", self._factory.refused_clients())
        self.meter.report_if_due(self.report, force)

    def _control(self, kind: str, timeout_s: float | None = None, **fields) -> None:
        """Send the control message of type ``kind`` (a key of messages.CONTROL_MESSAGES) with
        ``fields`` (its dataclass's fields but the stream id)."""
        message = messages.CONTROL_MESSAGES[kind](self.spec.stream_id, **fields)
        self._send(messages.encode(message), timeout_s=timeout_s)

    def _send_until_released(self, kind: str, **fields) -> bool:
        """Send a control message of a file stream, however long downstream takes (a detector
        may still be loading), until it is sent, the supervisor releases the grabber or asks
        for a rewind; whether it was sent."""
        parts = messages.encode(messages.CONTROL_MESSAGES[kind](self.spec.stream_id, **fields))
        while True:  # tried at least once: a release means stop waiting, not "do not send"
            if self._socket.poll(100, zmq.POLLOUT):
                self._socket.send_multipart(parts, copy=False)
                return True
            if (self.release is not None and self.release.is_set()) or self._rewind_pending():
                return False

    # ---- main loop
    def run(self) -> GrabberStats:
        if self.spec.end_with_error:
            return self._give_up()
        reason = "eof"
        try:
            source = self._open()
        except SourceError as exc:
            self._refuse(exc)
        info = source.info
        too_large = size_problem(info.width, info.height)
        if too_large is not None:  # refused before a frame is decoded or a ring is made
            source.close()
            self._refuse(SourceError(f"cannot open {self.spec.url!r}: {too_large}"))
        self._bind(info.width, info.height)
        live = info.live if self.spec.live is None else self.spec.live
        self.report(event="started", frames=info.frame_count, live=live)
        self._started = dict(source=self.spec.url, width=info.width, height=info.height,
                             fps=info.fps, live=live, frames=info.frame_count)
        if not live:
            return self._serve_file(source)
        self._control("stream.started", **self._started)
        try:
            reason = self._run_live(source)
        except SourceError as exc:
            reason = f"error: {exc}"
            self.report(event="error", message=str(exc))
        finally:
            source.close()
            self.stats.decode_errors += source.decode_errors
            if self.stop.is_set() and reason == "eof":
                reason = "stopped"
            # the end marker must get through even after a stop request, so downstream can finish
            self._control("stream.ended", timeout_s=END_MARKER_TIMEOUT_S, seq=self.stats.sent,
                          reason=messages.reason_text(reason), dropped=self.stats.dropped,
                          decode_errors=self.stats.decode_errors)
            self._report_metrics(force=True)
            self.report(event="ended", reason=reason, sent=self.stats.sent, dropped=self.stats.dropped,
                        decode_errors=self.stats.decode_errors)
            self._hold_open()
            self.close()
        return self.stats

    def _give_up(self) -> GrabberStats:
        """The supervisor gave the stream up (its grabber kept dying): end it with the error."""
        self._bind()
        self._send_until_released("stream.ended", seq=self.spec.resume_seq,
                                  reason=messages.reason_text(f"error: {self.spec.end_with_error}"), dropped=0)
        self._hold_open()
        self.close()
        return self.stats

    def _serve_file(self, source: VideoSource) -> GrabberStats:
        """Send the file from ``resume_seq``, then its end marker, then wait to be released;
        a rewind request, while sending or after, seeks back and goes on from there."""
        position = self.spec.resume_seq or None
        try:
            while True:
                if position is not None:
                    source = self._seek(source, position)
                # (again) after a rewind: it may have been lost too; the tracker ignores repeats
                if not self._send_until_released("stream.started", **self._started):
                    position = self._next_position()
                    if position is None:
                        return self.stats
                    continue
                reason = self._send_file_frames(source)
                position = self._next_position() if self._rewind_pending() else None
                if position is None:
                    position = self._end_file(reason)
                if position is None:
                    return self.stats
        finally:
            source.close()
            self.close()

    def _end_file(self, reason: str) -> int | None:
        """Send the end marker (no timeout: files are lossless), report the end, and wait for
        the release; the position of a rewind requested meanwhile, or None."""
        if self.stop.is_set() and reason == "eof":
            reason = "stopped"
        sent = self._send_until_released("stream.ended", seq=self.stats.sent, reason=messages.reason_text(reason),
                                         dropped=0, decode_errors=self.stats.decode_errors)
        if sent:
            self.report(event="ended", reason=reason, sent=self.stats.sent, dropped=0,
                        decode_errors=self.stats.decode_errors)
        while self.release is not None and not self.release.wait(0.1):
            self._report_metrics()
            if self._rewind_pending():
                return self._next_position()
        if self.release is None:
            self._hold_open()
        return self._next_position() if self._rewind_pending() else None

    def _next_position(self) -> int | None:
        """The frame a pending rewind asks for (starting a fresh ring if asked), or None."""
        request = self.rewind.take() if self.rewind is not None else None
        if request is None:
            return None
        seq, fresh_ring = request
        if fresh_ring and self._ring is not None:
            self._ring.start_fresh()
        log.warning("%s: sending again from frame %d", self.spec.stream_id, seq)
        return seq

    def _seek(self, source: VideoSource, position: int) -> VideoSource:
        """``source`` at frame ``position`` (:meth:`VideoSource.seek`: exact, a container seek
        checked against the frame it found, or decoded from the start)."""
        if self._motion is None:
            source.seek(position)
        else:  # replay the frames the warp of frame ``position`` depends on: the warps sent again are the same
            self._motion.reset()
            start = replay_start(self._motion, position)
            source.seek(start)
            for seq in range(start, position):
                frame = source.read()
                if frame is not None:
                    self._motion.estimate(frame[1], seq)
        self.stats.sent = self.stats.captured = position
        return source

    def _send_file_frames(self, source: VideoSource) -> str:
        """Send frames until the end of the file, a stop or a rewind request; the reason."""
        try:
            self._run_file(source)
        except SourceError as exc:
            self.report(event="error", message=str(exc))
            return f"error: {exc}"
        finally:  # after a rewind, frames read again that do not decode are counted again
            self.stats.decode_errors += source.decode_errors
            source.decode_errors = 0
        return "eof"

    def _refuse(self, exc: SourceError) -> None:
        """End the stream at open with ``exc`` as its error (reported, sent as the end marker's
        reason, with no timeout: a detector may still be loading) and close; raises ``exc``."""
        self.report(event="error", message=str(exc))
        self._bind()
        self._send_until_released("stream.ended", seq=self.spec.resume_seq,
                                  reason=messages.reason_text(f"error: {exc}"), dropped=0)
        self._hold_open()
        self.close()
        raise exc

    def _open(self) -> VideoSource:
        return VideoSource(self.spec.url, open_timeout_s=self.spec.timeout_seconds,
                           decode_threads=self.spec.decode_threads)

    def _run_file(self, source: VideoSource) -> str:
        shape = None  # the last decoded frame's: the first frame sizes the ring by copy
        while not (self.stop.is_set() or self._rewind_pending()):
            if self.spec.max_frames and self.stats.captured >= self.spec.max_frames:
                break
            item, ring_slot = self._read_into_ring(source, shape)
            if item is None:
                break
            self.meter.count("frames_in", self.spec.stream_id)
            timestamp, image = item
            shape = image.shape
            if not self._send_frame(timestamp, self.stats.captured, image, ring_slot=ring_slot):
                break
            self.stats.captured += 1
        return "eof"

    def _read_into_ring(self, source: VideoSource, shape) -> tuple:
        """Read the next frame, decoded straight into a ring slot where there is a ring and the
        frame has ``shape`` (saves a 6 MB copy per 1080p frame); returns (item, slot or None),
        item None at the end or on stop. A frame that comes out another size goes into the
        ring by copy, or inline."""
        reserved = self._ring.reserve(shape, self.stop) if self._ring is not None and shape is not None else None
        if reserved is None:
            if self.stop.is_set():
                return None, None
            return self._timed_read(source), None
        name, slot, view = reserved
        try:
            item = self._timed_read(source, out=view)
        except BaseException:
            self._ring.cancel(name, slot)
            raise
        if item is None:
            self._ring.cancel(name, slot)
            return None, None
        if np.shares_memory(item[1], view):
            return item, (name, slot)
        self._ring.cancel(name, slot)
        return item, None

    def _timed_read(self, source: VideoSource, out=None):
        """``source.read(out)``, its decode time observed (the wait for a ring slot is not)."""
        start = time.perf_counter()
        item = source.read() if out is None else source.read(out=out)
        if item is not None:
            self.meter.observe("decode", time.perf_counter() - start, self.spec.stream_id)
        return item

    def _run_live(self, source: VideoSource) -> str:
        newest = NewestFrame()
        thread = threading.Thread(target=self._capture_live, args=(source, newest),
                                  name=f"capture-{self.spec.stream_id}", daemon=True)
        thread.start()
        self._send_newest(newest)
        thread.join(timeout=2.0)
        return newest.ended or "stopped"

    def _capture_live(self, source: VideoSource, newest: "NewestFrame") -> None:
        """Capture thread: read frames into ``newest`` as fast as the source gives them. A live
        source that stops answering is reopened with capped exponential backoff, for ever
        unless ``reconnect_attempts`` is set (then it ends after that many failed tries)."""
        failures = 0
        src = source
        while not self.stop.is_set():
            item = self._read_live(src)
            if item is None:
                if src.kind == "file":  # a file forced live ends at its end
                    newest.ended = "eof"
                    break
                failures += 1
                if self.spec.reconnect_attempts and failures > self.spec.reconnect_attempts:
                    newest.ended = "error: source stopped answering"
                    break
                src = self._reopen(src, failures)
                continue
            if failures:
                log.info("%s: frames again after %d reconnect tries", self.spec.stream_id, failures)
                failures = 0
            newest.put(item, self.stats)
            if self.spec.max_frames and self.stats.captured >= self.spec.max_frames:
                newest.ended = "eof"
                break
        if src is not source:
            src.close()
        newest.wake()

    def _read_live(self, src: VideoSource):
        """The next (timestamp, image), or None at the end or on a read error (logged)."""
        start = time.perf_counter()
        try:
            item = src.read()
        except SourceError as exc:
            self.meter.count("decode_errors", self.spec.stream_id)
            log.warning("%s: %s", self.spec.stream_id, exc)
            return None
        if item is not None:
            self.meter.observe("decode", time.perf_counter() - start, self.spec.stream_id)
            self.meter.count("frames_in", self.spec.stream_id)
        return item

    def reconnect_delay(self, attempt: int) -> float:
        """Seconds to wait before reopen try ``attempt`` (1, 2, ...): doubling, capped."""
        first, cap = self.spec.reconnect_delay_seconds, self.spec.reconnect_max_delay_seconds
        return min(first * 2.0 ** min(attempt - 1, 60), cap)

    def _reopen(self, src: VideoSource, attempt: int) -> VideoSource:
        """Back off (a stop request cuts the wait short), then open the source again; ``src``
        itself if it does not open (its next read fails and brings the next try)."""
        if self.stop.wait(self.reconnect_delay(attempt)):
            return src
        src.close()
        try:
            fresh = self._open()
        except SourceError as exc:
            # an outage may last months: the first tries are logged, then one in 100
            if attempt <= 3 or attempt % 100 == 0:
                log.warning("%s: reconnect %d failed: %s", self.spec.stream_id, attempt, exc)
            return src
        self.stats.reconnects += 1
        return fresh

    def _send_newest(self, newest: "NewestFrame") -> None:
        """Send the newest frame whenever there is one until the capture ends or ``stop``;
        ``stream.stalled`` and ``stream.resumed`` as :class:`StallWatch` decides. Frames of a
        stalled source that do not yet make a resume are dropped (counted), so that every frame
        after the gap follows ``stream.resumed``; so are frames that find ``hwm`` frames of the
        source still in flight (:meth:`_downstream_full`)."""
        watch = StallWatch(self.spec.stall_seconds, time.monotonic())
        while not self.stop.is_set():
            item = newest.take(timeout_s=0.1)
            now = time.monotonic()
            if item is None:
                if newest.ended is not None:
                    break
                idle = watch.idle(now)
                if idle is not None:
                    self._control("stream.stalled", seconds=round(idle, 3))
                continue
            gap = watch.frame(now)
            if gap is not None:
                self._control("stream.resumed", seconds=round(gap, 3))
            if watch.stalled or self._downstream_full():
                self.stats.dropped += 1
                continue
            index, timestamp, image = item
            # blocking send of the newest frame; frames captured meanwhile overwrite each other
            self._send_frame(timestamp, index, image)

    def _downstream_full(self) -> bool:
        """Whether ``hwm`` frames of this live source are in flight already (in its ring, sent
        and not yet freed by a detector). Sending more would only queue them: with 8 streams
        of 720p on 2 cores the ring's 28 slots held ~6 s of frames per stream (bench/load.py).
        Without a ring, the sockets' high-water marks bound the queue instead."""
        return self._ring is not None and self._ring.busy() >= self.spec.hwm

    def _hold_open(self) -> None:
        """Keep the socket open until downstream has everything.

        libzmq drops messages still queued for a slow peer when a PUSH socket closes, whatever
        its linger, so the grabber waits for ``release`` (set by the supervisor once the tracker
        has seen the end marker) or, without one, for ``spec.hold_open_s``."""
        if self.release is not None:
            self.release.wait(self.spec.hold_open_s)
        else:
            time.sleep(min(self.spec.hold_open_s, 2.0))

    def close(self) -> None:
        self._factory.close()
        if self._ring is not None:
            self._ring.close()


def grabber_main(spec: GrabberSpec, stop=None, report_queue=None, release=None, rewind=None) -> None:
    """Process entry point."""

    def report(**kw):
        if report_queue is not None:
            report_queue.put({"stage": "grabber", "stream": spec.stream_id, **kw})

    quiet_native_logs()
    try:
        Grabber(spec, stop, report, release, rewind).run()
    except SourceError:
        pass  # already reported


class NewestFrame:
    """The newest captured, not yet sent frame of a live source, shared by the capture thread
    (:meth:`put`) and the sender (:meth:`take`); ``ended`` is the capture's end reason."""

    def __init__(self):
        self._cond = threading.Condition()
        self._item: tuple | None = None  # (index, timestamp, image)
        self.ended: str | None = None

    def put(self, item: tuple, stats: GrabberStats) -> None:
        """Keep (timestamp, image) as frame ``stats.captured``; an unsent one it replaces is dropped."""
        with self._cond:
            if self._item is not None:
                stats.dropped += 1
            self._item = (stats.captured, item[0], item[1])
            stats.captured += 1
            self._cond.notify()

    def take(self, timeout_s: float) -> tuple | None:
        """The newest frame, waiting up to ``timeout_s`` for one unless the capture ended."""
        with self._cond:
            if self._item is None and self.ended is None:
                self._cond.wait(timeout_s)
            item, self._item = self._item, None
        return item

    def wake(self) -> None:
        """Wake a waiting :meth:`take` (the capture ended or stopped)."""
        with self._cond:
            self._cond.notify()


class StallWatch:
    """When a live source stalls and when it is back, from the times frames arrive
    (``time.monotonic()`` seconds).

    Stalled: no frame for ``stall_s``. Resumed: frames again for ``confirm_s`` without a pause
    of ``stall_s``; a stray frame in an outage (a decoder flushing what it held when a read
    timed out) is not a resume. The gap is from the last frame before the stall to the first
    frame of the resumed run."""

    def __init__(self, stall_s: float, now: float, confirm_s: float = RESUME_CONFIRM_S):
        self.stall_s, self.confirm_s = stall_s, confirm_s
        self.last_frame_at = now
        self.stalled_from: float | None = None  # the last frame before the stall
        self.run_from: float | None = None  # the first frame of a run that may be a resume

    @property
    def stalled(self) -> bool:
        return self.stalled_from is not None

    def idle(self, now: float) -> float | None:
        """Seconds without a frame if the source stalls now (once per outage), else None."""
        if self.stalled_from is None and now - self.last_frame_at > self.stall_s:
            self.stalled_from = self.last_frame_at
            return now - self.last_frame_at
        return None

    def frame(self, now: float) -> float | None:
        """A frame came; the gap in seconds if this frame makes the stalled source resumed."""
        gap = None
        if self.stalled_from is not None:
            if self.run_from is None or now - self.last_frame_at > self.stall_s:
                self.run_from = now
            if now - self.run_from >= self.confirm_s:
                gap = self.run_from - self.stalled_from
                self.stalled_from = self.run_from = None
        self.last_frame_at = now
        return gap
