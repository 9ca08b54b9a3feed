"""Offline tracking: MOTChallenge detections of a whole sequence through the tracker, in
frame order, to MOT rows (what ``vidtrack track-detections``, the tests and bench/tracker.py
run)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from base.settings import read_toml
from base.types import Detections
from tracker import DEFAULT_FRAME_RATE, Tracker, TrackerConfig, TrackState
from tracker.interpolation import interpolate_gaps

SERVICE_TABLES = {"sources", "transport", "security", "detector", "events", "output", "metrics", "hosts"}  # config.toml's others


def load_tracker_config(path: str | Path | None, overrides: dict | None = None) -> TrackerConfig:
    """TrackerConfig from the ``[tracker]`` table of a config file, read and checked as
    ``vidtrack run`` reads it (a file of tracker keys alone is taken whole), plus overrides."""
    table: Any = {}
    if path is not None:
        doc = read_toml(path)
        service_config = "tracker" in doc or bool(SERVICE_TABLES & set(doc))
        table = doc.get("tracker", {}) if service_config else doc
    if overrides and isinstance(table, dict):
        table = {**table, **overrides}
    return TrackerConfig.from_dict(table)


def track_sequence(frames: dict[int, Detections], config: TrackerConfig, n_frames: int | None = None,
                   backfill: bool = True, interpolate: int = 0,
                   frame_rate: float = DEFAULT_FRAME_RATE,
                   warps: dict[int, np.ndarray] | None = None) -> tuple[list[tuple], float]:
    """Track frames 1..n_frames of ``{frame: Detections}``, a sequence of ``frame_rate``
    frames/s (the config's ``frame_rate`` wins when set); ``warps`` ``{frame: float[2,3]}``:
    the camera's motion from the previous frame to each frame (e.g.
    :func:`detector.camera_motion.warps_of_frames`; a frame without one: a still camera).

    Returns (rows (frame, id, x1, y1, x2, y2, score) of the confirmed tracks reported in each
    frame, tracker update seconds). A track is reported where it was matched and, with its
    predicted box, for up to ``config.coast_s`` seconds after. Offline extras: with
    ``backfill`` a track's tentative frames are written once it is confirmed; with
    ``interpolate`` > 0, gaps of up to that many frames between two *matched* rows of a track
    are filled by :func:`tracker.interpolation.interpolate_gaps`, replacing any coasted rows
    inside them (coasting still covers a track's end and longer gaps)."""
    tracker = Tracker(config, frame_rate)
    coast_frames = tracker.limits.coast_frames
    n_frames = n_frames or (max(frames) if frames else 0)
    dim = next((d.embeddings.shape[1] for d in frames.values()), 0)
    empty = Detections.empty(dim)
    matched: list[tuple] = []
    coasted: list[tuple] = []
    pending: dict[int, list[tuple]] = {}
    spent = 0.0
    for f in range(1, n_frames + 1):
        t0 = time.perf_counter()
        snaps = tracker.update(frames.get(f, empty), f, warps.get(f) if warps else None)
        spent += time.perf_counter() - t0
        for s in snaps:
            row = (f, s.track_id, *map(float, s.box), s.score)
            if s.is_reported(coast_frames):
                if backfill and s.track_id in pending:
                    matched.extend(pending.pop(s.track_id))
                (matched if s.time_since_update == 0 else coasted).append(row)
            elif backfill and s.state == TrackState.TENTATIVE and s.time_since_update == 0:
                pending.setdefault(s.track_id, []).append(row)
    if interpolate > 0:
        matched = interpolate_gaps(matched, interpolate)
        covered = {(r[0], r[1]) for r in matched}
        coasted = [r for r in coasted if (r[0], r[1]) not in covered]
    rows = matched + coasted
    rows.sort(key=lambda r: (r[0], r[1]))
    return rows, spent
