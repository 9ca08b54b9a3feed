"""Train the tiny YOLO (:mod:`detector.model`) on a YOLO-format dataset.

Anchors come from k-means over the training boxes as they appear on the letterboxed
network input. Optimiser: AdamW with linear learning-rate warm-up then cosine decay
(per step). Each epoch ends with a checkpoint (``OUT.ckpt/``: weights, optimiser state,
epoch) and the val mAP; ``resume=True`` continues from that checkpoint. The result is
saved as a self-describing ``.keras`` file (graph ends in YoloDecode).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from base.errors import VidtrackError


@dataclass
class TrainConfig:
    """Training settings. img_size = (height, width) of the network input, multiples of 16."""

    epochs: int = 30
    batch: int = 16
    img_size: tuple = (192, 320)
    seed: int = 0
    width: int = 16
    lr: float = 2e-3
    weight_decay: float = 5e-4
    warmup_epochs: float = 0.5
    val_images: int = 200  # val images scored after each epoch (0 = skip)
    init: str | None = None  # .keras model to copy matching layer weights from (warm start)


def _warmup_cosine(base_lr, warmup_steps, total_steps):
    import keras

    @keras.saving.register_keras_serializable(package="vidtrack")
    class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            from keras import ops

            step = ops.cast(step, "float32")
            warm = base_lr * (step + 1) / max(1.0, float(warmup_steps))
            prog = ops.clip((step - warmup_steps) / max(1.0, float(total_steps - warmup_steps)), 0.0, 1.0)
            cos = base_lr * (0.02 + 0.98 * 0.5 * (1 + ops.cos(math.pi * prog)))
            return ops.where(step < warmup_steps, warm, cos)

        def get_config(self):
            return {}

    return WarmupCosine()


def box_sizes_on_input(items, img_size) -> np.ndarray:
    """Box (w, h) in network-input pixels after letterboxing, float32[N,2]."""
    th, tw = img_size
    sizes, cache = [], {}
    for path, labels in items:
        if len(labels) == 0:
            continue
        shape = cache.get(path.parent)
        if shape is None:  # assume one frame size per directory only when names say so? read each
            img = cv2.imread(str(path), cv2.IMREAD_REDUCED_GRAYSCALE_4)
            if img is None:
                raise VidtrackError(f"cannot read image {path}")
            shape = (img.shape[0] * 4, img.shape[1] * 4)
        h, w = shape
        s = min(tw / w, th / h)
        sizes.append(labels[:, 3:5] * [w * s, h * s])
    return np.concatenate(sizes).astype(np.float32) if sizes else np.zeros((0, 2), np.float32)


def init_from(model, path) -> int:
    """Copy weights of same-named, same-shaped layers from the ``.keras`` model at ``path``."""
    from detector.loading import load_keras

    src = load_keras(path)
    copied = 0
    for layer in model.layers:
        try:
            other = src.get_layer(layer.name)
        except ValueError:
            continue
        w_new, w_old = layer.get_weights(), other.get_weights()
        if w_new and len(w_new) == len(w_old) and all(a.shape == b.shape for a, b in zip(w_new, w_old)):
            layer.set_weights(w_old)
            copied += 1
    return copied


class _Checkpoint:
    def __init__(self, out: Path):
        self.dir = out.with_suffix(".ckpt")

    def exists(self) -> bool:
        return (self.dir / "state.json").is_file()

    def save(self, model, optimizer, state: dict):
        self.dir.mkdir(parents=True, exist_ok=True)
        model.save_weights(self.dir / "model.weights.h5")
        np.savez(self.dir / "optimizer.npz", *[np.asarray(v) for v in optimizer.variables])
        (self.dir / "state.json").write_text(json.dumps(state, indent=1))

    def load_state(self) -> dict:
        return json.loads((self.dir / "state.json").read_text())

    def restore(self, model, optimizer):
        model.load_weights(self.dir / "model.weights.h5")
        optimizer.build(model.trainable_variables)
        data = np.load(self.dir / "optimizer.npz")
        values = [data[f"arr_{i}"] for i in range(len(data.files))]
        if len(values) != len(optimizer.variables):
            raise VidtrackError(f"checkpoint {self.dir} does not match the optimiser")
        for var, val in zip(optimizer.variables, values):
            var.assign(val)


def train(data, out, config: TrainConfig | None = None, resume: bool = False, log=print, progress: bool = True):
    """Train on the YOLO dataset at ``data`` and save ``out`` (.keras). Returns (model, history list)."""
    import keras
    import tensorflow as tf

    from detector.training.anchors import kmeans_anchors, mean_best_iou, split_anchors
    from detector.training.dataset import YoloDataset, make_tf_dataset
    from detector.training.evaluate import evaluate_detector
    from detector.training.loss import yolo_loss
    from detector.model import build_model, heads_model
    from detector.runtime import Detector

    cfg = config or TrainConfig()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ds = YoloDataset.open(data)
    train_items = ds.items("train")
    val_items = ds.items("val") if "val" in ds.splits and cfg.val_images else []
    if cfg.val_images and len(val_items) > cfg.val_images:
        idx = np.random.default_rng(cfg.seed).choice(len(val_items), cfg.val_images, replace=False)
        val_items = [val_items[i] for i in sorted(idx)]
    ckpt = _Checkpoint(out)
    img_size = tuple(int(v) for v in cfg.img_size)
    history, start_epoch = [], 0
    if resume:
        if not ckpt.exists():
            raise VidtrackError(f"--resume: no checkpoint at {ckpt.dir}")
        state = ckpt.load_state()
        saved_cfg = state["config"]
        saved_cfg["img_size"] = tuple(saved_cfg["img_size"])
        cfg = TrainConfig(**{**saved_cfg, "epochs": max(cfg.epochs, saved_cfg["epochs"])}) \
            if cfg.epochs != saved_cfg["epochs"] else TrainConfig(**saved_cfg)
        anchors, start_epoch, history = state["anchors"], state["epoch"], state["history"]
        img_size = tuple(cfg.img_size)
        log(f"resuming from {ckpt.dir} after epoch {start_epoch}")
    else:
        wh = box_sizes_on_input(train_items, img_size)
        if len(wh) < 6:
            raise VidtrackError(f"too few boxes in {data} to compute anchors ({len(wh)})")
        a = kmeans_anchors(wh, 6, seed=cfg.seed)
        anchors = split_anchors(a, 2)
        log(f"anchors (input px) {anchors}; mean best IoU {mean_best_iou(wh, a):.3f} over {len(wh)} boxes")
    keras.utils.set_random_seed(cfg.seed)
    model = build_model(len(ds.names), anchors, img_size, ds.names, width=cfg.width)
    hm = heads_model(model)
    steps_per_epoch = max(1, len(train_items) // cfg.batch)
    total = steps_per_epoch * cfg.epochs
    schedule = _warmup_cosine(cfg.lr, int(cfg.warmup_epochs * steps_per_epoch), total)
    opt = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=cfg.weight_decay, clipnorm=10.0)
    if resume:
        ckpt.restore(model, opt)
    elif cfg.init:
        copied = init_from(model, cfg.init)
        log(f"warm start: copied {copied} layers from {cfg.init}")
    log(f"model {model.count_params():,} parameters, input {img_size[0]}x{img_size[1]}, "
        f"{len(train_items)} train / {len(val_items)} val images, {steps_per_epoch} steps/epoch")
    num_classes = len(ds.names)

    @tf.function(reduce_retracing=True)
    def train_step(x, targets):
        with tf.GradientTape() as tape:
            heads = hm(x, training=True)
            loss, parts = yolo_loss(heads, targets, anchors, img_size, num_classes)
        grads = tape.gradient(loss, hm.trainable_variables)
        opt.apply_gradients(zip(grads, hm.trainable_variables))
        return loss, parts

    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        tfds = make_tf_dataset(train_items, anchors, img_size, cfg.batch, augment=True, seed=cfg.seed * 1000 + epoch)
        it = tfds.take(steps_per_epoch)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step", leave=False)
        sums, n = {"loss": 0.0, "box": 0.0, "obj": 0.0, "cls": 0.0}, 0
        for x, targets in it:
            loss, parts = train_step(x, targets)
            n += 1
            sums["loss"] += float(loss)
            for k in ("box", "obj", "cls"):
                sums[k] += float(parts[k])
            if bar:
                bar.update(1)
                bar.set_postfix(loss=f"{sums['loss'] / n:.4f}", box=f"{sums['box'] / n:.3f}",
                                obj=f"{sums['obj'] / n:.4f}", cls=f"{sums['cls'] / n:.3f}")
        if bar:
            bar.close()
        rec = {"epoch": epoch + 1, **{k: round(v / max(n, 1), 5) for k, v in sums.items()},
               "seconds": round(time.perf_counter() - t0, 1)}
        if val_items:
            det = Detector.from_model(model, conf_threshold=0.001, iou_threshold=0.6)
            m = evaluate_detector(det, val_items)
            rec.update(val_map50=round(m["map50"], 4), val_map=round(m["map"], 4))
        history.append(rec)
        log("epoch {epoch}: loss {loss:.4f} (box {box:.3f} obj {obj:.4f} cls {cls:.3f}) {seconds}s".format(**rec)
            + (f"  val mAP@0.5 {rec['val_map50']:.4f} mAP@0.5:0.95 {rec['val_map']:.4f}" if val_items else ""))
        cfg_dict = asdict(cfg)
        cfg_dict["img_size"] = list(img_size)
        ckpt.save(model, opt, {"epoch": epoch + 1, "anchors": anchors, "history": history, "config": cfg_dict,
                               "data": str(data)})
        model.save(out)
    model.save(out)
    return model, history
