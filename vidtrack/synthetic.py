"""Deterministic synthetic video scenes with ground truth, for training, tests and demos.

Three classes, told apart by shape (colours and textures are random for all of them):

- 0 ``person``: upright figure (head, torso, arms, animated legs), aspect ~0.42
- 1 ``car``:    wide body + cabin + two wheels, aspect ~2.2
- 2 ``ball``:   textured disc, aspect 1, bounces off the frame borders

Objects enter and leave through the frame borders, cross and occlude each other (fixed
random z-order per object). Each frame gets a textured background (fixed per scene),
gaussian camera noise, a slight blur and brightness flicker.

Ground truth per frame: ``(track_id, class_id, x1, y1, x2, y2, visibility)`` with the box in
pixels of the frame, **clipped to the frame**, tight around the rendered pixels; visibility
= visible pixels / all pixels of the object's silhouette (occlusion by objects in front and
the frame border both count), in 0..1. Track ids are 1-based and never reused in a scene.

Harder scenes (:class:`SceneConfig` options, all off by default: a config that leaves them
off renders exactly what it did before they existed)::

    camera_pan=(dx, dy)  the camera pans (pixels/frame at 25 fps); background, occluders and
    camera_shake=px      objects live in a larger world and the view moves over it, in whole
                         pixels, with an AR(1) shake of that std around the pan path; gt is in
                         the moved view's pixels; camera.txt / ``generate_scene(with_camera=True)``
                         give the true motion per frame
    sim_fps=F            simulate at F and emit every F/fps-th step: SceneConfig(fps=7.5,
                         sim_fps=30) is exactly every 4th frame of SceneConfig(fps=30, sim_fps=30)
                         (pixels, gt, camera). Speeds (objects, spawns and pan) are given at 25 fps
                         and scaled to the simulated rate; without sim_fps the walkers' random
                         velocity changes are per frame, not per second
    size_scale=S         all object sizes x S
    crowd=N              N more people (crowd_scale=0.4 of the usual size) walking along 2-3
                         shared lanes, one-way or two-way; one leaves, another enters (not
                         counted in max_objects)
    occluders=N          N static occluders per view width (pillars, walls / hedges, trees)
                         drawn over every object; objects behind them keep their gt rows, with
                         the visibility of what is really left visible
    look_alike=N         every person (crowd included) wears one of N shared looks (shirt
                         texture, trousers, skin): appearance cannot tell them apart

Each option draws from its own random stream, so switching occluders or look-alikes on leaves
the objects, their paths and boxes as they were. ``SceneConfig.hard(seed, fps=30)`` (``vidtrack
generate --preset hard``) combines them: pan 1.5 px/frame with 1 px shake, a crowd of 30 small
people in 3 looks, 3 occluders per view width, 6 other objects, simulated at 30 fps for 10 s;
``hard(seed, fps=7.5)`` is the same scene sampled.

On disk (:func:`write_scene`)::

    OUT/video.mp4        mp4v, ``fps`` frames/s
    OUT/gt/gt.txt        MOTChallenge: frame(1-based),id,x,y,w,h,1,class(1-based),visibility
    OUT/camera.txt       frame,a11,a12,a13,a21,a22,a23: the 2x3 warp taking pixels of the
                         previous frame to this one (true camera motion; identity at frame 1)
    OUT/seqinfo.ini      MOTChallenge sequence info
    OUT/classes.txt      class names, one a line (line i = 0-based class id i)
    OUT/img1/000001.jpg  only with ``write_images=True``

YOLO dataset (:func:`write_yolo_dataset`)::

    OUT/dataset.toml             names = [...], train = "train", val = "val"
    OUT/{train,val}/images/*.jpg
    OUT/{train,val}/labels/*.txt one line per object: class cx cy w h (normalised 0..1)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

CLASS_NAMES = ("person", "car", "ball")
PERSON, CAR, BALL = 0, 1, 2
MIN_LABEL_VISIBILITY = 0.25  # YOLO labels skip objects less visible than this

GtRow = tuple  # (track_id, class_id, x1, y1, x2, y2, visibility)


@dataclass
class SceneConfig:
    """Parameters of one synthetic scene. Sizes in pixels, speeds in pixels per frame at 25 fps."""

    width: int = 640
    height: int = 360
    num_frames: int = 250
    fps: float = 25.0
    max_objects: int = 8
    seed: int = 0
    class_weights: tuple = (0.45, 0.3, 0.25)  # spawn probability per class
    size_scale: float = 1.0  # multiply object sizes (1.0 is tuned for 640x360)
    noise_sigma: float = 4.0  # camera noise, uint8 levels
    blur: bool = True
    flicker: float = 0.04  # relative brightness flicker amplitude
    initial_objects: int | None = None  # objects already inside at frame 0 (default max_objects//2)
    spawn_prob: float = 0.08  # chance per frame that a new object enters (when below max_objects)
    class_names: tuple = field(default=CLASS_NAMES)
    # harder scenes (all off by default; see the module doc, "Harder scenes")
    sim_fps: float | None = None  # simulate at this rate and emit every sim_fps/fps-th step (None: at fps)
    camera_pan: tuple = (0.0, 0.0)  # camera velocity (dx, dy), pixels per frame at 25 fps
    camera_shake: float = 0.0  # std of the camera's random offset around its pan path, pixels
    crowd: int = 0  # people of a crowd walking along a few shared lanes (kept at this number)
    crowd_scale: float = 0.4  # crowd people's size relative to ordinary people
    occluders: int = 0  # static occluders (pillars, walls, trees) per view width, drawn over objects
    look_alike: int = 0  # people (crowd included) share this many looks (shirt, trousers, skin); 0: all differ

    @classmethod
    def hard(cls, seed: int = 0, fps: float = 30.0, **overrides) -> "SceneConfig":
        """The ``hard`` preset: a panning, shaking camera, a crowd of 30 small look-alike people
        on shared lanes, static occluders, and the usual people, cars and balls; 10 s long.

        The world is simulated at 30 fps whatever ``fps`` is, so ``hard(s, fps=7.5)`` is exactly
        every 4th frame of ``hard(s)`` (``fps`` must divide 30: 30, 15, 10, 7.5, 6, 5, ...).
        ``overrides`` replace any field, e.g. ``hard(3, width=1280, height=720, crowd=50)``.
        """
        pan_x = 1.5 if seed % 2 == 0 else -1.5
        kw = dict(seed=seed, fps=fps, sim_fps=30.0, num_frames=int(round(10 * fps)), max_objects=6,
                  camera_pan=(pan_x, 0.15), camera_shake=1.0, crowd=30, crowd_scale=0.4, occluders=3,
                  look_alike=3)
        kw.update(overrides)
        return cls(**kw)


# ----------------------------------------------------------------------------- sprites
def _random_colour(rng) -> tuple[int, int, int]:
    hsv = np.uint8([[[rng.integers(0, 180), rng.integers(60, 256), rng.integers(60, 256)]]])
    return tuple(int(v) for v in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def _texture(rng, h, w, base) -> np.ndarray:
    """uint8[h,w,3]: a solid, striped, checkered or mottled pattern around colour ``base``."""
    base = np.array(base, np.float32)
    other = np.array(_random_colour(rng), np.float32)
    kind = rng.integers(0, 4)
    yy, xx = np.mgrid[0:h, 0:w]
    if kind == 0:
        t = np.zeros((h, w), np.float32)
    elif kind == 1:
        period = max(3, int(rng.integers(3, 9)))
        t = ((yy // period) % 2).astype(np.float32) if rng.random() < 0.5 else ((xx // period) % 2).astype(np.float32)
    elif kind == 2:
        p = max(3, int(rng.integers(3, 8)))
        t = (((yy // p) + (xx // p)) % 2).astype(np.float32)
    else:
        small = rng.random((max(2, h // 6), max(2, w // 6))).astype(np.float32)
        t = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    t = t[..., None] * 0.6
    img = base * (1 - t) + other * t
    img *= rng.uniform(0.85, 1.0) + 0.15 * (1 - yy[..., None] / max(h, 1))  # soft shading
    return np.clip(img, 0, 255).astype(np.uint8)


def _finish(canvas, mask):
    """Crop a sprite to the tight bounds of its mask -> (img uint8[h,w,3], mask bool[h,w])."""
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return np.ascontiguousarray(canvas[y0:y1, x0:x1]), np.ascontiguousarray(mask[y0:y1, x0:x1] > 0)


def _random_skin(rng) -> tuple[int, int, int]:
    return tuple(int(c) for c in np.array([rng.integers(60, 200)] * 3) * np.array([0.75, 0.85, 1.0]))


def _person_sprites(rng, h, look=None) -> list:
    """Four walk-cycle frames of an upright figure, height ``h`` px.

    ``look``: ``(shirt texture at least h x w, trousers colour, skin colour)`` shared by
    look-alike people; the random colours are still drawn from ``rng`` (and then unused), so
    a scene's objects and motion are the same with and without look-alikes.
    """
    w = max(6, int(round(h * 0.42)))
    shirt = _texture(rng, h, w, _random_colour(rng))
    trousers = _random_colour(rng)
    skin = _random_skin(rng)
    if look is not None:
        shirt, trousers, skin = look[0][:h, :w], look[1], look[2]
    frames = []
    for phase in range(4):
        canvas = np.zeros((h, w, 3), np.uint8)
        mask = np.zeros((h, w), np.uint8)
        r = max(2, int(h * 0.1))
        cx = w // 2
        torso = (int(w * 0.15), int(h * 0.2), int(w * 0.85), int(h * 0.6))
        lw = max(2, int(w * 0.22))
        swing = int(w * 0.22 * math.sin(phase * math.pi / 2))
        legs = [((cx - lw // 2, torso[3] - 1), (cx - lw // 2 - swing, h - 1 - lw // 2)),
                ((cx + lw // 2, torso[3] - 1), (cx + lw // 2 + swing, h - 1 - lw // 2))]
        arms = [((torso[0] + 1, torso[1] + 2), (max(0, torso[0] - 1 + swing // 2), int(h * 0.55))),
                ((torso[2] - 2, torso[1] + 2), (min(w - 1, torso[2] + 1 - swing // 2), int(h * 0.55)))]
        for target, val in ((canvas, None), (mask, 255)):
            for a, b in legs:
                cv2.line(target, a, b, val if val else trousers, lw)
            for a, b in arms:
                cv2.line(target, a, b, val if val else skin, max(1, lw // 2))
            cv2.circle(target, (cx, r + 1), r, val if val else skin, -1)
        tm = np.zeros((h, w), np.uint8)
        cv2.rectangle(tm, torso[:2], torso[2:], 255, -1)
        canvas[tm > 0] = shirt[tm > 0]
        mask |= tm
        frames.append(_finish(canvas, mask))
    return frames


def _car_sprites(rng, w, facing_left) -> list:
    """One frame of a car-like shape, width ``w`` px."""
    h = max(6, int(round(w * 0.45)))
    body = _texture(rng, h, w, _random_colour(rng))
    canvas = np.zeros((h, w, 3), np.uint8)
    mask = np.zeros((h, w), np.uint8)
    bm = np.zeros((h, w), np.uint8)
    cv2.rectangle(bm, (0, int(h * 0.38)), (w - 1, int(h * 0.8)), 255, -1)
    cabin = np.array([[int(w * 0.22), int(h * 0.4)], [int(w * 0.32), int(h * 0.05)],
                      [int(w * 0.68), int(h * 0.05)], [int(w * 0.8), int(h * 0.4)]], np.int32)
    cv2.fillPoly(bm, [cabin], 255)
    canvas[bm > 0] = body[bm > 0]
    mask |= bm
    win = np.array([[int(w * 0.27), int(h * 0.38)], [int(w * 0.35), int(h * 0.12)],
                    [int(w * 0.65), int(h * 0.12)], [int(w * 0.74), int(h * 0.38)]], np.int32)
    glass = int(rng.integers(120, 220))
    cv2.fillPoly(canvas, [win], (glass, glass * 0.9, glass * 0.7))
    cv2.line(canvas, (w // 2, int(h * 0.12)), (w // 2, int(h * 0.38)), (40, 40, 40), max(1, w // 60))
    r = max(2, int(h * 0.2))
    for x in (int(w * 0.2), int(w * 0.8)):
        cv2.circle(canvas, (x, h - r - 1), r, (25, 25, 25), -1)
        cv2.circle(canvas, (x, h - r - 1), max(1, r // 2), (150, 150, 150), -1)
        cv2.circle(mask, (x, h - r - 1), r, 255, -1)
    lamp_x = 1 if facing_left else w - max(2, w // 20) - 1
    cv2.rectangle(canvas, (lamp_x, int(h * 0.45)), (lamp_x + max(2, w // 20), int(h * 0.55)), (120, 240, 255), -1)
    return [_finish(canvas, mask)]


def _ball_sprites(rng, d) -> list:
    """One frame of a textured disc of diameter ``d`` px."""
    tex = _texture(rng, d, d, _random_colour(rng))
    canvas = np.zeros((d, d, 3), np.uint8)
    mask = np.zeros((d, d), np.uint8)
    c = (d - 1) / 2.0
    cv2.circle(mask, (int(round(c)), int(round(c))), max(2, d // 2), 255, -1)
    yy, xx = np.mgrid[0:d, 0:d].astype(np.float32)
    dist = np.sqrt((xx - c * 0.7) ** 2 + (yy - c * 0.7) ** 2) / max(d, 1)
    shade = np.clip(1.25 - dist, 0.4, 1.2)[..., None]
    canvas[:] = np.clip(tex * shade, 0, 255).astype(np.uint8)
    cv2.circle(canvas, (int(c), int(c)), max(2, d // 2), (30, 30, 30), max(1, d // 16))
    canvas[mask == 0] = 0
    return [_finish(canvas, mask)]


# ----------------------------------------------------------------------------- background
def make_background(rng, width, height, view=None) -> np.ndarray:
    """uint8[H,W,3] textured background: gradient + blobs + shapes + fine grain.

    ``view=(w, h)``: the background of a world larger than the view (a panning camera): the
    blobs, shapes and lines keep the size and density they have in a view-sized background.
    """
    vw, vh = view if view is not None else (width, height)
    rx, ry = width / vw, height / vh
    area = rx * ry
    base = np.array(_random_colour(rng), np.float32) * 0.5 + 60
    yy = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    img = base * (0.7 + 0.5 * yy) * np.ones((1, width, 1), np.float32)
    grid = (max(2, int(round(6 * ry))), max(2, int(round(10 * rx))), 3)
    low = cv2.resize(rng.random(grid).astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    img += (low - 0.5) * 70
    for _ in range(int(rng.integers(int(round(6 * area)), int(round(14 * area))))):  # building / road-marking like shapes
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = x0 + int(rng.integers(10, vw // 3)), y0 + int(rng.integers(4, vh // 3))
        col = np.array(_random_colour(rng), np.float32) * 0.5 + base * 0.5
        cv2.rectangle(img, (x0, y0), (x1, y1), tuple(float(v) for v in col), -1)
    for _ in range(int(rng.integers(int(round(3 * area)), int(round(8 * area))))):
        p0 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        p1 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.line(img, p0, p1, tuple(float(v) for v in base * 1.4), int(rng.integers(1, 4)))
    img += rng.normal(0, 6, (height, width, 1)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _occluder_sprite(rng, k) -> tuple[np.ndarray, np.ndarray, int]:
    """A static occluder (pillar, wall / hedge or tree), ``k`` = frame height / 360.

    Returns ``(img uint8[h,w,3], mask bool[h,w], kind)``, kind 0 pillar, 1 wall, 2 tree.
    """
    kind = int(rng.integers(0, 3))
    if kind == 0:  # pillar: tall textured column, shaded left to right
        w, h = int(rng.uniform(28, 60) * k), int(rng.uniform(200, 340) * k)
        img = _texture(rng, h, w, tuple(int(v) for v in np.array([rng.integers(90, 200)] * 3) * rng.uniform(0.85, 1.15, 3)))
        shade = 0.65 + 0.5 * np.sin(np.linspace(0.15, math.pi - 0.15, w, dtype=np.float32))
        img = np.clip(img * shade[None, :, None], 0, 255).astype(np.uint8)
        return img, np.ones((h, w), bool), kind
    if kind == 1:  # wall / hedge / parked van: wide and low
        w, h = int(rng.uniform(90, 220) * k), int(rng.uniform(45, 100) * k)
        img = _texture(rng, h, w, _random_colour(rng))
        cv2.rectangle(img, (0, 0), (w - 1, max(1, h // 10)), tuple(int(v) for v in img[h // 2, w // 2] * 0.6), -1)
        return img, np.ones((h, w), bool), kind
    # tree: trunk + a crown of overlapping ellipses
    h = int(rng.uniform(150, 300) * k)
    cw = int(rng.uniform(70, 140) * k)
    w = cw
    mask = np.zeros((h, w), np.uint8)
    img = np.zeros((h, w, 3), np.uint8)
    tw = max(4, int(rng.uniform(10, 22) * k))
    crown_h = int(h * rng.uniform(0.45, 0.6))
    cv2.rectangle(mask, (w // 2 - tw // 2, crown_h // 2), (w // 2 + tw // 2, h - 1), 255, -1)
    img[mask > 0] = (int(rng.integers(30, 60)), int(rng.integers(50, 80)), int(rng.integers(70, 110)))
    crown = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(4, 8))):
        c = (int(rng.uniform(0.25, 0.75) * w), int(rng.uniform(0.25, 0.75) * crown_h))
        ax = (max(3, int(rng.uniform(0.2, 0.35) * w)), max(3, int(rng.uniform(0.2, 0.35) * crown_h)))
        cv2.ellipse(crown, c, ax, 0, 0, 360, 255, -1)
    green = (int(rng.integers(20, 70)), int(rng.integers(90, 170)), int(rng.integers(20, 70)))
    leaves = _texture(rng, h, w, green)
    img[crown > 0] = leaves[crown > 0]
    mask |= crown
    return img, mask > 0, kind


# ----------------------------------------------------------------------------- objects
class _Obj:
    __slots__ = ("tid", "cls", "sprites", "x", "y", "vx", "vy", "z", "bounces", "phase", "entered", "age", "look")

    def __init__(self, tid, cls, sprites, x, y, vx, vy, z, bounces):
        self.tid, self.cls, self.sprites = tid, cls, sprites
        self.x, self.y, self.vx, self.vy, self.z, self.bounces = x, y, vx, vy, z, bounces
        self.phase, self.entered, self.age = 0.0, False, 0
        self.look = None  # index of the shared look (look-alike people), else None

    @property
    def sprite(self):
        return self.sprites[int(self.phase) % len(self.sprites)]


# independent random streams of the options, so that switching one on leaves the rest of
# the scene (its objects, their motion, the camera noise) as it is wherever it can
_CAMERA, _OCCLUDERS, _CROWD, _LOOKS = 1, 2, 3, 4


class _Scene:
    """One scene's state. ``render()`` draws the current step, ``advance()`` moves to the next
    emitted frame (``_move()`` is one simulation step; they are the same unless ``sim_fps``)."""

    def __init__(self, cfg: SceneConfig):
        self.cfg = cfg
        self.rng = np.random.default_rng(cfg.seed)
        W, H = cfg.width, cfg.height
        self.bg = make_background(self.rng, W, H)
        self.next_id = 1
        self.objs: list[_Obj] = []
        self.crowd: list[_Obj] = []
        self.idbuf = np.zeros((H, W), np.int32)
        s = cfg.noise_sigma
        pad = 32
        noise = [self.rng.normal(0, s, (H + pad, W + pad, 3)) for _ in range(2)] if s > 0 else []
        self.noise_pos = [np.clip(n, 0, 255).astype(np.uint8) for n in noise]
        self.noise_neg = [np.clip(-n, 0, 255).astype(np.uint8) for n in noise]
        sim_fps = cfg.fps if cfg.sim_fps is None else cfg.sim_fps
        self.steps_per_frame = int(round(sim_fps / max(cfg.fps, 1e-3)))
        if self.steps_per_frame < 1 or abs(self.steps_per_frame * cfg.fps - sim_fps) > 1e-6 * sim_fps:
            raise ValueError(f"sim_fps must be a whole multiple of fps, got sim_fps={sim_fps} fps={cfg.fps}")
        self.fps_scale = 25.0 / max(sim_fps, 1e-3)
        self.k = cfg.size_scale * H / 360.0
        self._init_camera()
        self._init_occluders()
        self.looks = self._make_looks() if cfg.look_alike > 0 else []
        self.look_rng = np.random.default_rng([cfg.seed, _LOOKS])
        n0 = cfg.max_objects // 2 if cfg.initial_objects is None else cfg.initial_objects
        for _ in range(min(n0, cfg.max_objects)):
            self._spawn(inside=True)
        self.crowd_rng = np.random.default_rng([cfg.seed, _CROWD])
        if cfg.crowd > 0:
            r = self.crowd_rng
            n_lanes = int(r.integers(2, 4))
            self.lanes = [(float(r.uniform(0.35, 0.95) * H), int(r.choice([-1, 1])), bool(r.random() < 0.5))
                          for _ in range(n_lanes)]  # (ground y, main direction, two-way)
            for _ in range(cfg.crowd):
                self._spawn_crowd(inside=True)

    # ------------------------------------------------------------------ camera
    def _init_camera(self):
        cfg = self.cfg
        W, H = cfg.width, cfg.height
        self.pan = (float(cfg.camera_pan[0]) * self.fps_scale, float(cfg.camera_pan[1]) * self.fps_scale)
        self.moving_camera = self.pan != (0.0, 0.0) or cfg.camera_shake > 0
        self.cam = [0.0, 0.0]  # top-left of the view in world pixels (smooth pan, no shake)
        self.cam_px = (0, 0)  # where the current frame is rendered from (pan + shake, whole pixels)
        self.prev_cam_px = (0, 0)
        self.world_bg = self.bg
        if not self.moving_camera:
            return
        # the world is as wide as the camera's travel over whole chunks of 600 simulation steps, so a
        # scene and the same scene at a lower frame rate (sim_fps) share their world exactly
        steps = int(math.ceil(int(cfg.num_frames) * self.steps_per_frame / 600)) * 600
        margin = int(math.ceil(4 * cfg.camera_shake)) + 2
        travel = (int(math.ceil(abs(self.pan[0]) * steps)), int(math.ceil(abs(self.pan[1]) * steps)))
        self.world = (W + travel[0] + 2 * margin, H + travel[1] + 2 * margin)
        self.cam0 = [float(margin if self.pan[i] >= 0 else self.world[i] - (W, H)[i] - margin) for i in (0, 1)]
        self.cam = list(self.cam0)
        self.cam_rng = np.random.default_rng([cfg.seed, _CAMERA])
        self.world_bg = make_background(self.cam_rng, self.world[0], self.world[1], view=(W, H))
        self.shake = np.zeros(2)
        self.t = 0
        self._update_camera()
        self.prev_cam_px = self.cam_px

    def _update_camera(self):
        """Camera of the current step: pan path + AR(1) shake (std ``camera_shake``), whole pixels."""
        cfg = self.cfg
        self.cam = [self.cam0[0] + self.pan[0] * self.t, self.cam0[1] + self.pan[1] * self.t]
        if cfg.camera_shake > 0:
            a = 0.6
            self.shake = a * self.shake + self.cam_rng.normal(0, cfg.camera_shake * math.sqrt(1 - a * a), 2)
        x = self.cam[0] + self.shake[0]
        y = self.cam[1] + self.shake[1]
        self.cam_px = (int(np.clip(round(x), 0, self.world[0] - cfg.width)),
                       int(np.clip(round(y), 0, self.world[1] - cfg.height)))

    @property
    def warp(self) -> np.ndarray:
        """float64[2,3]: maps pixels of the previous emitted frame to this frame (identity at frame 0)."""
        dx = self.prev_cam_px[0] - self.cam_px[0]
        dy = self.prev_cam_px[1] - self.cam_px[1]
        return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])

    # ------------------------------------------------------------------ occluders
    def _init_occluders(self):
        """Static occluders in world pixels: one layer (img, mask) + the boxes to draw."""
        cfg = self.cfg
        self.occ_boxes = []
        if cfg.occluders <= 0:
            return
        r = np.random.default_rng([cfg.seed, _OCCLUDERS])
        Ww, Hw = self.world_bg.shape[1], self.world_bg.shape[0]
        self.occ_img = np.zeros((Hw, Ww, 3), np.uint8)
        self.occ_mask = np.zeros((Hw, Ww), bool)
        n = max(cfg.occluders, int(round(cfg.occluders * Ww / cfg.width)))
        kh = cfg.height / 360.0
        # spread over the world's width: one per slot, at a random place inside it
        for i in range(n):
            img, mask, kind = _occluder_sprite(r, kh)
            h, w = mask.shape
            slot = Ww / n
            x0 = int(i * slot + r.uniform(0, max(1.0, slot - w)))
            bottom = Hw if kind == 0 else int(r.uniform(0.55, 1.0) * Hw)
            y0 = max(0, bottom - h)
            x1, y1 = min(Ww, x0 + w), min(Hw, y0 + h)
            m = mask[:y1 - y0, :x1 - x0]
            np.copyto(self.occ_img[y0:y1, x0:x1], img[:y1 - y0, :x1 - x0], where=m[..., None])
            self.occ_mask[y0:y1, x0:x1] |= m
            self.occ_boxes.append((x0, y0, x1, y1))
        # solid boxes (pillars, walls) are plain copies, only trees need their mask
        self.occ_boxes = [(x0, y0, x1, y1, bool(self.occ_mask[y0:y1, x0:x1].all())) for x0, y0, x1, y1 in self.occ_boxes]

    def occluder_mask(self) -> np.ndarray:
        """bool[H,W]: the occluders' pixels in the current frame."""
        cfg = self.cfg
        cx, cy = self.cam_px
        if not self.occ_boxes:
            return np.zeros((cfg.height, cfg.width), bool)
        return self.occ_mask[cy:cy + cfg.height, cx:cx + cfg.width].copy()

    def _draw_occluders(self, img, idbuf):
        W, H = self.cfg.width, self.cfg.height
        cx, cy = self.cam_px
        for x0, y0, x1, y1, solid in self.occ_boxes:
            vx0, vy0, vx1, vy1 = max(0, x0 - cx), max(0, y0 - cy), min(W, x1 - cx), min(H, y1 - cy)
            if vx1 <= vx0 or vy1 <= vy0:
                continue
            src = self.occ_img[vy0 + cy:vy1 + cy, vx0 + cx:vx1 + cx]
            if solid:
                img[vy0:vy1, vx0:vx1] = src
                idbuf[vy0:vy1, vx0:vx1] = 0
                continue
            m = self.occ_mask[vy0 + cy:vy1 + cy, vx0 + cx:vx1 + cx]
            np.copyto(img[vy0:vy1, vx0:vx1], src, where=m[..., None])
            np.copyto(idbuf[vy0:vy1, vx0:vx1], 0, where=m)

    # ------------------------------------------------------------------ objects
    def _make_looks(self):
        """The shared looks of look-alike people: (shirt texture, trousers colour, skin colour)."""
        r = np.random.default_rng([self.cfg.seed, _LOOKS, 1])
        h = int(130 * self.k * max(1.0, self.cfg.crowd_scale)) + 2
        w = max(6, int(round(h * 0.42))) + 2
        return [(_texture(r, h, w, _random_colour(r)), _random_colour(r), _random_skin(r))
                for _ in range(self.cfg.look_alike)]

    def _person(self, rng, h):
        """Sprites and look index of a new person of height h (drawing from ``rng`` as always)."""
        look = int(self.look_rng.integers(0, len(self.looks))) if self.looks else None
        return _person_sprites(rng, h, None if look is None else self.looks[look]), look

    def _spawn(self, inside: bool):
        cfg, rng = self.cfg, self.rng
        w_ = np.asarray(cfg.class_weights, np.float64)
        cls = int(rng.choice(len(w_), p=w_ / w_.sum()))
        k = self.k
        sp = self.fps_scale
        look = None
        if cls == PERSON:
            sprites, look = self._person(rng, max(12, int(rng.uniform(40, 130) * k)))
            speed = rng.uniform(0.8, 2.5) * sp
            vx, vy = speed * rng.choice([-1, 1]), rng.normal(0, 0.3) * sp
            bounces = 0
        elif cls == CAR:
            vx = rng.uniform(2.5, 6.0) * sp * rng.choice([-1, 1])
            sprites = _car_sprites(rng, max(16, int(rng.uniform(60, 180) * k)), vx < 0)
            vy = rng.normal(0, 0.15) * sp
            bounces = 0
        else:
            sprites = _ball_sprites(rng, max(8, int(rng.uniform(16, 60) * k)))
            ang = rng.uniform(0, 2 * math.pi)
            speed = rng.uniform(2.0, 6.0) * sp
            vx, vy = speed * math.cos(ang), speed * math.sin(ang)
            bounces = int(rng.integers(0, 4))
        h, w = sprites[0][1].shape
        W, H = cfg.width, cfg.height
        cx, cy = self.cam
        if inside:
            x, y = rng.uniform(0, max(1, W - w)), rng.uniform(0, max(1, H - h))
        else:  # just outside a border, moving in (relative to the camera's pan)
            if cls == BALL and rng.random() < 0.5:
                x = rng.uniform(0, max(1, W - w))
                if rng.random() < 0.5:
                    y, vy = -h + 1.0, abs(vy) + 0.5 + self.pan[1]
                else:
                    y, vy = H - 1.0, -abs(vy) - 0.5 + self.pan[1]
            else:
                y = rng.uniform(H * 0.05, max(H * 0.05 + 1, H - h))
                if vx - self.pan[0] > 0:
                    x = -w + 1.0
                else:
                    x = W - 1.0
        obj = _Obj(self.next_id, cls, sprites, float(x + cx), float(y + cy), float(vx), float(vy), float(rng.random()),
                   bounces)
        obj.entered = inside
        obj.look = look
        self.next_id += 1
        self.objs.append(obj)

    def _spawn_crowd(self, inside: bool):
        """A crowd person on one of the lanes, inside the view or entering it through a side."""
        cfg, r = self.cfg, self.crowd_rng
        W = cfg.width
        ground, direction, two_way = self.lanes[int(r.integers(0, len(self.lanes)))]
        if two_way and r.random() < 0.5:
            direction = -direction
        sprites, look = self._person(r, max(12, int(r.uniform(40, 130) * self.k * cfg.crowd_scale)))
        h, w = sprites[0][1].shape
        vx = direction * r.uniform(0.8, 1.8) * self.fps_scale
        vy = r.normal(0, 0.1) * self.fps_scale
        y = ground - h + r.normal(0, 0.03 * cfg.height)
        if inside:
            x = r.uniform(0, max(1, W - w))
        else:
            x = -w + 1.0 if vx - self.pan[0] > 0 else W - 1.0
        obj = _Obj(self.next_id, PERSON, sprites, float(x + self.cam[0]), float(y + self.cam[1]), float(vx), float(vy),
                   float(r.random()), 0)
        obj.entered = inside
        obj.look = look
        obj.phase = float(r.integers(0, 4))
        self.next_id += 1
        self.crowd.append(obj)

    def _step(self, o: _Obj, rng) -> bool:
        """Move one object one simulation step; False once it has left the view for good."""
        W, H = self.cfg.width, self.cfg.height
        cx, cy = self.cam
        h, w = o.sprite[1].shape
        if o.cls == PERSON:
            o.vx += rng.normal(0, 0.03)
            o.vy = 0.95 * o.vy + rng.normal(0, 0.05)
            o.phase += abs(o.vx) / max(4.0, w * 0.6)
        o.x += o.vx
        o.y += o.vy
        x, y = o.x - cx, o.y - cy  # in the view
        if o.cls == BALL and o.bounces > 0:
            if (x < 0 and o.vx < 0) or (x + w > W and o.vx > 0):
                o.vx, o.bounces = -o.vx, o.bounces - 1
            if (y < 0 and o.vy < 0) or (y + h > H and o.vy > 0):
                o.vy, o.bounces = -o.vy, o.bounces - 1
        elif o.cls != BALL:  # keep walkers / cars vertically inside
            if (y < 0 and o.vy < 0) or (y + h > H and o.vy > 0):
                o.vy = -o.vy
        inside = x + w > 0 and y + h > 0 and x < W and y < H
        o.entered |= inside
        o.age += 1
        return inside or (not o.entered and o.age < 200)

    def _move(self):
        """One simulation step: camera, objects, crowd, new objects."""
        cfg, rng = self.cfg, self.rng
        if self.moving_camera:
            self.t += 1
            self._update_camera()
        self.objs = [o for o in self.objs if self._step(o, rng)]
        if len(self.objs) < cfg.max_objects and rng.random() < cfg.spawn_prob * self.fps_scale:
            self._spawn(inside=False)
        if self.crowd:
            self.crowd = [o for o in self.crowd if self._step(o, self.crowd_rng)]
            while len(self.crowd) < cfg.crowd:
                self._spawn_crowd(inside=False)

    def advance(self):
        """Move on to the next emitted frame (``steps_per_frame`` simulation steps)."""
        self.prev_cam_px = self.cam_px
        self._move()
        for _ in range(self.steps_per_frame - 1):
            self._effects()  # the skipped frame's camera noise and flicker, so rng streams stay aligned
            self._move()

    def _effects(self):
        """Draw this frame's camera-effect parameters: (noise index, offset x, offset y) or None, flicker gain or None."""
        cfg, rng = self.cfg, self.rng
        noise = alpha = None
        if self.noise_pos:
            noise = (int(rng.integers(0, len(self.noise_pos))), int(rng.integers(0, 32)), int(rng.integers(0, 32)))
        if cfg.flicker > 0:
            alpha = 1.0 + cfg.flicker * (rng.random() * 2 - 1)
        return noise, alpha

    def render(self, frame_index: int):
        cfg = self.cfg
        W, H = cfg.width, cfg.height
        cxi, cyi = self.cam_px
        img = self.world_bg[cyi:cyi + H, cxi:cxi + W].copy()
        idbuf = self.idbuf
        idbuf.fill(0)
        placed = []
        for o in sorted(self.objs + self.crowd, key=lambda o: o.z):
            spr, mask = o.sprite
            h, w = mask.shape
            x0, y0 = int(round(o.x)) - cxi, int(round(o.y)) - cyi
            cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(W, x0 + w), min(H, y0 + h)
            if cx1 <= cx0 or cy1 <= cy0:
                continue
            m = mask[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
            np.copyto(img[cy0:cy1, cx0:cx1], spr[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0], where=m[..., None])
            np.copyto(idbuf[cy0:cy1, cx0:cx1], o.tid, where=m)
            placed.append((o, m, (cx0, cy0, cx1, cy1), int(mask.sum())))
        if self.occ_boxes:
            self._draw_occluders(img, idbuf)
        gt = []
        for o, m, (cx0, cy0, cx1, cy1), total in placed:
            visible = np.count_nonzero(idbuf[cy0:cy1, cx0:cx1] == o.tid)
            ys = np.nonzero(m.any(1))[0]
            xs = np.nonzero(m.any(0))[0]
            if len(xs) == 0:
                continue
            box = (float(cx0 + xs[0]), float(cy0 + ys[0]), float(cx0 + xs[-1] + 1), float(cy0 + ys[-1] + 1))
            gt.append((o.tid, o.cls) + box + (round(visible / max(total, 1), 4),))
        gt.sort(key=lambda r: r[0])
        # camera effects
        noise, alpha = self._effects()
        if noise is not None:
            k, ox, oy = noise
            cv2.add(img, self.noise_pos[k][oy:oy + H, ox:ox + W], dst=img)
            cv2.subtract(img, self.noise_neg[k][oy:oy + H, ox:ox + W], dst=img)
        if cfg.blur:
            img = cv2.GaussianBlur(img, (3, 3), 0.6)
        if alpha is not None:
            img = cv2.convertScaleAbs(img, alpha=alpha, beta=0)
        return img, gt


def generate_scene(config: SceneConfig, with_camera: bool = False) -> Iterator[tuple]:
    """Yield ``(frame_index 0-based, image uint8[H,W,3] BGR, gt rows)`` for each frame.

    gt rows: ``(track_id, class_id 0-based, x1, y1, x2, y2, visibility)`` (see module doc).
    ``with_camera``: yield ``(frame_index, image, gt, warp)``, warp float64[2,3] the true camera
    motion, mapping pixels of the previous frame to this one (identity for frame 0 and a
    static camera). The same config (seed included) always yields the same frames and gt.
    """
    scene = _Scene(config)
    for i in range(int(config.num_frames)):
        img, gt = scene.render(i)
        yield (i, img, gt, scene.warp) if with_camera else (i, img, gt)
        scene.advance()


def write_scene(out_dir, config: SceneConfig, write_images: bool = False) -> Path:
    """Render a scene to ``out_dir`` as video.mp4 + MOTChallenge gt (see module doc). Returns out_dir."""
    out = Path(out_dir)
    (out / "gt").mkdir(parents=True, exist_ok=True)
    if write_images:
        (out / "img1").mkdir(exist_ok=True)
    writer = cv2.VideoWriter(str(out / "video.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), float(config.fps),
                             (int(config.width), int(config.height)))
    if not writer.isOpened():
        raise RuntimeError(f"cannot open a video writer for {out / 'video.mp4'}")
    lines, cam = [], []
    try:
        for i, img, gt, warp in generate_scene(config, with_camera=True):
            writer.write(img)
            cam.append(f"{i + 1}," + ",".join(f"{v:g}" for v in warp.ravel()) + "\n")
            if write_images:
                cv2.imwrite(str(out / "img1" / f"{i + 1:06d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
            for tid, cls, x1, y1, x2, y2, vis in gt:
                lines.append(f"{i + 1},{tid},{x1:.0f},{y1:.0f},{x2 - x1:.0f},{y2 - y1:.0f},1,{cls + 1},{vis:.4f}\n")
    finally:
        writer.release()
    (out / "gt" / "gt.txt").write_text("".join(lines))
    (out / "camera.txt").write_text("".join(cam))
    (out / "seqinfo.ini").write_text(
        "[Sequence]\n"
        f"name={out.name}\nimDir=img1\nframeRate={config.fps:g}\nseqLength={config.num_frames}\n"
        f"imWidth={config.width}\nimHeight={config.height}\nimExt=.jpg\n"
    )
    (out / "classes.txt").write_text("".join(f"{n}\n" for n in config.class_names))
    return out


def yolo_label_lines(gt, width: int, height: int, min_visibility: float = MIN_LABEL_VISIBILITY) -> list[str]:
    """gt rows -> YOLO label lines ``class cx cy w h`` (normalised) for visible-enough objects."""
    lines = []
    for _tid, cls, x1, y1, x2, y2, vis in gt:
        if vis < min_visibility or x2 - x1 < 2 or y2 - y1 < 2:
            continue
        lines.append(f"{cls} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} "
                     f"{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}\n")
    return lines


def write_yolo_dataset(out_dir, n_train_images: int, n_val_images: int, seed: int = 0,
                       width: int = 640, height: int = 360, frames_per_scene: int = 6,
                       frame_step: int = 7, progress: bool = False) -> Path:
    """Write a YOLO-format dataset of synthetic frames (see module doc). Returns ``out_dir``.

    Frames are sampled every ``frame_step`` frames from many short scenes (seeds derived
    from ``seed``; train and val scenes never share a seed).
    """
    out = Path(out_dir)
    ss = np.random.SeedSequence(seed)
    train_seq, val_seq = ss.spawn(2)
    for split, n, seq in (("train", n_train_images, train_seq), ("val", n_val_images, val_seq)):
        (out / split / "images").mkdir(parents=True, exist_ok=True)
        (out / split / "labels").mkdir(parents=True, exist_ok=True)
        count = 0
        scene_seeds = np.random.default_rng(seq)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=n, desc=f"synthetic {split}", unit="img")
        while count < n:
            srng_seed = int(scene_seeds.integers(0, 2**31 - 1))
            r = np.random.default_rng(srng_seed)
            cfg = SceneConfig(width=width, height=height, num_frames=frames_per_scene * frame_step,
                              max_objects=int(r.integers(3, 12)), seed=srng_seed,
                              initial_objects=int(r.integers(2, 8)), noise_sigma=float(r.uniform(1, 7)),
                              spawn_prob=0.2)
            for i, img, gt in generate_scene(cfg):
                if i % frame_step or count >= n:
                    continue
                name = f"{count:06d}"
                cv2.imwrite(str(out / split / "images" / f"{name}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
                (out / split / "labels" / f"{name}.txt").write_text("".join(yolo_label_lines(gt, width, height)))
                count += 1
                if bar:
                    bar.update(1)
        if bar:
            bar.close()
    from detector.training.dataset import write_dataset_toml

    write_dataset_toml(out, CLASS_NAMES, "vidtrack YOLO-format dataset: <split>/images/*.jpg + "
                                         "<split>/labels/*.txt (class cx cy w h, 0..1)")
    return out
