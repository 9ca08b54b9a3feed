"""Proof against the reference importer: OpenCV 4.x ``cv2.dnn.readNetFromDarknet`` (own venv).

Same cfg + weights, same input blob: raw head tensors, decoded boxes/objectness/class scores
and final boxes after NMS must agree. Skips (with the reason) if the OpenCV 4 venv cannot be
created, e.g. without network for pip.
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from conftest import REPO_ROOT, require

sys.path.insert(0, str(REPO_ROOT))
from bench import opencv4_env  # noqa: E402
from detector.darknet import export_darknet, import_darknet, plan_file, write_random_weights  # noqa: E402
from detector.darknet.builder import heads_model  # noqa: E402

# name: (cfg, weights or None for random, names, conf threshold giving a handful of boxes)
CASES = {
    "yolov3-tiny-random": ("darknet/yolov3-tiny.cfg", None, "darknet/coco.names", 0.25),
    "yolov4-tiny-random": ("darknet/yolov4-tiny.cfg", None, "darknet/coco.names", 0.5),
    "yolo-fastest-1.1-body": ("yolo-fastest/yolo-fastest-1.1_body/yolo-fastest-1.1_body.cfg",
                              "yolo-fastest/yolo-fastest-1.1_body/yolo-fastest-1.1_body.weights",
                              "yolo-fastest/yolo-fastest-1.1_body/body.names", 0.25),
    "yolo-fastest-1.1-coco": ("yolo-fastest/yolo-fastest-1.1_coco/yolo-fastest-1.1.cfg",
                              "yolo-fastest/yolo-fastest-1.1_coco/yolo-fastest-1.1.weights",
                              "darknet/coco.names", 0.25),
}


@pytest.fixture(scope="module")
def cv4():
    try:
        opencv4_env.ensure_venv()
    except opencv4_env.OpenCV4Unavailable as exc:
        pytest.skip(f"OpenCV 4 peer unavailable: {exc}")
    return opencv4_env


@pytest.fixture(scope="module")
def images(shared_data):
    import cv2

    paths = sorted((shared_data / "darknet" / "images").glob("*.jpg"))
    paths += [require(shared_data / "mot" / s / "img1" / "000001.jpg") for s in ("TUD-Campus", "KITTI-17")]
    if len(paths) < 3:
        pytest.skip("darknet sample images missing")
    return [cv2.imread(str(p)) for p in paths]


def _model_files(shared_data, tmp_path, case):
    cfg, weights, names, conf = CASES[case]
    cfg = require(shared_data / cfg)
    if weights is None:
        weights = tmp_path / "random.weights"
        write_random_weights(weights, plan_file(cfg), seed=0)
    else:
        weights = require(shared_data / weights)
    return cfg, weights, require(shared_data / names), conf


@pytest.mark.parametrize("case", list(CASES))
def test_same_numbers_and_boxes_as_opencv4(cv4, shared_data, images, tmp_path, case):
    from detector.runtime import Detector

    cfg, weights, names, conf = _model_files(shared_data, tmp_path, case)
    net = plan_file(cfg)
    model = import_darknet(cfg, weights, names)
    det = Detector.from_model(model, conf_threshold=conf, iou_threshold=0.45, resize="stretch")
    prepared = det.prepare(images)
    x, transforms = prepared.inputs, prepared.transforms
    x = x[:len(images)]
    blob = cv4.nhwc_to_blob(x)

    # 1. raw heads (conv outputs before each yolo layer) and OpenCV's decoded yolo rows
    ref = cv4.run(cfg, weights, "forward", blob, head_layers=[y.index - 1 for y in net.yolos])
    mine = [np.asarray(h) for h in heads_model(model)(x)]
    for k, head in enumerate(mine):
        theirs = ref[f"head{k}"].transpose(0, 2, 3, 1)
        diff, scale = float(np.abs(theirs - head).max()), float(np.abs(theirs).max())
        print(f"{case} head {k} {head.shape}: max |diff| {diff:.2e} (max |value| {scale:.1f})")
        assert diff < 1e-3 * scale
    boxes, obj, cls = (np.asarray(t) for t in model(x))
    rows = np.concatenate([ref[f"yolo{k}"] for k in range(len(mine))], axis=1)  # [B, N, 5 + C]
    h, w = net.input_shape[:2]
    cxcywh = np.stack([(boxes[..., 0] + boxes[..., 2]) / 2 / w, (boxes[..., 1] + boxes[..., 3]) / 2 / h,
                       (boxes[..., 2] - boxes[..., 0]) / w, (boxes[..., 3] - boxes[..., 1]) / h], -1)
    box_diff = float(np.abs(cxcywh - rows[..., :4]).max())
    obj_diff = float(np.abs(obj - rows[..., 4]).max())
    print(f"{case} decoded: box diff {box_diff:.2e} (fraction of input), objectness diff {obj_diff:.2e}")
    assert box_diff < 1e-3 and obj_diff < 1e-3
    scores = obj[..., None] * cls  # OpenCV zeroes scores <= its yolo thresh (0.2): compare away from it
    away = np.abs(scores - 0.2) > 1e-3
    assert np.abs(np.where(scores > 0.2, scores, 0) - rows[..., 5:])[away].max() < 1e-3

    # 2. final boxes after score threshold + class-aware NMS, in original-image pixels
    theirs = cv4.run(cfg, weights, "detect", blob, conf=conf, iou=0.45)
    found = det.detect(images)
    total = 0
    for i, (d, tr) in enumerate(zip(found, transforms)):
        ob = tr.to_original(theirs[f"boxes{i}"])
        assert len(d) == len(ob), f"image {i}: vidtrack {len(d)} boxes, OpenCV {len(ob)}"
        if len(d):
            pair, worst = cv4.pair_boxes(d.boxes, d.class_ids, ob, theirs[f"classes{i}"])
            assert worst < 0.5
            np.testing.assert_array_equal(d.class_ids, theirs[f"classes{i}"][pair])
            np.testing.assert_allclose(d.scores, theirs[f"scores{i}"][pair], atol=1e-3)
        total += len(d)
    print(f"{case}: {total} boxes over {len(images)} images, identical to OpenCV {cv4.version()}")
    assert total > 0


def test_exported_files_load_in_opencv4(cv4, shared_data, tmp_path):
    """export-darknet writes files the reference importer reads, with the same heads."""
    cfg, weights, names, _ = _model_files(shared_data, tmp_path, "yolo-fastest-1.1-body")
    model = import_darknet(cfg, weights, names)
    export_darknet(model, tmp_path / "e.cfg", tmp_path / "e.weights")
    net = plan_file(tmp_path / "e.cfg")
    x = np.random.default_rng(0).random((1, 320, 320, 3), dtype=np.float32)
    ref = cv4.run(tmp_path / "e.cfg", tmp_path / "e.weights", "forward", cv4.nhwc_to_blob(x),
                  head_layers=[y.index - 1 for y in net.yolos])
    for k, head in enumerate(heads_model(model)(x)):
        theirs = ref[f"head{k}"].transpose(0, 2, 3, 1)
        assert np.abs(theirs - np.asarray(head)).max() < 1e-3 * np.abs(theirs).max()
