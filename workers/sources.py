"""Open a video source with OpenCV: a file, a camera index, or a network URL."""
from __future__ import annotations

import os
import time
import zlib
from dataclasses import dataclass

import cv2
import numpy as np

from base.errors import SourceError

NETWORK_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "tcp://", "udp://", "rtmp://")
FFMPEG_LOG_LEVEL = "8"  # AV_LOG_FATAL


def quiet_native_logs() -> None:
    """Keep FFmpeg's and OpenCV's own messages about a source off stderr in this process,
    unless the user set their level (``OPENCV_FFMPEG_LOGLEVEL``, ``OPENCV_LOG_LEVEL``).

    Why: while a camera is down FFmpeg prints a line for every connect refused, two a second
    for as long as the outage lasts, and OpenCV one for every read that times out; the
    grabber reports the same outage itself, once (``stream.stalled``, its rate-limited
    reconnect warnings). A user who needs FFmpeg's reason for a refused URL sets
    ``OPENCV_FFMPEG_LOGLEVEL=16``. FFmpeg reads its level when the process opens its first
    source, so the grabbers' entry points call this first."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", FFMPEG_LOG_LEVEL)
    if "OPENCV_LOG_LEVEL" not in os.environ:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def source_kind(url: str | int) -> str:
    """'camera' for an index (``0`` or ``"0"``), 'network' for a URL, else 'file'."""
    if isinstance(url, int) or (isinstance(url, str) and url.isdigit()):
        return "camera"
    if url.lower().startswith(NETWORK_SCHEMES):
        return "network"
    return "file"


def _ffmpeg_hint() -> str:
    """Where FFmpeg's own reason for a refused source is, when :func:`quiet_native_logs` hid it."""
    if os.environ.get("OPENCV_FFMPEG_LOGLEVEL") == FFMPEG_LOG_LEVEL:
        return "; OPENCV_FFMPEG_LOGLEVEL=16 prints FFmpeg's reason"
    return ""


SEEK_MARK_EVERY = 32  # frames between the marks a file seek starts from (16 bytes each: 0.5 MB per million frames)


def _fingerprint(image: np.ndarray) -> int:
    """A checksum of every 8th row and column of a decoded frame (tells frames apart, not a hash)."""
    return zlib.crc32(np.ascontiguousarray(image[::8, ::8]).data)


@dataclass
class SourceInfo:
    """What is known about an opened source. ``frame_count`` is 0 when unknown (live)."""

    url: str
    kind: str
    width: int
    height: int
    fps: float
    frame_count: int

    @property
    def live(self) -> bool:
        return self.kind != "file"


class VideoSource:
    """A decoded frame source. ``read()`` returns ``(timestamp_s, uint8[H, W, 3] BGR)`` or None at end.

    A file whose frame count is known is read to its real end: a frame that does not decode
    (a corrupt region) is skipped and counted in ``decode_errors``. OpenCV's FFmpeg reader
    consumes one packet per failed read, so reading on until as many reads as the file has
    frames gets every decodable frame after the damage (a 300 KB corrupt region in the middle
    of an h264 mp4: 212 of 290 frames, as ffprobe decodes). Media timestamps count the skipped
    frames. A file of unknown length ends at its first failed read.

    ``decode_threads`` (files and URLs; 0 = OpenCV's default of one per core): one thread
    decodes the 1080p bench clip in 7-8 CPU ms/frame against 8.5-10 with two (timed ad hoc),
    and leaves the other cores to the detector: bench/pipeline.py end-to-end 46-51 -> 57-65
    frames/s.
    """

    def __init__(self, url: str | int, open_timeout_s: float = 10.0, decode_threads: int = 1):
        """``open_timeout_s``: network sources, longest wait to open and for each frame."""
        self.url = str(url)
        self.kind = source_kind(url)
        if self.kind == "file" and not os.path.isfile(self.url):
            raise SourceError(f"video file not found: {self.url}")
        target = int(self.url) if self.kind == "camera" else self.url
        params = []
        if self.kind == "network":
            ms = int(open_timeout_s * 1000)
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
        threads = [cv2.CAP_PROP_N_THREADS, int(decode_threads)] if self.kind != "camera" and decode_threads > 0 else []
        self._open_args = (target, params, threads)
        self._cap = self._open_capture()
        width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if self.kind == "file" else 0
        self.info = SourceInfo(self.url, self.kind, width, height, fps if fps > 0 else 25.0, max(count, 0))
        self._read = 0  # frames decoded
        self._position = 0  # frames read, decoded or not (files)
        self.decode_errors = 0
        self._marks: dict[int, tuple[int, int]] = {}  # files: decodable frame -> (position, fingerprint), for seek
        self.seek_misses = 0  # seeks whose marked frame came out another: read from the start instead
        self.frames_decoded = 0  # decoded since open, sought and skipped ones included

    def _open_capture(self):
        target, params, threads = self._open_args
        cap = cv2.VideoCapture(target, cv2.CAP_ANY, params + threads)
        if threads and not cap.isOpened() and self.kind == "file":
            # a backend that does not take the thread count refuses to open: try without it. Not
            # for a URL (FFmpeg takes the count): a second try would double the wait on a camera
            # that does not answer (4.0 s with timeout_seconds = 2) and every connect refused
            cap = cv2.VideoCapture(target, cv2.CAP_ANY, params)
        if not cap.isOpened():
            raise SourceError(f"cannot open {self.kind} source {self.url!r} (not a readable video or camera"
                              f"{_ffmpeg_hint()})")
        return cap

    def read(self, out: np.ndarray | None = None) -> tuple[float, np.ndarray] | None:
        """The next frame as (timestamp s, uint8[H, W, 3] BGR), or None at the end.

        With ``out`` (uint8[H, W, 3]) the decoder writes the frame into it when the sizes
        match, which saves allocating and copying a frame (the returned image is then ``out``;
        compare with ``np.shares_memory`` to know)."""
        image = self._decode_next(out)
        if image is None:
            if self.kind == "file" and self._read == 0:
                raise SourceError(f"no decodable frame in {self.url!r}")
            return None
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        elif image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        if self.kind == "file":
            timestamp = (self._position - 1) / self.info.fps
            if self._read % SEEK_MARK_EVERY == 0 and self._read > 0:
                self._marks[self._read] = (self._position - 1, _fingerprint(image))
        else:
            timestamp = time.time()
        self._read += 1
        return timestamp, image

    def seek(self, frames: int) -> None:
        """Go to decodable frame ``frames`` of a file (the next :meth:`read` returns it), as if
        the file had been read from its start: the nearest frame marked before it (every
        ``SEEK_MARK_EVERY`` frames read, with its position in the file and a fingerprint of its
        pixels) is sought in the container, decoded and compared; on a match the rest is
        decoded forward, else (a container that seeks elsewhere, open GOPs) the file is read
        again from its start. Exact either way; a rewind near the end of a long file decodes
        tens of frames, not the whole file."""
        mark = max((m for m in self._marks if m < frames), default=None)
        if mark is not None and self._seek_to_mark(mark):
            self.skip(frames - mark - 1)
            return
        self._reopen()
        self.skip(frames)

    def _seek_to_mark(self, mark: int) -> bool:
        """Seek to marked frame ``mark`` and decode it; whether it is the frame marked
        (then the next read is frame ``mark + 1``)."""
        position, fingerprint = self._marks[mark]
        if not self._cap.set(cv2.CAP_PROP_POS_FRAMES, position):
            return False
        ok, image = self._cap.read()
        self.frames_decoded += 1
        if not ok or image is None or _fingerprint(image) != fingerprint:
            self.seek_misses += 1
            return False
        self._position, self._read = position + 1, mark + 1
        return True

    def _reopen(self) -> None:
        self._cap.release()
        self._cap = self._open_capture()
        self._position = self._read = 0

    def skip(self, frames: int) -> int:
        """Decode and drop the next ``frames`` decodable frames (undecodable ones are passed
        over as :meth:`read` does, uncounted: they were counted when first read; timestamps
        stay those of the file); returns how many there were."""
        skipped = 0
        while skipped < frames:
            ok = self._cap.grab()
            self._position += 1
            self.frames_decoded += 1
            if ok:
                skipped += 1
            elif self.kind != "file" or self._position >= self.info.frame_count:
                break
        self._read += skipped
        return skipped

    def _decode_next(self, out: np.ndarray | None) -> np.ndarray | None:
        """The next decoded image; a file's undecodable frames before its known end are skipped."""
        while True:
            ok, image = self._cap.read(out) if out is not None else self._cap.read()
            self._position += 1
            self.frames_decoded += 1
            if ok and image is not None:
                return image
            if self.kind != "file" or self._position >= self.info.frame_count:
                return None
            self.decode_errors += 1

    def close(self) -> None:
        self._cap.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
