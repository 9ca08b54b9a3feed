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
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.maximum(ix2 - ix1, 0) * np.maximum(iy2 - iy1, 0)
    # areas unclipped: an inverted box's is negative, but it intersects nothing (inter 0), so
    # its IoU is 0 / max(union, 1e-12) = 0 all the same; inter > 0 implies union > 0
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, dtype(1e-12))


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """float[N,4] pixel x, y, width, height -> float64[N,4] pixel x1,y1,x2,y2."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:4]], axis=1)
