"""Class-aware NMS."""
import numpy as np

import pytest

from base.geometry import iou_matrix
from detector.nms import nms, nms_reference


def _brute_nms(boxes, scores, classes, thr):
    order = np.argsort(-scores, kind="stable")
    keep = []
    for i in order:
        if all(classes[i] != classes[k] or iou_matrix(boxes[i:i + 1], boxes[k:k + 1])[0, 0] <= thr for k in keep):
            keep.append(i)
    return np.array(keep)


def test_iou_matrix_known_values():
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    np.testing.assert_allclose(iou_matrix(a, b), [[1.0, 50 / 150, 0.0]], rtol=1e-6)


def test_same_class_suppressed_other_class_kept():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    classes = np.array([0, 0, 1, 0])
    keep = nms(boxes, scores, classes, 0.45)
    assert keep.tolist() == [0, 2, 3]
    # class-agnostic: box 2 overlaps box 0 fully and goes
    assert nms(boxes, scores, None, 0.45).tolist() == [0, 3]


def test_sorted_by_score_and_capped():
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 1000, (200, 2))
    boxes = np.concatenate([xy, xy + 5], 1).astype(np.float32)  # tiny, mostly disjoint
    scores = rng.uniform(0, 1, 200).astype(np.float32)
    keep = nms(boxes, scores, np.zeros(200, int), 0.5, max_detections=20)
    assert len(keep) == 20
    assert np.all(np.diff(scores[keep]) <= 0)
    assert scores[keep[0]] == scores.max()


def test_matches_brute_force_on_random_clusters():
    rng = np.random.default_rng(2)
    centres = rng.uniform(0, 300, (15, 2))
    pts = centres[rng.integers(0, 15, 150)] + rng.normal(0, 6, (150, 2))
    wh = rng.uniform(20, 40, (150, 2))
    boxes = np.concatenate([pts - wh / 2, pts + wh / 2], 1).astype(np.float32)
    scores = rng.uniform(0, 1, 150).astype(np.float32)
    classes = rng.integers(0, 3, 150)
    for thr in (0.3, 0.5, 0.7):
        for fn in (nms, nms_reference):
            keep = fn(boxes, scores, classes, thr, max_detections=None)
            np.testing.assert_array_equal(keep, _brute_nms(boxes, scores, classes, thr))


@pytest.mark.parametrize("seed", range(5))
def test_opencv_nms_equals_numpy_reference(seed):
    """The OpenCV path keeps the same boxes in the same order as the numpy reference,
    with ties in score, a cap, one class or many, and a degenerate box (numpy fallback)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    centres = rng.uniform(0, 600, (max(1, n // 8), 2))
    pts = centres[rng.integers(0, len(centres), n)] + rng.normal(0, 8, (n, 2))
    wh = rng.uniform(5, 80, (n, 2))
    boxes = np.concatenate([pts - wh / 2, pts + wh / 2], 1).astype(np.float32)
    scores = np.round(rng.uniform(0, 1, n), 2).astype(np.float32)  # rounded: many ties
    classes = rng.integers(0, 4, n)
    for cls in (classes, None):
        for cap in (None, 10):
            np.testing.assert_array_equal(nms(boxes, scores, cls, 0.45, cap),
                                          nms_reference(boxes, scores, cls, 0.45, cap))
    boxes[0, 2] = boxes[0, 0]  # zero width: the numpy fallback
    np.testing.assert_array_equal(nms(boxes, scores, classes, 0.45, None),
                                  nms_reference(boxes, scores, classes, 0.45, None))


def test_empty():
    assert nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0)).shape == (0,)
    assert nms_reference(np.zeros((0, 4)), np.zeros(0), np.zeros(0)).shape == (0,)


def test_iou_matrix_keeps_precision_and_gives_inverted_boxes_zero():
    a = np.array([[0, 0, 10, 10], [10, 10, 0, 0]], np.float32)  # the second is inverted
    b = np.array([[5, 0, 15, 10], [0, 0, 0, 0]], np.float32)
    assert iou_matrix(a, b).dtype == np.float32 and iou_matrix(a.astype(np.float64), b).dtype == np.float64
    np.testing.assert_array_equal(iou_matrix(a, b), np.array([[50 / 150, 0], [0, 0]], np.float32))
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 2)
