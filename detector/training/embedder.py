"""Training of the appearance (re-id) CNN: the network, a batch-hard triplet loss, augmentation, PK batches."""
from __future__ import annotations

import logging
import time
from typing import Sequence

import numpy as np

import keras
from keras import layers, ops

from detector.embedder import EMBED_DIM, INPUT_SIZE
from detector.training.reid_data import ReidCrops

log = logging.getLogger(__name__)


def build_embedder(input_size: tuple[int, int] = INPUT_SIZE, dim: int = EMBED_DIM,
                   widths: Sequence[int] = (16, 32, 64, 128), dropout: float = 0.2) -> keras.Model:
    """A plain conv net sized for CPU training: per width a stride-2 3x3 conv, plus a
    second 3x3 conv in every stage but the first (full-resolution convs are the costly
    ones), BN + ReLU after each; then global average + max pooling, dropout, a linear
    projection to ``dim`` and L2 normalisation. ~0.3M parameters, ~22M multiply-adds
    per 128x64 crop with the defaults."""
    inp = keras.Input((int(input_size[0]), int(input_size[1]), 3), name="crop_rgb")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0)(inp)
    for i, w in enumerate(widths):
        x = layers.Conv2D(w, 3, strides=2, padding="same", use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
        if i > 0:
            x = layers.Conv2D(w, 3, padding="same", use_bias=False)(x)
            x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.Concatenate()([layers.GlobalAveragePooling2D()(x), layers.GlobalMaxPooling2D()(x)])
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(dim, name="projection")(x)
    out = layers.UnitNormalization(axis=-1, name="l2_normalise")(x)
    return keras.Model(inp, out, name="vidtrack_embedder")


def batch_hard_triplet_loss(labels, embeddings, margin: float | None = None):
    """Batch-hard triplet loss (Hermans et al. 2017) over a PK batch.

    labels: int[B] (or [B, 1]); embeddings: float[B, D] unit vectors. For each anchor
    the farthest positive and the nearest negative (Euclidean distance) form the
    triplet; loss = softplus(d_ap - d_an) (soft margin) or relu(d_ap - d_an + margin).
    Returns the mean over anchors (a scalar tensor).
    """
    labels = ops.reshape(ops.cast(labels, "int32"), (-1,))
    e = ops.cast(embeddings, "float32")
    sq = ops.sum(e * e, axis=1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * ops.matmul(e, ops.transpose(e))
    dist = ops.sqrt(ops.maximum(d2, 1e-12))
    same = ops.equal(labels[:, None], labels[None, :])
    eye = ops.eye(ops.shape(labels)[0], dtype="bool")
    pos = ops.logical_and(same, ops.logical_not(eye))
    d_ap = ops.max(ops.where(pos, dist, ops.zeros_like(dist)), axis=1)
    d_an = ops.min(ops.where(same, ops.full_like(dist, 1e4), dist), axis=1)
    if margin is None:
        per_anchor = ops.softplus(d_ap - d_an)
    else:
        per_anchor = ops.relu(d_ap - d_an + margin)
    return ops.mean(per_anchor)




def augment(crops: np.ndarray, out_size: tuple[int, int], rng: np.random.Generator,
            context: float = 0.0, jitter: float = 0.05, erase_p: float = 0.3) -> np.ndarray:
    """Random crop jitter, horizontal flip, colour jitter and random erasing.

    crops: uint8[B, h, w, 3] BGR crops whose box was grown by ``context`` of its size per
    side (see :func:`detector.training.reid_data.load_sequence_crops`). Returns float32[B, H, W, 3]
    RGB 0..255 of ``out_size`` = (H, W), ready for the model.
    """
    import cv2

    b, h, w = crops.shape[:3]
    oh, ow = int(out_size[0]), int(out_size[1])
    out = np.empty((b, oh, ow, 3), np.float32)
    box_frac = 1.0 / (1.0 + 2.0 * context)  # the gt box as a fraction of the stored crop
    for i in range(b):
        s = box_frac * rng.uniform(0.9, 1.1)
        fh, fw = min(1.0, s * rng.uniform(0.95, 1.05)), min(1.0, s)
        cy = 0.5 + rng.uniform(-jitter, jitter)
        cx = 0.5 + rng.uniform(-jitter, jitter)
        y1 = int(round(np.clip(cy - fh / 2, 0, 1 - fh) * h))
        x1 = int(round(np.clip(cx - fw / 2, 0, 1 - fw) * w))
        y2, x2 = y1 + max(1, int(round(fh * h))), x1 + max(1, int(round(fw * w)))
        out[i] = cv2.resize(crops[i, y1:y2, x1:x2], (ow, oh), interpolation=cv2.INTER_LINEAR)
    out = out[..., ::-1]  # BGR -> RGB
    flip = rng.random(b) < 0.5
    out[flip] = out[flip, :, ::-1]
    # colour jitter: brightness, contrast, saturation (per sample)
    bright = rng.uniform(0.75, 1.25, (b, 1, 1, 1)).astype(np.float32)
    contrast = rng.uniform(0.75, 1.25, (b, 1, 1, 1)).astype(np.float32)
    sat = rng.uniform(0.7, 1.3, (b, 1, 1, 1)).astype(np.float32)
    grey = out.mean(axis=3, keepdims=True)
    out = grey + sat * (out - grey)
    mean = out.mean(axis=(1, 2, 3), keepdims=True)
    out = (out - mean) * contrast + mean * bright
    # random erasing of one rectangle (occlusion)
    for i in np.flatnonzero(rng.random(b) < erase_p):
        eh, ew = int(oh * rng.uniform(0.1, 0.4)), int(ow * rng.uniform(0.2, 0.6))
        ey, ex = rng.integers(0, oh - eh + 1), rng.integers(0, ow - ew + 1)
        out[i, ey:ey + eh, ex:ex + ew] = rng.uniform(0, 255, (eh, ew, 3))
    return np.clip(out, 0, 255).astype(np.float32)


class PKBatches(keras.utils.PyDataset):
    """Batches of P identities x K crops (sampled with replacement where an identity has
    fewer than K crops), augmented; deterministic given ``seed``. Yields
    (float32[P*K, H, W, 3] RGB 0..255, int32[P*K] labels)."""

    def __init__(self, data: ReidCrops, p: int, k: int, steps: int, out_size=INPUT_SIZE,
                 context: float = 0.0, seed: int = 0, augment_data: bool = True):
        super().__init__(workers=1, use_multiprocessing=False)
        self.data, self.k, self.steps = data, int(k), int(steps)
        self.out_size, self.context, self.seed, self.augment_data = out_size, context, int(seed), augment_data
        self.by_id = [np.flatnonzero(data.labels == i) for i in range(data.num_ids)]
        self.by_id = [ix for ix in self.by_id if len(ix) >= 2]
        if len(self.by_id) < 2:
            raise ValueError("need at least two identities with two crops each")
        self.p = min(int(p), len(self.by_id))
        self.epoch = 0

    def __len__(self) -> int:
        return self.steps

    def on_epoch_end(self) -> None:
        self.epoch += 1

    def __getitem__(self, index: int):
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        ids = rng.choice(len(self.by_id), self.p, replace=False)
        picks, labels = [], []
        for j in ids:
            ix = self.by_id[j]
            picks.append(rng.choice(ix, self.k, replace=len(ix) < self.k))
            labels.append(np.full(self.k, j, np.int32))
        sel = np.concatenate(picks)
        crops = self.data.crops[sel]
        if self.augment_data:
            x = augment(crops, self.out_size, rng, context=self.context)
        else:
            x = np.stack([_resize_center(c, self.out_size, self.context) for c in crops])
        return x, np.concatenate(labels)


def _resize_center(crop: np.ndarray, out_size, context: float) -> np.ndarray:
    """The gt box part of a context crop, resized, as float32 RGB."""
    import cv2

    h, w = crop.shape[:2]
    f = 1.0 / (1.0 + 2.0 * context)
    y1, x1 = int(round((1 - f) / 2 * h)), int(round((1 - f) / 2 * w))
    y2, x2 = h - y1, w - x1
    return cv2.resize(crop[y1:y2, x1:x2], (out_size[1], out_size[0]))[..., ::-1].astype(np.float32)


class CosineByProgress(keras.callbacks.Callback):
    """Cosine learning-rate decay from ``lr`` to ``lr * alpha`` over training progress,
    progress = max(steps done / ``total_steps``, wall time / ``max_seconds``); stops
    training when progress reaches 1. So a run bounded by time still ends annealed."""

    def __init__(self, lr: float, total_steps: int, max_seconds: float | None = None, alpha: float = 0.01):
        super().__init__()
        self.lr, self.total, self.max_seconds, self.alpha = float(lr), max(1, int(total_steps)), max_seconds, alpha
        self.steps, self.start = 0, None

    def progress(self) -> float:
        p = self.steps / self.total
        if self.max_seconds:
            p = max(p, (time.monotonic() - self.start) / self.max_seconds)
        return min(1.0, p)

    def on_train_begin(self, logs=None):
        self.start = time.monotonic()

    def on_train_batch_begin(self, batch, logs=None):
        p = self.progress()
        self.model.optimizer.learning_rate = self.lr * (self.alpha + (1 - self.alpha) * 0.5 * (1 + np.cos(np.pi * p)))

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.progress() >= 1.0 and not self.model.stop_training:
            log.info("training budget reached after %d steps", self.steps)
            self.model.stop_training = True


def compile_for_training(model: keras.Model, lr: float = 3e-4, margin: float | None = None,
                         weight_decay: float = 5e-4) -> keras.Model:
    """Compile ``model`` with AdamW and the batch-hard triplet loss."""
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=lr, weight_decay=weight_decay),
        loss=lambda y_true, y_pred: batch_hard_triplet_loss(y_true, y_pred, margin),
    )
    return model


def train_embedder(data: ReidCrops, epochs: int = 30, steps_per_epoch: int = 50, p: int = 16, k: int = 4,
                   lr: float = 3e-4, margin: float | None = None, context: float = 0.0, seed: int = 0,
                   max_seconds: float | None = None, input_size=INPUT_SIZE, dim: int = EMBED_DIM,
                   verbose: int = 2) -> tuple[keras.Model, dict]:
    """Train a fresh :func:`build_embedder` model on ``data`` (crops grown by ``context``)
    for ``epochs`` x ``steps_per_epoch`` PK batches or ``max_seconds``, whichever ends
    first; the learning rate follows :class:`CosineByProgress`. Returns (an uncompiled
    inference model, the Keras history dict)."""
    keras.utils.set_random_seed(seed)
    model = build_embedder(input_size, dim)
    compile_for_training(model, lr=lr, margin=margin)
    batches = PKBatches(data, p, k, steps_per_epoch, input_size, context=context, seed=seed)
    callbacks = [CosineByProgress(lr, epochs * steps_per_epoch, max_seconds)]
    hist = model.fit(batches, epochs=epochs, callbacks=callbacks, verbose=verbose)
    inference = build_embedder(input_size, dim)
    inference.set_weights(model.get_weights())
    return inference, hist.history
