"""OC-SORT's observation-centric momentum (OCM): prefer detections that continue a track's
recent direction of motion.

Per track (rows as in the tracker) it keeps the last ``delta_t`` observed box centres with
their frame numbers and the unit direction of motion measured at the last match. At frame f
a track's *origin* is its earliest observation in [f - delta_t, f - 1], or its last one if
none is that recent; the direction to a detection is taken from that origin, and on a
match the track's direction becomes origin -> matched detection.
"""
from __future__ import annotations

import numpy as np

_NO_FRAME = np.iinfo(np.int64).min // 2


class DirectionHistory:
    """Observation history for OCM. Centres are pixel (cx, cy) float64; frames int64."""

    def __init__(self, delta_t: int) -> None:
        self.delta_t = delta_t
        self.frames = np.zeros((0, delta_t), np.int64)  # newest last; _NO_FRAME = empty slot
        self.centres = np.zeros((0, delta_t, 2))
        self.direction = np.zeros((0, 2))  # unit (dx, dy); 0 until a track has moved once

    def append(self, centres: np.ndarray, frame: int) -> None:
        """New tracks, first observed at ``frame``: centres float[M, 2]."""
        m = len(centres)
        f = np.full((m, self.delta_t), _NO_FRAME, np.int64)
        f[:, -1] = frame
        c = np.zeros((m, self.delta_t, 2))
        c[:, -1] = centres
        self.frames = np.concatenate([self.frames, f])
        self.centres = np.concatenate([self.centres, c])
        self.direction = np.concatenate([self.direction, np.zeros((m, 2))])

    def keep(self, mask: np.ndarray) -> None:
        self.frames, self.centres, self.direction = self.frames[mask], self.centres[mask], self.direction[mask]

    def warp(self, warp: np.ndarray) -> None:
        """The camera moved by ``warp`` float[2,3] ``[A | t]``: centres -> A c + t, directions
        -> A d made unit again (0 stays 0)."""
        w = np.asarray(warp, dtype=np.float64).reshape(2, 3)
        self.centres = self.centres @ w[:, :2].T + w[:, 2]
        d = self.direction @ w[:, :2].T
        norm = np.linalg.norm(d, axis=1, keepdims=True)
        self.direction = np.divide(d, norm, out=np.zeros_like(d), where=norm > 0)

    def origins(self, rows: np.ndarray, frame: int) -> np.ndarray:
        """float[len(rows), 2]: each track's origin centre for association at ``frame``."""
        f = self.frames[rows]
        recent = f >= frame - self.delta_t
        # earliest recent slot (slots are in time order); the newest slot if none is recent
        slot = np.where(recent.any(axis=1), recent.argmax(axis=1), self.delta_t - 1)
        return self.centres[rows, slot]

    def bonus(self, rows: np.ndarray, det_centres: np.ndarray, scores: np.ndarray, frame: int,
              weight: float) -> np.ndarray:
        """float[len(rows), N] cost reduction weight * score * (pi/2 - angle) / pi, in
        [-weight/2, weight/2] (0 for tracks that have no direction yet)."""
        d = det_centres[None, :, :] - self.origins(rows, frame)[:, None, :]
        d /= np.linalg.norm(d, axis=2, keepdims=True) + 1e-6
        cos = np.clip(np.einsum("tk,tnk->tn", self.direction[rows], d), -1.0, 1.0)
        moving = np.any(self.direction[rows] != 0, axis=1)[:, None]
        agree = (np.pi / 2 - np.arccos(cos)) / np.pi  # arccos is in [0, pi]
        return np.where(moving, agree, 0.0) * weight * np.clip(scores, 0.0, 1.0)[None, :]

    def observe(self, rows: np.ndarray, centres: np.ndarray, frame: int) -> None:
        """Matched tracks observed at ``frame`` (centres float[M, 2]): new direction, then
        the observation enters the history."""
        if len(rows) == 0:
            return
        d = centres - self.origins(rows, frame)
        norm = np.linalg.norm(d, axis=1, keepdims=True)
        self.direction[rows] = d / (norm + 1e-6)
        self.frames[rows] = np.concatenate([self.frames[rows, 1:], np.full((len(rows), 1), frame)], axis=1)
        self.centres[rows] = np.concatenate([self.centres[rows, 1:], centres[:, None, :]], axis=1)
