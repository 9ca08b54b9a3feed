"""Output sinks of the tracker stage, one set per stream.

- :class:`MotSink`: MOTChallenge txt ``frame,id,x,y,w,h,score,-1,-1,-1`` (frame 1-based), one row
  per confirmed track matched in that frame or at most ``coast_frames`` frames before
  (``tracker.coast_frames``; 0 = matched frames only, the DeepSORT convention).
- :class:`JsonlSink`: every event, one JSON object per line.
- :class:`VideoSink`: annotated mp4 (boxes, ids, short trails). The tracker stage never sees
  pixels, so this sink decodes the source file again in step with the tracked frames; it
  works for file sources only.
"""
from __future__ import annotations

import json
from collections import defaultdict, deque
from pathlib import Path

import cv2
import numpy as np

from tracker.config import TrackerConfig
from vidtrack.errors import SourceError


class MotSink:
    def __init__(self, path: Path, coast_frames: int = TrackerConfig.coast_frames):
        self.coast_frames = int(coast_frames)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "w")

    def write(self, frame: int, snapshots, events) -> None:
        for s in snapshots:
            if s.is_reported(self.coast_frames):
                x1, y1, x2, y2 = (float(v) for v in s.box)
                self._file.write(f"{frame + 1},{int(s.track_id)},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},"
                                 f"{float(s.score):.4f},-1,-1,-1\n")

    def close(self) -> None:
        self._file.close()


class JsonlSink:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "w")

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
        if s.state != "confirmed":
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
    def __init__(self, path: Path, source_url: str, class_names=None, trail_length: int = 20):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._cap = cv2.VideoCapture(source_url)
        if not self._cap.isOpened():
            raise SourceError(f"annotated video needs a file source it can re-read: {source_url!r}")
        fps = self._cap.get(cv2.CAP_PROP_FPS) or 25.0
        size = (int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        self._next = 0
        self._image = None
        self.class_names = class_names
        self._trails: dict = defaultdict(lambda: deque(maxlen=trail_length))

    def write(self, frame: int, snapshots, events) -> None:
        while self._next <= frame:  # frames the tracker never saw (dropped) are written unannotated
            ok, image = self._cap.read()
            if not ok:
                return
            if self._next < frame:
                self._writer.write(image)
            self._image = image
            self._next += 1
        for s in snapshots:
            if s.state == "confirmed" and s.time_since_update == 0:
                x1, y1, x2, y2 = (float(v) for v in s.box)
                self._trails[int(s.track_id)].append(((x1 + x2) / 2, y2))
        self._writer.write(draw_tracks(self._image, snapshots, self._trails, self.class_names))

    def close(self) -> None:
        self._writer.release()
        self._cap.release()


class StreamSinks:
    """The sinks configured for one stream; any may be absent."""

    def __init__(self, out_dir: Path | None, stream_id: str, source_url: str, live: bool,
                 mot: bool = True, jsonl: bool = True, video: bool = False, class_names=None,
                 coast_frames: int = TrackerConfig.coast_frames):
        self.frame_sinks = []
        self.jsonl = None
        if out_dir is None:
            return
        out_dir = Path(out_dir)
        if mot:
            self.frame_sinks.append(MotSink(out_dir / f"{stream_id}.mot.txt", coast_frames))
        if video and not live:
            self.frame_sinks.append(VideoSink(out_dir / f"{stream_id}.annotated.mp4", source_url, class_names))
        if jsonl:
            self.jsonl = JsonlSink(out_dir / f"{stream_id}.events.jsonl")

    def write(self, frame: int, snapshots, events) -> None:
        for sink in self.frame_sinks:
            sink.write(frame, snapshots, events)
        self.write_events(events)

    def write_events(self, events) -> None:
        if self.jsonl is not None:
            self.jsonl.write_events(events)

    def close(self) -> None:
        for sink in self.frame_sinks:
            sink.close()
        if self.jsonl is not None:
            self.jsonl.close()
