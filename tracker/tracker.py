"""The per-stream multi-object tracker: Kalman predict -> associate -> update -> life cycle.

Association per frame (detections split by score into high / low,
:mod:`tracker.association`):
1. "cascade" association (embeddings present and enabled): confirmed tracks vs high
   detections on cosine distance, Mahalanobis-gated, DeepSORT cascade or one global
   assignment; then IoU for tentative + recently missed tracks vs what is left.
   otherwise: all tracks vs high detections on IoU distance (gated if enabled); with the
   "fused" association (BoT-SORT) a close pair of similar appearance costs min(IoU cost,
   cosine / 2).
   Optionally (OC-SORT's OCM) the cost of that IoU round also rewards detections that
   continue a track's direction of motion.
2. optional ByteTrack round: unmatched confirmed tracks vs low-score detections on IoU.
3. optional OC-SORT recovery: unmatched tracks' last observed box vs remaining high ones.
Unmatched high detections start tentative tracks. Only same-class pairs are matched.
A track's gallery learns only from trusted matches (high score, not overlapping another
detection: :attr:`MatchContext.trusted`), never from the low-score round.

Camera motion (BoT-SORT's GMC): a frame's warp (pixels of the previous frame -> this one)
moves every track's predicted state, last observed box and motion history before the rounds.
"""
from __future__ import annotations

import numpy as np

from base.types import Detections
from tracker.association import appearance_round, iou_round, low_score_round, recovery_round
from tracker.config import FrameLimits, TrackerConfig
from tracker.linear_assignment import submatrix
from tracker.match_context import MatchContext, match_context
from tracker.track import Track, TrackSnapshot, TrackState
from tracker.track_table import TrackTable


DEFAULT_FRAME_RATE = 25.0
"""Frames/s assumed where neither the stream nor the config says (MOT15's usual rate)."""


_IDENTITY = np.eye(2, 3)


def _is_identity(warp: np.ndarray) -> bool:
    return np.array_equal(np.asarray(warp).reshape(2, 3), _IDENTITY)


class Tracker:
    """Tracks objects of one stream. Call :meth:`update` once per frame, in frame order.

    ``frame_rate``: the stream's rate in frames/s (> 0); the config's ``frame_rate``, when
    set, wins. Frames are counted by frame index; the config's time constants become frame
    counts at that rate (:attr:`limits`) and the Kalman filter steps frame gap / rate seconds.
    """

    def __init__(self, config: TrackerConfig | None = None, frame_rate: float = DEFAULT_FRAME_RATE) -> None:
        self.config = config or TrackerConfig()
        self.limits = FrameLimits.at(self.config, self.config.frame_rate or frame_rate)
        self.table = TrackTable(self.config, self.limits)
        self._last_frame: int | None = None

    @property
    def frame_rate(self) -> float:
        """The frame rate this tracker counts in, frames/s."""
        return self.limits.fps

    @property
    def kf(self):
        """The Kalman store of the tracks (rows as in :attr:`tracks`)."""
        return self.table.kf

    @property
    def tracks(self) -> list[Track]:
        """The live tracks' records."""
        return self.table.tracks

    def update(self, detections: Detections, frame_index: int, warp: np.ndarray | None = None) -> list[TrackSnapshot]:
        """Advance to ``frame_index`` and associate this frame's detections.

        ``warp`` float[2,3] ``[A | t]``: the camera's motion since the previous update, taking
        pixels of that frame to this one (:mod:`detector.camera_motion`); every track's state
        moves by it after the prediction, before association (None: a still camera).
        Returns snapshots of every live track after this frame plus the tracks deleted
        during this call (state ``TrackState.DELETED``)."""
        dt = self._predict_to(frame_index)
        if warp is not None and not _is_identity(warp):
            self.table.warp(warp)
        ctx = match_context(self.table, detections, frame_index, dt, self.config)
        if ctx.use_appearance and self.config.appearance_units == "stream":
            high = ctx.high
            self.table.distance_scale.observe(ctx.detections.embeddings[high], submatrix(ctx.pair_iou, high, high))
        matches, tracks_left, dets_left = self._associate(ctx)
        rows, cols = matches[:, 0], matches[:, 1]
        dets = ctx.detections
        self.table.correct(rows, ctx.z[cols], dets.scores[cols], None, frame_index, dt)
        if ctx.use_appearance:
            ok = ctx.trusted[cols]
            self.table.appearance.add(rows[ok], dets.embeddings[cols[ok]])
        self.table.mark_missed(tracks_left)
        self._start_tracks(dets_left, ctx)
        return self._end_of_frame()

    def restart(self) -> None:
        """Forget every track and the frame clock (a live stream came back after a gap); new
        tracks' ids go on from the last one, so ids stay unique per stream."""
        next_id = self.table._next_id
        self.table = TrackTable(self.config, self.limits)
        self.table._next_id = next_id
        self._last_frame = None

    def snapshots(self) -> list[TrackSnapshot]:
        """Snapshots of the live tracks (as after the last update)."""
        return self.table.snapshots()

    def _predict_to(self, frame_index: int) -> int:
        """Predict every track to ``frame_index``; returns the step in frames."""
        dt = 1 if self._last_frame is None else frame_index - self._last_frame
        if dt <= 0:
            raise ValueError(f"frame {frame_index} is not after frame {self._last_frame}")
        self._last_frame = frame_index
        self.table.predict(dt)
        return dt

    def _associate(self, ctx: MatchContext) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The rounds in order -> (matches int[M,2] (track row, detection index), unmatched
        track rows, unmatched high-score detections)."""
        cfg, table = self.config, self.table
        tracks, high, found = np.arange(len(table)), ctx.high, []
        if ctx.use_appearance and cfg.association == "cascade":
            m, tracks, high = appearance_round(table, ctx, cfg, tracks, high)
            found.append(m)
        m, tracks, high = iou_round(table, ctx, cfg, tracks, high)
        found.append(m)
        if cfg.low_score_threshold < cfg.high_score_threshold:
            m, tracks, _ = low_score_round(ctx, cfg, tracks, ctx.low)
            found.append(m)
        if cfg.observation_recovery:
            m, tracks, high = recovery_round(table, ctx, cfg, tracks, high)
            found.append(m)
        return np.concatenate(found), tracks, high

    def _start_tracks(self, cols: np.ndarray, ctx: MatchContext) -> None:
        """New tentative tracks from the unmatched detections ``cols`` scoring at least the
        new-track threshold; those whose embedding is not trusted start with an empty gallery."""
        cfg, dets = self.config, ctx.detections
        threshold = cfg.high_score_threshold if cfg.new_track_threshold is None else cfg.new_track_threshold
        cols = cols[dets.scores[cols] >= threshold]
        if len(cols):
            first = len(self.table)
            self.table.add(ctx.z[cols], dets.class_ids[cols], dets.scores[cols],
                           dets.embeddings[cols] if ctx.use_appearance else None, ctx.frame)
            if ctx.use_appearance:
                self.table.appearance.clear(first + np.flatnonzero(~ctx.trusted[cols]))

    def _end_of_frame(self) -> list[TrackSnapshot]:
        """Snapshots of every track, the deleted ones included, then the deleted ones go."""
        out = self.table.snapshots()
        alive = ~self.table.in_state(TrackState.DELETED)
        if not alive.all():
            self.table.keep(alive)
        return out
