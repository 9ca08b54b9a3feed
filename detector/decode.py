"""In-graph decoding of YOLO heads (Darknet semantics).

A detector model maps a letterboxed batch ``float32[B, S, S, 3]`` (RGB, 0..1) to raw
head tensors ``float32[B, gh, gw, A * (5 + C)]`` (Darknet layout: for each anchor
tx, ty, tw, th, objectness logit, C class logits). :class:`YoloDecode` turns the heads
into

- ``boxes``        float32[B, N, 4]  x1, y1, x2, y2 in pixels of the network input
- ``objectness``   float32[B, N]
- ``class_probs``  float32[B, N, C]

with N = sum over heads of gh * gw * A. The Darknet score of a box for class c is
``objectness * class_probs[..., c]``.

Decoding follows darknet's ``yolo`` layer with ``new_coords=0``:
x = (sigmoid(tx) * s - (s - 1) / 2 + col) / gw, w = exp(tw) * anchor_w / net_w,
with s = ``scale_x_y``.
"""
from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="vidtrack")
class YoloDecode(keras.layers.Layer):
    """Decode a list of YOLO heads into boxes, objectness and class probabilities.

    anchors:     per head, a list of (w, h) anchor sizes in input pixels
    num_classes: C
    input_size:  (height, width) of the network input in pixels
    scale_x_y:   per head, Darknet's ``scale_x_y`` (1.0 = plain YOLOv3)
    class_names: stored with the model so a saved file is self-describing
    """

    def __init__(self, anchors, num_classes, input_size, scale_x_y=None, class_names=None, **kwargs):
        super().__init__(**kwargs)
        self.anchors = [[[float(a) for a in wh] for wh in head] for head in anchors]
        self.num_classes = int(num_classes)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.scale_x_y = [float(s) for s in (scale_x_y or [1.0] * len(self.anchors))]
        self.class_names = list(class_names) if class_names else [str(i) for i in range(self.num_classes)]

    def call(self, heads):
        if not isinstance(heads, (list, tuple)):
            heads = [heads]
        net_h, net_w = self.input_size
        all_boxes, all_obj, all_cls = [], [], []
        for head, anchors, s in zip(heads, self.anchors, self.scale_x_y):
            a = len(anchors)
            shape = ops.shape(head)
            b, gh, gw = shape[0], shape[1], shape[2]
            t = ops.reshape(head, (b, gh, gw, a, 5 + self.num_classes))
            cols = ops.cast(ops.arange(gw), "float32")
            rows = ops.cast(ops.arange(gh), "float32")
            cx = ops.reshape(cols, (1, 1, -1, 1))
            cy = ops.reshape(rows, (1, -1, 1, 1))
            gw_f = ops.cast(gw, "float32")
            gh_f = ops.cast(gh, "float32")
            x = (ops.sigmoid(t[..., 0]) * s - (s - 1.0) / 2.0 + cx) / gw_f * net_w
            y = (ops.sigmoid(t[..., 1]) * s - (s - 1.0) / 2.0 + cy) / gh_f * net_h
            anchor_w = ops.reshape(ops.convert_to_tensor([wh[0] for wh in anchors], "float32"), (1, 1, 1, a))
            anchor_h = ops.reshape(ops.convert_to_tensor([wh[1] for wh in anchors], "float32"), (1, 1, 1, a))
            w = ops.exp(ops.minimum(t[..., 2], 10.0)) * anchor_w
            h = ops.exp(ops.minimum(t[..., 3], 10.0)) * anchor_h
            boxes = ops.stack([x - w / 2, y - h / 2, x + w / 2, y + h / 2], axis=-1)
            all_boxes.append(ops.reshape(boxes, (b, -1, 4)))
            all_obj.append(ops.reshape(ops.sigmoid(t[..., 4]), (b, -1)))
            all_cls.append(ops.reshape(ops.sigmoid(t[..., 5:]), (b, -1, self.num_classes)))
        return (
            ops.concatenate(all_boxes, axis=1),
            ops.concatenate(all_obj, axis=1),
            ops.concatenate(all_cls, axis=1),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            anchors=self.anchors,
            num_classes=self.num_classes,
            input_size=list(self.input_size),
            scale_x_y=self.scale_x_y,
            class_names=self.class_names,
        )
        return config
