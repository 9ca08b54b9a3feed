"""Colour-histogram embedder, crop batching and ``load_embedder``."""
from __future__ import annotations

import numpy as np
import pytest

from detector.appearance import (
    ColourHistogramEmbedder,
    Embedder,
    clip_boxes,
    crop_batch,
    load_embedder,
)
from base.errors import ModelError


def _scene(seed: int = 0) -> np.ndarray:
    """A 240x320 noisy grey frame with a red person-sized block and a blue one (BGR)."""
    rng = np.random.default_rng(seed)
    img = rng.integers(90, 140, size=(240, 320, 3), dtype=np.uint8)
    img[40:200, 30:90] = (30, 30, 200) + rng.integers(-20, 20, size=(160, 60, 3))  # red
    img[40:200, 200:260] = (200, 40, 30) + rng.integers(-20, 20, size=(160, 60, 3))  # blue
    return img


def test_shape_unit_norm_and_determinism():
    emb = ColourHistogramEmbedder()
    img = _scene()
    boxes = np.array([[30, 40, 90, 200], [200, 40, 260, 200], [0, 0, 320, 240]], np.float32)
    out = emb.embed([img, img], [boxes, boxes[:1]])
    assert [o.shape for o in out] == [(3, emb.dim), (1, emb.dim)]
    assert all(o.dtype == np.float32 for o in out)
    np.testing.assert_allclose(np.linalg.norm(out[0], axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(out[0][0], out[1][0])  # same crop -> same vector
    np.testing.assert_array_equal(out[0], emb.embed([img], [boxes])[0])


def test_separates_red_from_blue():
    emb = ColourHistogramEmbedder()
    a, b = _scene(0), _scene(1)  # different noise, same objects
    red, blue = [30, 40, 90, 200], [200, 40, 260, 200]
    ea = emb.embed([a], [np.array([red, blue], np.float32)])[0]
    eb = emb.embed([b], [np.array([red, blue], np.float32)])[0]
    sim = ea @ eb.T  # rows: red, blue in a; cols: red, blue in b
    assert sim[0, 0] > 0.9 and sim[1, 1] > 0.9
    assert sim[0, 1] < 0.3 and sim[1, 0] < 0.3


def test_degenerate_and_out_of_frame_boxes():
    emb = ColourHistogramEmbedder()
    img = _scene()
    boxes = np.array([
        [50, 50, 50, 80],          # zero width
        [400, 300, 500, 400],      # fully outside
        [-20, -20, 40, 60],        # partly outside: clipped, still valid
        [np.nan, 0, 10, 10],       # non-finite
    ], np.float32)
    out = emb.embed([img], [boxes])[0]
    assert np.isfinite(out).all()
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(out[0], out[1])  # the defined vector for empty boxes
    _, valid = clip_boxes(boxes, 240, 320)
    assert valid.tolist() == [False, False, True, False]


def test_empty_inputs():
    emb = ColourHistogramEmbedder()
    out = emb.embed([_scene(), _scene()], [np.zeros((0, 4), np.float32), np.zeros((0, 4), np.float32)])
    assert [o.shape for o in out] == [(0, emb.dim), (0, emb.dim)]
    assert emb.embed([], []) == []


def test_crop_batch_resizes_and_orders():
    img = np.zeros((100, 100, 3), np.uint8)
    img[:, 50:] = 255
    crops, valid, counts = crop_batch([img, img], [np.array([[0, 0, 50, 100]]), np.array([[50, 0, 100, 100]])], (16, 8))
    assert crops.shape == (2, 16, 8, 3) and counts == [1, 1] and valid.all()
    assert crops[0].max() == 0 and crops[1].min() == 255


def test_load_embedder_specs(tmp_path):
    assert load_embedder(None) is None and load_embedder("none") is None
    hist = load_embedder("histogram")
    assert isinstance(hist, ColourHistogramEmbedder) and isinstance(hist, Embedder)
    assert isinstance(load_embedder("default"), Embedder)
    with pytest.raises(ModelError):
        load_embedder(str(tmp_path / "missing.keras"))
    with pytest.raises(ModelError):
        load_embedder("resnet")


def test_fused_embedder_averages_the_parts_cosines():
    from detector.appearance import FusedEmbedder

    img = _scene()
    boxes = np.array([[30, 40, 90, 200], [200, 40, 260, 200], [35, 45, 95, 195]], np.float32)
    coarse = ColourHistogramEmbedder(hue_bins=4, sat_bins=2, value_bins=2)
    fine = ColourHistogramEmbedder()
    fused = load_embedder("histogram+histogram")
    assert isinstance(fused, FusedEmbedder) and fused.dim == 2 * fine.dim
    mixed = FusedEmbedder([coarse, fine], weights=[1, 3])
    (e,) = mixed.embed([img], [boxes])
    assert e.shape == (3, coarse.dim + fine.dim)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    (a,), (b,) = coarse.embed([img], [boxes]), fine.embed([img], [boxes])
    expected = 0.25 * (a @ a.T) + 0.75 * (b @ b.T)
    np.testing.assert_allclose(e @ e.T, expected, atol=1e-5)
    with pytest.raises(ModelError):
        load_embedder("histogram+")
    with pytest.raises(ModelError):
        FusedEmbedder([coarse, fine], weights=[1, -1])
