"""Output sinks of the tracker stage, one set per stream.

- :class:`MotSink`: MOTChallenge txt ``frame,id,x,y,w,h,score,-1,-1,-1`` (frame 1-based), one row
  per confirmed track matched in that frame or at most ``coast_frames`` frames before
  (``tracker.coast_s`` at the stream's frame rate, which the tracker stage passes when it
  opens a stream's sinks; 0 = matched frames only, the DeepSORT convention).
- :class:`JsonlSink`: every event, one JSON object per line.
- :class:`VideoSink`: annotated mp4 (boxes, ids, short trails). The tracker stage never sees
  pixels, so this sink decodes the source file again in step with the tracked frames, on a
  thread of its own; it works for file sources only.

The MOT and JSONL files can be resumed: :meth:`StreamSinks.offsets` flushes them and gives
their sizes (the tracker's checkpoints keep them), and sinks opened with those offsets
truncate the files there and append, so a restarted tracker writes every frame once. The
annotated video cannot be resumed mid-file: a restarted tracker writes it again from the
start, the frames before its checkpoint without boxes.

Every path is ``output.dir/<stream id>.<suffix>``, resolved and checked to lie in
``output.dir`` (:func:`output_path`).
"""
from __future__ import annotations

import json
import logging
import queue
import threading
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from workers.affinity import pin_this_thread
from tracker.config import FrameLimits, TrackerConfig
from tracker import DEFAULT_FRAME_RATE, TrackState
from base.errors import SourceError
from wire.messages import valid_stream_id

log = logging.getLogger(__name__)
DEFAULT_COAST_FRAMES = FrameLimits.at(TrackerConfig(), DEFAULT_FRAME_RATE).coast_frames
"""The default ``tracker.coast_s`` in frames at the default frame rate (2)."""


def _open_text(path: Path, offset: int | None):
    """``path`` opened for writing: emptied, or with ``offset`` cut to that many bytes and
    appended to."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if offset is None:
        return open(path, "w")
    f = open(path, "a")
    f.truncate(offset)
    return f


def _offset(f) -> int:
    f.flush()
    return f.tell()


class MotSink:
    what = "MOT txt"

    def __init__(self, path: Path, coast_frames: int = DEFAULT_COAST_FRAMES, offset: int | None = None):
        self.coast_frames = int(coast_frames)
        self.path = Path(path)
        self._file = _open_text(self.path, offset)

    def offset(self) -> int:
        return _offset(self._file)

    def write(self, frame: int, snapshots, events) -> None:
        for s in snapshots:
            if s.is_reported(self.coast_frames):
                x1, y1, x2, y2 = (float(v) for v in s.box)
                self._file.write(f"{frame + 1},{int(s.track_id)},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},"
                                 f"{float(s.score):.4f},-1,-1,-1\n")

    def close(self) -> None:
        self._file.close()


class JsonlSink:
    what = "events JSONL"

    def __init__(self, path: Path, offset: int | None = None):
        self.path = Path(path)
        self._file = _open_text(self.path, offset)

    def offset(self) -> int:
        return _offset(self._file)

    def write_events(self, events) -> None:
        for event in events:
            self._file.write(json.dumps(event, separators=(",", ":")) + "\n")

    def close(self) -> None:
        self._file.close()


def track_colour(track_id: int) -> tuple[int, int, int]:
    """A stable, distinct BGR colour per track id (golden-ratio hue steps)."""
    hue = int((track_id * 0.618033988749895 % 1.0) * 179)
    hsv = np.uint8([[[hue, 220, 255]]])
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def draw_tracks(image: np.ndarray, snapshots, trails: dict, class_names=None) -> np.ndarray:
    """Draw confirmed tracks (box, 'id class', trail of recent centres) on ``image`` in place."""
    for s in snapshots:
        if s.state != TrackState.CONFIRMED:
            continue
        colour = track_colour(int(s.track_id))
        x1, y1, x2, y2 = (int(round(float(v))) for v in s.box)
        thickness = 2 if s.time_since_update == 0 else 1
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, thickness)
        name = class_names[s.class_id] if class_names and 0 <= s.class_id < len(class_names) else str(s.class_id)
        cv2.putText(image, f"{int(s.track_id)} {name}", (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.45, colour, 1, cv2.LINE_AA)
        trail = trails[int(s.track_id)]
        if len(trail) > 1:
            cv2.polylines(image, [np.array(trail, np.int32).reshape(-1, 1, 2)], False, colour, 1, cv2.LINE_AA)
    return image


class VideoSink:
    """Annotated mp4 of a file source: box, ``<id> <class>`` label and trail of each confirmed
    track, in the source's size and frame rate.

    The tracker stage never sees pixels, so the sink decodes the source file again in step
    with the tracked frames. Decoding, drawing and encoding cost more CPU than tracking (a
    1080p frame: ~3.5 ms to decode and ~7 ms to encode as mp4v on the dev box, against ~1 ms
    of tracking), so they run on a thread of their own, on ``cpus`` (the service gives it
    every CPU it may use, while the tracker itself keeps to the grabbers' CPUs), and the
    tracker publishes events without waiting for the encoder. At most ``queue_frames``
    tracked frames wait for the thread; then :meth:`write` blocks (file sources are lossless
    anyway), and :meth:`close` waits for them to be written (~0.7 s for 64 frames of 1080p:
    the tracker's other streams pause that long when a stream with a video ends). Opening
    errors are raised here; a later error of the thread by the next :meth:`write` or by
    :meth:`close`."""

    what = "annotated video"

    def __init__(self, path: Path, source_url: str, class_names=None, trail_length: int = 20,
                 cpus=None, queue_frames: int = 64):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.class_names = class_names
        self._trail_length = trail_length
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, queue_frames))
        self._opened = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(source_url, cpus),
                                        name=f"video-sink-{self.path.stem}", daemon=True)
        self._thread.start()
        self._opened.wait()  # set by the thread however its opening ends
        if self._error is not None:
            self._thread.join()
            raise self._error

    def write(self, frame: int, snapshots, events) -> None:
        """Queue tracked frame ``frame`` (0-based) and its snapshots for drawing."""
        self._put((frame, snapshots))

    def close(self) -> None:
        """Write what is queued, finish the file; raises the thread's error if it had one."""
        if self._thread.is_alive() and self._error is None:
            self._put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def _put(self, item) -> None:
        while True:
            if self._error is not None:
                raise self._error
            if not self._thread.is_alive():
                raise RuntimeError(f"{self.path}: the annotated video is already closed")
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def _run(self, source_url: str, cpus) -> None:
        cap = writer = None
        try:
            pin_this_thread(cpus, "the annotated-video writer")  # before FFmpeg starts its threads
            cap = cv2.VideoCapture(source_url)
            if not cap.isOpened():
                raise SourceError(f"annotated video needs a file source it can re-read: {source_url!r}")
            fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
            size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
            writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
            if not writer.isOpened():
                raise OSError(f"cannot write an mp4 video to {self.path}")
        except BaseException as exc:  # noqa: BLE001 - raised by __init__ on the caller's thread
            self._error = exc
            for handle in (writer, cap):
                if handle is not None:
                    handle.release()
            return
        finally:
            self._opened.set()
        try:
            self._draw_frames(cap, writer)
        except BaseException as exc:  # noqa: BLE001 - raised by the next write() or close()
            self._error = exc
        finally:
            writer.release()
            cap.release()

    def _draw_frames(self, cap, writer) -> None:
        trails: dict = defaultdict(lambda: deque(maxlen=self._trail_length))
        next_frame, image, source_left = 0, None, True
        while True:
            item = self._queue.get()
            if item is None:
                return
            frame, snapshots = item
            while source_left and next_frame <= frame:  # frames never tracked (dropped) go in unannotated
                ok, image = cap.read()
                if not ok:
                    source_left = False
                    break
                if next_frame < frame:
                    writer.write(image)
                next_frame += 1
            if not source_left:
                continue  # the file ended before the tracked frames did: nothing to draw on
            for s in snapshots:
                if s.state == TrackState.CONFIRMED and s.time_since_update == 0:
                    x1, y1, x2, y2 = (float(v) for v in s.box)
                    trails[int(s.track_id)].append(((x1 + x2) / 2, y2))
            writer.write(draw_tracks(image, snapshots, trails, self.class_names))


class UnsafePath(ValueError):
    """An output path that would lie outside ``output.dir``."""


def output_path(out_dir: str | Path, stream_id: str, suffix: str) -> Path:
    """``out_dir/<stream_id>.<suffix>``, resolved (symbolic links followed) and checked to lie
    directly inside ``out_dir`` (resolved too): a stream id that is not a valid wire id
    (separators, dots only) or a planted link that leads elsewhere raise :class:`UnsafePath`."""
    if not valid_stream_id(stream_id):
        raise UnsafePath(f"stream id {stream_id!r} cannot name an output file")
    root = Path(out_dir).resolve()
    path = (root / f"{stream_id}.{suffix}").resolve()
    if path.parent != root:
        raise UnsafePath(f"{root / f'{stream_id}.{suffix}'} leads outside {root}")
    return path


@dataclass(frozen=True)
class SinkSettings:
    """Which outputs every stream gets, and where; calling it opens one stream's sinks (the
    tracker worker's ``open_outputs``, picklable for its process)."""

    out_dir: str
    mot: bool = True
    jsonl: bool = True
    video: bool = False
    video_cpus: list[int] | None = None  # CPUs for the annotated-video threads (None: the process's own)
    # stream id -> the source the config names for it: the annotated video re-reads that one,
    # never a path a message names (None: trust ``source_url``, for tools without a config)
    sources: dict[str, str] | None = None

    def __call__(self, stream_id: str, source_url: str, live: bool, class_names: list,
                 offsets: dict[str, int] | None = None, coast_frames: int = DEFAULT_COAST_FRAMES) -> "StreamSinks":
        """The stream's sinks; ``coast_frames``: its tracker's coast (``tracker.coast_s`` in frames)."""
        if self.sources is not None:
            source_url = self.sources.get(stream_id, "")
        return StreamSinks(Path(self.out_dir), stream_id, source_url, live, self.mot, self.jsonl,
                           self.video and bool(source_url), class_names, coast_frames, self.video_cpus, offsets)


class StreamSinks:
    """The sinks configured for one stream; any may be absent.

    A sink that fails (its file cannot be opened or written, the source cannot be re-read
    for the annotated video) is closed and left out, and its error kept in ``errors`` for the
    tracker stage to report: tracking, the events and the stream's other sinks go on."""

    def __init__(self, out_dir: Path | None, stream_id: str, source_url: str, live: bool,
                 mot: bool = True, jsonl: bool = True, video: bool = False, class_names=None,
                 coast_frames: int = DEFAULT_COAST_FRAMES, video_cpus=None,
                 offsets: dict[str, int] | None = None):
        offsets = offsets or {}
        self.frame_sinks: list = []
        self.jsonl: JsonlSink | None = None
        self.errors: list[str] = []
        if out_dir is None:
            return
        makers = []  # (sink class, opener): a class names the sink whose opening fails
        if mot:
            makers.append((MotSink, lambda: MotSink(output_path(out_dir, stream_id, "mot.txt"), coast_frames,
                                                    offsets.get("mot"))))
        if video and not live:
            makers.append((VideoSink, lambda: VideoSink(output_path(out_dir, stream_id, "annotated.mp4"), source_url,
                                                        class_names, cpus=video_cpus)))
        for kind, make in makers:
            try:
                self.frame_sinks.append(make())
            except Exception as exc:  # noqa: BLE001 - reported, the stream goes on without it
                self._failed(kind, "cannot be opened", exc)
        if jsonl:
            try:
                self.jsonl = JsonlSink(output_path(out_dir, stream_id, "events.jsonl"), offsets.get("jsonl"))
            except Exception as exc:  # noqa: BLE001 - reported, the stream goes on without it
                self._failed(JsonlSink, "cannot be opened", exc)

    def _failed(self, sink, what: str, exc: BaseException) -> None:
        self.errors.append(f"{sink.what} output {what}, left out: {exc.__class__.__name__}: {exc}")
        log.error("%s", self.errors[-1])

    def write_frame(self, frame: int, snapshots, events) -> None:
        """Hand tracked frame ``frame`` (0-based) to every frame sink (MOT rows, video)."""
        for sink in list(self.frame_sinks):
            try:
                sink.write(frame, snapshots, events)
            except Exception as exc:  # noqa: BLE001 - that sink is dropped, the others go on
                self.frame_sinks.remove(sink)
                self._failed(sink, "failed", exc)
                self._close_quietly(sink)

    def offsets(self) -> dict[str, int]:
        """The MOT and JSONL files' sizes, flushed (the files a restarted tracker resumes)."""
        found = {"mot": s.offset() for s in self.frame_sinks if isinstance(s, MotSink)}
        if self.jsonl is not None:
            found["jsonl"] = self.jsonl.offset()
        return found

    def write_events(self, events) -> None:
        if self.jsonl is not None:
            try:
                self.jsonl.write_events(events)
            except Exception as exc:  # noqa: BLE001 - reported, the stream goes on without it
                sink, self.jsonl = self.jsonl, None
                self._failed(sink, "failed", exc)
                self._close_quietly(sink)

    def close(self) -> None:
        sinks = [*self.frame_sinks, *([self.jsonl] if self.jsonl is not None else [])]
        self.frame_sinks, self.jsonl = [], None
        for sink in sinks:
            try:
                sink.close()
            except Exception as exc:  # noqa: BLE001 - every sink gets closed
                self._failed(sink, "cannot be finished", exc)

    @staticmethod
    def _close_quietly(sink) -> None:
        try:
            sink.close()
        except Exception:  # noqa: BLE001 - its first error is already reported
            pass
