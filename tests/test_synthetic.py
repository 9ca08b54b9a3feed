"""Synthetic scene generator: determinism, gt consistency, files on disk."""
import configparser
import subprocess
import sys

import cv2
import numpy as np

from vidtrack.synthetic import CLASS_NAMES, SceneConfig, generate_scene, write_scene, write_yolo_dataset


def _collect(cfg):
    return [(i, img, gt) for i, img, gt in generate_scene(cfg)]


def test_deterministic_and_seed_dependent():
    cfg = SceneConfig(width=320, height=180, num_frames=20, seed=7)
    a, b = _collect(cfg), _collect(cfg)
    for (_, ia, ga), (_, ib, gb) in zip(a, b):
        np.testing.assert_array_equal(ia, ib)
        assert ga == gb
    c = _collect(SceneConfig(width=320, height=180, num_frames=20, seed=8))
    assert not np.array_equal(a[0][1], c[0][1])


def test_gt_boxes_inside_frame_and_match_pixels():
    cfg = SceneConfig(width=320, height=180, num_frames=120, seed=2, max_objects=10, noise_sigma=0, blur=False,
                      flicker=0)
    classes, ids_per_frame, vis = set(), [], []
    for i, img, gt in generate_scene(cfg):
        ids_per_frame.append({r[0] for r in gt})
        for tid, cls, x1, y1, x2, y2, v in gt:
            classes.add(cls)
            vis.append(v)
            assert 0 <= x1 < x2 <= 320 and 0 <= y1 < y2 <= 180
            assert 0.0 <= v <= 1.0
    assert classes == {0, 1, 2}
    assert min(vis) < 0.9  # some occlusion / truncation happens
    # objects leave and new ones enter: ids are not all present from the start
    assert set().union(*ids_per_frame) - ids_per_frame[0]
    assert ids_per_frame[0] - ids_per_frame[-1]


def test_box_tightness_on_clean_frame():
    """Without noise, an isolated fully visible object differs from the background inside its box only."""
    cfg = SceneConfig(width=320, height=180, num_frames=1, seed=3, noise_sigma=0, blur=False, flicker=0,
                      initial_objects=1, max_objects=1)
    (_, img, gt), = _collect(cfg)
    from vidtrack.synthetic import _Scene

    bg = _Scene(cfg).bg
    diff = np.any(img != bg, axis=2)
    ys, xs = np.nonzero(diff)
    (_, _, x1, y1, x2, y2, v), = gt
    assert v > 0.99 or x1 == 0 or y1 == 0 or x2 == 320 or y2 == 180
    assert xs.min() >= x1 and xs.max() < x2 and ys.min() >= y1 and ys.max() < y2
    # tight: the differing pixels touch all four sides (unless sprite colour equals bg there)
    assert xs.min() <= x1 + 1 and xs.max() >= x2 - 2 and ys.min() <= y1 + 1 and ys.max() >= y2 - 2


def test_write_scene_files(tmp_path):
    cfg = SceneConfig(width=160, height=96, num_frames=15, fps=10, seed=2)
    out = write_scene(tmp_path / "seq", cfg, write_images=True)
    cap = cv2.VideoCapture(str(out / "video.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 15
    rows = np.loadtxt(out / "gt" / "gt.txt", delimiter=",", ndmin=2)
    assert rows.shape[1] == 9
    assert rows[:, 0].min() >= 1 and rows[:, 0].max() <= 15
    assert set(rows[:, 7].astype(int)) <= {1, 2, 3}
    ini = configparser.ConfigParser()
    ini.read(out / "seqinfo.ini")
    assert ini["Sequence"]["seqLength"] == "15" and ini["Sequence"]["imWidth"] == "160"
    assert (out / "classes.txt").read_text().split() == list(CLASS_NAMES)
    assert len(list((out / "img1").glob("*.jpg"))) == 15


def test_yolo_dataset(tmp_path):
    out = write_yolo_dataset(tmp_path / "ds", 8, 3, seed=0, width=160, height=96)
    import tomllib

    meta = tomllib.loads((out / "dataset.toml").read_text())
    assert meta["names"] == list(CLASS_NAMES)
    imgs = sorted((out / "train" / "images").glob("*.jpg"))
    assert len(imgs) == 8 and len(list((out / "val" / "images").glob("*.jpg"))) == 3
    total = 0
    for img in imgs:
        lab = out / "train" / "labels" / (img.stem + ".txt")
        arr = np.loadtxt(lab, ndmin=2).reshape(-1, 5)
        total += len(arr)
        assert np.all((arr[:, 1:] >= 0) & (arr[:, 1:] <= 1))
        assert set(arr[:, 0].astype(int)) <= {0, 1, 2}
    assert total > 8


def test_cli_generate(tmp_path):
    r = subprocess.run([sys.executable, "-m", "vidtrack", "generate", str(tmp_path / "s"), "--frames", "5",
                        "--width", "128", "--height", "96"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "s" / "gt" / "gt.txt").is_file()
    r = subprocess.run([sys.executable, "-m", "vidtrack", "generate", str(tmp_path / "t"), "--frames", "0"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--frames" in r.stderr
