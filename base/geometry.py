"""Box geometry shared by the detector, the tracker and the evaluation: intersection over union."""
from __future__ import annotations

import numpy as np


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes a float[N,4] vs b float[M,4] (pixel x1,y1,x2,y2) -> float[N,M] in 0..1.

    Computed in the inputs' float type (float32 boxes give float32, anything else float64),
    so callers keep their precision. A box with no positive width or height overlaps nothing
    (IoU 0)."""
    a, b = np.asarray(a), np.asarray(b)
    dtype = np.float32 if a.dtype == np.float32 and b.dtype == np.float32 else np.float64
    a, b = a.astype(dtype, copy=False).reshape(-1, 4), b.astype(dtype, copy=False).reshape(-1, 4)
    bt = np.ascontiguousarray(b.T)  # [4, M]: each coordinate a contiguous row
    # in place where it can be: half the temporaries (200 x 200 boxes: 2.1 -> 1.0 ms)
    inter = np.minimum(a[:, 2:3], bt[2])
    inter -= np.maximum(a[:, 0:1], bt[0])
    np.maximum(inter, 0, out=inter)
    height = np.minimum(a[:, 3:4], bt[3])
    height -= np.maximum(a[:, 1:2], bt[1])
    np.maximum(height, 0, out=height)
    inter *= height
    # areas unclipped: an inverted box's is negative, but it intersects nothing (inter 0), so
    # its IoU is 0 / max(union, 1e-12) = 0 all the same; inter > 0 implies union > 0
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (bt[2] - bt[0]) * (bt[3] - bt[1])
    union = area_a[:, None] + area_b
    union -= inter
    np.maximum(union, dtype(1e-12), out=union)
    inter /= union
    return inter


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """float[N,4] pixel x, y, width, height -> float64[N,4] pixel x1,y1,x2,y2."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:4]], axis=1)
