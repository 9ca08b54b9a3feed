"""A tiny-YOLO-style fully-convolutional detector (Keras).

Two output scales, stride 8 and 16, ``len(anchors[i])`` anchors each, heads in Darknet
layout ``[B, gh, gw, A * (5 + C)]``. :func:`build_model` returns the inference model whose
graph ends in :class:`YoloDecode` (so a saved ``.keras`` file decodes in-graph and is
self-describing); :func:`heads_model` gives the model that outputs the raw heads for training
(same layers, same weights).

Backbone: conv3x3 + BatchNorm + LeakyReLU(0.1) blocks (Darknet style), strided convs for
downsampling, a small FPN-like upsample + concat for the stride-8 head.
"""
from __future__ import annotations

import keras
from keras import layers

from detector.decode import YoloDecode

STRIDES = (8, 16)


def _conv(x, filters, kernel=3, stride=1, name=None):
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=0.97, epsilon=1e-3, name=f"{name}_bn")(x)
    return layers.LeakyReLU(negative_slope=0.1, name=f"{name}_act")(x)


def build_model(num_classes: int, anchors, input_size=(192, 320), class_names=None, width: int = 16,
                name: str = "vidtrack_tiny_yolo", scale_x_y=(2.0, 2.0)) -> keras.Model:
    """Inference model: float32[B,h,w,3] RGB 0..1 -> (boxes [B,N,4] input px, objectness [B,N], class_probs [B,N,C]).

    anchors: two lists (stride 8 head, stride 16 head) of (w, h) in input pixels.
    input_size: (h, w), multiples of 16. width: channels of the first conv (others scale with it).
    scale_x_y: Darknet ``scale_x_y`` per head; 2.0 lets a cell predict centres in its two
    neighbours too (YOLOv5-style assignment in :mod:`detector.training.dataset` relies on it).
    """
    h, w = int(input_size[0]), int(input_size[1])
    if h % 16 or w % 16:
        raise ValueError(f"input size must be a multiple of 16, got {h}x{w}")
    if len(anchors) != 2:
        raise ValueError("need two anchor groups (stride 8 and stride 16)")
    c = int(width)
    inp = keras.Input((h, w, 3), name="images")
    x = _conv(inp, c, 3, 2, "b1")           # /2
    x = _conv(x, 2 * c, 3, 2, "b2")         # /4
    x = _conv(x, 2 * c, 3, 1, "b3")
    x = _conv(x, 4 * c, 3, 2, "b4")         # /8
    c3 = _conv(x, 4 * c, 3, 1, "b5")
    x = _conv(c3, 8 * c, 3, 2, "b6")        # /16
    x = _conv(x, 8 * c, 3, 1, "b7")
    x = _conv(x, 4 * c, 1, 1, "b8")
    c4 = _conv(x, 8 * c, 3, 1, "b9")
    out_ch = [len(a) * (5 + num_classes) for a in anchors]
    head16 = layers.Conv2D(out_ch[1], 1, name="head16")(c4)
    u = _conv(c4, 2 * c, 1, 1, "up_reduce")
    u = layers.UpSampling2D(2, interpolation="nearest", name="up")(u)
    u = layers.Concatenate(name="up_concat")([u, c3])
    u = _conv(u, 4 * c, 3, 1, "p3")
    head8 = layers.Conv2D(out_ch[0], 1, name="head8")(u)
    decode = YoloDecode(anchors, num_classes, (h, w), scale_x_y=list(scale_x_y), class_names=class_names,
                        name="yolo_decode")
    boxes, obj, cls_p = decode([head8, head16])
    model = keras.Model(inp, [boxes, obj, cls_p], name=name)
    _init_head_bias(model, anchors, num_classes)
    return model


def _init_head_bias(model, anchors, num_classes):
    """Start with low objectness (logit -4.6 ~ p=0.01) so early training is stable."""

    for lname, a in (("head8", anchors[0]), ("head16", anchors[1])):
        layer = model.get_layer(lname)
        k, b = layer.get_weights()
        b = b.reshape(len(a), 5 + num_classes)
        b[:, 4] = -4.6
        b[:, 5:] = -2.0
        layer.set_weights([k, b.reshape(-1)])


def heads_model(model: keras.Model) -> keras.Model:
    """The raw-heads view of an inference model (shares its layers): outputs [head8, head16]."""
    return keras.Model(model.inputs, [model.get_layer("head8").output, model.get_layer("head16").output],
                       name=model.name + "_heads")


def decode_layer(model: keras.Model) -> YoloDecode:
    return model.get_layer("yolo_decode")
