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


@dataclass(slots=True)
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


STATES = (_TENTATIVE, _CONFIRMED, _DELETED)
"""The states by their int8 code in :class:`tracker.track_table.TrackColumns`."""
TENTATIVE, CONFIRMED, DELETED = 0, 1, 2


@dataclass(frozen=True)
class Track:
    """One live track's book-keeping as of the last update (a copy of its row of the
    :class:`tracker.track_table.TrackTable`, where the tracker keeps and updates them all at
    once).

    A new track is tentative; it becomes confirmed after ``n_init`` matched frames. A
    tentative track that misses a frame is deleted; a confirmed one is deleted once
    ``time_since_update >= max_age`` frames (both from :class:`tracker.config.FrameLimits`).
    last_z: float64[4] cx, cy, aspect, h of its last matched detection, at ``last_frame``.
    """

    track_id: int
    class_id: int
    score: float
    state: TrackState
    hits: int
    age: int
    time_since_update: int
    last_z: np.ndarray
    last_frame: int

    @property
    def is_confirmed(self) -> bool:
        return self.state == _CONFIRMED

    @property
    def is_deleted(self) -> bool:
        return self.state == _DELETED
