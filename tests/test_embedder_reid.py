"""Re-id data (MOT gt + frames -> identity crops) and the rank-1 / mAP metric."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import require
from detector.appearance import ColourHistogramEmbedder
from detector.training.reid_data import (GroundTruth, ReidCrops, evaluate_reid, load_sequence_crops, read_gt,
                                        read_mot_boxes, reid_metrics, tracklet_identities)

COLOURS = [(40, 40, 210), (210, 60, 40), (40, 200, 40), (20, 200, 220), (200, 40, 200)]  # BGR


def write_sequence(root: Path, n_ids: int = 3, n_frames: int = 12, seed: int = 0, video: bool = False,
                   size=(240, 320)) -> Path:
    """A tiny MOT-format sequence: people as two-colour blocks (shirt, trousers) walking
    right over a noisy background; gt/gt.txt in MOT16 layout plus img1/ jpgs or a video."""
    rng = np.random.default_rng(seed)
    h, w = size
    (root / "gt").mkdir(parents=True)
    rows, frames = [], []
    for f in range(1, n_frames + 1):
        img = rng.integers(100, 150, size=(h, w, 3), dtype=np.uint8)
        for i in range(n_ids):
            x, y, bw, bh = 10 + 60 * i + 3 * f, 30 + 10 * i, 36, 90
            img[y:y + bh // 2, x:x + bw] = COLOURS[i % len(COLOURS)]
            img[y + bh // 2:y + bh, x:x + bw] = COLOURS[(i + 2) % len(COLOURS)]
            rows.append(f"{f},{i + 1},{x},{y},{bw},{bh},1,1,1.0")
        frames.append(img)
    (root / "gt" / "gt.txt").write_text("\n".join(rows) + "\n")
    if video:
        out = cv2.VideoWriter(str(root / "video.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (w, h))
        for img in frames:
            out.write(img)
        out.release()
    else:
        (root / "img1").mkdir()
        for f, img in enumerate(frames, 1):
            cv2.imwrite(str(root / "img1" / f"{f:06d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return root


def test_read_gt_mot16_filters_and_converts(tmp_path):
    (tmp_path / "gt").mkdir()
    (tmp_path / "gt" / "gt.txt").write_text(
        "2,1,10,20,30,60,1,1,1.0\n"
        "1,1,10,20,30,60,1,1,0.9\n"
        "1,2,50,20,30,60,0,1,1.0\n"   # conf 0: ignored
        "1,3,90,20,30,60,1,3,1.0\n"   # class 3 (car): not a person
        "1,4,90,20,30,60,1,1,0.1\n"   # mostly occluded
        "1,5,90,20,30,10,1,1,1.0\n")  # too small
    gt = read_gt(tmp_path, min_height=24, min_visibility=0.3)
    assert gt.frames.tolist() == [1, 2] and gt.ids.tolist() == [1, 1]
    np.testing.assert_allclose(gt.boxes[0], [10, 20, 40, 80])


def test_read_gt_mot15_world_columns(tmp_path):
    (tmp_path / "gt").mkdir()
    # MOT15 rows: the last three columns are world coordinates, not class/visibility
    (tmp_path / "gt" / "gt.txt").write_text("1,1,88,99,61.08,218.56,1,4.4852,5.5016,0\n1,2,1,2,30,60,1,-1,-1,-1\n")
    gt = read_gt(tmp_path, min_height=24, min_visibility=0.3)
    assert gt.ids.tolist() == [1, 2]


@pytest.mark.parametrize("video", [False, True])
def test_load_sequence_crops(tmp_path, video):
    seq = write_sequence(tmp_path / "seq", n_ids=3, n_frames=6, video=video)
    data = load_sequence_crops(seq, size=(64, 32), margin=0.0)
    assert data.crops.shape == (18, 64, 32, 3) and data.crops.dtype == np.uint8
    assert sorted(np.bincount(data.labels).tolist()) == [6, 6, 6]
    # upper half of identity 0's crops is its shirt colour (red in BGR)
    first = data.crops[(data.labels == 0)][0]
    assert np.abs(first[8:24].reshape(-1, 3).mean(0) - COLOURS[0]).max() < 25
    both = ReidCrops.concat([data, data])
    assert both.num_ids == 6 and len(both.labels) == 36


def _tracks(rows) -> GroundTruth:
    """rows (frame, id, x1, y1, x2, y2) -> GroundTruth."""
    a = np.array(rows, np.float64).reshape(-1, 6)
    return GroundTruth(a[:, 0].astype(np.int32), a[:, 1].astype(np.int64), a[:, 2:].astype(np.float32))


def test_tracklets_are_cut_where_people_overlap_and_where_a_track_skips_a_frame():
    rows = [(f, 1, 10 + f, 0, 40 + f, 80) for f in range(1, 31)]  # track 1: frames 1-30
    rows += [(f, 2, 200, 0, 230, 80) for f in range(1, 31) if f != 16]  # track 2: misses frame 16
    rows += [(f, 3, 12 + f, 5, 42 + f, 85) for f in (10, 11)]  # track 3 crosses track 1 at frames 10-11
    rows += [(f, 4, 400, 0, 430, 80) for f in range(1, 6)]  # track 4: too short
    pseudo = tracklet_identities(_tracks(rows), max_overlap=0.3, min_rows=10)
    spans = sorted((int(pseudo.frames[pseudo.ids == i].min()), int(pseudo.frames[pseudo.ids == i].max()),
                    int((pseudo.ids == i).sum())) for i in np.unique(pseudo.ids))
    # track 1 loses frames 10-11 (crowded) and is cut there: 1-9 is too short, 12-30 stays;
    # track 2 is cut at its missed frame 16: 1-15 and 17-30; tracks 3 and 4 are dropped
    assert spans == [(1, 15, 15), (12, 30, 19), (17, 30, 14)]
    assert sorted(np.unique(pseudo.ids).tolist()) == [1, 2, 3]
    assert np.all(np.diff(pseudo.frames) >= 0)


def test_tracker_output_on_a_video_gives_identity_crops(tmp_path):
    seq = write_sequence(tmp_path / "seq", n_ids=2, n_frames=12, video=True)
    tracks = tmp_path / "tracks.txt"  # a tracker's MOT output: score in column 7, no class or visibility
    tracks.write_text((seq / "gt" / "gt.txt").read_text().replace(",1,1,1.0\n", ",0.9,-1,-1,-1\n"))
    pseudo = tracklet_identities(read_mot_boxes(tracks, min_height=24))
    data = load_sequence_crops(seq / "video.mp4", size=(64, 32), gt=pseudo)
    assert sorted(np.bincount(data.labels).tolist()) == [12, 12]
    first = data.crops[data.labels == 0][0]
    assert np.abs(first[8:24].reshape(-1, 3).mean(0) - COLOURS[0]).max() < 25


def test_reid_metrics_perfect_embeddings_score_one():
    ids = np.repeat(np.arange(4), 5)
    frames = np.tile(np.arange(0, 50, 10), 4)
    emb = np.eye(4, dtype=np.float32)[ids]  # one unit vector per identity
    r = reid_metrics(emb, ids, frames, min_gap=5)
    assert r["rank1"] == 1.0 and r["mAP"] == 1.0 and r["queries"] == 20


def test_reid_metrics_hand_computed_case():
    # A, B: identity 0; C, D: identity 1; all in different, far-apart frames
    emb = np.array([[1, 0], [0.8, 0.6], [0.96, 0.28], [0.6, 0.8]], np.float32)
    ids = np.array([0, 0, 1, 1])
    frames = np.array([0, 100, 200, 300])
    # rankings: A: C B D (pos at 2); B: D C A (3); C: A B D (3); D: B C A (2)
    r = reid_metrics(emb, ids, frames, min_gap=10)
    assert r["queries"] == 4 and r["rank1"] == 0.0 and r["rank5"] == 1.0
    assert r["mAP"] == pytest.approx((1 / 2 + 1 / 3 + 1 / 3 + 1 / 2) / 4)


def _reference_metrics(emb, ids, frames, min_gap):
    """Plain-loop rank-1 / mAP for cross-checking the vectorised version."""
    r1, aps = [], []
    for q in range(len(ids)):
        gal = [g for g in range(len(ids)) if g != q and not (ids[g] == ids[q] and abs(frames[g] - frames[q]) <= min_gap)]
        if not any(ids[g] == ids[q] for g in gal):
            continue
        gal.sort(key=lambda g: -float(emb[q] @ emb[g]))
        hits = [ids[g] == ids[q] for g in gal]
        r1.append(hits[0])
        found, prec = 0, []
        for i, h in enumerate(hits, 1):
            if h:
                found += 1
                prec.append(found / i)
        aps.append(np.mean(prec))
    return np.mean(r1), np.mean(aps), len(aps)


def test_reid_metrics_matches_plain_loop_reference():
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 6, 60)
    frames = rng.integers(0, 100, 60)
    centres = rng.normal(size=(6, 16))
    emb = centres[ids] + 1.2 * rng.normal(size=(60, 16))
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    r = reid_metrics(emb, ids, frames, min_gap=8)
    r1, m_ap, n = _reference_metrics(emb, ids, frames, 8)
    assert r["queries"] == n
    assert r["rank1"] == pytest.approx(r1) and r["mAP"] == pytest.approx(m_ap, abs=1e-6)
    assert 0.2 < r["mAP"] < 0.95  # a non-trivial case


def test_reid_metrics_excludes_near_frames():
    # identity 0 at frames 0 and 1 looks identical; at frame 50 it looks like identity 1
    emb = np.array([[1, 0], [1, 0], [0, 1], [0.6, 0.8]], np.float32)
    ids = np.array([0, 0, 0, 1])
    frames = np.array([0, 1, 50, 50])
    near_ok = reid_metrics(emb, ids, frames, min_gap=0)
    gapped = reid_metrics(emb, ids, frames, min_gap=5)
    # without a gap, frames 0 and 1 find each other; with it, only frame 50 is left as
    # their positive and identity 1 ranks above it
    assert near_ok["rank1"] == pytest.approx(2 / 3) and gapped["rank1"] == 0.0
    assert near_ok["queries"] == gapped["queries"] == 3


def test_evaluate_reid_histogram_on_generated_sequence(tmp_path):
    seq = write_sequence(tmp_path / "seq", n_ids=4, n_frames=10)
    r = evaluate_reid(ColourHistogramEmbedder(), seq, min_gap=2)
    assert r["identities"] == 4 and r["queries"] == 40
    assert r["rank1"] == 1.0 and r["mAP"] > 0.95


def test_evaluate_reid_histogram_tud_campus(shared_data):
    seq = require(shared_data / "mot" / "TUD-Campus")
    r = evaluate_reid(ColourHistogramEmbedder(), seq, min_gap=10)
    assert r["identities"] == 8 and r["queries"] > 300
    # far better than chance (8 identities) but not perfect
    assert 0.4 < r["rank1"] < 1.0 and 0.3 < r["mAP"] < 1.0
