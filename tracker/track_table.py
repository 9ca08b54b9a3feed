"""All live tracks of one stream, one row each, with everything kept per track."""
from __future__ import annotations

import numpy as np

from tracker import kalman as K
from tracker.config import FrameLimits, TrackerConfig
from tracker.direction import DirectionHistory
from tracker.nn_matching import AppearanceBank
from tracker.oru import re_update
from tracker.track import Track, TrackSnapshot, TrackState


class TrackTable:
    """The live tracks of a stream as rows that stay aligned: the :class:`Track` records,
    the Kalman states, the appearance rows, the OCM direction history (when
    ``direction_weight`` > 0) and, for ORU, the Kalman state saved right after each
    track's last update. :meth:`add` and :meth:`keep` are the only ways rows come and go.
    Time is counted in frames (``limits``: the config's time constants at the stream's frame
    rate); the Kalman filter is stepped in seconds (frames / ``limits.fps``).
    """

    def __init__(self, config: TrackerConfig, limits: FrameLimits) -> None:
        self.config = config
        self.limits = limits
        self.kf = K.make_store(config.kalman, K.AspectNoise(config.aspect_process_std, config.aspect_measurement_std))
        self.tracks: list[Track] = []
        self.appearance = AppearanceBank(config.gallery_budget, config.embedding_ema)
        self.directions = DirectionHistory(config.direction_delta_t) if config.direction_weight > 0 else None
        self.saved_mean = np.zeros((0, 8))
        self.saved_cov = np.zeros((0, 8, 8))
        self._next_id = 1

    def __len__(self) -> int:
        return len(self.tracks)

    # ------------------------------------------------------------------ rows
    def add(self, z: np.ndarray, class_ids: np.ndarray, scores: np.ndarray, embeddings: np.ndarray | None,
            frame: int) -> None:
        """New tracks, one per detection first seen at ``frame``: z float[M,4] xyah,
        class_ids int[M], scores float[M], embeddings float32[M,D] or None (no appearance)."""
        first = len(self.tracks)
        self.kf.add(z)
        if self.config.oru:
            self.saved_mean = np.concatenate([self.saved_mean, self.kf.mean[first:]])
            self.saved_cov = np.concatenate([self.saved_cov, self.kf.cov[first:]])
        self.appearance.append(len(z), embeddings)
        if self.directions is not None:
            self.directions.append(z[:, :2], frame)
        for zi, class_id, score in zip(z, class_ids, scores):
            self.tracks.append(Track(self._next_id, int(class_id), float(score), zi, frame, self.limits.n_init))
            self._next_id += 1

    def keep(self, mask: np.ndarray) -> None:
        """Drop the rows where mask (bool[T]) is False."""
        self.kf.keep(mask)
        self.appearance.keep(mask)
        if self.directions is not None:
            self.directions.keep(mask)
        if self.config.oru:
            self.saved_mean, self.saved_cov = self.saved_mean[mask], self.saved_cov[mask]
        self.tracks = [t for t, k in zip(self.tracks, mask) if k]

    # ------------------------------------------------------------------ columns
    def class_ids(self) -> np.ndarray:
        """int32[T]."""
        return np.fromiter((t.class_id for t in self.tracks), np.int32, len(self.tracks))

    def time_since_update(self) -> np.ndarray:
        """int64[T] frames since each track's last match."""
        return np.fromiter((t.time_since_update for t in self.tracks), np.int64, len(self.tracks))

    def in_state(self, state: TrackState) -> np.ndarray:
        """bool[T]: which tracks are in ``state``."""
        return np.fromiter((t.state == state for t in self.tracks), bool, len(self.tracks))

    def predicted_boxes(self) -> np.ndarray:
        """float64[T,4] pixel x1,y1,x2,y2 of the Kalman states."""
        return K.xyah_to_xyxy(self.kf.mean[:, :4]) if self.tracks else np.zeros((0, 4))

    def last_boxes(self, rows: np.ndarray) -> np.ndarray:
        """float64[len(rows),4] pixel x1,y1,x2,y2 of those tracks' last matched detections."""
        return K.xyah_to_xyxy(np.array([self.tracks[r].last_z for r in rows]))

    # ------------------------------------------------------------------ time
    def predict(self, dt: int) -> None:
        """Every track dt frames on (the Kalman filter dt / fps seconds)."""
        self.kf.predict(dt / self.limits.fps)
        for t in self.tracks:
            t.advance(dt)

    def warp(self, warp: np.ndarray) -> None:
        """The camera moved by ``warp`` float[2,3] (pixels of the previous frame -> this frame,
        :func:`tracker.kalman.warp_states`): every Kalman state, ORU's saved states, each
        track's last observed box and the OCM history move with the image."""
        if not self.tracks:
            return
        self.kf.warp(warp)
        if self.config.oru:
            self.saved_mean, self.saved_cov = K.warp_states(self.saved_mean, self.saved_cov, warp)
        for t, z in zip(self.tracks, K.warp_xyah(np.array([t.last_z for t in self.tracks]), warp)):
            t.last_z = z
        if self.directions is not None:
            self.directions.warp(warp)

    def correct(self, rows: np.ndarray, z: np.ndarray, scores: np.ndarray, embeddings: np.ndarray | None,
                frame: int, dt: int) -> None:
        """The tracks at int rows[M] were matched at ``frame`` (dt frames after the last
        update) to detections z float[M,4] xyah with scores float[M] and embeddings
        float32[M,D] (None: appearance not used this frame)."""
        if len(rows) == 0:
            return
        self._update_states(rows, z, frame, dt)
        if embeddings is not None:
            self.appearance.add(rows, embeddings)
        if self.directions is not None:
            self.directions.observe(rows, z[:, :2], frame)
        for r, zi, score in zip(rows.tolist(), z, scores.tolist()):
            self.tracks[r].mark_hit(score, zi, frame, self.limits.n_init)

    def mark_missed(self, rows: np.ndarray) -> None:
        """The tracks at int rows[] found no detection this frame."""
        for r in rows:
            self.tracks[r].mark_missed(self.limits.max_age)

    def _update_states(self, rows: np.ndarray, z: np.ndarray, frame: int, dt: int) -> None:
        """Kalman update of the matched rows; with ORU, tracks re-found after a gap are
        re-updated from their saved state instead (:mod:`tracker.oru`)."""
        if not self.config.oru:
            self.kf.update(rows, z)
            return
        gaps = frame - np.fromiter((self.tracks[r].last_frame for r in rows), np.int64, len(rows))
        late = gaps > dt
        if late.any():
            r = rows[late]
            z_last = np.array([self.tracks[i].last_z for i in r])
            self.kf.set_state(r, *re_update(self.saved_mean[r], self.saved_cov[r], z_last, z[late], gaps[late],
                                            1.0 / self.limits.fps, self.kf.aspect))
        self.kf.update(rows[~late], z[~late])
        self.saved_mean[rows], self.saved_cov[rows] = self.kf.mean[rows], self.kf.cov[rows]

    # ------------------------------------------------------------------ output
    def snapshots(self) -> list[TrackSnapshot]:
        """Snapshots of every row (velocities in px/frame: the filter's px/s / fps)."""
        if not self.tracks:
            return []
        mean = self.kf.mean
        boxes = K.xyah_to_xyxy(mean[:, :4]).astype(np.float32)
        velocities = (mean[:, 4:6] / self.limits.fps).astype(np.float32)
        return [
            TrackSnapshot(t.track_id, t.class_id, b, t.score, v, t.state, t.time_since_update, t.hits, t.age)
            for t, b, v in zip(self.tracks, boxes, velocities)
        ]
