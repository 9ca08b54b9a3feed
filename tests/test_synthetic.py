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
    cam = np.loadtxt(out / "camera.txt", delimiter=",", ndmin=2)  # a static camera: identity warps
    np.testing.assert_array_equal(cam, [[i, 1, 0, 0, 0, 1, 0] for i in range(1, 16)])


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


# ----------------------------------------------------------------------------- harder scenes
from vidtrack.synthetic import PERSON, _Scene

CLEAN = dict(noise_sigma=0, blur=False, flicker=0)
OFF = dict(sim_fps=None, camera_pan=(0.0, 0.0), camera_shake=0.0, crowd=0, occluders=0, look_alike=0)


def _scene_frames(cfg):
    """[(img, gt, scene state)] rendering through _Scene, as generate_scene does."""
    scene, out = _Scene(cfg), []
    for i in range(cfg.num_frames):
        img, gt = scene.render(i)
        out.append((img, gt, scene.occluder_mask(), scene.warp))
        scene.advance()
    return scene, out


def test_defaults_unchanged_with_options_off():
    """Every new option off renders the same pixels and gt as a config that never names them, and
    the gt of a default scene is the one of the generator before the options existed."""
    import hashlib

    for kw in (dict(width=320, height=180, num_frames=25, seed=1), dict(width=160, height=96, num_frames=20, fps=10,
                                                                        seed=2, max_objects=10)):
        a, b = _collect(SceneConfig(**kw)), _collect(SceneConfig(**kw, **OFF))
        for (_, ia, ga), (_, ib, gb) in zip(a, b):
            np.testing.assert_array_equal(ia, ib)
            assert ga == gb
    # gt does not depend on floating-point image operations, so its hash is the same on any machine
    h = hashlib.sha256()
    for _, _, gt in generate_scene(SceneConfig(width=320, height=180, num_frames=40, seed=1)):
        h.update(repr(gt).encode())
    assert h.hexdigest()[:16] == "cb110d3debb4423e"


def test_camera_pan_moves_background_by_configured_amount():
    kw = dict(width=160, height=96, num_frames=6, max_objects=0, initial_objects=0, **CLEAN)
    for fps, step in ((25.0, (2, 1)), (12.5, (4, 2))):  # pan in pixels/frame at 25 fps: twice per frame at 12.5
        frames = list(generate_scene(SceneConfig(fps=fps, camera_pan=(2.0, 1.0), **kw), with_camera=True))
        np.testing.assert_array_equal(frames[0][3], [[1, 0, 0], [0, 1, 0]])
        for (_, a, _, _), (_, b, _, w) in zip(frames, frames[1:]):
            dx, dy = step
            np.testing.assert_array_equal(w, [[1, 0, -dx], [0, 1, -dy]])  # previous frame -> this frame
            np.testing.assert_array_equal(b[:-dy, :-dx], a[dy:, dx:])  # the static background moved by -step


def test_camera_shake_warp_is_the_true_motion_and_objects_move_with_view():
    kw = dict(width=160, height=96, num_frames=12, seed=4, **CLEAN)
    frames = list(generate_scene(SceneConfig(camera_pan=(1.0, 0.0), camera_shake=1.5, max_objects=0,
                                             initial_objects=0, **kw), with_camera=True))
    shifts = set()
    for (_, a, _, _), (_, b, _, w) in zip(frames, frames[1:]):
        dx, dy = int(w[0, 2]), int(w[1, 2])
        shifts.add((dx, dy))
        # b(p) = a(p - (dx, dy)) wherever both are inside
        ys, xs = slice(max(0, dy), 96 + min(0, dy)), slice(max(0, dx), 160 + min(0, dx))
        ya, xa = slice(max(0, -dy), 96 + min(0, -dy)), slice(max(0, -dx), 160 + min(0, -dx))
        np.testing.assert_array_equal(b[ys, xs], a[ya, xa])
    assert len(shifts) > 2  # shake: the per-frame motion varies
    # objects are in the world: the same objects seen from a panning camera sit shifted by the camera's travel
    cfg = dict(kw, max_objects=3, initial_objects=3, spawn_prob=0.0, size_scale=0.5, num_frames=6)
    still = _collect(SceneConfig(**cfg))
    pan = list(generate_scene(SceneConfig(camera_pan=(2.0, 0.0), **cfg), with_camera=True))
    travel = 0
    compared = 0
    for (_, _, gs), (_, _, gp, w) in zip(still, pan):
        travel += int(w[0, 2])
        both = {r[0]: r for r in gs if r[6] == 1.0}
        for r in gp:
            if r[6] == 1.0 and r[0] in both:
                assert r[2] == both[r[0]][2] + travel and r[3] == both[r[0]][3]
                compared += 1
    assert travel == -10 and compared >= 5


def test_low_fps_is_the_high_fps_scene_sampled():
    """sim_fps: a 7.5 fps scene is exactly every 4th frame of the 30 fps one (pixels, gt, camera)."""
    size = dict(width=192, height=108)
    fast = list(generate_scene(SceneConfig.hard(5, num_frames=17, **size), with_camera=True))
    slow = list(generate_scene(SceneConfig.hard(5, fps=7.5, num_frames=5, **size), with_camera=True))
    assert SceneConfig.hard(5, fps=7.5).num_frames == 75 and SceneConfig.hard(5).num_frames == 300
    for j, (_, img, gt, warp) in enumerate(slow):
        _, fimg, fgt, _ = fast[4 * j]
        np.testing.assert_array_equal(img, fimg)
        assert gt == fgt
        if j:
            np.testing.assert_allclose(warp[:, 2], sum(fast[i][3][:, 2] for i in range(4 * j - 3, 4 * j + 1)))
    import pytest

    with pytest.raises(ValueError, match="sim_fps"):
        _Scene(SceneConfig(fps=7.0, sim_fps=30.0, num_frames=2, **size))


def test_crowd_has_the_asked_number_of_small_people_on_lanes():
    cfg = SceneConfig(width=320, height=180, num_frames=30, seed=6, crowd=35, max_objects=0, initial_objects=0)
    scene = _Scene(cfg)
    for i in range(cfg.num_frames):
        _, gt = scene.render(i)
        assert len(scene.crowd) == 35 and not scene.objs
        assert all(r[1] == PERSON for r in gt) and 25 <= len(gt) <= 35
        if i == 0:
            assert len(gt) == 35
            # small: at most crowd_scale (0.4) of the tallest ordinary person (130 px at 360 px high, here 65)
            assert max(r[5] - r[3] for r in gt) <= 0.4 * 65 + 2
            # similar paths: every one's feet near one of at most 3 lanes
            lanes = [g for g, _, _ in scene.lanes]
            assert len(lanes) <= 3
            assert all(min(abs(r[5] - g) for g in lanes) < 0.12 * 180 for r in gt if r[5] < 180)
        scene.advance()


def test_occluders_hide_objects_and_lower_visibility():
    kw = dict(width=320, height=180, num_frames=60, seed=9, max_objects=8, initial_objects=6, **CLEAN)
    _, plain = _scene_frames(SceneConfig(**kw))
    scene, occl = _scene_frames(SceneConfig(occluders=3, **kw))
    lowered, longest, run = 0, 0, {}
    for (img0, gt0, _, _), (img, gt, mask, _) in zip(plain, occl):
        assert mask.any() and not mask.all()
        # the occluders' pixels show the occluder, the others the same scene as without them
        np.testing.assert_array_equal(img[mask], scene.occ_img[:180, :320][mask])
        np.testing.assert_array_equal(img[~mask], img0[~mask])
        # same objects and boxes (MOT boxes are full extents), rows kept however hidden, visibility lower
        assert [r[:6] for r in gt] == [r[:6] for r in gt0]
        for r, r0 in zip(gt, gt0):
            assert r[6] <= r0[6]
            hidden = r[6] < r0[6] - 0.3
            lowered += r[6] < r0[6]
            run[r[0]] = run.get(r[0], 0) + 1 if hidden else 0
            longest = max(longest, run[r[0]])
    assert lowered > 20
    assert longest >= 10  # long occlusions: an object stays mostly behind an occluder for 10+ frames


def _look(sprite):
    img, mask = sprite
    top, bottom = np.nonzero(mask[0])[0], np.nonzero(mask[-1])[0]
    return tuple(img[0, top[len(top) // 2]]), tuple(img[-1, bottom[0]])  # skin (head), trousers (feet)


def test_look_alike_people_share_few_looks():
    kw = dict(width=320, height=180, num_frames=40, seed=3, crowd=14, max_objects=8, class_weights=(1.0, 0.0, 0.0),
              **CLEAN)
    looks = {}
    for n in (0, 2):
        scene = _Scene(SceneConfig(look_alike=n, **kw))
        people, gts = {}, []
        for i in range(kw["num_frames"]):
            people.update({o.tid: o for o in scene.objs + scene.crowd if o.cls == PERSON})
            gts.append(scene.render(i)[1])
            scene.advance()
        looks[n] = {_look(o.sprites[0]) for o in people.values()}
        if n == 0:
            plain_gt, count = gts, len(people)
        else:
            assert gts == plain_gt  # the same people walking the same paths, only their clothes differ
            assert {o.look for o in people.values()} <= {0, 1}
    assert count >= 20 and len(looks[2]) <= 2 and len(looks[0]) >= count - 2


def test_hard_preset_and_camera_file(tmp_path, capsys):
    from vidtrack.cli import build_parser, main

    assert main(["generate", str(tmp_path / "h"), "--preset", "hard", "--fps", "7.5", "--frames", "4", "--width", "160",
                 "--height", "96", "--seed", "2"]) == 0
    cam = np.loadtxt(tmp_path / "h" / "camera.txt", delimiter=",", ndmin=2)
    assert cam.shape == (4, 7) and list(cam[:, 0]) == [1, 2, 3, 4]
    np.testing.assert_array_equal(cam[0, 1:], [1, 0, 0, 0, 1, 0])
    assert np.all(cam[1:, 3] < 0)  # seed 2 pans right by 4 x 1.25 px per frame: the view moves left
    rows = np.loadtxt(tmp_path / "h" / "gt" / "gt.txt", delimiter=",", ndmin=2)
    assert (rows[:, 0] == 1).sum() >= 30 and rows[:, 8].min() < 0.5
    assert main(["generate", str(tmp_path / "x"), "--preset", "hard", "--fps", "7"]) == 2
    assert "--fps must divide 30" in capsys.readouterr().err
    sub = next(a for a in build_parser()._actions if a.choices and "generate" in a.choices).choices["generate"]
    assert "hard" in sub.format_help() and "camera.txt" in sub.format_help()
