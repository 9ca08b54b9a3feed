"""Assignment: Hungarian matching with a cost ceiling, IoU cost, gating, matching cascade.

Cost matrices are float[T,N] (tracks x detections); entries above ``max_cost`` (or
inf/nan) can never be matched.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

INFEASIBLE = 1e5


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes a float[T,4] vs b float[N,4] (pixel x1,y1,x2,y2) -> float64[T,N]."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def min_cost_matching(cost: np.ndarray, max_cost: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hungarian assignment keeping only pairs with cost <= max_cost.

    Returns (matches int[M,2] of (row, col), unmatched rows int[], unmatched cols int[]).
    """
    T, N = cost.shape
    if T == 0 or N == 0:
        return np.zeros((0, 2), int), np.arange(T), np.arange(N)
    c = np.where(np.isfinite(cost), cost, INFEASIBLE)
    c = np.minimum(c, max_cost + 1e-5)
    rows, cols = linear_sum_assignment(c)
    ok = cost[rows, cols] <= max_cost
    matches = np.stack([rows[ok], cols[ok]], axis=1)
    return matches, _complement(T, matches[:, 0]), _complement(N, matches[:, 1])


def _complement(n: int, used: np.ndarray) -> np.ndarray:
    """Indices 0..n-1 not in used (int[])."""
    free = np.ones(n, bool)
    free[used] = False
    return np.flatnonzero(free)


def matching_cascade(
    cost: np.ndarray, max_cost: float, time_since_update: np.ndarray, levels: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DeepSORT's cascade: match tracks seen most recently first, one age level at a time.

    cost float[T,N]; time_since_update int[T] frames. Returns like :func:`min_cost_matching`.
    """
    T, N = cost.shape
    left = np.arange(N)
    found = []
    for level in range(1, levels + 1):
        if len(left) == 0:
            break
        rows = np.flatnonzero(time_since_update == level)
        if len(rows) == 0:
            continue
        m, _, um = min_cost_matching(cost[np.ix_(rows, left)], max_cost)
        found.append(np.stack([rows[m[:, 0]], left[m[:, 1]]], axis=1))
        left = left[um]
    # tracks older than `levels` are matched last, together
    rows = np.flatnonzero(time_since_update > levels)
    if len(rows) and len(left):
        m, _, um = min_cost_matching(cost[np.ix_(rows, left)], max_cost)
        found.append(np.stack([rows[m[:, 0]], left[m[:, 1]]], axis=1))
        left = left[um]
    matches = np.concatenate(found) if found else np.zeros((0, 2), int)
    return matches, _complement(T, matches[:, 0]), left


def gate(cost: np.ndarray, mask_out: np.ndarray) -> np.ndarray:
    """Copy of cost with the entries where mask_out (bool[T,N]) is True made infeasible."""
    out = np.asarray(cost, dtype=np.float64).copy()
    out[mask_out] = np.inf
    return out
