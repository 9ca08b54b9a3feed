"""YOLO loss on raw heads: CIoU box loss, BCE objectness (IoU target) and BCE classes.

Per head, with raw ``head`` float32[B, gh, gw, A*(5+C)] and targets float32[B, gh, gw, A, 6]
(gt x1, y1, x2, y2 in input pixels, positive flag, class id) from
:func:`detector.training.dataset.build_targets`:

- box:  mean over positives of 1 - CIoU(pred, gt)
- obj:  mean over all cells of BCE(logit, IoU(pred, gt) on positives else 0), weighted per
        head by ``OBJ_BALANCE`` (fine head counts more, YOLOv5 style)
- cls:  mean over positives and classes of BCE(logit, one-hot)

total = BOX_W * box + OBJ_W * obj + CLS_W * cls. Box decoding matches
:class:`detector.decode.YoloDecode` (Darknet ``scale_x_y``).
"""
from __future__ import annotations

import math

import tensorflow as tf

BOX_W, OBJ_W, CLS_W = 0.05, 0.5, 0.1
OBJ_BALANCE = (4.0, 1.0)


def ciou(a, b, eps=1e-7):
    """Complete IoU of x1y1x2y2 boxes a, b float[..., 4] -> (ciou [...], iou [...])."""
    aw, ah = a[..., 2] - a[..., 0], a[..., 3] - a[..., 1]
    bw, bh = b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]
    iw = tf.maximum(tf.minimum(a[..., 2], b[..., 2]) - tf.maximum(a[..., 0], b[..., 0]), 0.0)
    ih = tf.maximum(tf.minimum(a[..., 3], b[..., 3]) - tf.maximum(a[..., 1], b[..., 1]), 0.0)
    inter = iw * ih
    union = aw * ah + bw * bh - inter + eps
    iou = inter / union
    cw = tf.maximum(a[..., 2], b[..., 2]) - tf.minimum(a[..., 0], b[..., 0])
    ch = tf.maximum(a[..., 3], b[..., 3]) - tf.minimum(a[..., 1], b[..., 1])
    c2 = cw ** 2 + ch ** 2 + eps
    rho2 = ((a[..., 0] + a[..., 2] - b[..., 0] - b[..., 2]) ** 2 + (a[..., 1] + a[..., 3] - b[..., 1] - b[..., 3]) ** 2) / 4
    v = (4 / math.pi ** 2) * (tf.atan(bw / (bh + eps)) - tf.atan(aw / (ah + eps))) ** 2
    alpha = tf.stop_gradient(v / (v - iou + 1 + eps))
    return iou - (rho2 / c2 + v * alpha), iou


def decode_head(head, anchors, input_size, num_classes, scale_x_y=2.0):
    """Raw head [B,gh,gw,A*(5+C)] -> (boxes [B,gh,gw,A,4] input px, raw [B,gh,gw,A,5+C])."""
    na = len(anchors)
    shape = tf.shape(head)
    gh, gw = shape[1], shape[2]
    t = tf.reshape(head, (shape[0], gh, gw, na, 5 + num_classes))
    sx = float(input_size[1]) / tf.cast(gw, tf.float32)
    sy = float(input_size[0]) / tf.cast(gh, tf.float32)
    cols = tf.reshape(tf.cast(tf.range(gw), tf.float32), (1, 1, -1, 1))
    rows = tf.reshape(tf.cast(tf.range(gh), tf.float32), (1, -1, 1, 1))
    s = scale_x_y
    x = (tf.sigmoid(t[..., 0]) * s - (s - 1) / 2 + cols) * sx
    y = (tf.sigmoid(t[..., 1]) * s - (s - 1) / 2 + rows) * sy
    an = tf.constant(anchors, tf.float32)
    w = tf.exp(tf.clip_by_value(t[..., 2], -8.0, 4.0)) * an[:, 0]
    h = tf.exp(tf.clip_by_value(t[..., 3], -8.0, 4.0)) * an[:, 1]
    return tf.stack([x - w / 2, y - h / 2, x + w / 2, y + h / 2], -1), t


def yolo_loss(heads, targets, anchors, input_size, num_classes, scale_x_y=(2.0, 2.0)):
    """Total loss (scalar) and a dict of its parts {"box", "obj", "cls"} for a batch."""
    box_sum, n_pos, cls_sum, obj_total = 0.0, 0.0, 0.0, 0.0
    for i, (head, tgt) in enumerate(zip(heads, targets)):
        boxes, t = decode_head(head, anchors[i], input_size, num_classes, scale_x_y[i])
        pos = tgt[..., 4]
        c, iou = ciou(boxes, tgt[..., :4])
        box_sum += tf.reduce_sum(pos * (1.0 - c))
        n_pos += tf.reduce_sum(pos)
        obj_t = pos * tf.stop_gradient(tf.clip_by_value(iou, 0.0, 1.0))
        obj = tf.nn.sigmoid_cross_entropy_with_logits(labels=obj_t, logits=t[..., 4])
        obj_total += OBJ_BALANCE[i] * tf.reduce_mean(obj)
        onehot = tf.one_hot(tf.cast(tgt[..., 5], tf.int32), num_classes)
        cls = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=onehot, logits=t[..., 5:]), -1)
        cls_sum += tf.reduce_sum(pos * cls)
    n = tf.maximum(n_pos, 1.0)
    box_l, cls_l = box_sum / n, cls_sum / n
    total = BOX_W * box_l + OBJ_W * obj_total + CLS_W * cls_l
    return total, {"box": box_l, "obj": obj_total, "cls": cls_l}
