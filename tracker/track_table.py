"""All live tracks of one stream, one row each, with everything kept per track."""
from __future__ import annotations

import numpy as np

from tracker import kalman as K
from tracker.config import FrameLimits, TrackerConfig
from tracker.direction import DirectionHistory
from tracker.nn_matching import AppearanceBank, DistanceScale
from tracker.oru import re_update
from tracker.track import CONFIRMED, DELETED, STATES, TENTATIVE, Track, TrackSnapshot, TrackState

_CODE = {state: code for code, state in enumerate(STATES)}


class TrackColumns:
    """The book-keeping of T tracks as arrays (one row per track, vectorised updates):
    track_id int64[T], class_id int32[T], score float64[T], state int8[T] (codes of
    :data:`tracker.track.STATES`), hits / age / time_since_update int64[T] frames,
    last_z float64[T,4] xyah of the last matched detection, last_frame int64[T]."""

    FIELDS = ("track_id", "class_id", "score", "state", "hits", "age", "time_since_update", "last_z", "last_frame")

    def __init__(self) -> None:
        self.track_id = np.zeros(0, np.int64)
        self.class_id = np.zeros(0, np.int32)
        self.score = np.zeros(0)
        self.state = np.zeros(0, np.int8)
        self.hits = np.zeros(0, np.int64)
        self.age = np.zeros(0, np.int64)
        self.time_since_update = np.zeros(0, np.int64)
        self.last_z = np.zeros((0, 4))
        self.last_frame = np.zeros(0, np.int64)

    def __len__(self) -> int:
        return len(self.track_id)

    def append(self, first_id: int, z: np.ndarray, class_ids: np.ndarray, scores: np.ndarray, frame: int,
               n_init: int) -> None:
        """M new tracks (ids first_id..) first seen at ``frame``: tentative, or confirmed at
        once when ``n_init`` <= 1."""
        m = len(z)
        new = {"track_id": np.arange(first_id, first_id + m), "class_id": class_ids, "score": scores,
               "state": np.full(m, CONFIRMED if n_init <= 1 else TENTATIVE), "hits": np.ones(m),
               "age": np.zeros(m), "time_since_update": np.zeros(m), "last_z": z, "last_frame": np.full(m, frame)}
        for name in self.FIELDS:
            old = getattr(self, name)
            setattr(self, name, np.concatenate([old, np.asarray(new[name], old.dtype).reshape(-1, *old.shape[1:])]))

    def keep(self, mask: np.ndarray) -> None:
        for name in self.FIELDS:
            setattr(self, name, getattr(self, name)[mask])

    def hit(self, rows: np.ndarray, scores: np.ndarray, z: np.ndarray, frame: int, n_init: int) -> None:
        """The tracks at rows were matched at ``frame``; tentative ones with ``n_init`` hits confirm."""
        self.hits[rows] += 1
        self.time_since_update[rows] = 0
        self.score[rows], self.last_z[rows], self.last_frame[rows] = scores, z, frame
        self.state[rows[(self.state[rows] == TENTATIVE) & (self.hits[rows] >= n_init)]] = CONFIRMED

    def missed(self, rows: np.ndarray, max_age: int) -> None:
        """The tracks at rows found no detection: tentative ones and those missed for
        ``max_age`` frames are deleted."""
        gone = (self.state[rows] == TENTATIVE) | (self.time_since_update[rows] >= max_age)
        self.state[rows[gone]] = DELETED

    def record(self, row: int) -> Track:
        return Track(int(self.track_id[row]), int(self.class_id[row]), float(self.score[row]),
                     STATES[self.state[row]], int(self.hits[row]), int(self.age[row]),
                     int(self.time_since_update[row]), self.last_z[row].copy(), int(self.last_frame[row]))


class TrackTable:
    """The live tracks of a stream as rows that stay aligned: the :class:`TrackColumns`,
    the Kalman states, the appearance rows (and the stream's :class:`DistanceScale`), the OCM direction history (when
    ``direction_weight`` > 0) and, for ORU, the Kalman state saved right after each
    track's last update. :meth:`add` and :meth:`keep` are the only ways rows come and go.
    Time is counted in frames (``limits``: the config's time constants at the stream's frame
    rate); the Kalman filter is stepped in seconds (frames / ``limits.fps``).
    """

    def __init__(self, config: TrackerConfig, limits: FrameLimits) -> None:
        self.config = config
        self.limits = limits
        self.kf = K.make_store(config.kalman, K.AspectNoise(config.aspect_process_std, config.aspect_measurement_std))
        self.columns = TrackColumns()
        self.appearance = AppearanceBank(config.gallery_budget, config.embedding_ema)
        self.distance_scale = DistanceScale()
        self.directions = DirectionHistory(config.direction_delta_t) if config.direction_weight > 0 else None
        self.saved_mean = np.zeros((0, 8))
        self.saved_cov = np.zeros((0, 8, 8))
        self._next_id = 1

    def __len__(self) -> int:
        return len(self.columns)

    @property
    def tracks(self) -> list[Track]:
        """Each live track's record (copies: the table keeps the rows)."""
        return [self.columns.record(r) for r in range(len(self.columns))]

    # ------------------------------------------------------------------ rows
    def add(self, z: np.ndarray, class_ids: np.ndarray, scores: np.ndarray, embeddings: np.ndarray | None,
            frame: int) -> None:
        """New tracks, one per detection first seen at ``frame``: z float[M,4] xyah,
        class_ids int[M], scores float[M], embeddings float32[M,D] or None (no appearance)."""
        first = len(self.columns)
        self.kf.add(z)
        if self.config.oru:
            self.saved_mean = np.concatenate([self.saved_mean, self.kf.mean[first:]])
            self.saved_cov = np.concatenate([self.saved_cov, self.kf.cov[first:]])
        self.appearance.append(len(z), embeddings)
        if self.directions is not None:
            self.directions.append(z[:, :2], frame)
        self.columns.append(self._next_id, z, class_ids, scores, frame, self.limits.n_init)
        self._next_id += len(z)

    def keep(self, mask: np.ndarray) -> None:
        """Drop the rows where mask (bool[T]) is False."""
        self.kf.keep(mask)
        self.appearance.keep(mask)
        if self.directions is not None:
            self.directions.keep(mask)
        if self.config.oru:
            self.saved_mean, self.saved_cov = self.saved_mean[mask], self.saved_cov[mask]
        self.columns.keep(mask)

    # ------------------------------------------------------------------ columns
    def class_ids(self) -> np.ndarray:
        """int32[T]."""
        return self.columns.class_id

    def time_since_update(self) -> np.ndarray:
        """int64[T] frames since each track's last match."""
        return self.columns.time_since_update.copy()

    def in_state(self, state: TrackState) -> np.ndarray:
        """bool[T]: which tracks are in ``state``."""
        return self.columns.state == _CODE[state]

    def predicted_boxes(self) -> np.ndarray:
        """float64[T,4] pixel x1,y1,x2,y2 of the Kalman states."""
        return K.xyah_to_xyxy(self.kf.mean[:, :4]) if len(self.columns) else np.zeros((0, 4))

    def last_boxes(self, rows: np.ndarray) -> np.ndarray:
        """float64[len(rows),4] pixel x1,y1,x2,y2 of those tracks' last matched detections."""
        return K.xyah_to_xyxy(self.columns.last_z[rows])

    # ------------------------------------------------------------------ time
    def predict(self, dt: int) -> None:
        """Every track dt frames on (the Kalman filter dt / fps seconds)."""
        self.kf.predict(dt / self.limits.fps)
        self.columns.age += dt
        self.columns.time_since_update += dt

    def warp(self, warp: np.ndarray) -> None:
        """The camera moved by ``warp`` float[2,3] (pixels of the previous frame -> this frame,
        :func:`tracker.kalman.warp_states`): every Kalman state, ORU's saved states, each
        track's last observed box and the OCM history move with the image."""
        if not len(self.columns):
            return
        self.kf.warp(warp)
        if self.config.oru:
            self.saved_mean, self.saved_cov = K.warp_states(self.saved_mean, self.saved_cov, warp)
        self.columns.last_z = K.warp_xyah(self.columns.last_z, warp)
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
        self.columns.hit(rows, scores, z, frame, self.limits.n_init)

    def mark_missed(self, rows: np.ndarray) -> None:
        """The tracks at int rows[] found no detection this frame."""
        if len(rows):
            self.columns.missed(rows, self.limits.max_age)

    def _update_states(self, rows: np.ndarray, z: np.ndarray, frame: int, dt: int) -> None:
        """Kalman update of the matched rows; with ORU, tracks re-found after a gap are
        re-updated from their saved state instead (:mod:`tracker.oru`)."""
        if not self.config.oru:
            self.kf.update(rows, z)
            return
        gaps = frame - self.columns.last_frame[rows]
        late = gaps > dt
        if late.any():
            r = rows[late]
            z_last = self.columns.last_z[r]
            self.kf.set_state(r, *re_update(self.saved_mean[r], self.saved_cov[r], z_last, z[late], gaps[late],
                                            1.0 / self.limits.fps, self.kf.aspect))
        self.kf.update(rows[~late], z[~late])
        self.saved_mean[rows], self.saved_cov[rows] = self.kf.mean[rows], self.kf.cov[rows]

    # ------------------------------------------------------------------ output
    def snapshots(self) -> list[TrackSnapshot]:
        """Snapshots of every row (velocities in px/frame: the filter's px/s / fps)."""
        c = self.columns
        if not len(c):
            return []
        mean = self.kf.mean
        boxes = K.xyah_to_xyxy(mean[:, :4]).astype(np.float32)
        velocities = (mean[:, 4:6] / self.limits.fps).astype(np.float32)
        return [
            TrackSnapshot(i, k, b, s, v, STATES[st], tsu, h, a)
            for i, k, b, s, v, st, tsu, h, a in zip(c.track_id.tolist(), c.class_id.tolist(), boxes, c.score.tolist(),
                                                    velocities, c.state.tolist(), c.time_since_update.tolist(),
                                                    c.hits.tolist(), c.age.tolist())
        ]
