"""Kalman filter: hand-worked numbers, batched vs filterpy, real dt, gating."""
import numpy as np
import pytest

from tracker import kalman as K


def test_initiate_and_predict_match_hand_worked_numbers():
    # box 100x200 at (50, 100): cx=100, cy=200, a=0.5, h=200
    z = K.xyxy_to_xyah(np.array([[50, 100, 150, 300]]))
    np.testing.assert_allclose(z, [[100, 200, 0.5, 200]])
    mean, cov = K.initiate(z)
    # std position = 2 * h / 20 = 20 -> var 400; std velocity = 10 * h / 160 = 12.5 -> var 156.25
    np.testing.assert_allclose(np.diag(cov[0]), [400, 400, 1e-4, 400, 156.25, 156.25, 1e-10, 156.25])
    mean[0, 4] = 3.0  # vx = 3 px/frame
    m2, c2 = K.predict(mean, cov, dt=2)
    assert m2[0, 0] == pytest.approx(106.0)  # cx + 2 * vx
    # var(cx) = 400 + 2^2 * 156.25 + q*dt with q = (200/20)^2 = 100 -> 400 + 625 + 200
    assert c2[0, 0, 0] == pytest.approx(1225.0)
    # cov(cx, vx) = dt * var(vx) = 312.5 ; var(vx) = 156.25 + (200/160)^2 * 2 = 159.375
    assert c2[0, 0, 4] == pytest.approx(312.5)
    assert c2[0, 4, 4] == pytest.approx(159.375)


def test_update_matches_scalar_kalman_gain():
    z = np.array([[100.0, 200.0, 0.5, 200.0]])
    mean, cov = K.initiate(z)
    m, c = K.update(mean, cov, np.array([[110.0, 200.0, 0.5, 200.0]]))
    # cx is decoupled: P=400, R=(200/20)^2=100 -> gain 0.8, posterior var 80
    assert m[0, 0] == pytest.approx(108.0)
    assert c[0, 0, 0] == pytest.approx(80.0)
    # velocity gets a gain too: cov(cx,vx)=0 at init so vx stays 0
    assert m[0, 4] == pytest.approx(0.0)


@pytest.mark.parametrize("aspect", [K.DEFAULT_ASPECT, K.DEEPSORT_ASPECT])
def test_batched_matches_filterpy_with_gaps(aspect):
    rng = np.random.default_rng(0)
    T = 6
    boxes = rng.uniform([0, 0, 20, 40], [500, 300, 80, 200], size=(T, 4))
    boxes[:, 2:] += boxes[:, :2]
    a, b = K.make_store("batched", aspect), K.make_store("filterpy", aspect)
    z0 = K.xyxy_to_xyah(boxes)
    a.add(z0)
    b.add(z0)
    vel = rng.normal(0, 3, size=(T, 4)) * [1, 1, 0.001, 0.2]
    truth = z0.copy()
    for step in range(40):
        dt = int(rng.integers(1, 4))  # frame gaps
        a.predict(dt)
        b.predict(dt)
        truth += dt * vel
        rows = np.flatnonzero(rng.random(T) < 0.7)
        z = truth[rows] + rng.normal(0, 2, size=(len(rows), 4)) * [1, 1, 0.001, 1]
        a.update(rows, z)
        b.update(rows, z)
        np.testing.assert_allclose(a.mean, b.mean, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(a.cov, b.cov, rtol=1e-9, atol=1e-9)
    keep = np.array([True, False, True, True, False, True])
    a.keep(keep)
    b.keep(keep)
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-9, atol=1e-9)


def test_gap_predict_equals_real_dt_motion():
    z = np.array([[100.0, 200.0, 0.5, 200.0]])
    mean, cov = K.initiate(z)
    mean[0, 4:6] = [2.0, -1.0]
    m5, c5 = K.predict(mean, cov, dt=5)
    m1, c1 = K.predict(mean, cov, dt=1)
    np.testing.assert_allclose(m5[0, :2], [110.0, 195.0])
    np.testing.assert_allclose(m1[0, :2], [102.0, 199.0])
    assert c5[0, 0, 0] > c1[0, 0, 0]


def test_gating_rejects_far_detection():
    z = np.array([[100.0, 200.0, 0.5, 200.0]])
    mean, cov = K.initiate(z)
    for _ in range(5):  # settle the filter
        mean, cov = K.predict(mean, cov, 1)
        mean, cov = K.update(mean, cov, z)
    mean, cov = K.predict(mean, cov, 1)
    dets = np.array([[102.0, 201.0, 0.5, 198.0], [300.0, 200.0, 0.5, 200.0]])
    d = K.gating_distance(mean, cov, dets)
    assert d.shape == (1, 2)
    assert d[0, 0] < K.CHI2INV95[4] < d[0, 1]
    dp = K.gating_distance(mean, cov, dets, only_position=True)
    assert dp[0, 0] < K.CHI2INV95[2] < dp[0, 1]


@pytest.mark.parametrize("aspect, gain", [
    # random walk with process variance q and measurement variance r: the steady-state prior
    # variance solves P^2 - q P - q r = 0, gain = P / (P + r)
    (K.AspectNoise(0.05, 0.05), (np.sqrt(5) - 1) / 2),  # q = r: the golden ratio, at any scale
    (K.AspectNoise(0.3, 0.3), (np.sqrt(5) - 1) / 2),
    (K.DEEPSORT_ASPECT, 0.0951),  # q = 1e-4, r = 1e-2: P = 0.00105125, gain 0.0951
])
def test_aspect_gain_settles_to_the_hand_worked_value(aspect, gain):
    z = np.array([[100.0, 200.0, 0.5, 200.0]])
    mean, cov = K.initiate(z)
    for _ in range(300):
        mean, cov = K.predict(mean, cov, 1, aspect)
        prior = cov[0, 2, 2]
        mean, cov = K.update(mean, cov, z, aspect)
    assert prior / (prior + aspect.measurement**2) == pytest.approx(gain, abs=1e-3)
    # a detection whose aspect jumps by 0.1 moves the state by about gain * 0.1
    m, _ = K.update(*K.predict(mean, cov, 1, aspect), np.array([[100.0, 200.0, 0.6, 200.0]]), aspect)
    assert m[0, 2] - 0.5 == pytest.approx(0.1 * gain, abs=2e-3)


def test_the_filterpy_reference_loads_only_when_asked_for():
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys, tracker\n"
            "tracker.Tracker()\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'filterpy' or m == 'tracker.kalman_reference'))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"
    assert type(K.make_store("filterpy")).__module__ == "tracker.kalman_reference"
