"""The per-stream multi-object tracker: Kalman predict -> associate -> update -> life cycle.

Association per frame (detections split by score into high / low):
1. appearance mode (embeddings present and enabled): confirmed tracks vs high detections
   on cosine distance, Mahalanobis-gated, DeepSORT cascade or one global assignment; then
   IoU for tentative + recently missed tracks vs what is left.
   motion mode: all tracks vs high detections on IoU distance (gated if enabled).
   Optionally (OC-SORT's OCM) the cost of that IoU round also rewards detections that
   continue a track's direction of motion.
2. optional ByteTrack round: unmatched confirmed tracks vs low-score detections on IoU.
3. optional OC-SORT recovery: unmatched tracks' last observed box vs remaining high ones.
Unmatched high detections start tentative tracks. Only same-class pairs are matched.
"""
from __future__ import annotations

import numpy as np

from base.types import Detections
from tracker import kalman as K
from tracker.config import TrackerConfig
from tracker.direction import DirectionHistory
from base.geometry import iou_matrix
from tracker.linear_assignment import matching_cascade, min_cost_matching
from tracker.nn_matching import AppearanceBank
from tracker.track import Track, TrackSnapshot, TrackState

_EMPTY_MATCH = np.zeros((0, 2), int)


def _without(a: np.ndarray, used: np.ndarray, n: int) -> np.ndarray:
    """Entries of index array a (values < n) that are not in used."""
    keep = np.ones(n, bool)
    keep[used] = False
    return a[keep[a]]


class Tracker:
    """Tracks objects of one stream. Call :meth:`update` once per frame, in frame order."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self.kf = K.make_store(self.config.kalman, K.AspectNoise(self.config.aspect_process_std,
                                                                  self.config.aspect_measurement_std))
        self.tracks: list[Track] = []
        self._next_id = 1
        self._last_frame: int | None = None
        # Kalman state right after each track's last update (rows as in the store; ORU)
        self._saved_mean = np.zeros((0, 8))
        self._saved_cov = np.zeros((0, 8, 8))
        self.appearance = AppearanceBank(self.config.gallery_budget, self.config.embedding_ema)
        self.directions = DirectionHistory(self.config.direction_delta_t) if self.config.direction_weight > 0 else None

    # ------------------------------------------------------------------ public
    def update(self, detections: Detections, frame_index: int) -> list[TrackSnapshot]:
        """Advance to ``frame_index`` and associate this frame's detections.

        Returns snapshots of every live track after this frame plus the tracks deleted
        during this call (state ``TrackState.DELETED``)."""
        cfg = self.config
        dt = 1 if self._last_frame is None else frame_index - self._last_frame
        if dt <= 0:
            raise ValueError(f"frame {frame_index} is not after frame {self._last_frame}")
        self._last_frame = frame_index
        self.kf.predict(dt)
        for t in self.tracks:
            t.advance(dt)

        dets = detections
        scores = dets.scores
        if cfg.low_score_threshold > 0:
            dets = dets.select(scores >= cfg.low_score_threshold)
            scores = dets.scores
        high = np.flatnonzero(scores >= cfg.high_score_threshold)
        low = np.flatnonzero(scores < cfg.high_score_threshold)
        z = K.xyxy_to_xyah(dets.boxes)
        centres = z[:, :2]

        T = len(self.tracks)
        mean, cov = self.kf.mean, self.kf.cov
        pred_boxes = K.xyah_to_xyxy(mean[:, :4]) if T else np.zeros((0, 4))
        classes = np.fromiter((t.class_id for t in self.tracks), np.int32, T)
        tsu = np.fromiter((t.time_since_update for t in self.tracks), np.int64, T)
        confirmed = np.fromiter((t.state == TrackState.CONFIRMED for t in self.tracks), bool, T)
        use_app = cfg.appearance and dets.embeddings.shape[1] > 0

        infeasible = np.zeros((T, len(dets)), bool)
        if cfg.class_aware:
            infeasible |= classes[:, None] != dets.class_ids[None, :]
        gated = infeasible
        if (cfg.gating and use_app) or cfg.iou_gating:
            if T and len(dets):
                d2 = K.gating_distance(mean, cov, z, cfg.gating_position_only, self.kf.aspect)
                gated = infeasible | (d2 > K.CHI2INV95[2 if cfg.gating_position_only else 4])
        app_infeasible = gated if cfg.gating else infeasible
        if cfg.iou_gating:
            infeasible = gated
        iou = iou_matrix(pred_boxes, dets.boxes)
        iou_cost = 1.0 - (iou * np.clip(scores, 0.0, 1.0)[None, :] if cfg.fuse_score else iou)

        matches = []
        track_left = np.arange(T)
        if use_app:
            rows = np.flatnonzero(confirmed)
            cost = self.appearance.distance(rows, dets.embeddings[high])
            cost = np.where(app_infeasible[np.ix_(rows, high)], np.inf, cost)
            if cfg.matching_cascade:
                levels = tsu[rows] - dt + 1
                m, _, um_d = matching_cascade(cost, cfg.max_cosine_distance, levels, cfg.max_age)
            else:
                m, _, um_d = min_cost_matching(cost, cfg.max_cosine_distance)
            matches.append(np.stack([rows[m[:, 0]], high[m[:, 1]]], axis=1))
            high_left = high[um_d]
            track_left = _without(track_left, rows[m[:, 0]], T)
            iou_rows = track_left[(~confirmed[track_left]) | (tsu[track_left] - dt + 1 <= cfg.iou_rescue_max_age)]
            iou_ceiling = cfg.secondary_iou_distance
        else:
            high_left = high
            iou_rows = track_left
            iou_ceiling = cfg.max_iou_distance
        bonus = None
        if self.directions is not None and len(iou_rows) and len(high_left):
            bonus = self.directions.bonus(iou_rows, centres[high_left], scores[high_left], frame_index,
                                          cfg.direction_weight)
        m = self._iou_round(iou_rows, high_left, iou_cost, infeasible, iou_ceiling, bonus)
        matches.append(m)
        track_left = _without(track_left, m[:, 0], T)
        high_left = _without(high_left, m[:, 1], len(dets))

        if len(low) and cfg.low_score_threshold < cfg.high_score_threshold:
            rows = track_left if cfg.low_round_tentative else track_left[confirmed[track_left]]
            m = self._iou_round(rows, low, 1.0 - iou, infeasible, cfg.low_round_max_iou_distance)
            matches.append(m)
            track_left = _without(track_left, m[:, 0], T)

        if cfg.observation_recovery and len(track_left) and len(high_left):
            last_boxes = K.xyah_to_xyxy(np.array([self.tracks[i].last_z for i in track_left]))
            cost = 1.0 - iou_matrix(last_boxes, dets.boxes[high_left])
            if cfg.class_aware:
                cost[classes[track_left][:, None] != dets.class_ids[high_left][None, :]] = np.inf
            mm, _, _ = min_cost_matching(cost, cfg.max_iou_distance)
            m = np.stack([track_left[mm[:, 0]], high_left[mm[:, 1]]], axis=1)
            matches.append(m)
            track_left = _without(track_left, m[:, 0], T)
            high_left = _without(high_left, m[:, 1], len(dets))

        matches = np.concatenate(matches) if matches else _EMPTY_MATCH
        self._apply_matches(matches, dets, z, use_app, frame_index, dt)
        for i in track_left:
            self.tracks[i].mark_missed(cfg.max_age)
        self._start_tracks(high_left, dets, z, use_app, frame_index)
        return self._finish()

    def snapshots(self) -> list[TrackSnapshot]:
        """Snapshots of the live tracks (as after the last update)."""
        return self._snapshots(np.ones(len(self.tracks), bool))

    # ------------------------------------------------------------------ steps
    def _iou_round(self, rows, cols, iou_cost, infeasible, max_cost, bonus=None) -> np.ndarray:
        """Hungarian on the IoU cost of tracks ``rows`` x detections ``cols``; with ``bonus``
        float[len(rows), len(cols)] the assignment uses cost - bonus but a pair is accepted
        on its IoU cost alone (as OC-SORT does)."""
        if len(rows) == 0 or len(cols) == 0:
            return _EMPTY_MATCH
        cost = np.where(infeasible[np.ix_(rows, cols)], np.inf, iou_cost[np.ix_(rows, cols)])
        if bonus is None:
            m, _, _ = min_cost_matching(cost, max_cost)
        else:
            cost = np.where(cost > max_cost, np.inf, cost - bonus)
            m, _, _ = min_cost_matching(cost, max_cost + float(np.abs(bonus).max(initial=0.0)))
        return np.stack([rows[m[:, 0]], cols[m[:, 1]]], axis=1)

    def _apply_matches(self, matches, dets, z, use_app, frame_index, dt) -> None:
        cfg = self.config
        if len(matches) == 0:
            return
        rows, cols = matches[:, 0], matches[:, 1]
        if cfg.oru:
            gaps = frame_index - np.fromiter((self.tracks[r].last_frame for r in rows), np.int64, len(rows))
            late = gaps > dt
            if late.any():
                self._re_update(rows[late], z[cols[late]], gaps[late])
            self.kf.update(rows[~late], z[cols[~late]])
            mean, cov = self.kf.mean, self.kf.cov
            self._saved_mean[rows], self._saved_cov[rows] = mean[rows], cov[rows]
        else:
            self.kf.update(rows, z[cols])
        if use_app:
            self.appearance.add(rows, dets.embeddings[cols])
        if self.directions is not None:
            self.directions.observe(rows, z[cols, :2], frame_index)
        scores = dets.scores.tolist()
        n_init = cfg.n_init
        for r, c in zip(rows.tolist(), cols.tolist()):
            self.tracks[r].mark_hit(scores[c], z[c], frame_index, n_init)

    def _re_update(self, rows: np.ndarray, z_new: np.ndarray, gaps: np.ndarray) -> None:
        """OC-SORT ORU for tracks re-found after a gap: from the state saved at each one's
        last observation, step frame by frame along the straight line to the new
        observation z_new float[M,4] xyah, updating on the virtual observations (batched
        over the M tracks; gaps int[M] frames)."""
        mean, cov = self._saved_mean[rows].copy(), self._saved_cov[rows].copy()
        z0 = np.array([self.tracks[r].last_z for r in rows])
        for k in range(1, int(gaps.max()) + 1):
            act = gaps >= k
            m, c = K.predict(mean[act], cov[act], 1, self.kf.aspect)
            zk = z0[act] + (z_new[act] - z0[act]) * (k / gaps[act])[:, None]
            mean[act], cov[act] = K.update(m, c, zk, self.kf.aspect)
        self.kf.set_state(rows, mean, cov)

    def _start_tracks(self, cols, dets, z, use_app, frame_index) -> None:
        cfg = self.config
        thr = cfg.high_score_threshold if cfg.new_track_threshold is None else cfg.new_track_threshold
        cols = cols[dets.scores[cols] >= thr]
        if len(cols) == 0:
            return
        self.kf.add(z[cols])
        if cfg.oru:
            base = len(self.tracks)
            self._saved_mean = np.concatenate([self._saved_mean, self.kf.mean[base:]])
            self._saved_cov = np.concatenate([self._saved_cov, self.kf.cov[base:]])
        self.appearance.append(len(cols), dets.embeddings[cols] if use_app else None)
        if self.directions is not None:
            self.directions.append(z[cols, :2], frame_index)
        for c in cols:
            t = Track(self._next_id, int(dets.class_ids[c]), float(dets.scores[c]), z[c], frame_index, cfg.n_init)
            self._next_id += 1
            self.tracks.append(t)

    def _finish(self) -> list[TrackSnapshot]:
        alive = np.fromiter((t.state != TrackState.DELETED for t in self.tracks), bool, len(self.tracks))
        out = self._snapshots(np.ones(len(self.tracks), bool))
        if not alive.all():
            self.kf.keep(alive)
            self.appearance.keep(alive)
            if self.directions is not None:
                self.directions.keep(alive)
            if self.config.oru:
                self._saved_mean, self._saved_cov = self._saved_mean[alive], self._saved_cov[alive]
            self.tracks = [t for t, a in zip(self.tracks, alive) if a]
        return out

    def _snapshots(self, mask: np.ndarray) -> list[TrackSnapshot]:
        if not len(self.tracks):
            return []
        mean = self.kf.mean
        boxes = K.xyah_to_xyxy(mean[:, :4]).astype(np.float32)
        vel = mean[:, 4:6].astype(np.float32)
        return [
            TrackSnapshot(t.track_id, t.class_id, b, t.score, v, t.state, t.time_since_update, t.hits, t.age)
            for t, b, v, keep in zip(self.tracks, boxes, vel, mask) if keep
        ]
