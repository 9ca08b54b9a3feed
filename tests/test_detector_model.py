"""Tiny YOLO model shapes, target assignment, CIoU, and the loss going down on real data."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from detector.training.dataset import build_targets, load_example, read_split
from detector.model import build_model, heads_model

ANCHORS = [[[8, 20], [16, 16], [12, 30]], [[30, 20], [20, 50], [60, 30]]]


def test_output_shapes_and_decode_metadata():
    model = build_model(3, ANCHORS, (96, 160), ["a", "b", "c"], width=4)
    n = (12 * 20 + 6 * 10) * 3
    boxes, obj, cls_p = model(np.zeros((2, 96, 160, 3), np.float32))
    assert tuple(boxes.shape) == (2, n, 4) and tuple(obj.shape) == (2, n) and tuple(cls_p.shape) == (2, n, 3)
    h8, h16 = heads_model(model)(np.zeros((1, 96, 160, 3), np.float32))
    assert tuple(h8.shape) == (1, 12, 20, 24) and tuple(h16.shape) == (1, 6, 10, 24)
    dec = model.get_layer("yolo_decode")
    assert dec.input_size == (96, 160) and dec.class_names == ["a", "b", "c"] and dec.scale_x_y == [2.0, 2.0]
    # untrained model starts with low objectness (bias init)
    assert float(np.max(obj)) < 0.1
    with pytest.raises(ValueError):
        build_model(3, ANCHORS, (100, 160))


def test_build_targets_assigns_centre_and_neighbour_cells():
    boxes = np.array([[20, 20, 36, 52]], np.float32)  # centre (28, 36), 16x32
    t8, t16 = build_targets(boxes, np.array([2]), ANCHORS, (96, 160))
    assert t8.shape == (12, 20, 3, 6) and t16.shape == (6, 10, 3, 6)
    pos = np.argwhere(t8[..., 4] > 0)
    # centre cell (row 4, col 3), fx=0.5 -> right neighbour, fy=0.5 -> lower neighbour
    cells = {(int(r), int(c)) for r, c, _ in pos}
    assert cells == {(4, 3), (4, 4), (5, 3)}
    assert set(pos[:, 2]) == {0, 1, 2}  # all three anchors within ratio 4
    assert np.all(t8[t8[..., 4] > 0][:, 5] == 2)
    np.testing.assert_allclose(t8[4, 3, 0, :4], boxes[0])
    # a huge box matches no small anchor
    t8b, t16b = build_targets(np.array([[0, 0, 150, 90]], np.float32), np.array([0]), ANCHORS, (96, 160))
    assert t8b[..., 4].sum() == 0 and t16b[..., 4].sum() > 0


def test_ciou_identity_and_ordering():
    import tensorflow as tf

    from detector.training.loss import ciou

    a = tf.constant([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], tf.float32)
    b = tf.constant([[0, 0, 10, 10], [2, 0, 12, 10], [20, 20, 30, 30]], tf.float32)
    c, iou = ciou(a, b)
    c, iou = c.numpy(), iou.numpy()
    assert c[0] == pytest.approx(1.0, abs=1e-5) and iou[1] == pytest.approx(80 / 120, abs=1e-5)
    assert c[0] > c[1] > c[2] and c[2] < 0


def test_loss_decreases_on_tiny_synthetic_dataset(tmp_path):
    import keras
    import tensorflow as tf

    from detector.training.loss import yolo_loss
    from vidtrack.synthetic import write_yolo_dataset

    keras.utils.set_random_seed(0)
    write_yolo_dataset(tmp_path / "ds", 8, 0, seed=3, width=160, height=96)
    items = read_split(tmp_path / "ds" / "train")
    size = (96, 160)
    xs, t8s, t16s = [], [], []
    for path, labels in items:
        img, b, c = load_example(path, labels, size)
        t8, t16 = build_targets(b, c, ANCHORS, size)
        xs.append(img.astype(np.float32) / 255)
        t8s.append(t8)
        t16s.append(t16)
    assert sum(t.sum() for t in t8s) > 0  # some positives
    x, tg = tf.constant(np.stack(xs)), (tf.constant(np.stack(t8s)), tf.constant(np.stack(t16s)))
    model = build_model(3, ANCHORS, size, width=4)
    hm = heads_model(model)
    opt = keras.optimizers.Adam(3e-3)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss, parts = yolo_loss(hm(x, training=True), tg, ANCHORS, size, 3)
        grads = tape.gradient(loss, hm.trainable_variables)
        opt.apply_gradients(zip(grads, hm.trainable_variables))
        return loss, parts

    losses = [float(step()[0]) for _ in range(30)]
    assert np.all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:3]), losses
