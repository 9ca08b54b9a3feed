"""The learned appearance embedder at serving time: a saved Keras CNN mapping a person crop
to a 128-d unit vector (trained by :mod:`detector.training.embedder`).

Model contract (saved ``.keras``, loaded by :func:`detector.loading.load_keras`):
input float32[B, H, W, 3] RGB 0..255 (H, W from ``model.input_shape``, 128 x 64 by
default), output float32[B, D] L2-normalised (``UnitNormalization`` is the last layer).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

import keras

from detector.crops import crop_batch, l2_normalise, split_rows
from base.errors import ModelError

INPUT_SIZE = (128, 64)  # height, width in pixels
EMBED_DIM = 128



class KerasEmbedder:
    """:class:`detector.appearance.Embedder` backed by a saved embedding model (its weights
    are frozen into the graph when this is made: later changes to the model are not seen)."""

    def __init__(self, model: keras.Model, max_batch: int = 512):
        shape = model.input_shape
        if len(shape) != 4 or shape[-1] != 3 or shape[1] is None or shape[2] is None:
            raise ModelError(f"embedder input must be [B, H, W, 3] with fixed H, W; got {shape}")
        self.model = model
        self.input_size = (int(shape[1]), int(shape[2]))
        self.dim = int(model.output_shape[-1])
        self.max_batch = int(max_batch)
        import tensorflow as tf  # the Keras backend of this project

        predict = tf.function(
            lambda x: model(x, training=False),
            input_signature=[tf.TensorSpec([None, *self.input_size, 3], tf.float32)],
        )
        # frozen like the detector: 1,970-2,090 vs 1,670-1,710 crops/s at batch 32 (ad-hoc loop)
        from detector.runtime import frozen_function

        self._predict = frozen_function(predict.get_concrete_function())

    @classmethod
    def load(cls, path: str | Path, **kwargs) -> "KerasEmbedder":
        from detector.loading import load_keras

        try:
            model = load_keras(path)
        except Exception as exc:  # noqa: BLE001 - any load failure is a bad model file
            raise ModelError(f"cannot load embedder model {path}: {exc}") from exc
        return cls(model, **kwargs)

    def embed(self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray]) -> list[np.ndarray]:
        crops, _, counts = crop_batch(images, boxes, self.input_size)
        return split_rows(self.embed_crops(crops), counts)

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        """uint8[M, H, W, 3] BGR crops of the model's input size -> float32[M, dim] unit
        vectors, one forward pass per ``max_batch`` crops."""
        if len(crops) == 0:
            return np.zeros((0, self.dim), np.float32)
        rgb = np.ascontiguousarray(crops[..., ::-1], dtype=np.float32)
        out = [self._predict(rgb[i:i + self.max_batch]).numpy() for i in range(0, len(rgb), self.max_batch)]
        return l2_normalise(np.concatenate(out))

