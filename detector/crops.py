"""Box crops of a batch of frames, and the row helpers every embedder shares."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np


def clip_boxes(boxes: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Round boxes outward to integer pixels and clip them to the frame.

    Returns (int32[N, 4] x1, y1, x2, y2 with x2 exclusive, bool[N] valid), where valid is
    False for boxes with no area inside the frame (or non-finite coordinates).
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    finite = np.isfinite(b).all(axis=1)
    b = np.where(np.isfinite(b), b, 0.0)
    x1 = np.clip(np.floor(b[:, 0]), 0, width)
    y1 = np.clip(np.floor(b[:, 1]), 0, height)
    x2 = np.clip(np.ceil(b[:, 2]), 0, width)
    y2 = np.clip(np.ceil(b[:, 3]), 0, height)
    out = np.stack([x1, y1, x2, y2], axis=1).astype(np.int32)
    valid = finite & (out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1])
    return out, valid


def crop_batch(
    images: Sequence[np.ndarray],
    boxes: Sequence[np.ndarray],
    size: tuple[int, int],
    interpolation: int = cv2.INTER_LINEAR,
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Cut every box out of its frame and resize it to ``size`` = (height, width).

    Returns (uint8[M, h, w, 3] BGR crops, bool[M] valid, counts per image) with
    M = sum of N_i. Invalid (zero-area) boxes give black crops.
    """
    if len(images) != len(boxes):
        raise ValueError(f"{len(images)} images but {len(boxes)} box arrays")
    h, w = int(size[0]), int(size[1])
    counts = [len(np.asarray(b).reshape(-1, 4)) for b in boxes]
    crops = np.zeros((sum(counts), h, w, 3), dtype=np.uint8)
    valid_all = np.zeros(sum(counts), dtype=bool)
    k = 0
    for image, b in zip(images, boxes):
        ib, valid = clip_boxes(b, image.shape[0], image.shape[1])
        for (x1, y1, x2, y2), ok in zip(ib, valid):
            if ok:
                crops[k] = cv2.resize(image[y1:y2, x1:x2], (w, h), interpolation=interpolation)
            k += 1
        valid_all[k - len(ib):k] = valid
    return crops, valid_all, counts


def split_rows(rows: np.ndarray, counts: Sequence[int]) -> list[np.ndarray]:
    """Split float32[M, D] into a list of float32[N_i, D] with N_i = counts[i]."""
    return list(np.split(rows, np.cumsum(counts)[:-1])) if len(counts) else []


def l2_normalise(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Row-wise L2 normalisation of float[M, D]; zero rows stay zero."""
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(n, eps)).astype(np.float32)
