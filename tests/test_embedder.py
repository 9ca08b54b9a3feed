"""The learned Keras embedder: graph contract, save/load, triplet loss, training, the
shipped model and the ``train-embedder`` command."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

import keras

from conftest import require
from detector.appearance import Embedder, load_embedder
from detector.embedder import INPUT_SIZE, KerasEmbedder
from detector.training.embedder import (
    PKBatches,
    augment,
    batch_hard_triplet_loss,
    build_embedder,
    compile_for_training,
)
from detector.training.reid_data import ReidCrops
from test_embedder_reid import COLOURS, write_sequence
from base.errors import ModelError
from base.paths import DEFAULT_EMBEDDER

SMALL = dict(input_size=(64, 32), dim=32, widths=(8, 16, 32))


def _frame(seed=0):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, size=(240, 320, 3), dtype=np.uint8)
    return img


def _coloured_crops(n_ids=4, per_id=8, size=(80, 40), seed=0) -> ReidCrops:
    """Identity i = a two-colour figure (shirt, trousers) on noise, jittered per crop."""
    rng = np.random.default_rng(seed)
    h, w = size
    crops, labels = [], []
    for i in range(n_ids):
        for _ in range(per_id):
            c = rng.integers(60, 200, size=(h, w, 3)).astype(np.int32)
            dy, dx = rng.integers(-3, 4, 2)
            c[10 + dy:40 + dy, 8 + dx:32 + dx] = np.array(COLOURS[i % 5]) + rng.integers(-25, 25, 3)
            c[40 + dy:70 + dy, 8 + dx:32 + dx] = np.array(COLOURS[(i + 2) % 5]) + rng.integers(-25, 25, 3)
            crops.append(np.clip(c, 0, 255).astype(np.uint8))
            labels.append(i)
    n = len(labels)
    return ReidCrops(np.stack(crops), np.array(labels, np.int64), np.arange(n, dtype=np.int32), np.zeros(n, np.int32))


def test_model_contract_unit_norm_and_shape():
    model = build_embedder()
    assert model.input_shape == (None, *INPUT_SIZE, 3) and model.output_shape == (None, 128)
    emb = KerasEmbedder(model)
    assert isinstance(emb, Embedder) and emb.dim == 128 and emb.input_size == INPUT_SIZE
    boxes = np.array([[10, 20, 60, 140], [100, 50, 130, 200], [0, 0, 320, 240], [5, 5, 5, 5]], np.float32)
    out = emb.embed([_frame(0), _frame(1)], [boxes, boxes[:2]])
    assert [o.shape for o in out] == [(4, 128), (2, 128)] and out[0].dtype == np.float32
    assert np.isfinite(out[0]).all()  # the zero-area box too
    np.testing.assert_allclose(np.linalg.norm(np.concatenate(out), axis=1), 1.0, atol=1e-5)


def test_same_crop_same_vector_and_batch_independence():
    emb = KerasEmbedder(build_embedder(**SMALL))
    img = _frame(2)
    box = np.array([[40, 30, 90, 150]], np.float32)
    alone = emb.embed([img], [box])[0]
    batched = emb.embed([img, _frame(3), img], [box, np.array([[0, 0, 100, 100]], np.float32), box])
    np.testing.assert_allclose(alone[0], batched[0][0], atol=1e-5)  # inference BN: no batch effects
    np.testing.assert_allclose(batched[0][0], batched[2][0], atol=1e-6)
    assert emb.embed([img], [np.zeros((0, 4), np.float32)])[0].shape == (0, 32)


def test_save_load_roundtrip(tmp_path):
    model = build_embedder(**SMALL)
    path = tmp_path / "e.keras"
    model.save(path)
    loaded = load_embedder(str(path))
    assert isinstance(loaded, KerasEmbedder) and loaded.input_size == (64, 32) and loaded.dim == 32
    img, box = _frame(4), np.array([[10, 10, 70, 130]], np.float32)
    np.testing.assert_allclose(loaded.embed([img], [box])[0], KerasEmbedder(model).embed([img], [box])[0], atol=1e-5)
    (tmp_path / "bad.keras").write_bytes(b"not a model")
    with pytest.raises(ModelError):
        load_embedder(str(tmp_path / "bad.keras"))


def _np_batch_hard(labels, e, margin=None):
    d = np.sqrt(np.maximum(((e[:, None] - e[None]) ** 2).sum(-1), 1e-12))
    out = []
    for a in range(len(labels)):
        pos = [d[a, j] for j in range(len(labels)) if labels[j] == labels[a] and j != a]
        neg = [d[a, j] for j in range(len(labels)) if labels[j] != labels[a]]
        x = max(pos) - min(neg)
        out.append(np.log1p(np.exp(x)) if margin is None else max(0.0, x + margin))
    return float(np.mean(out))


@pytest.mark.parametrize("margin", [None, 0.3])
def test_batch_hard_triplet_loss_matches_reference(margin):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 3)
    e = rng.normal(size=(12, 8)).astype(np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    got = float(keras.ops.convert_to_numpy(batch_hard_triplet_loss(labels, e, margin)))
    assert got == pytest.approx(_np_batch_hard(labels, e, margin), rel=1e-4)
    # well separated clusters: lower loss than random vectors
    sep = np.eye(8, dtype=np.float32)[labels] + 0.01 * rng.normal(size=(12, 8)).astype(np.float32)
    sep /= np.linalg.norm(sep, axis=1, keepdims=True)
    assert float(keras.ops.convert_to_numpy(batch_hard_triplet_loss(labels, sep, margin))) < got


def test_pk_batches_and_augment():
    data = _coloured_crops(n_ids=5, per_id=3, size=(80, 40))
    batches = PKBatches(data, p=4, k=4, steps=3, out_size=(64, 32), context=0.125, seed=1)
    x, y = batches[0]
    assert x.shape == (16, 64, 32, 3) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 255
    assert np.bincount(y).max() == 4 and len(np.unique(y)) == 4
    x2, y2 = batches[0]
    np.testing.assert_array_equal(x, x2), np.testing.assert_array_equal(y, y2)  # seeded
    a = augment(data.crops[:4], (64, 32), np.random.default_rng(0))
    b = augment(data.crops[:4], (64, 32), np.random.default_rng(1))
    assert a.shape == (4, 64, 32, 3) and not np.allclose(a, b)


def test_triplet_training_reduces_loss_and_separates_identities():
    keras.utils.set_random_seed(0)
    data = _coloured_crops(n_ids=4, per_id=8, size=(80, 40))
    model = compile_for_training(build_embedder(**SMALL), lr=3e-3)
    batches = PKBatches(data, p=4, k=4, steps=1, out_size=(64, 32), context=0.125, seed=0, augment_data=False)
    x, y = batches[0]
    before = float(model.evaluate(x, y, verbose=0))
    for step in range(12):
        model.train_on_batch(*PKBatches(data, 4, 4, 1, (64, 32), 0.125, seed=step)[0])
    after = float(model.evaluate(x, y, verbose=0))
    assert after < before - 0.05, (before, after)


def test_shipped_model_loads_and_embeds(shared_data):
    if not DEFAULT_EMBEDDER.is_file():
        pytest.skip(f"shipped embedder {DEFAULT_EMBEDDER} not in this checkout")
    emb = load_embedder("default")
    assert isinstance(emb, KerasEmbedder) and emb.dim == 128 and emb.input_size == INPUT_SIZE
    import cv2

    img = cv2.imread(str(require(shared_data / "mot" / "TUD-Campus" / "img1" / "000001.jpg")))
    boxes = np.array([[399, 182, 520, 411], [282, 201, 374, 385], [63, 153, 145, 441]], np.float32)
    out = emb.embed([img], [boxes])[0]
    assert out.shape == (3, 128)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    # a person is closer to itself one frame later than to the other people
    img2 = cv2.imread(str(require(shared_data / "mot" / "TUD-Campus" / "img1" / "000002.jpg")))
    again = emb.embed([img2], [boxes[:1] + np.array([2, 0, 2, 0], np.float32)])[0]
    sims = out @ again[0]
    assert sims.argmax() == 0


def test_train_embedder_command_end_to_end(tmp_path, capsys):
    from vidtrack.cli import main

    train = write_sequence(tmp_path / "train", n_ids=4, n_frames=8, seed=0)
    hold = write_sequence(tmp_path / "hold", n_ids=3, n_frames=8, seed=1)
    unlabelled = write_sequence(tmp_path / "unlabelled", n_ids=2, n_frames=12, seed=2, video=True)
    tracks = tmp_path / "tracks.txt"  # a tracker's output on the video stands in for gt
    tracks.write_text((unlabelled / "gt" / "gt.txt").read_text().replace(",1,1,1.0\n", ",0.9,-1,-1,-1\n"))
    out = tmp_path / "m.keras"
    rc = main(["train-embedder", "--sequences", str(train), "--holdout", str(hold), "--out", str(out),
               "--tracks", str(unlabelled / "video.mp4"), str(tracks),
               "--epochs", "1", "--steps-per-epoch", "2", "--p", "4", "--k", "2", "--min-gap", "2",
               "--metrics-json", str(tmp_path / "m.json")])
    assert rc == 0 and out.is_file()
    text = capsys.readouterr().out
    assert "learned" in text and "histogram" in text and "rank-1" in text
    assert "6 identities from 2 sequences: train, video.mp4" in text
    import json

    metrics = json.loads((tmp_path / "m.json").read_text())
    assert 0.0 <= metrics["learned"]["mAP"] <= 1.0 and metrics["histogram"]["rank1"] == 1.0
    assert main(["train-embedder", "--sequences", str(tmp_path / "nope"), "--out", str(out)]) == 2
