"""bench/sequences.py: the tracker bench's cached pool, built for real into a temporary cache."""
import json

import numpy as np
import pytest

from base.geometry import iou_matrix, xywh_to_xyxy
from bench import opencv4_env
from bench.sequences import DEFAULT_SEEDS, HARD, build_pool, pool_specs


def test_generated_seeds_are_new():
    """Seeds 1-10 chose earlier defaults; the pool's scenes must not reuse them."""
    seeds = list(DEFAULT_SEEDS) + [s for s, _ in HARD]
    assert len(set(seeds)) == len(seeds) and min(seeds) > 10
    assert len(pool_specs()) == 12


def test_hard_low_fps_scene_is_built_once_with_frames_camera_and_embeddings(tmp_path):
    (seq,) = build_pool(tmp_path, only=["hard-23"], log=lambda *_: None)
    assert (seq.fps, seq.n_frames, seq.kind) == (7.5, 75, "hard")
    assert len(list(seq.img_dir.glob("*.jpg"))) == 75
    cam = np.loadtxt(seq.camera, delimiter=",", ndmin=2)
    assert cam.shape == (75, 7) and np.abs(cam[1:, 3]).max() > 0  # the camera pans
    det = np.loadtxt(seq.det, delimiter=",", ndmin=2)
    npy = np.load(seq.npy)
    assert npy.shape == (len(det), 138)
    np.testing.assert_allclose(npy[:, :10], det, atol=1e-3)
    np.testing.assert_allclose(np.linalg.norm(npy[:, 10:], axis=1), 1.0, atol=1e-4)
    gt = np.loadtxt(seq.gt, delimiter=",", ndmin=2)
    assert set(gt[:, 6]) <= {0, 1} and len(det) < len(gt)  # misses and low visibility dropped, few FPs
    hist, fused = np.load(seq.embeddings("histogram")), np.load(seq.embeddings("default+histogram"))
    assert hist.shape == (len(det), 10 + 72) and fused.shape == (len(det), 10 + 128 + 72)
    np.testing.assert_array_equal(hist[:, :10], npy[:, :10])
    # the fused cosine is the mean of the parts' cosines (FusedEmbedder's equal weights)
    cos = lambda a: a[:-1, 10:] @ a[1:, 10:].T  # noqa: E731
    np.testing.assert_allclose(cos(fused), (cos(npy) + cos(hist)) / 2, atol=1e-5)
    stamp = seq.npy.stat().st_mtime_ns
    (again,) = build_pool(tmp_path, only=["hard-23"], log=lambda *_: None)
    assert again == seq and seq.npy.stat().st_mtime_ns == stamp  # cached, not rebuilt
    meta = json.loads((seq.folder / "meta.json").read_text())
    (seq.folder / "meta.json").write_text(json.dumps({**meta, "embedder": "another model"}))
    said = []
    (again,) = build_pool(tmp_path, only=["hard-23"], log=said.append)
    assert said == ["[pool] hard-23@7.5: embedding again with the shipped embedder"]
    assert seq.npy.stat().st_mtime_ns != stamp and not list(seq.folder.glob("det-*.npy"))
    np.testing.assert_array_equal(np.load(seq.npy), npy)  # the same model: the same rows and vectors


def test_yolo_fastest_detections_find_the_people(shared_data, tmp_path):
    try:
        opencv4_env.ensure_venv()
    except opencv4_env.OpenCV4Unavailable as exc:
        pytest.skip(str(exc))
    (seq,) = build_pool(tmp_path, only=["TUD-Campus/yolo"], log=lambda *_: None)
    assert (seq.fps, seq.n_frames) == (25.0, 71)
    det = np.loadtxt(seq.det, delimiter=",", ndmin=2)
    assert det[:, 6].min() >= 0.1 and det[:, 6].max() <= 1.0
    gt = np.loadtxt(seq.gt, delimiter=",", ndmin=2)
    found = total = 0
    for f in range(1, 72):
        g, d = gt[(gt[:, 0] == f) & (gt[:, 6] != 0)], det[det[:, 0] == f]
        total += len(g)
        if len(g) and len(d):
            found += int((iou_matrix(xywh_to_xyxy(g[:, 2:6]), xywh_to_xyxy(d[:, 2:6])).max(1) >= 0.5).sum())
    assert found / total > 0.5
