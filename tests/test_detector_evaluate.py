"""COCO mAP via pycocotools, and the MOTChallenge -> YOLO converter."""
import numpy as np
import pytest

from detector.training.evaluate import coco_map, mot_to_yolo, read_mot_gt
from detector.training.dataset import read_split
from tests.conftest import require


def _random_gt(rng, n_images=20):
    gt = []
    for _ in range(n_images):
        m = rng.integers(1, 6)
        xy = rng.uniform(0, 500, (m, 2))
        wh = rng.uniform(20, 120, (m, 2))
        gt.append((np.concatenate([xy, xy + wh], 1), rng.integers(0, 3, m)))
    return gt


def test_perfect_predictions_score_one():
    gt = _random_gt(np.random.default_rng(0))
    preds = [(b, np.ones(len(b)), c) for b, c in gt]
    m = coco_map(gt, preds, 3)
    assert m["map50"] == pytest.approx(1.0) and m["map"] == pytest.approx(1.0)
    for v in m["per_class"].values():
        assert v["ap50"] == pytest.approx(1.0)


def test_shifted_predictions_score_lower_and_monotonic():
    rng = np.random.default_rng(1)
    gt = _random_gt(rng)
    scores = []
    for shift in (0.0, 0.1, 0.3):  # fraction of the box size
        preds = []
        for b, c in gt:
            wh = b[:, 2:] - b[:, :2]
            off = np.concatenate([wh, wh], 1) * shift
            preds.append((b + off, np.full(len(b), 0.9), c))
        scores.append(coco_map(gt, preds, 3))
    assert scores[0]["map"] > scores[1]["map"] > scores[2]["map"]
    assert scores[1]["map50"] == pytest.approx(1.0)  # IoU 0.67 still matches at 0.5
    assert scores[2]["map50"] < 0.5  # IoU 0.26 does not


def test_wrong_class_and_false_positives():
    gt = _random_gt(np.random.default_rng(2))
    wrong = [(b, np.ones(len(b)), (c + 1) % 3) for b, c in gt]
    assert coco_map(gt, wrong, 3)["map50"] == pytest.approx(0.0)
    # a high-scoring false positive per image ranks above every true positive
    fp = [(np.concatenate([b, [[900, 900, 950, 950]]]), np.r_[np.full(len(b), 0.5), 0.99], np.r_[c, 0])
          for b, c in gt]
    m = coco_map(gt, fp, 3)
    assert m["per_class"][0]["ap50"] < 0.9 and m["per_class"][1]["ap50"] == pytest.approx(1.0)


def test_read_mot_gt_layouts(tmp_path):
    p15 = tmp_path / "mot15.txt"
    p15.write_text("1,1,10,20,30,40,1,4.4,5.5,0\n1,2,50,60,10,10,0,-1,-1,-1\n2,1,11,21,30,40,1,-1,-1,-1\n")
    gt = read_mot_gt(p15)
    np.testing.assert_allclose(gt[1], [[10, 20, 40, 60]])
    assert len(gt[2]) == 1
    p17 = tmp_path / "mot17.txt"
    p17.write_text("1,1,10,20,30,40,1,1,0.9\n1,2,0,0,5,5,1,3,1.0\n1,3,0,0,5,5,1,1,0.05\n")
    assert len(read_mot_gt(p17)[1]) == 2
    assert len(read_mot_gt(p17, min_visibility=0.1)[1]) == 1


def test_mot_to_yolo_on_real_sequence(shared_data, tmp_path):
    seq = require(shared_data / "mot" / "TUD-Campus")
    n = mot_to_yolo(seq, tmp_path / "val", frame_step=10)
    assert n == 8  # 71 frames, every 10th
    items = read_split(tmp_path / "val")
    assert len(items) == 8
    labels = np.concatenate([lab for _, lab in items])
    assert len(labels) > 20 and set(labels[:, 0].astype(int)) == {0}
    assert np.all((labels[:, 1:] >= 0) & (labels[:, 1:] <= 1))
    # first frame: same count as the gt rows of frame 1
    rows = np.loadtxt(seq / "gt" / "gt.txt", delimiter=",")
    assert len(items[0][1]) == int(np.sum(rows[:, 0] == 1))


def test_mot_to_yolo_command_writes_a_trainable_dataset(shared_data, tmp_path):
    from detector.training.dataset import YoloDataset
    from vidtrack.cli import main

    mot = require(shared_data / "mot")
    out = tmp_path / "persons"
    rc = main(["mot-to-yolo", str(out), "--train", str(mot / "TUD-Stadtmitte"), str(mot / "KITTI-17"),
               "--val", str(mot / "TUD-Campus"), "--frame-step", "20"])
    assert rc == 0
    ds = YoloDataset.open(out)
    assert ds.names == ["person"]
    assert len(ds.items("train")) == 9 + 8  # 179 and 145 frames, every 20th
    assert len(ds.items("val")) == 4
