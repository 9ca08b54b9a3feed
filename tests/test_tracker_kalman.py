"""Kalman filter: hand-worked numbers, batched vs filterpy, real dt, gating, and at 25
frames/s the per-frame DeepSORT filter it restates in seconds. Steps are in seconds;
per-frame numbers are converted at FPS = 25 (a velocity of v px/frame is 25 v px/s)."""
import numpy as np
import pytest

from tracker import kalman as K

FPS = 25.0


def test_initiate_and_predict_match_hand_worked_numbers():
    # box 100x200 at (50, 100): cx=100, cy=200, a=0.5, h=200
    z = K.xyxy_to_xyah(np.array([[50, 100, 150, 300]]))
    np.testing.assert_allclose(z, [[100, 200, 0.5, 200]])
    mean, cov = K.initiate(z)
    # std position = 2 * h / 20 = 20 -> var 400; std velocity = 10 * h / 160 = 12.5 px/frame
    # -> var 156.25 (px/frame)^2 = 156.25 * 25^2 (px/s)^2; aspect velocity 1e-5 / frame
    v = FPS**2  # (px/frame)^2 -> (px/s)^2
    np.testing.assert_allclose(np.diag(cov[0]), [400, 400, 1e-4, 400, 156.25 * v, 156.25 * v, 1e-10 * v, 156.25 * v])
    mean[0, 4] = 3.0 * FPS  # vx = 3 px/frame
    m2, c2 = K.predict(mean, cov, dt=2 / FPS)  # two frames
    assert m2[0, 0] == pytest.approx(106.0)  # cx + 2 * vx
    # var(cx) = 400 + 2^2 * 156.25 + q*dt with q = (200/20)^2 = 100 per frame -> 400 + 625 + 200
    assert c2[0, 0, 0] == pytest.approx(1225.0)
    # cov(cx, vx) = dt * var(vx) = 312.5 ; var(vx) = 156.25 + (200/160)^2 * 2 = 159.375 (per frame units)
    assert c2[0, 0, 4] == pytest.approx(312.5 * FPS)
    assert c2[0, 4, 4] == pytest.approx(159.375 * v)


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
        a.predict(dt / FPS)
        b.predict(dt / FPS)
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
    mean[0, 4:6] = [2.0 * FPS, -1.0 * FPS]  # px/s
    m5, c5 = K.predict(mean, cov, dt=5 / FPS)
    m1, c1 = K.predict(mean, cov, dt=1 / FPS)
    np.testing.assert_allclose(m5[0, :2], [110.0, 195.0])
    np.testing.assert_allclose(m1[0, :2], [102.0, 199.0])
    assert c5[0, 0, 0] > c1[0, 0, 0]


def test_gating_rejects_far_detection():
    z = np.array([[100.0, 200.0, 0.5, 200.0]])
    mean, cov = K.initiate(z)
    for _ in range(5):  # settle the filter
        mean, cov = K.predict(mean, cov, 1 / FPS)
        mean, cov = K.update(mean, cov, z)
    mean, cov = K.predict(mean, cov, 1 / FPS)
    dets = np.array([[102.0, 201.0, 0.5, 198.0], [300.0, 200.0, 0.5, 200.0]])
    d = K.gating_distance(mean, cov, dets)
    assert d.shape == (1, 2)
    assert d[0, 0] < K.CHI2INV95[4] < d[0, 1]
    dp = K.gating_distance(mean, cov, dets, only_position=True)
    assert dp[0, 0] < K.CHI2INV95[2] < dp[0, 1]


@pytest.mark.parametrize("aspect, gain", [
    # random walk with process variance q per frame (process std^2 / 25 at 25 fps) and
    # measurement variance r: the steady-state prior variance solves P^2 - q P - q r = 0,
    # gain = P / (P + r)
    (K.AspectNoise(0.25, 0.05), (np.sqrt(5) - 1) / 2),  # q = r: the golden ratio, at any scale
    (K.AspectNoise(1.5, 0.3), (np.sqrt(5) - 1) / 2),
    (K.DEEPSORT_ASPECT, 0.0951),  # q = 1e-4, r = 1e-2: P = 0.00105125, gain 0.0951
])
def test_aspect_gain_settles_to_the_hand_worked_value(aspect, gain):
    z = np.array([[100.0, 200.0, 0.5, 200.0]])
    mean, cov = K.initiate(z)
    for _ in range(300):
        mean, cov = K.predict(mean, cov, 1 / FPS, aspect)
        prior = cov[0, 2, 2]
        mean, cov = K.update(mean, cov, z, aspect)
    assert prior / (prior + aspect.measurement**2) == pytest.approx(gain, abs=1e-3)
    # a detection whose aspect jumps by 0.1 moves the state by about gain * 0.1
    m, _ = K.update(*K.predict(mean, cov, 1 / FPS, aspect), np.array([[100.0, 200.0, 0.6, 200.0]]), aspect)
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


def _per_frame_deepsort(z: np.ndarray, steps: list, aspect_process: float = 0.05, aspect_measurement: float = 0.05):
    """The filter as it was before it was restated in seconds: DeepSORT's per-frame
    constants (velocities in px/frame, Q per frame), in plain matrix form, one track."""
    h = z[3]
    x = np.concatenate([z, np.zeros(4)])
    P = np.diag(np.array([2 * h / 20, 2 * h / 20, 1e-2, 2 * h / 20, 10 * h / 160, 10 * h / 160, 1e-5, 10 * h / 160]) ** 2)
    H = np.eye(4, 8)
    for dt, zk in steps:
        F = np.eye(8)
        F[:4, 4:] = dt * np.eye(4)
        hq = x[3]
        q = np.array([hq / 20, hq / 20, aspect_process, hq / 20, hq / 160, hq / 160, 1e-5, hq / 160]) ** 2 * dt
        x, P = F @ x, F @ P @ F.T + np.diag(q)
        if zk is not None:
            R = np.diag(np.array([x[3] / 20, x[3] / 20, aspect_measurement, x[3] / 20]) ** 2)
            K_ = P @ H.T @ np.linalg.inv(H @ P @ H.T + R)
            x, P = x + K_ @ (zk - H @ x), P - K_ @ H @ P
    return x, P


@pytest.mark.parametrize("kind", ["batched", "filterpy"])
def test_at_25_fps_the_filter_equals_the_per_frame_deepsort_numbers(kind):
    """Positions and their covariances equal the per-frame filter's; velocities are 25 x its
    px/frame, their (co)variances scaled to match: the same filter in other units."""
    rng = np.random.default_rng(3)
    z0 = np.array([300.0, 200.0, 0.45, 150.0])
    steps, truth = [], z0.copy()
    for _ in range(30):
        dt = int(rng.integers(1, 4))
        truth = truth + dt * np.array([3.0, -1.0, 0.001, 0.5])
        steps.append((dt, truth + rng.normal(0, 1, 4) * [2, 2, 0.01, 2] if rng.random() < 0.8 else None))
    x_ref, P_ref = _per_frame_deepsort(z0, steps)
    store = K.make_store(kind, K.DEFAULT_ASPECT)
    store.add(z0[None])
    for dt, zk in steps:
        store.predict(dt / FPS)
        if zk is not None:
            store.update(np.array([0]), zk[None])
    units = np.array([1.0] * 4 + [FPS] * 4)  # per frame -> per second
    np.testing.assert_allclose(store.mean[0], x_ref * units, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(store.cov[0], P_ref * np.outer(units, units), rtol=1e-9, atol=1e-9)


def test_the_same_motion_at_another_frame_rate_predicts_the_same_place():
    """Seconds, not frames: 4 frames at 30 fps and 1 frame at 7.5 fps are one time step."""
    z = np.array([[100.0, 200.0, 0.5, 200.0]])
    mean, cov = K.initiate(z)
    mean[0, 4] = 60.0  # px/s
    m30, c30 = mean, cov
    for _ in range(4):
        m30, c30 = K.predict(m30, c30, 1 / 30)
    m7, c7 = K.predict(mean, cov, 1 / 7.5)
    np.testing.assert_allclose(m30, m7)
    assert m7[0, 0] == pytest.approx(108.0)
    np.testing.assert_allclose(np.diag(c30[0])[4:], np.diag(c7[0])[4:])  # velocity noise grows with time alone
