"""One track's life cycle (tentative -> confirmed -> deleted) and the public snapshot type."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np


class TrackState(str, Enum):
    """Where a track is in its life cycle. A str subclass: a state equals its value
    ("tentative", "confirmed", "deleted"), prints as it and JSON-encodes as it."""

    TENTATIVE = "tentative"
    CONFIRMED = "confirmed"
    DELETED = "deleted"

    def __str__(self) -> str:
        return self.value


# bound once: looking a member up on its Enum class costs ~0.2 us, paid per track per frame
_TENTATIVE, _CONFIRMED, _DELETED = TrackState.TENTATIVE, TrackState.CONFIRMED, TrackState.DELETED


@dataclass
class TrackSnapshot:
    """What a tracker reports about one track after a frame.

    box: float32[4] pixel x1,y1,x2,y2 (Kalman estimate); velocity: float32[2] pixel/frame of
    the box centre (the filter's px/s divided by the stream's frame rate, as events report
    it); time_since_update: frames since the last matched detection (0 = matched this
    frame); age: frames since birth.
    """

    track_id: int
    class_id: int
    box: np.ndarray
    score: float
    velocity: np.ndarray
    state: TrackState
    time_since_update: int
    hits: int
    age: int

    def is_reported(self, coast_frames: int) -> bool:
        """Whether a track row goes into MOT output this frame: confirmed, and matched at most
        ``coast_frames`` frames ago (0 = matched this frame only, the DeepSORT convention;
        during the coast the box is the Kalman prediction)."""
        return self.state == _CONFIRMED and self.time_since_update <= coast_frames


class Track:
    """Book-keeping of one track; its Kalman state, appearance and motion history are the
    same row of the :class:`tracker.track_table.TrackTable` that holds it.

    A new track is tentative; it becomes confirmed after ``n_init`` matched frames. A
    tentative track that misses a frame is deleted; a confirmed one is deleted once
    ``time_since_update >= max_age`` frames (both from :class:`tracker.config.FrameLimits`).
    """

    __slots__ = (
        "track_id", "class_id", "score", "state", "hits", "age", "time_since_update",
        "last_z", "last_frame",
    )

    def __init__(self, track_id: int, class_id: int, score: float, z: np.ndarray, frame: int,
                 n_init: int) -> None:
        self.track_id = track_id
        self.class_id = class_id
        self.score = score
        self.state = _CONFIRMED if n_init <= 1 else _TENTATIVE
        self.hits = 1
        self.age = 0
        self.time_since_update = 0
        self.last_z = z  # float64[4] xyah of the last matched detection
        self.last_frame = frame

    def advance(self, dt: int) -> None:
        """Time passes by dt frames (called once per tracker update, before matching)."""
        self.age += dt
        self.time_since_update += dt

    def mark_hit(self, score: float, z: np.ndarray, frame: int, n_init: int) -> None:
        self.hits += 1
        self.time_since_update = 0
        self.score = score
        self.last_z = z
        self.last_frame = frame
        if self.state == _TENTATIVE and self.hits >= n_init:
            self.state = _CONFIRMED

    def mark_missed(self, max_age: int) -> None:
        if self.state == _TENTATIVE or self.time_since_update >= max_age:
            self.state = _DELETED

    @property
    def is_confirmed(self) -> bool:
        return self.state == _CONFIRMED

    @property
    def is_deleted(self) -> bool:
        return self.state == _DELETED
