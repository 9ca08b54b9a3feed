"""Small Keras layers for Darknet semantics that stock Keras layers do not cover."""
from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="vidtrack")
class DarknetMaxPool(keras.layers.Layer):
    """Darknet max-pool: pads ``padding // 2`` cells before and the rest after with -inf.

    Output size = (in + padding - size) // stride + 1 (Darknet's ``maxpool`` layer).
    """

    def __init__(self, size, stride, padding, **kwargs):
        super().__init__(**kwargs)
        self.size, self.stride, self.padding = int(size), int(stride), int(padding)

    def _pads(self, n):
        out = (n + self.padding - self.size) // self.stride + 1
        before = self.padding // 2
        after = (out - 1) * self.stride + self.size - n - before
        return before, after

    def call(self, x):
        h, w = x.shape[1], x.shape[2]
        (top, bottom), (left, right) = self._pads(h), self._pads(w)
        x = ops.pad(x, [[0, 0], [top, max(bottom, 0)], [left, max(right, 0)], [0, 0]], constant_values=-3.0e38)
        return ops.max_pool(x, self.size, self.stride, padding="valid")

    def get_config(self):
        config = super().get_config()
        config.update(size=self.size, stride=self.stride, padding=self.padding)
        return config


@keras.saving.register_keras_serializable(package="vidtrack")
class ChannelGroup(keras.layers.Layer):
    """Darknet ``[route] groups=G group_id=K``: channels [K * C/G, (K+1) * C/G) of the input."""

    def __init__(self, groups, group_id, **kwargs):
        super().__init__(**kwargs)
        self.groups, self.group_id = int(groups), int(group_id)

    def call(self, x):
        c = x.shape[-1] // self.groups
        return x[..., self.group_id * c:(self.group_id + 1) * c]

    def get_config(self):
        config = super().get_config()
        config.update(groups=self.groups, group_id=self.group_id)
        return config
