"""Letterbox / stretch resize and the exact inverse box mapping."""
import numpy as np
import pytest

from detector.letterbox import compute_transform, letterbox


@pytest.mark.parametrize("shape", [(360, 640), (480, 640), (370, 1224), (500, 300), (224, 384)])
@pytest.mark.parametrize("mode", ["letterbox", "stretch"])
def test_round_trip_exact(shape, mode):
    rng = np.random.default_rng(0)
    h, w = shape
    img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    x, tr = letterbox(img, (224, 384), mode)
    assert x.shape == (224, 384, 3) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    xy1 = rng.uniform(0, [w - 2, h - 2], (50, 2))
    xy2 = xy1 + rng.uniform(1, [w, h], (50, 2))
    boxes = np.concatenate([xy1, np.minimum(xy2, [w, h])], 1).astype(np.float32)
    back = tr.to_original(tr.to_input(boxes))
    np.testing.assert_allclose(back, boxes, atol=1e-3)


def test_letterbox_content_placement_and_colour_order():
    img = np.zeros((100, 200, 3), np.uint8)
    img[..., 0] = 255  # pure blue in BGR
    x, tr = letterbox(img, (160, 160))
    # 200x100 -> 160x80, centred vertically: pad 40 rows above and below
    assert (tr.pad_x, tr.pad_y) == (0.0, 40.0)
    assert tr.scale_x == pytest.approx(0.8) and tr.scale_y == pytest.approx(0.8)
    np.testing.assert_allclose(x[80, 80], [0, 0, 1])  # RGB: blue channel last
    np.testing.assert_allclose(x[10, 80], [127 / 255] * 3, atol=1e-6)  # grey pad
    # the full input rectangle of the content maps back to the full original frame
    full = tr.to_original(np.array([[0, 40, 160, 120]], np.float32))
    np.testing.assert_allclose(full, [[0, 0, 200, 100]], atol=1e-4)


def test_to_original_clips_to_image():
    _, tr = letterbox(np.zeros((360, 640, 3), np.uint8), (224, 384))
    out = tr.to_original(np.array([[-50, -50, 1000, 1000]], np.float32))
    np.testing.assert_allclose(out, [[0, 0, 640, 360]])


def test_stretch_matches_opencv_blob_geometry():
    tr, size = compute_transform((480, 640), (320, 320), "stretch")
    assert size == (320, 320) and tr.pad_x == 0 and tr.pad_y == 0
    assert tr.scale_x == pytest.approx(0.5) and tr.scale_y == pytest.approx(320 / 480)


def test_bad_input_rejected():
    with pytest.raises(ValueError):
        letterbox(np.zeros((10, 10), np.uint8), (32, 32))
    with pytest.raises(ValueError):
        letterbox(np.zeros((10, 10, 3), np.uint8), (32, 32), mode="crop")


def test_side_padding_keeps_colour_order():
    img = np.zeros((200, 100, 3), np.uint8)
    img[..., 2] = 255  # pure red in BGR
    x, tr = letterbox(img, (160, 160))
    assert (tr.pad_x, tr.pad_y) == (40.0, 0.0)
    np.testing.assert_allclose(x[80, 80], [1, 0, 0])
    np.testing.assert_allclose(x[80, 10], [127 / 255] * 3, atol=1e-6)


def test_large_shrink_stays_close_to_area_averaging():
    """A 1080p frame shrunk 6x (area halvings, then a last area step) stays within a grey
    level or two of a single area-averaging step, and bars one source pixel wide keep their
    share of the brightness instead of aliasing away (or to full white) as with sampling."""
    import cv2

    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:1080, 0:1920]
    img = np.stack([(xx * 255 // 1919), (yy * 255 // 1079), ((xx + yy) % 256)], -1).astype(np.uint8)
    for _ in range(40):
        x0, y0 = rng.integers(0, 1800), rng.integers(0, 960)
        img[y0:y0 + 120, x0:x0 + 120] = rng.integers(0, 255, 3)
    x, _ = letterbox(img, (192, 320))
    area = cv2.resize(img, (320, 180), interpolation=cv2.INTER_AREA)[..., ::-1] / 255.0
    assert np.abs(x[6:186] - area).mean() < 2.0 / 255

    bars = np.zeros((1080, 1920, 3), np.uint8)
    bars[:, ::6] = 255
    x, _ = letterbox(bars, (192, 320))
    column_pairs = x[6:186].reshape(180, 160, 2, 3).mean(axis=2)  # any 12 source columns hold 2 bars
    np.testing.assert_allclose(column_pairs, 255 / 6 / 255, atol=1.5 / 255)
