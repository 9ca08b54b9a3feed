"""Detector runtime on a real (small, untrained) Keras model saved to disk."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from detector.model import build_model
from detector.runtime import Detector
from base.errors import ModelError

ANCHORS = [[[6, 8], [10, 12], [14, 10]], [[20, 30], [30, 20], [40, 40]]]
NAMES = ["person", "car", "ball"]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    import keras

    keras.utils.set_random_seed(0)
    model = build_model(3, ANCHORS, (64, 96), NAMES, width=4)
    # constant heads: zero kernels; objectness logit 2 (p=0.88), class "car" high
    for lname in ("head8", "head16"):
        layer = model.get_layer(lname)
        k, b = layer.get_weights()
        b = b.reshape(3, 8)
        b[:, :4] = 0.0
        b[:, 4] = 2.0
        b[:, 5:] = [-5.0, 3.0, -5.0]
        layer.set_weights([np.zeros_like(k), b.reshape(-1)])
    path = tmp_path_factory.mktemp("m") / "tiny.keras"
    model.save(path)
    return path


def test_load_reads_metadata(model_path):
    det = Detector.load(model_path)
    assert det.input_size == (64, 96)
    assert det.class_names == NAMES


def test_detect_constant_heads(model_path):
    det = Detector.load(model_path, conf_threshold=0.5, iou_threshold=0.45)
    img = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    (d,) = det.detect([img])
    assert len(d) > 0
    assert set(d.class_ids.tolist()) == {1}  # only "car" passes 0.5 (0.88 * 0.95)
    expected = 1 / (1 + np.exp(-2.0)) / (1 + np.exp(-3.0))
    np.testing.assert_allclose(d.scores, expected, rtol=1e-5)
    assert d.boxes.min() >= 0 and d.boxes[:, 2].max() <= 160 and d.boxes[:, 3].max() <= 120
    assert d.embeddings.shape == (len(d), 0)
    # the raw boxes the kept ones come from, mapped back, contain every kept box
    prepared = det.prepare([img])
    boxes = np.asarray(det.model(prepared.inputs)[0])
    orig = prepared.transforms[0].to_original(boxes[0])
    for b in d.boxes:
        assert np.min(np.abs(orig - b).max(1)) < 1e-3


def test_batch_results_independent_of_batch_size(model_path):
    det = Detector.load(model_path, conf_threshold=0.3)
    rng = np.random.default_rng(1)
    imgs = [rng.integers(0, 255, (rng.integers(50, 200), rng.integers(50, 200), 3), dtype=np.uint8)
            for _ in range(5)]
    batch = det.detect(imgs)
    assert len(batch) == 5
    for img, d in zip(imgs, batch):
        (single,) = det.detect([img])
        np.testing.assert_allclose(single.boxes, d.boxes, atol=1e-3)
        np.testing.assert_array_equal(single.class_ids, d.class_ids)


def test_high_threshold_gives_empty(model_path):
    det = Detector.load(model_path, conf_threshold=0.99)
    (d,) = det.detect([np.zeros((40, 40, 3), np.uint8)])
    assert len(d) == 0 and d.boxes.shape == (0, 4)


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        Detector.load(tmp_path / "nope.keras")
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"this is not a zip")
    with pytest.raises(ModelError):
        Detector.load(bad)
    with pytest.raises(ModelError):
        Detector.load(tmp_path)  # a folder, not a .keras file


def test_prepare_then_detect_prepared_equals_detect(model_path):
    det = Detector.load(model_path, conf_threshold=0.3)
    rng = np.random.default_rng(2)
    imgs = [rng.integers(0, 255, (120, 160, 3), dtype=np.uint8) for _ in range(3)]
    prepared = det.prepare(imgs)
    assert prepared.inputs.shape[0] == 4 and len(prepared.transforms) == 3  # padded batch, one transform per image
    for whole, split in zip(det.detect(imgs), det.detect_prepared(prepared)):
        np.testing.assert_array_equal(whole.boxes, split.boxes)
        np.testing.assert_array_equal(whole.class_ids, split.class_ids)
    with pytest.raises(ValueError, match="at most 16"):
        det.prepare(imgs * 6)


def _reference_inputs(images, size):
    from detector.letterbox import letterbox

    return np.stack([letterbox(img, size)[0] for img in images])


def test_batch_preparation_shared_by_two_threads_letterboxes_each_image_once():
    import threading

    from detector.runtime import BatchPreparation

    rng = np.random.default_rng(3)
    imgs = [rng.integers(0, 255, (90 + 10 * i, 160, 3), dtype=np.uint8) for i in range(11)]
    prep = BatchPreparation(imgs, (64, 96))
    counts = []
    helper = threading.Thread(target=lambda: counts.append(prep.work()))
    helper.start()
    mine = prep.work()
    prepared = prep.result()
    helper.join(10)
    assert mine + counts[0] == 11 and len(prep) == 11
    assert prepared.inputs.shape == (16, 64, 96, 3) and prepared.inputs.dtype == np.float32
    np.testing.assert_allclose(prepared.inputs[:11], _reference_inputs(imgs, (64, 96)), atol=1e-6)
    assert not prepared.inputs[11:].any()  # padding images stay black
    assert [tr.orig_size for tr in prepared.transforms] == [img.shape[:2] for img in imgs]
    assert prep.work() == 0  # nothing left to claim


def test_batch_preparation_result_does_what_no_other_thread_did():
    from detector.runtime import BatchPreparation

    rng = np.random.default_rng(4)
    imgs = [rng.integers(0, 255, (120, 160, 3), dtype=np.uint8) for _ in range(3)]
    prep = BatchPreparation(imgs, (64, 96))
    prepared = prep.result()
    np.testing.assert_allclose(prepared.inputs[:3], _reference_inputs(imgs, (64, 96)), atol=1e-6)
    with pytest.raises(ValueError, match="at most 16"):
        BatchPreparation(imgs * 6, (64, 96))


def test_batch_preparation_raises_another_threads_error_in_result():
    import threading

    from detector.runtime import BatchPreparation

    good = np.zeros((48, 64, 3), np.uint8)
    bad = np.zeros((48, 64), np.uint8)  # not a colour frame
    prep = BatchPreparation([bad, good], (64, 96))
    errors = []

    def helper():
        try:
            prep.work()
        except ValueError as exc:
            errors.append(exc)

    thread = threading.Thread(target=helper)
    thread.start()
    thread.join(10)  # claims the bad image first and fails on it
    assert errors and "uint8[H,W,3]" in str(errors[0])
    with pytest.raises(ValueError, match=r"uint8\[H,W,3\]"):
        prep.result()


def test_batch_preparation_error_waits_for_the_images_other_threads_are_reading():
    """The caller frees the frames (shared-memory ring slots) once an error is raised, so the
    thread that meets it first lets the images other threads claimed finish."""
    import threading

    from detector.runtime import BatchPreparation

    release = threading.Event()

    class SlowFrame:  # reading its pixels waits for ``release``
        def __array__(self, dtype=None, copy=None):
            release.wait(10)
            return np.zeros((48, 64, 3), np.uint8)

    prep = BatchPreparation([SlowFrame(), np.zeros((48, 64), np.uint8)], (64, 96))
    done, errors = [], []
    reader = threading.Thread(target=lambda: done.append(prep.work()))
    reader.start()  # claims the slow frame
    while prep._claimed == 0:
        pass

    def failing():
        try:
            prep.work()  # claims the bad frame
        except ValueError as exc:
            errors.append(exc)

    failer = threading.Thread(target=failing)
    failer.start()
    failer.join(0.3)
    assert failer.is_alive() and not errors  # not raised while the slow frame is being read
    release.set()
    failer.join(10)
    reader.join(10)
    assert len(errors) == 1 and done == [1]
    with pytest.raises(ValueError):
        prep.result()
