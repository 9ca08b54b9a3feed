"""Camera-motion compensation: the estimator on real and generated frames, the warp of
Kalman states, the wire's warp field, the grabber's warps of a panning video, and tracking
a shaking, panning generated scene with and without compensation."""
from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest
import zmq

from base.types import Detections
from detector.camera_motion import CameraMotion, image_files, warps_of_frames
from tests.conftest import require
from tracker import Tracker, TrackerConfig
from tracker import kalman as K
from tracker.kalman_reference import FilterpyKalman
from vidtrack.evaluation import evaluate_rows
from vidtrack.synthetic import SceneConfig, write_scene
from wire import messages
from workers.grabber import Grabber, GrabberSpec, SourceConfig
from workers.offline import track_sequence


def _rigid(angle_deg: float, tx: float, ty: float, centre, scale: float = 1.0) -> np.ndarray:
    m = cv2.getRotationMatrix2D(centre, angle_deg, scale)
    m[:, 2] += (tx, ty)
    return m


def _grid_error(est: np.ndarray, true: np.ndarray, width: int, height: int) -> float:
    """Largest distance (pixels) between where the two warps take a 5x5 grid of the frame."""
    g = np.stack(np.meshgrid(np.linspace(0, width, 5), np.linspace(0, height, 5)), -1).reshape(-1, 2)
    return float(np.abs(g @ est[:, :2].T + est[:, 2] - (g @ true[:, :2].T + true[:, 2])).max())


# ---------------------------------------------------------------- the estimator
@pytest.mark.parametrize("size", [(640, 480), (1920, 1080)], ids=["640x480", "1080p"])
def test_a_real_frame_moved_by_a_known_warp_is_measured(shared_data, size):
    image = cv2.imread(str(require(shared_data / "mot" / "TUD-Campus" / "img1" / "000001.jpg")))
    image = cv2.resize(image, size)
    w, h = size
    true = _rigid(0.5, 0.01 * w, -0.005 * h, (w / 2, h / 2), 1.01)
    moved = cv2.warpAffine(image, true, size)
    motion = CameraMotion()
    np.testing.assert_array_equal(motion.estimate(image), np.eye(2, 3))  # the first frame
    est = motion.estimate(moved)
    assert est.dtype == np.float32 and est.shape == (2, 3)
    # the borders warpAffine filled in black are corners too; away from them it is exact
    assert _grid_error(est, true, w * 0.8, h * 0.8) < 0.01 * w
    np.testing.assert_allclose(est[:, :2], true[:, :2], atol=2e-3)
    assert motion.failures == 0


def test_identity_for_a_still_frame_a_blank_frame_and_after_reset(shared_data):
    image = cv2.imread(str(require(shared_data / "mot" / "TUD-Campus" / "img1" / "000001.jpg")))
    motion = CameraMotion()
    motion.estimate(image)
    np.testing.assert_allclose(motion.estimate(image), np.eye(2, 3), atol=1e-3)
    blank = np.full_like(image, 128)
    np.testing.assert_array_equal(motion.estimate(blank), np.eye(2, 3))  # no corners to follow
    np.testing.assert_array_equal(motion.estimate(image), np.eye(2, 3))  # from a frame without corners
    failures = motion.failures
    motion.reset()
    shifted = np.roll(image, 7, axis=1)
    np.testing.assert_array_equal(motion.estimate(shifted), np.eye(2, 3))  # first after a rewind
    assert motion.failures == failures
    np.testing.assert_array_equal(motion.estimate(cv2.resize(image, (320, 240))), np.eye(2, 3))  # a new size


def test_a_generated_panning_shaking_scene_matches_its_camera_file(tmp_path):
    cfg = SceneConfig(seed=1, num_frames=40, camera_pan=(3.0, 0.5), camera_shake=1.5)
    write_scene(tmp_path, cfg, write_images=True)
    warps = warps_of_frames(image_files(tmp_path / "img1"))
    true = {int(r[0]): np.array(r[1:]).reshape(2, 3) for r in np.loadtxt(tmp_path / "camera.txt", delimiter=",")}
    assert sorted(warps) == sorted(true) == list(range(1, 41))
    errors = [_grid_error(warps[f], true[f], cfg.width, cfg.height) for f in range(2, 41)]
    moving = [f for f in range(2, 41) if np.abs(true[f][:, 2]).max() >= 1]
    assert len(moving) > 20
    assert np.median(errors) < 0.5 and max(errors) < 2.0


# ---------------------------------------------------------------- the tracker's side
def _states(n: int = 4, seed: int = 0) -> K.BatchedKalman:
    rng = np.random.default_rng(seed)
    kf = K.BatchedKalman()
    z = np.column_stack([rng.uniform(50, 600, n), rng.uniform(50, 400, n), rng.uniform(0.3, 0.6, n),
                         rng.uniform(40, 200, n)])
    kf.add(z)
    kf.predict(1)
    kf.update(np.arange(n), z + rng.normal(0, 3, z.shape))  # velocities and correlations
    kf.predict(1)
    return kf


def test_warp_states_moves_boxes_as_the_image_moves():
    kf = _states()
    warp = _rigid(2.0, 12.0, -5.0, (320, 240), 1.05)
    mean, cov = K.warp_states(kf.mean, kf.cov, warp)
    # by hand: box corners through the warp, the centre is where the centre goes, the height
    # scales by the warp's scale, the aspect stays; velocities turn with the image
    boxes = K.xyah_to_xyxy(kf.mean[:, :4])
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    np.testing.assert_allclose(mean[:, :2], centres @ warp[:, :2].T + warp[:, 2], atol=1e-9)
    np.testing.assert_allclose(mean[:, 3], kf.mean[:, 3] * 1.05, rtol=1e-9)
    np.testing.assert_allclose(mean[:, 2], kf.mean[:, 2])
    np.testing.assert_allclose(mean[:, 4:6], kf.mean[:, 4:6] @ warp[:, :2].T, atol=1e-9)
    np.testing.assert_allclose(mean[:, 7], kf.mean[:, 7] * 1.05, rtol=1e-9)
    # covariance: the position block turns like the points (sampled), stays symmetric PD
    J = K.warp_matrix(warp)[0]
    np.testing.assert_allclose(cov, J @ kf.cov @ J.T)
    np.testing.assert_allclose(cov, np.swapaxes(cov, 1, 2), atol=1e-9)
    assert (np.linalg.eigvalsh(cov) > 0).all()
    np.testing.assert_allclose(K.warp_xyah(kf.mean[:, :4], warp), mean[:, :4], atol=1e-9)
    ref = FilterpyKalman()
    ref.add(kf.mean[:, :4])
    ref.set_state(np.arange(len(kf)), kf.mean, kf.cov)
    ref.warp(warp)
    kf.warp(warp)
    np.testing.assert_allclose(ref.mean, kf.mean, atol=1e-9)
    np.testing.assert_allclose(ref.cov, kf.cov, atol=1e-9)


def test_an_identity_warp_changes_nothing():
    kf = _states()
    mean, cov = K.warp_states(kf.mean, kf.cov, np.eye(2, 3))
    np.testing.assert_array_equal(mean, kf.mean)
    np.testing.assert_array_equal(cov, kf.cov)
    boxes = [[100, 100, 140, 200], [300, 120, 330, 190]]
    runs = []
    for warp in (None, np.eye(2, 3, dtype=np.float32)):
        tracker = Tracker(TrackerConfig(direction_weight=0.2, oru=True))
        out = []
        for f in range(1, 6):
            dets = Detections(np.array(boxes, np.float32) + 3 * f, [0.9, 0.9], [0, 0])
            out.append([(s.track_id, s.box.tolist()) for s in tracker.update(dets, f, warp)])
        runs.append(out)
    assert runs[0] == runs[1]


def test_a_warp_moves_every_part_of_a_track_with_the_image():
    step, box = np.array([4, 0, 4, 0], np.float32), np.array([[100, 100, 140, 200]], np.float32)
    shift = np.array([[1, 0, 30.0], [0, 1, -8.0]])  # the camera moved by (-30, +8)

    def two_frames():
        tracker = Tracker(TrackerConfig(direction_weight=0.2, oru=True, init_s=0))
        for f in (1, 2):
            tracker.update(Detections(box + step * (f - 1), [0.9], [0]), f)
        return tracker

    tracker = two_frames()
    table = tracker.table
    mean, saved, last_z = table.kf.mean.copy(), table.saved_mean.copy(), table.tracks[0].last_z.copy()
    origins = table.directions.centres[0, -2:].copy()
    table.warp(shift)
    np.testing.assert_allclose(table.kf.mean[0, :2], mean[0, :2] + [30, -8])
    np.testing.assert_allclose(table.kf.mean[0, 2:], mean[0, 2:])
    np.testing.assert_allclose(table.saved_mean[0, :2], saved[0, :2] + [30, -8])
    np.testing.assert_allclose(table.tracks[0].last_z, last_z + [30, -8, 0, 0])
    np.testing.assert_allclose(table.directions.centres[0, -2:], origins + [30, -8])

    # the object walks on at 4 px/frame; in the image of frame 3 it is also 30 px right, 8 up
    seen = Detections(box + 2 * step + [30, -8, 30, -8], [0.9], [0])
    tracker = two_frames()
    snaps = tracker.update(seen, 3, shift)
    assert [(s.track_id, s.time_since_update) for s in snaps] == [(1, 0)]
    np.testing.assert_allclose(tracker.table.directions.direction[0], [1, 0], atol=1e-3)  # still walking right
    tracker = two_frames()
    assert [s.track_id for s in tracker.update(seen, 3) if s.time_since_update == 0] == [2]  # lost without


# ---------------------------------------------------------------- tracking a moving camera
def _scene_detections(cfg: SceneConfig, seed: int):
    """(gt rows float[N,10], {frame: Detections}, {frame: estimated warp}) of a generated scene:
    every gt box seen at >= 20 % visibility kept with p = 0.9, jittered by 3 % of its size,
    scored 0.35 + 0.6 * visibility (bench/camera_motion.py's scene_detections)."""
    from bench.camera_motion import scene_detections

    gt, frames, estimated, _true = scene_detections(cfg, seed)
    return gt, frames, estimated


def _scores(gt: np.ndarray, rows: list[tuple]) -> dict:
    res = np.array([[f, i, x1, y1, x2 - x1, y2 - y1, s, -1, -1, -1] for f, i, x1, y1, x2, y2, s in rows], float)
    return evaluate_rows(gt, res)


def test_compensation_keeps_the_ids_that_a_shaking_panning_camera_makes_the_tracker_lose():
    # small people, a 2 px/frame pan and a 6 px shake: without compensation the predicted
    # boxes miss their detections whenever the camera jumps (measured with the defaults:
    # IDF1 0.70, 22 id switches; compensated 0.95 and 2)
    cfg = SceneConfig(seed=4, num_frames=120, max_objects=8, size_scale=0.6, camera_pan=(2.0, 0.5),
                      camera_shake=6.0)
    gt, frames, warps = _scene_detections(cfg, seed=4)
    assert sum(not np.array_equal(w, np.eye(2, 3)) for w in warps.values()) > 100
    config = TrackerConfig()
    plain = _scores(gt, track_sequence(frames, config, cfg.num_frames)[0])
    compensated = _scores(gt, track_sequence(frames, config, cfg.num_frames, warps=warps)[0])
    assert compensated["IDF1"] >= plain["IDF1"] + 0.08
    assert compensated["IDSW"] <= plain["IDSW"] / 3
    assert compensated["HOTA"] >= plain["HOTA"] + 0.08


# ---------------------------------------------------------------- the wire and the grabber
def test_the_warp_round_trips_and_a_forged_one_is_a_protocol_error():
    warp = np.array([[0.999, -0.02, 12.5], [0.02, 0.999, -3.25]], np.float32)
    det = messages.DetectionsMessage("cam", 3, 3, 0.1, Detections([[0, 0, 5, 5]], [0.9], [0]), warp)
    parts = [bytes(memoryview(p)) for p in messages.encode(det)]
    decoded = messages.decode(parts)
    np.testing.assert_array_equal(decoded.warp, warp)
    assert decoded.warp.dtype == np.float32
    plain = messages.decode([bytes(memoryview(p)) for p in messages.encode(
        messages.DetectionsMessage("cam", 3, 3, 0.1, Detections.empty()))])
    np.testing.assert_array_equal(plain.warp, np.eye(2, 3))
    import json

    header = json.loads(parts[0])
    for bad in ([[1, 0, 0]], [[1, 0, 0], [0, 1]], [[1, 0, "x"], [0, 1, 0]], [[1, 0, 0], [0, True, 0]],
                [[float("nan"), 0, 0], [0, 1, 0]], [[1, 0, 1e7], [0, 1, 0]], [[0, 0, 0], [0, 0, 0]],
                [[-1, 0, 0], [0, 1, 0]], [[10**400, 0, 0], [0, 1, 0]], "identity", None):
        forged = [json.dumps({**header, "warp": bad}).encode(), *parts[1:]]
        with pytest.raises(messages.ProtocolError, match="warp"):
            messages.decode(forged)
    with pytest.raises(messages.ProtocolError, match="warp"):
        messages.encode(messages.DetectionsMessage("cam", 3, 3, 0.1, Detections.empty(),
                                                   np.array([[np.inf, 0, 0], [0, 1, 0]], np.float32)))


def test_the_grabber_sends_the_camera_motion_of_a_panning_video(tmp_path):
    cfg = SceneConfig(seed=2, num_frames=30, camera_pan=(4.0, 0.0), camera_shake=1.0)
    write_scene(tmp_path, cfg)
    true = {int(r[0]) - 1: np.array(r[1:]).reshape(2, 3) for r in np.loadtxt(tmp_path / "camera.txt", delimiter=",")}
    endpoint = f"ipc://{tmp_path}/f0"
    warps = {}
    for method in ("sparse_flow", "none"):
        release = threading.Event()
        grabber = Grabber(GrabberSpec(SourceConfig(str(tmp_path / "video.mp4"), "pan", camera_motion=method),
                                      endpoint, hwm=4), release=release)
        thread = threading.Thread(target=grabber.run)
        thread.start()
        warps[method] = _receive_warps(endpoint)
        release.set()
        thread.join(10)
    est = warps["sparse_flow"]
    assert sorted(est) == list(range(30))
    np.testing.assert_array_equal(est[0], np.eye(2, 3))
    errors = [_grid_error(est[i], true[i], cfg.width, cfg.height) for i in range(1, 30)]
    assert np.median(errors) < 1.0  # through mp4v compression
    assert all(np.array_equal(w, np.eye(2, 3)) for w in warps["none"].values()) and len(warps["none"]) == 30


def _receive_warps(endpoint: str, timeout_s: float = 30.0) -> dict[int, np.ndarray]:
    """{frame index: warp} of the frame messages until stream.ended."""
    sock = zmq.Context.instance().socket(zmq.PULL)
    sock.connect(endpoint)
    out = {}
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if not sock.poll(200):
                continue
            message = messages.decode(sock.recv_multipart())
            if isinstance(message, messages.FrameMessage):
                out[message.frame.index] = message.warp
            elif isinstance(message, messages.StreamEnded):
                break
    finally:
        sock.close(0)
    return out


def test_a_bad_camera_motion_setting_names_its_key():
    from base.errors import ConfigError
    from base.settings import from_table

    with pytest.raises(ConfigError, match="camera_motion"):
        from_table(SourceConfig, {"url": "v.mp4", "camera_motion": "ecc"}, "sources[0]")


def test_track_detections_estimates_the_camera_motion_from_the_frames(shared_data, tmp_path, capsys):
    from base.mot import read_mot
    from vidtrack.cli import main

    seq = shared_data / "mot" / "TUD-Campus"
    det = require(shared_data / "mot" / "sort-frcnn-det" / "TUD-Campus" / "det.txt")
    outputs = {}
    for method in ("sparse_flow", "none"):
        out = tmp_path / f"{method}.txt"
        assert main(["track-detections", str(det), "--frames", str(require(seq / "img1")), "--embedder", "none",
                     "--camera-motion", method, "-o", str(out)]) == 0
        outputs[method] = read_mot(out)
    # a still camera: the same tracks, boxes moved by the estimate's fraction of a pixel at most
    assert outputs["sparse_flow"].shape == outputs["none"].shape
    np.testing.assert_array_equal(outputs["sparse_flow"][:, :2], outputs["none"][:, :2])
    moved = np.abs(outputs["sparse_flow"][:, 2:6] - outputs["none"][:, 2:6])
    assert 0 < moved.max() < 3
    assert main(["track-detections", str(det), "--camera-motion", "sparse_flow", "-o", str(tmp_path / "x.txt")]) != 0
    assert "--camera-motion needs the images" in capsys.readouterr().err
