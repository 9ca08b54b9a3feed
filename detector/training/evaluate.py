"""Detection metrics (COCO mAP via pycocotools) and a MOTChallenge -> YOLO converter.

``coco_map(gt, preds, num_classes)`` takes plain arrays per image:

- gt[i]    = (boxes float[M,4] x1y1x2y2 px, class_ids int[M])
- preds[i] = (boxes float[K,4] x1y1x2y2 px, scores float[K], class_ids int[K])

and returns {"map50", "map", "per_class": {c: {"ap50", "ap"}}} with COCO's 101-point
interpolation, all areas, 100 detections per image; classes without gt are NaN and left
out of the means.
"""
from __future__ import annotations

import configparser
import contextlib
import io
from pathlib import Path

import cv2
import numpy as np

from base.errors import VidtrackError


def coco_map(gt, preds, num_classes: int, max_dets: int = 100) -> dict:
    """COCO mAP@0.5 and mAP@0.5:0.95 (overall and per class) with pycocotools."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if len(gt) != len(preds):
        raise ValueError(f"{len(gt)} gt images but {len(preds)} prediction images")
    images, anns, dets = [], [], []
    for i, ((gb, gc), (pb, ps, pc)) in enumerate(zip(gt, preds)):
        images.append({"id": i + 1, "width": 1, "height": 1})
        for b, c in zip(np.asarray(gb, float).reshape(-1, 4), np.asarray(gc).reshape(-1)):
            w, h = b[2] - b[0], b[3] - b[1]
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": int(c) + 1,
                         "bbox": [b[0], b[1], w, h], "area": w * h, "iscrowd": 0})
        for b, s, c in zip(np.asarray(pb, float).reshape(-1, 4), np.asarray(ps).reshape(-1),
                           np.asarray(pc).reshape(-1)):
            dets.append({"image_id": i + 1, "category_id": int(c) + 1,
                         "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "score": float(s)})
    cats = [{"id": c + 1, "name": str(c)} for c in range(num_classes)]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {"images": images, "annotations": anns, "categories": cats}
        coco_gt.createIndex()
        if not dets:
            return {"map50": 0.0, "map": 0.0,
                    "per_class": {c: {"ap50": 0.0 if any(a["category_id"] == c + 1 for a in anns) else float("nan"),
                                      "ap": 0.0} for c in range(num_classes)}}
        coco_dt = coco_gt.loadRes(dets)
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.params.maxDets = [1, 10, max_dets]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    prec = ev.eval["precision"]  # [T, R, K, A, M]
    per_class = {}
    for k in range(num_classes):
        p = prec[:, :, k, 0, -1]
        if np.all(p < 0):
            per_class[k] = {"ap50": float("nan"), "ap": float("nan")}
            continue
        p50 = p[0][p[0] > -1]
        per_class[k] = {"ap50": float(p50.mean()) if p50.size else 0.0, "ap": float(p[p > -1].mean())}
    return {"map50": float(ev.stats[1]), "map": float(ev.stats[0]), "per_class": per_class}


def evaluate_detector(detector, items, batch_size: int = 8, progress: bool = False) -> dict:
    """Run ``detector`` on YOLO-format items [(image path, labels float[M,5])] and score with :func:`coco_map`.

    The detector should use a low confidence threshold (e.g. 0.001) for a proper mAP.
    """
    from detector.training.dataset import labels_to_boxes

    gt, preds = [], []
    it = range(0, len(items), batch_size)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="eval", unit="batch", leave=False)
    for start in it:
        chunk = items[start:start + batch_size]
        imgs = []
        for path, labels in chunk:
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if img is None:
                raise VidtrackError(f"cannot read image {path}")
            imgs.append(img)
            gt.append(labels_to_boxes(labels, img.shape[1], img.shape[0]))
        for d in detector.detect(imgs):
            preds.append((d.boxes, d.scores, d.class_ids))
    return coco_map(gt, preds, detector.num_classes)


def format_metrics(m: dict, class_names) -> str:
    lines = [f"mAP@0.5 {m['map50']:.4f}   mAP@0.5:0.95 {m['map']:.4f}"]
    for k, v in m["per_class"].items():
        name = class_names[k] if k < len(class_names) else str(k)
        lines.append(f"  {name:<12} AP@0.5 {v['ap50']:.4f}   AP@0.5:0.95 {v['ap']:.4f}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- MOT -> YOLO
def read_mot_gt(path, min_visibility: float = 0.0) -> dict[int, np.ndarray]:
    """MOTChallenge gt.txt -> {frame (1-based): float32[M,4] x1y1x2y2 px} of pedestrians.

    Rows with conf (column 7) == 0 are ignored. In the 9-column MOT16/17 layout, rows whose
    class (column 8) is not 1 (pedestrian) or whose visibility (column 9) is below
    ``min_visibility`` are ignored too; the 10-column MOT15 layout has world coordinates there.
    """
    text = Path(path).read_text().strip()
    rows = np.array([[float(v) for v in line.split(",")] for line in text.splitlines() if line.strip()])
    if rows.size == 0:
        return {}
    keep = rows[:, 6] != 0
    if rows.shape[1] == 9:  # MOT16/17 layout: class, visibility (MOT15 has 10 columns: world x, y, z)
        keep &= (rows[:, 7] == 1) | (rows[:, 7] == -1)
        keep &= (rows[:, 8] >= min_visibility) | (rows[:, 8] == -1)
    rows = rows[keep]
    out: dict[int, list] = {}
    for r in rows:
        out.setdefault(int(r[0]), []).append([r[2], r[3], r[2] + r[4], r[3] + r[5]])
    return {f: np.array(b, np.float32) for f, b in out.items()}


def mot_to_yolo(seq_dir, out_split_dir, frame_step: int = 1, prefix: str | None = None,
                min_visibility: float = 0.0) -> int:
    """Convert a MOTChallenge sequence (img1/ + gt/gt.txt) into YOLO ``images/`` + ``labels/``.

    Class 0 = pedestrian; boxes are clipped to the frame. Images are linked (or copied when
    linking fails), never re-encoded. Returns the number of images written.
    """
    seq = Path(seq_dir)
    gt_path = seq / "gt" / "gt.txt"
    if not gt_path.is_file():
        raise VidtrackError(f"{gt_path} not found")
    ini = configparser.ConfigParser()
    ini.read(seq / "seqinfo.ini")
    im_dir = seq / (ini.get("Sequence", "imDir", fallback="img1"))
    frames = sorted(im_dir.glob("*.jpg")) + sorted(im_dir.glob("*.png"))
    gt = read_mot_gt(gt_path, min_visibility)
    out = Path(out_split_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    prefix = prefix if prefix is not None else seq.name
    n = 0
    for k, f in enumerate(frames):
        if k % frame_step:
            continue
        frame_no = int(f.stem)
        h, w = cv2.imread(str(f)).shape[:2]
        dst = out / "images" / f"{prefix}_{f.name}"
        if not dst.exists():
            try:
                dst.symlink_to(f.resolve())
            except OSError:
                dst.write_bytes(f.read_bytes())
        boxes = gt.get(frame_no, np.zeros((0, 4), np.float32))
        b = np.clip(boxes, 0, [w, h, w, h])
        lines = [f"0 {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}\n"
                 for x1, y1, x2, y2 in b if x2 - x1 >= 2 and y2 - y1 >= 2]
        (out / "labels" / f"{prefix}_{f.stem}.txt").write_text("".join(lines))
        n += 1
    return n
