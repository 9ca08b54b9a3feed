"""Re-id quality and speed of the appearance embedders, side by side on the same inputs.

1. rank-1 / mAP on the ground-truth boxes of a held-out MOT sequence (default TUD-Campus):
   colour histogram vs the learned CNN, and the two fused (``default+histogram``).
2. rank-1 / mAP on the sequence's public detections matched to gt (IoU >= 0.5, one-to-one
   per frame): colour histogram, learned CNN and the original DeepSORT re-id network
   (mars-small128, features precomputed in ../shared/data/mot/deepsort-features).
3. Speed: crops/s at batch 32 on this machine (frame cropping included), learned vs histogram.

    .venv/bin/python bench/reid.py [--model models/embedder.keras] [--sequence TUD-Campus]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from scipy.optimize import linear_sum_assignment

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from base.geometry import iou_matrix  # noqa: E402
from base.paths import DEFAULT_EMBEDDER  # noqa: E402
from detector.appearance import ColourHistogramEmbedder, FusedEmbedder  # noqa: E402
from detector.embedder import KerasEmbedder  # noqa: E402
from detector.training.reid_data import evaluate_reid, iter_frames, read_gt, reid_metrics  # noqa: E402


def matched_detections(seq: Path, features: np.ndarray, min_iou: float = 0.5):
    """Public detections with a DeepSORT feature, matched one-to-one to gt per frame.
    Returns (frames int[M], boxes float32[M,4], ids int[M], deepsort features float32[M,128])."""
    gt = read_gt(seq, min_height=24, min_visibility=0.3)
    out_f, out_b, out_i, out_e = [], [], [], []
    for f in np.unique(features[:, 0]).astype(int):
        d = features[features[:, 0] == f]
        db = np.stack([d[:, 2], d[:, 3], d[:, 2] + d[:, 4], d[:, 3] + d[:, 5]], axis=1)
        g = gt.frames == f
        if not g.any():
            continue
        iou = iou_matrix(db, gt.boxes[g])
        rows, cols = linear_sum_assignment(-iou)
        ok = iou[rows, cols] >= min_iou
        rows, cols = rows[ok], cols[ok]
        out_f.append(np.full(len(rows), f)), out_b.append(db[rows]), out_i.append(gt.ids[g][cols])
        out_e.append(d[rows, 10:])
    return (np.concatenate(out_f), np.concatenate(out_b).astype(np.float32), np.concatenate(out_i),
            np.concatenate(out_e).astype(np.float32))


def embed_boxes(embedder, seq: Path, frames: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    out = np.zeros((len(boxes), embedder.dim), np.float32)
    for f, image in iter_frames(seq, set(frames.tolist())):
        sel = np.flatnonzero(frames == f)
        out[sel] = embedder.embed([image], [boxes[sel]])[0]
    return out


def crops_per_second(embedder, image: np.ndarray, batch: int, repeats: int) -> float:
    rng = np.random.default_rng(0)
    h, w = image.shape[:2]
    x1 = rng.uniform(0, w - 60, batch)
    y1 = rng.uniform(0, h - 150, batch)
    boxes = np.stack([x1, y1, x1 + rng.uniform(30, 60, batch), y1 + rng.uniform(80, 150, batch)], 1).astype(np.float32)
    embedder.embed([image], [boxes])  # warm-up (tracing)
    t = time.perf_counter()
    for _ in range(repeats):
        embedder.embed([image], [boxes])
    return batch * repeats / (time.perf_counter() - t)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(DEFAULT_EMBEDDER))
    ap.add_argument("--sequence", default="TUD-Campus")
    ap.add_argument("--data", default=os.environ.get("VIDTRACK_SHARED_DATA", str(REPO.parent / "shared" / "data")))
    ap.add_argument("--min-gap", type=int, default=10)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    seq = Path(args.data) / "mot" / args.sequence
    if not (seq / "gt" / "gt.txt").is_file():
        print(f"skip: no sequence with gt at {seq}")
        return 0
    embedders = {"histogram": ColourHistogramEmbedder(), "learned": KerasEmbedder.load(args.model)}

    print(f"[1] re-id on gt boxes of {seq.name} (min gap {args.min_gap} frames)")
    fused = FusedEmbedder([embedders["learned"], embedders["histogram"]])  # as load_embedder("default+histogram")
    for name, emb in {**embedders, "fused": fused}.items():
        r = evaluate_reid(emb, seq, min_gap=args.min_gap)
        print(f"  {name:16s} rank-1 {r['rank1']:.3f}  rank-5 {r['rank5']:.3f}  mAP {r['mAP']:.3f}  "
              f"({r['queries']} queries, {r['identities']} ids)")

    feats = Path(args.data) / "mot" / "deepsort-features" / f"{seq.name}.npy"
    if feats.is_file():
        frames, boxes, ids, ds = matched_detections(seq, np.load(feats))
        print(f"[2] re-id on {len(ids)} public detections matched to gt (IoU >= 0.5), same boxes for all")
        for name, e in [("histogram", embed_boxes(embedders["histogram"], seq, frames, boxes)),
                        ("learned", embed_boxes(embedders["learned"], seq, frames, boxes)),
                        ("deepsort-mars128", ds)]:
            r = reid_metrics(e, ids, frames, min_gap=args.min_gap)
            print(f"  {name:16s} rank-1 {r['rank1']:.3f}  rank-5 {r['rank5']:.3f}  mAP {r['mAP']:.3f}  "
                  f"({r['queries']} queries)")
    else:
        print(f"[2] skipped: {feats} absent")

    import cv2

    image = cv2.imread(str(sorted((seq / "img1").glob("*.jpg"))[0]))
    speed = {name: crops_per_second(emb, image, args.batch, args.repeats) for name, emb in embedders.items()}
    print(f"[3] speed at batch {args.batch}, crops from a {image.shape[1]}x{image.shape[0]} frame, "
          f"{os.cpu_count()} CPU cores (shared):")
    for name, v in speed.items():
        print(f"  {name:16s} {v:8.0f} crops/s")
    print(f"  learned / histogram throughput ratio: {speed['learned'] / speed['histogram']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
