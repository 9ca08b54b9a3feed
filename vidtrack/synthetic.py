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

On disk (:func:`write_scene`)::

    OUT/video.mp4        mp4v, ``fps`` frames/s
    OUT/gt/gt.txt        MOTChallenge: frame(1-based),id,x,y,w,h,1,class(1-based),visibility
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


def _person_sprites(rng, h) -> list:
    """Four walk-cycle frames of an upright figure, height ``h`` px."""
    w = max(6, int(round(h * 0.42)))
    shirt = _texture(rng, h, w, _random_colour(rng))
    trousers = _random_colour(rng)
    skin = tuple(int(c) for c in np.array([rng.integers(60, 200)] * 3) * np.array([0.75, 0.85, 1.0]))
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
def make_background(rng, width, height) -> np.ndarray:
    """uint8[H,W,3] textured background: gradient + blobs + shapes + fine grain."""
    base = np.array(_random_colour(rng), np.float32) * 0.5 + 60
    yy = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    img = base * (0.7 + 0.5 * yy) * np.ones((1, width, 1), np.float32)
    low = cv2.resize(rng.random((6, 10, 3)).astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    img += (low - 0.5) * 70
    for _ in range(int(rng.integers(6, 14))):  # building / road-marking like shapes
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = x0 + int(rng.integers(10, width // 3)), y0 + int(rng.integers(4, height // 3))
        col = np.array(_random_colour(rng), np.float32) * 0.5 + base * 0.5
        cv2.rectangle(img, (x0, y0), (x1, y1), tuple(float(v) for v in col), -1)
    for _ in range(int(rng.integers(3, 8))):
        p0 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        p1 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.line(img, p0, p1, tuple(float(v) for v in base * 1.4), int(rng.integers(1, 4)))
    img += rng.normal(0, 6, (height, width, 1)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- objects
class _Obj:
    __slots__ = ("tid", "cls", "sprites", "x", "y", "vx", "vy", "z", "bounces", "phase", "entered", "age")

    def __init__(self, tid, cls, sprites, x, y, vx, vy, z, bounces):
        self.tid, self.cls, self.sprites = tid, cls, sprites
        self.x, self.y, self.vx, self.vy, self.z, self.bounces = x, y, vx, vy, z, bounces
        self.phase, self.entered, self.age = 0.0, False, 0

    @property
    def sprite(self):
        return self.sprites[int(self.phase) % len(self.sprites)]


class _Scene:
    def __init__(self, cfg: SceneConfig):
        self.cfg = cfg
        self.rng = np.random.default_rng(cfg.seed)
        self.bg = make_background(self.rng, cfg.width, cfg.height)
        self.next_id = 1
        self.objs: list[_Obj] = []
        self.idbuf = np.zeros((cfg.height, cfg.width), np.int32)
        s = cfg.noise_sigma
        pad = 32
        noise = [self.rng.normal(0, s, (cfg.height + pad, cfg.width + pad, 3)) for _ in range(2)] if s > 0 else []
        self.noise_pos = [np.clip(n, 0, 255).astype(np.uint8) for n in noise]
        self.noise_neg = [np.clip(-n, 0, 255).astype(np.uint8) for n in noise]
        self.fps_scale = 25.0 / max(cfg.fps, 1e-3)
        n0 = cfg.max_objects // 2 if cfg.initial_objects is None else cfg.initial_objects
        for _ in range(min(n0, cfg.max_objects)):
            self._spawn(inside=True)

    def _spawn(self, inside: bool):
        cfg, rng = self.cfg, self.rng
        w_ = np.asarray(cfg.class_weights, np.float64)
        cls = int(rng.choice(len(w_), p=w_ / w_.sum()))
        k = cfg.size_scale * cfg.height / 360.0
        sp = self.fps_scale
        if cls == PERSON:
            sprites = _person_sprites(rng, max(12, int(rng.uniform(40, 130) * k)))
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
        if inside:
            x, y = rng.uniform(0, max(1, W - w)), rng.uniform(0, max(1, H - h))
        else:  # just outside a border, moving in
            if cls == BALL and rng.random() < 0.5:
                x = rng.uniform(0, max(1, W - w))
                if rng.random() < 0.5:
                    y, vy = -h + 1.0, abs(vy) + 0.5
                else:
                    y, vy = H - 1.0, -abs(vy) - 0.5
            else:
                y = rng.uniform(H * 0.05, max(H * 0.05 + 1, H - h))
                if vx > 0:
                    x = -w + 1.0
                else:
                    x = W - 1.0
        obj = _Obj(self.next_id, cls, sprites, float(x), float(y), float(vx), float(vy), float(rng.random()), bounces)
        obj.entered = inside
        self.next_id += 1
        self.objs.append(obj)

    def _move(self):
        cfg, rng = self.cfg, self.rng
        W, H = cfg.width, cfg.height
        alive = []
        for o in self.objs:
            h, w = o.sprite[1].shape
            if o.cls == PERSON:
                o.vx += rng.normal(0, 0.03)
                o.vy = 0.95 * o.vy + rng.normal(0, 0.05)
                o.phase += abs(o.vx) / max(4.0, w * 0.6)
            o.x += o.vx
            o.y += o.vy
            if o.cls == BALL and o.bounces > 0:
                if (o.x < 0 and o.vx < 0) or (o.x + w > W and o.vx > 0):
                    o.vx, o.bounces = -o.vx, o.bounces - 1
                if (o.y < 0 and o.vy < 0) or (o.y + h > H and o.vy > 0):
                    o.vy, o.bounces = -o.vy, o.bounces - 1
            elif o.cls != BALL:  # keep walkers / cars vertically inside
                if (o.y < 0 and o.vy < 0) or (o.y + h > H and o.vy > 0):
                    o.vy = -o.vy
            inside = o.x + w > 0 and o.y + h > 0 and o.x < W and o.y < H
            o.entered |= inside
            o.age += 1
            if inside or (not o.entered and o.age < 200):
                alive.append(o)
        self.objs = alive
        if len(self.objs) < cfg.max_objects and rng.random() < cfg.spawn_prob * (25.0 / max(cfg.fps, 1e-3)):
            self._spawn(inside=False)

    def render(self, frame_index: int):
        cfg, rng = self.cfg, self.rng
        W, H = cfg.width, cfg.height
        img = self.bg.copy()
        idbuf = self.idbuf
        idbuf.fill(0)
        placed = []
        for o in sorted(self.objs, key=lambda o: o.z):
            spr, mask = o.sprite
            h, w = mask.shape
            x0, y0 = int(round(o.x)), int(round(o.y))
            cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(W, x0 + w), min(H, y0 + h)
            if cx1 <= cx0 or cy1 <= cy0:
                continue
            m = mask[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
            np.copyto(img[cy0:cy1, cx0:cx1], spr[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0], where=m[..., None])
            np.copyto(idbuf[cy0:cy1, cx0:cx1], o.tid, where=m)
            placed.append((o, m, (cx0, cy0, cx1, cy1), int(mask.sum())))
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
        if self.noise_pos:
            k = int(rng.integers(0, len(self.noise_pos)))
            ox, oy = int(rng.integers(0, 32)), int(rng.integers(0, 32))
            cv2.add(img, self.noise_pos[k][oy:oy + H, ox:ox + W], dst=img)
            cv2.subtract(img, self.noise_neg[k][oy:oy + H, ox:ox + W], dst=img)
        if cfg.blur:
            img = cv2.GaussianBlur(img, (3, 3), 0.6)
        if cfg.flicker > 0:
            alpha = 1.0 + cfg.flicker * (rng.random() * 2 - 1)
            img = cv2.convertScaleAbs(img, alpha=alpha, beta=0)
        return img, gt


def generate_scene(config: SceneConfig) -> Iterator[tuple[int, np.ndarray, list[GtRow]]]:
    """Yield ``(frame_index 0-based, image uint8[H,W,3] BGR, gt rows)`` for each frame.

    gt rows: ``(track_id, class_id 0-based, x1, y1, x2, y2, visibility)`` (see module doc).
    The same config (seed included) always yields the same frames and gt.
    """
    scene = _Scene(config)
    for i in range(int(config.num_frames)):
        img, gt = scene.render(i)
        yield i, img, gt
        scene._move()


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
    lines = []
    try:
        for i, img, gt in generate_scene(config):
            writer.write(img)
            if write_images:
                cv2.imwrite(str(out / "img1" / f"{i + 1:06d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
            for tid, cls, x1, y1, x2, y2, vis in gt:
                lines.append(f"{i + 1},{tid},{x1:.0f},{y1:.0f},{x2 - x1:.0f},{y2 - y1:.0f},1,{cls + 1},{vis:.4f}\n")
    finally:
        writer.release()
    (out / "gt" / "gt.txt").write_text("".join(lines))
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
