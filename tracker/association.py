"""The association rounds of one frame. Each takes the tracks still unmatched (int rows) and
the detections still unmatched (int indices) and returns a :data:`Round`: the matches
int[M,2] (track row, detection index), the tracks and the detections left, in their order.

- :func:`appearance_round`: DeepSORT, confirmed tracks on cosine distance.
- :func:`iou_round`: tracks on IoU (optionally with OC-SORT's direction bonus); with the
  "fused" association, BoT-SORT's appearance refinement of that IoU cost; with the
  "weighted" one, Deep OC-SORT's adaptively weighted appearance bonus.
- :func:`low_score_round`: ByteTrack, the tracks left vs the low-score detections.
- :func:`recovery_round`: OC-SORT, the tracks left by their last observed box.
Only same-class pairs are matched.
"""
from __future__ import annotations

import numpy as np

from base.geometry import iou_matrix
from tracker.config import TrackerConfig
from tracker.linear_assignment import lifted, matched_pairs, matching_cascade, min_cost_matching, submatrix
from tracker.match_context import MatchContext
from tracker.track_table import TrackTable

Round = tuple[np.ndarray, np.ndarray, np.ndarray]
NO_MATCHES = np.zeros((0, 2), int)


def appearance_round(table: TrackTable, ctx: MatchContext, cfg: TrackerConfig, tracks: np.ndarray,
                     dets: np.ndarray) -> Round:
    """Confirmed tracks vs detections on the cosine distance of their galleries, within
    ``max_cosine_distance`` (and the Mahalanobis gate when ``gating``): DeepSORT's cascade
    (most recently seen tracks first) or one global assignment."""
    rows = tracks[ctx.confirmed[tracks]]
    cost = table.appearance.distance(rows, ctx.detections.embeddings[dets])
    cost = np.where(submatrix(ctx.appearance_infeasible, rows, dets), np.inf, cost)
    if cfg.matching_cascade:
        levels = ctx.time_since_update[rows] - ctx.dt + 1
        m, _, _ = matching_cascade(cost, cfg.max_cosine_distance, levels, table.limits.max_age)
    else:
        m, _, _ = min_cost_matching(cost, cfg.max_cosine_distance)
    return _round(lifted(m, rows, dets), tracks, dets, ctx)


def iou_round(table: TrackTable, ctx: MatchContext, cfg: TrackerConfig, tracks: np.ndarray, dets: np.ndarray) -> Round:
    """Tracks vs detections on the IoU cost within ``max_iou_distance``. After a cascade
    appearance round only tentative tracks and those missed for at most
    ``iou_rescue_max_age`` frames take part, within ``secondary_iou_distance``. With the
    "fused" association appearance lowers the cost of close look-alike pairs
    (:func:`fuse_appearance`); with the "weighted" one the assignment also rewards similar
    overlapping pairs (:func:`weighted_appearance_bonus`). With OCM the assignment also
    rewards detections that continue a track's direction of motion. Bonuses steer the
    assignment only: a pair is accepted on its cost alone."""
    rows, ceiling = tracks, cfg.max_iou_distance
    fused = ctx.use_appearance and cfg.association == "fused"
    if ctx.use_appearance and cfg.association == "cascade":
        recent = ctx.time_since_update[tracks] - ctx.dt + 1 <= cfg.iou_rescue_max_age
        rows, ceiling = tracks[~ctx.confirmed[tracks] | recent], cfg.secondary_iou_distance
    if len(rows) == 0 or len(dets) == 0:
        return NO_MATCHES, tracks, dets
    cost = submatrix(ctx.iou_cost, rows, dets)
    if fused:
        cost = fuse_appearance(table, ctx, cfg, rows, dets, cost)
    bonus = None
    if table.directions is not None:
        bonus = table.directions.bonus(rows, ctx.z[dets, :2], ctx.detections.scores[dets], ctx.frame,
                                       cfg.direction_weight)
    if ctx.use_appearance and cfg.association == "weighted":
        extra = weighted_appearance_bonus(table, ctx, cfg, rows, dets)
        bonus = extra if bonus is None else bonus + extra
    return _round(_assign(cost, ctx.iou_infeasible, rows, dets, ceiling, bonus), tracks, dets, ctx)


def fuse_appearance(table: TrackTable, ctx: MatchContext, cfg: TrackerConfig, rows: np.ndarray, dets: np.ndarray,
                    cost: np.ndarray) -> np.ndarray:
    """BoT-SORT's fused cost float[len(rows), len(dets)]: min(cost, cosine / 2) where the
    pair's IoU distance is below ``appearance_iou_gate`` (and within ``max_iou_distance``), its
    cosine distance below ``appearance_threshold`` and the detection overlaps no other by
    more than ``appearance_isolation_iou``, and (``appearance_ratio``) well below that of
    every rival pair; ``cost`` (the IoU cost) elsewhere. With ``appearance_units`` "stream"
    the cosine distances are first divided by the stream's :class:`DistanceScale`."""
    iou_distance = 1.0 - submatrix(ctx.iou, rows, dets)
    near = iou_distance < min(cfg.appearance_iou_gate, cfg.max_iou_distance + 1e-9)
    if cfg.appearance_isolation_iou < 1.0:
        near &= (ctx.overlap[dets] <= cfg.appearance_isolation_iou)[None, :]
    r, c = np.nonzero(near)
    if len(r) == 0:
        return cost
    # only the close pairs' cosines (about one per detection, not tracks x detections)
    cosine = table.appearance.pair_distance(rows[r], ctx.detections.embeddings[dets[c]])
    if cfg.appearance_units == "stream":
        cosine = cosine / np.float32(table.distance_scale.value)
    similar = cosine < cfg.appearance_threshold
    if cfg.appearance_ratio < 1.0:
        similar &= cosine <= cfg.appearance_ratio * _rival_distance(r, c, cosine)
    r, c = r[similar], c[similar]
    fused = cost.copy()
    fused[r, c] = np.minimum(cost[r, c], 0.5 * cosine[similar])
    return fused


def weighted_appearance_bonus(table: TrackTable, ctx: MatchContext, cfg: TrackerConfig, rows: np.ndarray,
                              dets: np.ndarray) -> np.ndarray:
    """Deep OC-SORT's adaptively weighted appearance term float[len(rows), len(dets)], >= 0:
    ``appearance_weight`` x row weight x column weight x cosine similarity, for pairs whose
    boxes overlap (IoU > 0; 0 elsewhere, and for similarities below 0 or tracks without a
    gallery). A track's (detection's) weight falls from 1 to 0 as the similarity of its
    second most similar overlapping detection (track) approaches that of its most similar:
    1 - max(second / best - b, 0) / (1 - b), b = ``appearance_weight_bottom``; 1 with fewer
    than two candidates. So an embedder that finds two rivals alike leaves the choice to
    the geometry, and one that tells them apart tips it."""
    r, c = np.nonzero(submatrix(ctx.iou, rows, dets) > 0.0)
    sim = np.zeros((len(rows), len(dets)))
    if len(r) == 0:
        return sim
    cosine = table.appearance.pair_distance(rows[r], ctx.detections.embeddings[dets[c]])
    sim[r, c] = np.clip(1.0 - cosine, 0.0, 1.0)
    b = cfg.appearance_weight_bottom
    weight = _discrimination(sim, 1, b)[:, None] * _discrimination(sim, 0, b)[None, :]
    return cfg.appearance_weight * weight * sim


def _discrimination(sim: np.ndarray, axis: int, bottom: float) -> np.ndarray:
    """Deep OC-SORT's per-row (axis 1) or per-column (axis 0) weight of similarities sim
    float[R, C] >= 0: 1 - max(second / best - bottom, 0) / (1 - bottom) over that axis's two
    largest; 0 where the largest is 0; 1 where the axis has fewer than two entries."""
    n = sim.shape[axis]
    if n < 2:
        return np.ones(sim.shape[1 - axis])
    top = -np.partition(-sim, 1, axis=axis)
    best, second = (top[0], top[1]) if axis == 0 else (top[:, 0], top[:, 1])
    ratio = np.divide(second, best, out=np.ones_like(best), where=best > 0)
    weight = 1.0 - np.maximum(ratio - bottom, 0.0) / (1.0 - bottom)
    return np.where(best > 0, weight, 0.0)


def _rival_distance(r: np.ndarray, c: np.ndarray, cosine: np.ndarray) -> np.ndarray:
    """float[K]: for each close pair (r[k], c[k]) with cosine distance cosine[k], the smallest
    distance of the other close pairs that share its track or its detection (inf: none)."""
    rival = (r[:, None] == r[None, :]) | (c[:, None] == c[None, :])
    np.fill_diagonal(rival, False)
    return np.where(rival, cosine[None, :], np.inf).min(axis=1, initial=np.inf)


def low_score_round(ctx: MatchContext, cfg: TrackerConfig, tracks: np.ndarray, dets: np.ndarray) -> Round:
    """ByteTrack's second round: the tracks left (confirmed ones only unless
    ``low_round_tentative``) vs low-score detections on plain IoU, within
    ``low_round_max_iou_distance``."""
    rows = tracks if cfg.low_round_tentative else tracks[ctx.confirmed[tracks]]
    if len(rows) == 0 or len(dets) == 0:
        return NO_MATCHES, tracks, dets
    cost = 1.0 - submatrix(ctx.iou, rows, dets)
    return _round(_assign(cost, ctx.iou_infeasible, rows, dets, cfg.low_round_max_iou_distance), tracks, dets, ctx)


def recovery_round(table: TrackTable, ctx: MatchContext, cfg: TrackerConfig, tracks: np.ndarray,
                   dets: np.ndarray) -> Round:
    """OC-SORT's observation-centric recovery: the tracks left, by their last observed box,
    vs the detections left on IoU within ``max_iou_distance`` (class-aware, never gated)."""
    if len(tracks) == 0 or len(dets) == 0:
        return NO_MATCHES, tracks, dets
    cost = 1.0 - iou_matrix(table.last_boxes(tracks), ctx.detections.boxes[dets])
    if cfg.class_aware:
        cost[ctx.class_ids[tracks][:, None] != ctx.detections.class_ids[dets][None, :]] = np.inf
    m, _, _ = min_cost_matching(cost, cfg.max_iou_distance)
    return _round(lifted(m, tracks, dets), tracks, dets, ctx)


def _assign(cost: np.ndarray, infeasible: np.ndarray, rows: np.ndarray, cols: np.ndarray, max_cost: float,
            bonus: np.ndarray | None = None) -> np.ndarray:
    """Matches int[M,2] of Hungarian on cost float[len(rows), len(cols)] (already taken at
    rows x cols) within max_cost, never on pairs infeasible bool[T,N] at [rows, cols]. With
    ``bonus`` float[len(rows), len(cols)] the assignment uses cost - bonus but a pair is
    accepted on its cost alone (as OC-SORT does)."""
    blocked = submatrix(infeasible, rows, cols)
    if blocked.any():
        cost = np.where(blocked, np.inf, cost)
    if bonus is None:
        m = matched_pairs(cost, max_cost)
    else:
        cost = np.where(cost > max_cost, np.inf, cost - bonus)
        m = matched_pairs(cost, max_cost + float(np.abs(bonus).max(initial=0.0)))
    return lifted(m, rows, cols)


def _round(matches: np.ndarray, tracks: np.ndarray, dets: np.ndarray, ctx: MatchContext) -> Round:
    """The round's matches with the tracks and detections it left."""
    n_tracks, n_dets = ctx.iou.shape
    return matches, _without(tracks, matches[:, 0], n_tracks), _without(dets, matches[:, 1], n_dets)


def _without(a: np.ndarray, used: np.ndarray, n: int) -> np.ndarray:
    """Entries of index array a (values < n) that are not in used, in a's order."""
    keep = np.ones(n, bool)
    keep[used] = False
    return a[keep[a]]
