"""Track events: turn the tracker's per-frame snapshots into the published event stream.

Event kinds (JSON objects, schema in ``wire/events.schema.json``):

- ``stream.started`` / ``stream.stalled`` / ``stream.resumed`` / ``stream.ended``: life cycle
  of a source (a live source that stalls has its tracks ended, ``reason: "stream stalled"``,
  and is tracked afresh when it resumes; track ids go on counting);
- ``track.started``: a track became confirmed (its first ``n_init`` hits are behind it);
- ``track.updated``: a confirmed track was matched in this frame (mode ``"tracks"``), or one
  ``frame`` event per frame carrying all confirmed, matched tracks (mode ``"frame"``);
- ``track.lost``: a confirmed track went unmatched this frame (still predicted);
- ``track.ended``: a confirmed track was deleted (too long unmatched, or its stream stalled or
  ended).

Track fields: ``track_id`` (unique and stable per stream), ``class_id``, ``class_name``,
``box`` [x1, y1, x2, y2] in source pixels, ``score``, ``velocity`` [vx, vy] in pixels/frame of
the box centre. Tentative tracks produce no events.
"""
from __future__ import annotations

import json
from pathlib import Path

from tracker import TrackState

EVENT_SCHEMA_PATH = Path(__file__).with_name("events.schema.json")
EVENT_MODES = ("tracks", "frame")


def load_schema() -> dict:
    return json.loads(EVENT_SCHEMA_PATH.read_text())


def _round(values, digits=2):
    return [round(float(v), digits) for v in values]


class EventBuilder:
    """Per-stream state that turns snapshots into events."""

    def __init__(self, stream_id: str, class_names: list[str] | None = None, mode: str = "tracks"):
        if mode not in EVENT_MODES:
            raise ValueError(f"event mode must be one of {EVENT_MODES}, got {mode!r}")
        self.stream_id = stream_id
        self.class_names = class_names or []
        self.mode = mode
        self._announced: set[int] = set()
        self._lost: set[int] = set()

    def _base(self, kind: str, frame: int, timestamp: float) -> dict:
        return {"type": kind, "stream": self.stream_id, "frame": int(frame), "ts": round(float(timestamp), 6)}

    def track_fields(self, snap) -> dict:
        cid = int(snap.class_id)
        name = self.class_names[cid] if 0 <= cid < len(self.class_names) else str(cid)
        return {
            "track_id": int(snap.track_id), "class_id": cid, "class_name": name,
            "box": _round(snap.box), "score": round(float(snap.score), 4),
            "velocity": _round(snap.velocity, 3),
        }

    def stream_started(self, *, source: str, width: int, height: int, fps: float, live: bool,
                       frames: int) -> dict:
        """``stream.started`` (frame -1, ts 0): the source, its size in pixels (0 = unknown),
        frames per second, live or file, and frame count (0 = unknown)."""
        return {**self._base("stream.started", -1, 0.0), "source": str(source), "width": int(width),
                "height": int(height), "fps": float(fps), "live": bool(live), "frames": int(frames)}

    def stream_stalled(self, frame: int, timestamp: float, *, seconds: float) -> dict:
        """``stream.stalled`` after the last tracked frame: nothing came for ``seconds``."""
        return {**self._base("stream.stalled", frame, timestamp), "seconds": float(seconds)}

    def stream_resumed(self, frame: int, timestamp: float, *, seconds: float) -> dict:
        """``stream.resumed``: a stalled live source sends frames again after ``seconds`` without."""
        return {**self._base("stream.resumed", frame, timestamp), "seconds": float(seconds)}

    def stream_ended(self, frame: int, timestamp: float, *, frames: int, skipped: int, reason: str,
                     dropped: int, decode_errors: int = 0) -> dict:
        """``stream.ended``: frames tracked, frames given up (``skipped``, never arrived),
        why it ended, frames the grabber ``dropped`` (live sources) and frames of a file that
        did not decode and were skipped (``decode_errors``)."""
        return {**self._base("stream.ended", frame, timestamp), "frames": int(frames), "skipped": int(skipped),
                "reason": str(reason), "dropped": int(dropped), "decode_errors": int(decode_errors)}

    def update(self, frame: int, timestamp: float, snapshots) -> list[dict]:
        """Events for one processed frame, in a stable order: started, updated/frame, lost, ended."""
        started, updated, lost, ended = [], [], [], []
        for snap in snapshots:
            tid = int(snap.track_id)
            if snap.state == TrackState.DELETED:
                if tid in self._announced:
                    self._announced.discard(tid)
                    self._lost.discard(tid)
                    ended.append({**self._base("track.ended", frame, timestamp), **self.track_fields(snap),
                                  "reason": "unmatched"})
                continue
            if snap.state != TrackState.CONFIRMED:
                continue
            if tid not in self._announced:
                self._announced.add(tid)
                started.append({**self._base("track.started", frame, timestamp), **self.track_fields(snap)})
            if snap.time_since_update == 0:
                self._lost.discard(tid)
                updated.append(self.track_fields(snap))
            elif tid not in self._lost:
                self._lost.add(tid)
                lost.append({**self._base("track.lost", frame, timestamp), **self.track_fields(snap),
                             "frames_unmatched": int(snap.time_since_update)})
        if self.mode == "frame":
            middle = [{**self._base("frame", frame, timestamp), "tracks": updated}]
        else:
            middle = [{**self._base("track.updated", frame, timestamp), **fields} for fields in updated]
        return started + middle + lost + ended

    def end_all(self, frame: int, timestamp: float, snapshots, reason: str = "stream ended") -> list[dict]:
        """``track.ended`` (with ``reason``) for every announced track still alive when the
        stream ends or stalls."""
        events = []
        for snap in snapshots:
            tid = int(snap.track_id)
            if tid in self._announced and snap.state != TrackState.DELETED:
                events.append({**self._base("track.ended", frame, timestamp), **self.track_fields(snap),
                               "reason": reason})
        self._announced.clear()
        self._lost.clear()
        return events
