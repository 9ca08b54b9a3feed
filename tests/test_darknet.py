"""Darknet import/export: cfg parsing, weights files, Keras builder vs a NumPy oracle, round trips."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from conftest import require
from darknet_reference import forward as reference_forward
from detector.darknet import (
    export_darknet, import_darknet, parse_cfg, plan, plan_file, random_weights, read_weights,
    write_random_weights, write_weights,
)
from base.errors import ModelError

# every layer kind and padding corner: strided conv, depthwise, mish/swish, maxpool 2/1 and 3/2
# (Darknet's asymmetric -inf padding), route groups, shortcut, dropout, upsample, two heads.
TINY_CFG = """
[net]
width=32
height=32
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=leaky

[convolutional]
batch_normalize=1
groups=8
filters=8
size=3
stride=1
pad=1
activation=mish

[maxpool]
size=2
stride=1

[route]
layers=-1
groups=2
group_id=1

[convolutional]
batch_normalize=1
filters=8
size=1
stride=1
pad=1
activation=swish

[shortcut]
from=-4
activation=leaky

[dropout]
probability=.1

[maxpool]
size=3
stride=2

[convolutional]
size=1
stride=1
pad=1
filters=21
activation=linear

[yolo]
mask=3,4,5
anchors=4,5, 8,9, 10,12, 14,16, 20,22, 30,28
classes=2
num=6
scale_x_y=1.05

[route]
layers=-3

[upsample]
stride=2

[route]
layers=-1,0

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=relu

[convolutional]
size=1
stride=1
pad=1
filters=21
activation=linear

[yolo]
mask=0,1,2
anchors=4,5, 8,9, 10,12, 14,16, 20,22, 30,28
classes=2
num=6
"""


def _write_tiny(tmp_path, seed=0):
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(TINY_CFG)
    net = plan(parse_cfg(TINY_CFG))
    weights = tmp_path / "tiny.weights"
    write_random_weights(weights, net, seed)
    return cfg, weights, net


def _outputs(model, x):
    return [np.asarray(t) for t in model(x, training=False)]


def test_keras_graph_matches_numpy_darknet_oracle(tmp_path):
    cfg, weights, net = _write_tiny(tmp_path)
    model = import_darknet(cfg, weights, names=["a", "b"])
    x = np.random.default_rng(1).random((2, 32, 32, 3), dtype=np.float32)
    boxes, obj, cls = _outputs(model, x)
    _, convs = read_weights(weights, net)
    ref = reference_forward(net, convs, x)
    assert boxes.shape == ref[0].shape == (2, (8 * 8 + 16 * 16) * 3, 4)
    np.testing.assert_allclose(boxes, ref[0], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(obj, ref[1], atol=1e-5)
    np.testing.assert_allclose(cls, ref[2], atol=1e-5)
    # the odd-sized maxpool really needed Darknet padding: the model carries the custom layer
    assert type(model.get_layer("dn7_pool")).__name__ == "DarknetMaxPool"


@pytest.mark.parametrize("name,size", [("yolov4-tiny", 24_251_276), ("yolov3-tiny", 35_434_956)])
def test_random_weights_have_darknet_size_and_read_back(shared_data, tmp_path, name, size):
    net = plan_file(require(shared_data / "darknet" / f"{name}.cfg"))
    path = tmp_path / f"{name}.weights"
    convs = random_weights(net, seed=3)
    assert write_weights(path, net, convs) == size
    assert path.stat().st_size == size
    header, back = read_weights(path, net)
    assert header == (0, 2, 5, 0)
    assert sorted(back) == sorted(convs)
    for i, w in convs.items():
        np.testing.assert_array_equal(back[i].kernel, w.kernel)
        if w.batch_normalize:
            assert (back[i].var > 0).all() and abs(float(back[i].scales.mean()) - 1) < 0.1


def test_plans_of_all_shipped_cfgs(shared_data):
    heads = {
        "darknet/yolov3-tiny.cfg": [(13, 13, 255), (26, 26, 255)],
        "darknet/yolov4-tiny.cfg": [(13, 13, 255), (26, 26, 255)],
        "darknet/yolov3.cfg": [(19, 19, 255), (38, 38, 255), (76, 76, 255)],
        "darknet/yolov3-spp.cfg": [(19, 19, 255), (38, 38, 255), (76, 76, 255)],
        "yolo-fastest/yolo-fastest-1.1_body/yolo-fastest-1.1_body.cfg": [(10, 10, 18), (20, 20, 18)],
        "yolo-fastest/yolo-fastest-1.1_coco/yolo-fastest-1.1.cfg": [(10, 10, 255), (20, 20, 255)],
    }
    for rel, want in heads.items():
        net = plan_file(require(shared_data / rel))
        assert [y.shape for y in net.yolos] == want, rel
    with pytest.raises(ModelError, match=r"layer 15 \[region\].*unsupported section type"):
        plan_file(require(shared_data / "darknet" / "yolov2-tiny.cfg"))


def test_real_yolo_fastest_weights_fill_every_conv(shared_data):
    d = shared_data / "yolo-fastest" / "yolo-fastest-1.1_body"
    net = plan_file(require(d / "yolo-fastest-1.1_body.cfg"))
    header, convs = read_weights(require(d / "yolo-fastest-1.1_body.weights"), net)
    assert header[:3] == (0, 2, 5) and len(convs) == len(net.convs) == 84
    assert all(np.isfinite(w.kernel).all() for w in convs.values())


def test_truncated_and_oversized_weights_name_the_layer(tmp_path):
    cfg, weights, net = _write_tiny(tmp_path)
    data = weights.read_bytes()
    short = tmp_path / "short.weights"
    short.write_bytes(data[:20 + 4 * 500])  # layers 0, 1, 4 take 248 + 104 + 64 = 416 values; layer 8 needs 189
    with pytest.raises(ModelError, match=r"layer 8 \[convolutional\]: expected 189 float32 values, 84 present"):
        read_weights(short, net)
    long = tmp_path / "long.weights"
    long.write_bytes(data + b"\0" * 12)
    with pytest.raises(ModelError, match=r"3 float32 values \(12 bytes\) left over after layer 14 \[convolutional\]"):
        read_weights(long, net)
    with pytest.raises(ModelError, match="too short"):
        (tmp_path / "h.weights").write_bytes(b"\0" * 8)
        read_weights(tmp_path / "h.weights", net)


def test_bad_cfgs_are_named():
    with pytest.raises(ModelError, match=r"layer 1 \[crop\].*unsupported section type"):
        plan(parse_cfg(TINY_CFG.replace("[convolutional]\nbatch_normalize=1\ngroups=8", "[crop]\ngroups=8", 1)))
    with pytest.raises(ModelError, match=r"layer 0 \[convolutional\].*unsupported activation 'gelu'"):
        plan(parse_cfg(TINY_CFG.replace("activation=leaky", "activation=gelu", 1)))
    with pytest.raises(ModelError, match=r"layer 9 \[yolo\].*expected 3 anchors x \(5 \+ 3 classes\) = 24"):
        plan(parse_cfg(TINY_CFG.replace("classes=2", "classes=3", 1)))
    with pytest.raises(ModelError, match=r"layer 3 \[route\] \(cfg line 28\): refers to layer -9"):
        plan(parse_cfg(TINY_CFG.replace("layers=-1\ngroups=2", "layers=-9\ngroups=2")))


def test_import_export_import_is_identical(shared_data, tmp_path):
    d = shared_data / "yolo-fastest" / "yolo-fastest-1.1_body"
    model = import_darknet(require(d / "yolo-fastest-1.1_body.cfg"), require(d / "yolo-fastest-1.1_body.weights"),
                           d / "body.names")
    layers, size = export_darknet(model, tmp_path / "out.cfg", tmp_path / "out.weights")
    assert (tmp_path / "out.weights").stat().st_size == size and layers > 100
    again = import_darknet(tmp_path / "out.cfg", tmp_path / "out.weights", ["person"])
    x = np.random.default_rng(2).random((1, 320, 320, 3), dtype=np.float32)
    for a, b in zip(_outputs(model, x), _outputs(again, x)):
        np.testing.assert_array_equal(a, b)


def _keras_bn_detector(seed=0):
    """A vidtrack-style Keras detector: ZeroPadding+conv, BN, leaky, maxpool, upsample, concat, 2 heads."""
    import keras

    from detector.decode import YoloDecode

    keras.utils.set_random_seed(seed)
    L = keras.layers
    inp = keras.Input((64, 96, 3))

    def block(x, f, k, s, name):
        if s > 1:
            x = L.ZeroPadding2D(k // 2, name=f"{name}_pad")(x)
        x = L.Conv2D(f, k, s, "valid" if s > 1 else "same", use_bias=False, name=f"{name}_conv")(x)
        x = L.BatchNormalization(epsilon=1e-3, name=f"{name}_bn")(x)
        return L.LeakyReLU(negative_slope=0.1, name=f"{name}_act")(x)

    x = block(inp, 8, 3, 2, "b1")
    x = L.MaxPooling2D(2, 2, name="pool")(x)
    c3 = block(x, 16, 3, 1, "b2")
    x = block(c3, 16, 3, 2, "b3")
    head16 = L.Conv2D(2 * 7, 1, name="head16")(x)
    u = L.UpSampling2D(2, interpolation="nearest", name="up")(block(x, 8, 1, 1, "red"))
    u = L.Concatenate(name="cat")([u, c3])
    head8 = L.Conv2D(2 * 7, 1, name="head8")(block(u, 8, 3, 1, "p3"))
    anchors = [[(8, 10), (16, 20)], [(24, 30), (48, 40)]]
    out = YoloDecode(anchors, 2, (64, 96), class_names=["p", "q"], name="decode")([head8, head16])
    model = keras.Model(inp, list(out))
    rng = np.random.default_rng(seed)
    for layer in model.layers:  # non-trivial BN statistics, as after training
        if isinstance(layer, L.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([rng.normal(1, .2, c), rng.normal(0, .2, c), rng.normal(0, .3, c), rng.uniform(.3, 2, c)])
    return model


def test_export_of_keras_bn_model_matches(tmp_path):
    model = _keras_bn_detector()
    export_darknet(model, tmp_path / "m.cfg", tmp_path / "m.weights")
    text = (tmp_path / "m.cfg").read_text()
    assert "batch_normalize=1" in text and "[upsample]" in text and text.count("[yolo]") == 2
    again = import_darknet(tmp_path / "m.cfg", tmp_path / "m.weights", ["p", "q"])
    x = np.random.default_rng(4).random((2, 64, 96, 3), dtype=np.float32)
    (b1, o1, c1), (b2, o2, c2) = _outputs(model, x), _outputs(again, x)
    np.testing.assert_allclose(b2, b1, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(o2, o1, atol=1e-5)
    np.testing.assert_allclose(c2, c1, atol=1e-5)


def test_export_refuses_keras_same_padding_with_stride_2(tmp_path):
    import keras

    inp = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(21, 3, 2, "same")(inp)
    from detector.decode import YoloDecode

    out = YoloDecode([[(4, 5), (8, 9), (10, 12)]], 2, (32, 32))([x])
    with pytest.raises(ModelError, match="'same' padding .* Darknet pads symmetrically"):
        export_darknet(keras.Model(inp, list(out)), tmp_path / "x.cfg", tmp_path / "x.weights")


def test_cli_import_then_detector_finds_people(shared_data, tmp_path, capsys):
    import cv2

    from detector.runtime import Detector
    from vidtrack.cli import main

    d = shared_data / "yolo-fastest" / "yolo-fastest-1.1_body"
    out = tmp_path / "models" / "body.keras"
    rc = main(["import-darknet", str(require(d / "yolo-fastest-1.1_body.cfg")),
               str(d / "yolo-fastest-1.1_body.weights"), "-o", str(out), "--names", str(d / "body.names")])
    assert rc == 0 and out.is_file()
    assert "84 convs, 2 yolo heads, input 320x320, 1 classes" in capsys.readouterr().out
    det = Detector.load(out, conf_threshold=0.3, resize="stretch")
    assert det.class_names == ["body"]  # body.names
    frame = cv2.imread(str(require(shared_data / "mot" / "TUD-Campus" / "img1" / "000001.jpg")))
    found = det.detect([frame])[0]
    assert len(found) >= 2 and (found.class_ids == 0).all()
    # round trip through the export command
    rc = main(["export-darknet", str(out), "-o", str(tmp_path / "e.cfg"), str(tmp_path / "e.weights")])
    assert rc == 0 and (tmp_path / "e.weights").stat().st_size > 1_000_000


def test_cli_reports_truncated_weights_as_one_line(shared_data, tmp_path, capsys):
    from vidtrack.cli import main

    d = shared_data / "yolo-fastest" / "yolo-fastest-1.1_body"
    bad = tmp_path / "bad.weights"
    bad.write_bytes(require(d / "yolo-fastest-1.1_body.weights").read_bytes()[:600_000])
    rc = main(["import-darknet", str(d / "yolo-fastest-1.1_body.cfg"), str(bad), "-o", str(tmp_path / "x.keras")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err
    assert "truncated at layer" in err and "[convolutional]: expected" in err and "present" in err
