"""Class-aware non-maximum suppression.

Boxes of different classes never suppress each other: each class is shifted to its own
region of the plane (the "coordinate offset" trick) and one greedy NMS runs over all.
:func:`nms` runs OpenCV's C++ ``cv2.dnn.NMSBoxesBatched`` (20-50x faster than the numpy
loop for 50-300 boxes: bench/detector_speed.py), :func:`nms_reference` is the numpy
version that tests hold it to.
"""
from __future__ import annotations

import cv2
import numpy as np

from base.geometry import iou_matrix


def nms(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray | None = None,
        iou_threshold: float = 0.45, max_detections: int | None = 300) -> np.ndarray:
    """Greedy class-aware NMS, same contract as :func:`nms_reference`, in OpenCV's C++.

    Falls back to the numpy version for inputs OpenCV would read differently: boxes with
    no positive width or height, or non-finite values."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scores = np.asarray(scores, np.float32).reshape(-1)
    n = len(boxes)
    if n == 0:
        return np.zeros(0, np.int64)
    wh = boxes[:, 2:] - boxes[:, :2]
    if not (np.all(wh > 0) and np.isfinite(boxes).all() and np.isfinite(scores).all()):
        return nms_reference(boxes, scores, class_ids, iou_threshold, max_detections)
    xywh = np.concatenate([boxes[:, :2], wh], axis=1).astype(np.float64)
    classes = np.zeros(n, np.int32) if class_ids is None else np.asarray(class_ids).reshape(-1).astype(np.int32)
    # score threshold below any score: every box takes part (OpenCV keeps scores > threshold)
    keep = np.asarray(cv2.dnn.NMSBoxesBatched(xywh, scores, classes, -1.0, float(iou_threshold)),
                      np.int64).reshape(-1)
    return keep if max_detections is None else keep[:int(max_detections)]


def nms_reference(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray | None = None,
                  iou_threshold: float = 0.45, max_detections: int | None = 300) -> np.ndarray:
    """Greedy class-aware NMS (numpy).

    boxes float[N,4] x1y1x2y2 (any units), scores float[N], class_ids int[N] (None = one class).
    A box is dropped when its IoU with a higher-scoring kept box of the same class is
    > ``iou_threshold``. Returns int64[K] indices into the inputs, sorted by descending score,
    K <= ``max_detections``.
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scores = np.asarray(scores, np.float32).reshape(-1)
    n = len(boxes)
    if n == 0:
        return np.zeros(0, np.int64)
    if class_ids is not None:
        class_ids = np.asarray(class_ids).reshape(-1)
        if class_ids.size and class_ids.max() != class_ids.min():
            # shift each class far away from the others so they cannot overlap
            span = float(np.max(np.abs(boxes))) * 2.0 + 1.0
            boxes = boxes + (class_ids.astype(np.float32) * span)[:, None]
    order = np.argsort(-scores, kind="stable")
    boxes = boxes[order]
    limit = n if max_detections is None else int(max_detections)
    alive = np.ones(n, bool)
    keep = []
    for i in range(n):
        if not alive[i]:
            continue
        keep.append(i)
        if len(keep) >= limit:
            break
        rest = np.nonzero(alive[i + 1:])[0] + i + 1
        if rest.size == 0:
            break
        iou = iou_matrix(boxes[i:i + 1], boxes[rest])[0]
        alive[rest[iou > iou_threshold]] = False
    return order[np.asarray(keep, np.int64)]
