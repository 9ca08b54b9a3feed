"""YOLO-format datasets: reading, augmentation, target assignment, and the ``tf.data`` input pipeline.

Dataset layout (written by :func:`vidtrack.synthetic.write_yolo_dataset` or
:func:`detector.training.evaluate.mot_to_yolo`)::

    ROOT/dataset.toml       names = ["person", ...]; train = "train"; val = "val"
    ROOT/<split>/images/*.jpg|*.png
    ROOT/<split>/labels/<stem>.txt   class cx cy w h   (normalised 0..1, one object a line)

Targets (per head, from :func:`build_targets`): for the fine (stride 8) and the coarse
(stride 16) head a float32[gh, gw, A, 6] array holding gt x1, y1, x2, y2 (input pixels),
a positive flag, and the class id. Assignment is YOLOv5-style: every anchor whose
width/height ratio to the gt is < ``ANCHOR_RATIO`` gets the gt in the centre cell and the
two nearest neighbour cells (this needs ``scale_x_y = 2`` in the decode).
"""
from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from detector.letterbox import PAD_VALUE
from base.errors import VidtrackError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")
ANCHOR_RATIO = 4.0


@dataclass
class YoloDataset:
    """A dataset root with class names and split directories."""

    root: Path
    names: list[str]
    splits: dict[str, Path]

    @classmethod
    def open(cls, root) -> "YoloDataset":
        root = Path(root)
        meta_path = root / "dataset.toml" if root.is_dir() else root
        if not meta_path.is_file():
            raise VidtrackError(f"dataset not found: {meta_path} (expected a dataset.toml)")
        try:
            meta = tomllib.loads(meta_path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise VidtrackError(f"{meta_path}: invalid TOML: {exc}") from exc
        if not isinstance(meta.get("names"), list) or not meta["names"]:
            raise VidtrackError(f"{meta_path}: 'names' must be a non-empty list of class names")
        base = meta_path.parent
        splits = {k: base / meta[k] for k in ("train", "val", "test") if k in meta}
        return cls(base, [str(n) for n in meta["names"]], splits)

    def items(self, split: str) -> list[tuple[Path, np.ndarray]]:
        """[(image path, labels float32[M,5] class cx cy w h normalised)] of one split."""
        if split not in self.splits:
            raise VidtrackError(f"dataset {self.root} has no '{split}' split")
        return read_split(self.splits[split])


def write_dataset_toml(root, names, comment: str) -> Path:
    """Write ROOT/dataset.toml naming the classes and the ``train``/``val`` split folders
    (the file :meth:`YoloDataset.open` reads); returns its path."""
    path = Path(root) / "dataset.toml"
    quoted = ", ".join(json.dumps(str(n)) for n in names)
    path.write_text(f'# {comment}\nnames = [{quoted}]\ntrain = "train"\nval = "val"\n')
    return path


def read_split(split_dir) -> list[tuple[Path, np.ndarray]]:
    split_dir = Path(split_dir)
    images = sorted(p for p in (split_dir / "images").iterdir() if p.suffix.lower() in IMAGE_EXTS) \
        if (split_dir / "images").is_dir() else []
    if not images:
        raise VidtrackError(f"no images in {split_dir / 'images'}")
    out = []
    for img in images:
        lab = split_dir / "labels" / (img.stem + ".txt")
        arr = np.zeros((0, 5), np.float32)
        if lab.is_file():
            text = lab.read_text().strip()
            if text:
                arr = np.array([[float(v) for v in line.split()[:5]] for line in text.splitlines() if line.strip()],
                               np.float32).reshape(-1, 5)
        out.append((img, arr))
    return out


def labels_to_boxes(labels: np.ndarray, width: int, height: int):
    """float[M,5] class cx cy w h normalised -> (boxes float32[M,4] x1y1x2y2 px, classes int32[M])."""
    labels = np.asarray(labels, np.float32).reshape(-1, 5)
    cx, cy, w, h = labels[:, 1] * width, labels[:, 2] * height, labels[:, 3] * width, labels[:, 4] * height
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1).astype(np.float32)
    return boxes, labels[:, 0].astype(np.int32)


# ----------------------------------------------------------------------------- augmentation
def hsv_jitter(img_bgr: np.ndarray, rng, hue=0.03, sat=0.5, val=0.4) -> np.ndarray:
    """Random hue / saturation / value gains (YOLOv5 style), uint8 BGR in and out."""
    r = rng.uniform(-1, 1, 3) * [hue, sat, val] + 1
    h, s, v = cv2.split(cv2.cvtColor(img_bgr, cv2.COLOR_BGR2HSV))
    x = np.arange(256, dtype=np.float32)
    lut_h = ((x * r[0]) % 180).astype(np.uint8)
    lut_s = np.clip(x * r[1], 0, 255).astype(np.uint8)
    lut_v = np.clip(x * r[2], 0, 255).astype(np.uint8)
    hsv = cv2.merge((cv2.LUT(h, lut_h), cv2.LUT(s, lut_s), cv2.LUT(v, lut_v)))
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def load_example(path, labels, input_size, rng=None, augment=False, scale=(0.6, 1.4), translate=0.15,
                 flip=0.5):
    """Read one image and place it on the network canvas (letterbox, plus random affine when augmenting).

    Returns (uint8[h,w,3] RGB, boxes float32[M,4] input px, classes int32[M]); boxes that lose
    more than 60 % of their area to the canvas border (or get < 2 px) are dropped.
    """
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise VidtrackError(f"cannot read image {path}")
    H, W = img.shape[:2]
    th, tw = input_size
    boxes, classes = labels_to_boxes(labels, W, H)
    s = min(tw / W, th / H)
    dx, dy = (tw - W * s) / 2, (th - H * s) / 2
    if augment:
        s *= rng.uniform(*scale)
        dx = (tw - W * s) / 2 + rng.uniform(-translate, translate) * tw
        dy = (th - H * s) / 2 + rng.uniform(-translate, translate) * th
        img = hsv_jitter(img, rng)
    m = np.array([[s, 0, dx], [0, s, dy]], np.float32)
    out = cv2.warpAffine(img, m, (tw, th), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=(PAD_VALUE,) * 3)
    b = boxes * s + np.array([dx, dy, dx, dy], np.float32)
    if augment and rng.random() < flip:
        out = out[:, ::-1]
        b = np.stack([tw - b[:, 2], b[:, 1], tw - b[:, 0], b[:, 3]], 1)
    area0 = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    b = np.clip(b, 0, [tw, th, tw, th]).astype(np.float32)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    ok = (area > 0.4 * np.maximum(area0, 1e-6)) & (b[:, 2] - b[:, 0] >= 2) & (b[:, 3] - b[:, 1] >= 2)
    return np.ascontiguousarray(out[..., ::-1]), b[ok], classes[ok]


def build_targets(boxes, classes, anchors, input_size, strides=(8, 16)) -> list[np.ndarray]:
    """Assign gt boxes (float[M,4] input px) to anchors/cells; one float32[gh,gw,A,6] array per head."""
    th, tw = input_size
    targets = []
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    wh = boxes[:, 2:] - boxes[:, :2]
    ctr = (boxes[:, :2] + boxes[:, 2:]) / 2
    for head_anchors, stride in zip(anchors, strides):
        gh, gw = th // stride, tw // stride
        a = np.asarray(head_anchors, np.float32)
        t = np.zeros((gh, gw, len(a), 6), np.float32)
        if len(boxes):
            ratio = wh[:, None, :] / a[None, :, :]  # [M, A, 2]
            match = np.maximum(ratio, 1 / ratio).max(2) < ANCHOR_RATIO
            g = ctr / stride
            cell = np.floor(g).astype(int)
            frac = g - cell
            for m_i, a_i in zip(*np.nonzero(match)):
                cx, cy = cell[m_i]
                fx, fy = frac[m_i]
                cand = [(cx, cy), (cx - 1 if fx < 0.5 else cx + 1, cy), (cx, cy - 1 if fy < 0.5 else cy + 1)]
                for x, y in cand:
                    if 0 <= x < gw and 0 <= y < gh:
                        t[y, x, a_i, :4] = boxes[m_i]
                        t[y, x, a_i, 4] = 1.0
                        t[y, x, a_i, 5] = classes[m_i]
        targets.append(t)
    return targets


def make_tf_dataset(items, anchors, input_size, batch_size, augment, seed=0, shuffle=True, strides=(8, 16)):
    """tf.data pipeline: shuffle -> load/augment/assign (numpy, parallel) -> batch -> prefetch.

    Yields (images float32[B,h,w,3] RGB 0..1, (targets head 1, targets head 2)).
    """
    import tensorflow as tf

    paths = [str(p) for p, _ in items]
    labels = [lab for _, lab in items]
    th, tw = input_size
    shapes = [(th // s, tw // s, len(a), 6) for a, s in zip(anchors, strides)]
    counter = np.random.default_rng(seed)
    seeds = {"n": 0}

    def _load(i):
        i = int(i)
        seeds["n"] += 1
        rng = np.random.default_rng([seed, i, seeds["n"]]) if augment else None
        img, b, c = load_example(paths[i], labels[i], input_size, rng, augment)
        t = build_targets(b, c, anchors, input_size, strides)
        return (img,) + tuple(t)

    def _map(i):
        out = tf.numpy_function(_load, [i], [tf.uint8] + [tf.float32] * len(shapes))
        img = tf.ensure_shape(out[0], (th, tw, 3))
        img = tf.cast(img, tf.float32) / 255.0
        ts = tuple(tf.ensure_shape(t, s) for t, s in zip(out[1:], shapes))
        return img, ts

    del counter
    ds = tf.data.Dataset.range(len(paths))
    if shuffle:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(_map, num_parallel_calls=2, deterministic=True)
    return ds.batch(batch_size, drop_remainder=augment).prefetch(2)
