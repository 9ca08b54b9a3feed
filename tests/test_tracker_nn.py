"""Appearance galleries, cosine distances and assignment helpers."""
import numpy as np
import pytest

from base.geometry import iou_matrix
from tracker.linear_assignment import matching_cascade, min_cost_matching
from tracker.nn_matching import AppearanceBank, Gallery, cosine_distance_matrix


def unit(v):
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_gallery_budget_keeps_recent_and_uses_nearest():
    g = Gallery(budget=2)
    for v in ([1, 0, 0], [0, 1, 0], [0, 0, 1]):
        g.add(unit(v))
    assert len(g) == 2
    d = cosine_distance_matrix([g, Gallery()], unit([[1, 0, 0], [0, 0, 1]]))
    np.testing.assert_allclose(d, [[1, 0], [2, 2]], atol=1e-6)  # [1,0,0] was pushed out


def test_ema_bank_matches_hand_computed_update():
    bank = AppearanceBank(ema=0.5)
    bank.append(2, None)
    bank.add(np.array([1]), unit([[1, 0]]))
    bank.add(np.array([1]), unit([[0, 1]]))
    np.testing.assert_allclose(bank.vectors[1], unit([0.5, 0.5]), atol=1e-6)
    d = bank.distance(np.array([0, 1]), unit([[1, 0]]))
    assert d[0, 0] == 2.0 and d[1, 0] == pytest.approx(1 - np.sqrt(0.5), abs=1e-6)
    bank.keep(np.array([False, True]))
    assert len(bank) == 1 and bank.distance(np.array([0]), unit([[0, 1]]))[0, 0] < 0.3


def test_budget_bank_equals_gallery_distances():
    rng = np.random.default_rng(0)
    feats = unit(rng.normal(size=(6, 16)))
    bank = AppearanceBank(budget=3)
    bank.append(2, feats[:2])
    bank.add(np.array([0, 1]), feats[2:4])
    g0, g1 = Gallery(3), Gallery(3)
    for f in (feats[0], feats[2]):
        g0.add(f)
    for f in (feats[1], feats[3]):
        g1.add(f)
    np.testing.assert_allclose(bank.distance(np.array([0, 1]), feats[4:]), cosine_distance_matrix([g0, g1], feats[4:]))


def test_iou_and_min_cost_matching():
    a = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float)
    b = np.array([[21, 20, 31, 30], [0, 5, 10, 15], [100, 100, 110, 110]], float)
    iou = iou_matrix(a, b)
    assert iou[0, 1] == pytest.approx(50 / 150) and iou[1, 0] == pytest.approx(90 / 110)
    m, ur, uc = min_cost_matching(1 - iou, max_cost=0.7)
    assert sorted(map(tuple, m)) == [(0, 1), (1, 0)] and list(uc) == [2] and len(ur) == 0
    m, ur, uc = min_cost_matching(1 - iou, max_cost=0.5)  # the 0.33-IoU pair is refused
    assert list(map(tuple, m)) == [(1, 0)] and list(ur) == [0]


def test_cascade_prefers_recently_seen_track():
    cost = np.array([[0.1], [0.05]])  # track 1 is closer but was missed for longer
    m, _, _ = matching_cascade(cost, 0.2, np.array([1, 3]), levels=30)
    assert list(map(tuple, m)) == [(0, 0)]
    m, _, _ = min_cost_matching(cost, 0.2)
    assert list(map(tuple, m)) == [(1, 0)]
