"""k-means anchors with the IoU distance."""
import numpy as np
import pytest

from detector.training.anchors import kmeans_anchors, mean_best_iou, split_anchors, wh_iou


def test_wh_iou():
    iou = wh_iou(np.array([[10, 10], [20, 5]]), np.array([[10, 10], [5, 20]]))
    np.testing.assert_allclose(iou, [[1.0, 50 / 150], [50 / 150, 25 / 175]])


def test_recovers_clusters():
    rng = np.random.default_rng(0)
    true = np.array([[8, 20], [30, 12], [60, 60]], float)
    wh = np.concatenate([c * rng.uniform(0.93, 1.07, (300, 2)) for c in true])
    anchors = kmeans_anchors(wh, 3, seed=1)
    np.testing.assert_allclose(anchors, true, rtol=0.06)
    assert mean_best_iou(wh, anchors) > 0.85


def test_better_than_random_anchors_and_sorted():
    rng = np.random.default_rng(3)
    wh = np.exp(rng.normal([3.0, 3.5], [0.6, 0.5], (2000, 2)))
    anchors = kmeans_anchors(wh, 6, seed=0)
    areas = anchors[:, 0] * anchors[:, 1]
    assert np.all(np.diff(areas) >= 0)
    rand = wh[rng.choice(len(wh), 6, replace=False)]
    assert mean_best_iou(wh, anchors) > mean_best_iou(wh, rand)
    groups = split_anchors(anchors, 2)
    assert [len(g) for g in groups] == [3, 3]
    assert groups[0][2][0] * groups[0][2][1] <= groups[1][0][0] * groups[1][0][1] + 1e-3


def test_too_few_boxes():
    with pytest.raises(ValueError):
        kmeans_anchors(np.ones((3, 2)), 6)
