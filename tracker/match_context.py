"""What the association rounds of one frame read: the detections taking part, the tracks'
columns at prediction time, and the tracks x detections costs."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from base.geometry import iou_matrix
from base.types import Detections
from tracker import kalman as K
from tracker.config import TrackerConfig
from tracker.track import TrackState
from tracker.track_table import TrackTable


@dataclass(frozen=True)
class MatchContext:
    """One frame's association inputs for T predicted tracks and N detections.

    detections: those above ``low_score_threshold``; z float64[N,4] their cx, cy, aspect, h;
    high / low int[]: detection indices at or above / below ``high_score_threshold``;
    confirmed bool[T], time_since_update int64[T] frames, class_ids int32[T]: the tracks;
    iou float64[T,N]: IoU of predicted and detected boxes; iou_cost float64[T,N]: 1 - IoU,
    or 1 - IoU * score with ``fuse_score``; iou_infeasible / appearance_infeasible bool[T,N]:
    pairs the IoU rounds / the appearance round may not match (other class; outside the
    Mahalanobis gate where that round is gated); trusted bool[N]: detections whose embedding
    may update a gallery (appearance in use, score >= ``high_score_threshold``, largest IoU
    with another detection of the frame <= ``appearance_occlusion_iou``); overlap float[N]:
    each detection's largest IoU with another detection of the frame (0 alone; computed only
    with appearance in use and an occlusion or isolation IoU below 1 or appearance in stream
    units, else zeros); pair_iou float[N,N] or None: the detections' IoU with each other
    (diagonal 0), where it was computed for ``overlap``.
    """

    frame: int
    dt: int
    detections: Detections
    z: np.ndarray
    high: np.ndarray
    low: np.ndarray
    use_appearance: bool
    confirmed: np.ndarray
    time_since_update: np.ndarray
    class_ids: np.ndarray
    iou: np.ndarray
    iou_cost: np.ndarray
    iou_infeasible: np.ndarray
    appearance_infeasible: np.ndarray
    trusted: np.ndarray
    overlap: np.ndarray
    pair_iou: np.ndarray | None = None


def match_context(table: TrackTable, detections: Detections, frame: int, dt: int, cfg: TrackerConfig) -> MatchContext:
    """The context for associating ``detections`` at ``frame`` with the (predicted) tracks of ``table``."""
    dets = detections
    if cfg.low_score_threshold > 0:
        kept = dets.scores >= cfg.low_score_threshold
        if not kept.all():
            dets = dets.select(kept)
    scores, z = dets.scores, K.xyxy_to_xyah(dets.boxes)
    use_appearance = cfg.appearance and dets.embeddings.shape[1] > 0
    class_ids = table.class_ids()
    infeasible = np.zeros((len(table), len(dets)), bool)
    if cfg.class_aware:
        infeasible |= class_ids[:, None] != dets.class_ids[None, :]
    gated = infeasible
    cascade = use_appearance and cfg.association == "cascade"
    if ((cfg.gating and cascade) or cfg.iou_gating) and len(table) and len(dets):
        gated = infeasible | _outside_gate(table.kf, z, cfg.gating_position_only)
    iou = iou_matrix(table.predicted_boxes(), dets.boxes)
    iou_cost = 1.0 - (iou * np.clip(scores, 0.0, 1.0)[None, :] if cfg.fuse_score else iou)
    # only the occlusion and isolation checks and the stream's distance scale read the
    # detections' overlaps; at 1.0 the checks pass every detection
    needs_overlap = use_appearance and (min(cfg.appearance_occlusion_iou, cfg.appearance_isolation_iou) < 1.0
                                        or cfg.appearance_units == "stream")
    pair_iou = _pair_iou(dets) if needs_overlap else None
    overlap = pair_iou.max(axis=1, initial=0.0) if needs_overlap else np.zeros(len(dets))
    return MatchContext(
        frame, dt, dets, z,
        high=np.flatnonzero(scores >= cfg.high_score_threshold), low=np.flatnonzero(scores < cfg.high_score_threshold),
        use_appearance=use_appearance, confirmed=table.in_state(TrackState.CONFIRMED),
        time_since_update=table.time_since_update(), class_ids=class_ids, iou=iou, iou_cost=iou_cost,
        iou_infeasible=gated if cfg.iou_gating else infeasible,
        appearance_infeasible=gated if cfg.gating else infeasible,
        trusted=(dets.scores >= cfg.high_score_threshold) & (overlap <= cfg.appearance_occlusion_iou)
        if use_appearance else np.zeros(len(dets), bool),
        overlap=overlap, pair_iou=pair_iou)


def _pair_iou(dets: Detections) -> np.ndarray:
    """float[N,N]: the detections' IoU with each other, 0 on the diagonal."""
    if len(dets) < 2:
        return np.zeros((len(dets), len(dets)))
    iou = iou_matrix(dets.boxes, dets.boxes)
    np.fill_diagonal(iou, 0.0)
    return iou


def _outside_gate(kf, z: np.ndarray, position_only: bool) -> np.ndarray:
    """bool[T,N]: measurements z float[N,4] xyah beyond the 95% chi-square gate of each state."""
    d2 = K.gating_distance(kf.mean, kf.cov, z, position_only, kf.aspect)
    return d2 > K.CHI2INV95[2 if position_only else 4]
