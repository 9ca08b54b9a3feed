"""Anchor boxes from k-means over training box sizes with the IoU distance (YOLOv2)."""
from __future__ import annotations

import numpy as np


def wh_iou(wh: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """IoU of boxes and anchors aligned at a common corner: float[N,2], float[K,2] -> float[N,K]."""
    wh = np.asarray(wh, np.float64)[:, None, :]
    an = np.asarray(anchors, np.float64)[None, :, :]
    inter = np.minimum(wh[..., 0], an[..., 0]) * np.minimum(wh[..., 1], an[..., 1])
    union = wh[..., 0] * wh[..., 1] + an[..., 0] * an[..., 1] - inter
    return inter / np.maximum(union, 1e-12)


def kmeans_anchors(wh: np.ndarray, k: int = 6, seed: int = 0, iters: int = 300, restarts: int = 5) -> np.ndarray:
    """Cluster box sizes float[N,2] (w, h in pixels) into ``k`` anchors with distance 1 - IoU.

    k-means++ style seeding, median update (as darknet's ``calc_anchors``), best of
    ``restarts`` runs by mean best IoU. Returns float32[k,2] sorted by area (small first).
    """
    wh = np.asarray(wh, np.float64).reshape(-1, 2)
    wh = wh[(wh[:, 0] > 0) & (wh[:, 1] > 0)]
    if len(wh) < k:
        raise ValueError(f"need at least {k} boxes for {k} anchors, got {len(wh)}")
    rng = np.random.default_rng(seed)
    best, best_fit = None, -1.0
    for _ in range(restarts):
        centres = [wh[rng.integers(len(wh))]]
        while len(centres) < k:
            d = 1.0 - wh_iou(wh, np.array(centres)).max(1)
            p = d ** 2
            centres.append(wh[rng.choice(len(wh), p=p / p.sum())] if p.sum() > 0 else wh[rng.integers(len(wh))])
        centres = np.array(centres)
        assign = None
        for _ in range(iters):
            new_assign = wh_iou(wh, centres).argmax(1)
            if assign is not None and np.array_equal(new_assign, assign):
                break
            assign = new_assign
            for j in range(k):
                members = wh[assign == j]
                if len(members):
                    centres[j] = np.median(members, axis=0)
        fit = float(wh_iou(wh, centres).max(1).mean())
        if fit > best_fit:
            best, best_fit = centres.copy(), fit
    order = np.argsort(best[:, 0] * best[:, 1])
    return best[order].astype(np.float32)


def mean_best_iou(wh: np.ndarray, anchors: np.ndarray) -> float:
    """Average over boxes of the best anchor IoU (the usual anchor fitness, 0..1)."""
    return float(wh_iou(wh, anchors).max(1).mean())


def split_anchors(anchors: np.ndarray, groups: int = 2) -> list[list[list[float]]]:
    """Sorted anchors float[K,2] -> ``groups`` lists (smallest first), for the heads from fine to coarse."""
    anchors = np.asarray(anchors, np.float32)
    order = np.argsort(anchors[:, 0] * anchors[:, 1])
    parts = np.array_split(anchors[order], groups)
    return [[[round(float(w), 2), round(float(h), 2)] for w, h in part] for part in parts]
