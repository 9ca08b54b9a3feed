"""Assignment: Hungarian matching with a cost ceiling, and DeepSORT's matching cascade.

Cost matrices are float[T,N] (tracks x detections); entries above ``max_cost`` (or
inf/nan) can never be matched.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment



def min_cost_matching(cost: np.ndarray, max_cost: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hungarian assignment keeping only pairs with cost <= max_cost.

    Returns (matches int[M,2] of (row, col), unmatched rows int[], unmatched cols int[]).
    """
    T, N = cost.shape
    matches = matched_pairs(cost, max_cost)
    return matches, _complement(T, matches[:, 0]), _complement(N, matches[:, 1])


def matched_pairs(cost: np.ndarray, max_cost: float) -> np.ndarray:
    """The matches int[M,2] (row, col) of :func:`min_cost_matching` alone."""
    if cost.shape[0] == 0 or cost.shape[1] == 0:
        return np.zeros((0, 2), int)
    # fmin caps inf and nan alike: a capped pair costs more than any feasible one
    rows, cols = linear_sum_assignment(np.fmin(cost, max_cost + 1e-5))
    ok = cost[rows, cols] <= max_cost
    return _pairs(rows[ok], cols[ok])


def submatrix(matrix: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """matrix[rows][:, cols] for int index arrays (two takes: a third of the time of
    ``matrix[rows[:, None], cols]`` at 50 x 50)."""
    return matrix.take(rows, axis=0).take(cols, axis=1)


def lifted(matches: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Matches int[M,2] of ``submatrix(matrix, rows, cols)`` as (row, col) of ``matrix``."""
    return _pairs(rows[matches[:, 0]], cols[matches[:, 1]])


def _pairs(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """int[M,2] (row, col) from two int[M] (np.stack's result, without its overhead)."""
    out = np.empty((len(rows), 2), np.intp)
    out[:, 0], out[:, 1] = rows, cols
    return out


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
        m, _, um = min_cost_matching(submatrix(cost, rows, left), max_cost)
        found.append(lifted(m, rows, left))
        left = left[um]
    # tracks older than `levels` are matched last, together
    rows = np.flatnonzero(time_since_update > levels)
    if len(rows) and len(left):
        m, _, um = min_cost_matching(submatrix(cost, rows, left), max_cost)
        found.append(lifted(m, rows, left))
        left = left[um]
    matches = np.concatenate(found) if found else np.zeros((0, 2), int)
    return matches, _complement(T, matches[:, 0]), left
