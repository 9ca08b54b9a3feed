"""Camera-motion compensation benchmark: the estimator's cost per frame, its error against
the true warps of generated scenes, and tracking with and without it.

    .venv/bin/python bench/camera_motion.py [--skip-speed] [--skip-synthetic] [--skip-mot]

- speed: :class:`detector.camera_motion.CameraMotion` per frame on TUD-Stadtmitte's real
  frames at 640x480 and resized to 1920x1080 (one OpenCV thread, as a grabber on a busy box).
- synthetic: generated panning / shaking scenes (vidtrack.synthetic): the estimate against
  camera.txt's true warps, and IDF1 / IDSW / HOTA of the tracker on jittered gt detections
  with the estimated warps, the true ones and none.
- mot: HOTA / IDF1 on MOT15 FRCNN detections (../shared/data/mot) with warps from img1/ and
  without. The warps of a sequence are computed once and cached under bench/.cache/
  (:func:`sequence_warps`, which bench/tracker.py may import).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from base.mot import read_detections, write_mot  # noqa: E402
from base.types import Detections  # noqa: E402
from detector.camera_motion import CameraMotion, image_files  # noqa: E402
from tracker import TrackerConfig  # noqa: E402
from vidtrack.evaluation import evaluate_mot, evaluate_rows  # noqa: E402
from vidtrack.synthetic import SceneConfig, generate_scene  # noqa: E402
from workers.offline import track_sequence  # noqa: E402
from bench.sequences import cached_warps  # noqa: E402

DATA = Path(os.environ.get("VIDTRACK_SHARED_DATA", ROOT.parent / "shared" / "data")) / "mot"
SEQS = ["TUD-Campus", "TUD-Stadtmitte", "KITTI-17"]
CACHE = ROOT / "bench" / ".cache"


def sequence_warps(seq: str, data: Path = DATA) -> dict[int, np.ndarray]:
    """``{1-based frame: float32[2,3]}`` of a MOT sequence's img1/ frames (default estimator),
    cached in bench/.cache/warps-<seq>.npy (float32[N,2,3], frame i+1 at row i)."""
    return cached_warps(data / seq / "img1", CACHE / f"warps-{seq}.npy")


def speed() -> None:
    cv2.setNumThreads(1)
    images = [cv2.imread(str(p)) for p in image_files(DATA / "TUD-Stadtmitte" / "img1")[:100]]
    print("camera motion per frame (TUD-Stadtmitte, 100 frames, 1 OpenCV thread; min of 3 runs' medians)")
    for size in ((640, 480), (1920, 1080)):
        frames = [cv2.resize(im, size) for im in images]
        for label, options in (("default", {}), ("corners every frame", {"reuse": 2.0})):
            medians = []
            for _ in range(3):
                motion, spent = CameraMotion(**options), []
                for frame in frames:
                    start = time.perf_counter()
                    motion.estimate(frame)
                    spent.append(time.perf_counter() - start)
                medians.append(np.median(spent[1:]) * 1e3)
            print(f"  {size[0]}x{size[1]} {label:20s} {min(medians):6.2f} ms")


def _grid_error(est: np.ndarray, true: np.ndarray, width: int, height: int) -> float:
    g = np.stack(np.meshgrid(np.linspace(0, width, 5), np.linspace(0, height, 5)), -1).reshape(-1, 2)
    return float(np.abs(g @ est[:, :2].T + est[:, 2] - (g @ true[:, :2].T + true[:, 2])).max())


def scene_detections(cfg: SceneConfig, seed: int):
    """(gt rows, {frame: Detections}, estimated warps, true warps) of a generated scene: gt
    boxes seen at >= 20 % visibility, kept with p = 0.9, jittered by 3 % of their size."""
    rng = np.random.default_rng(seed)
    motion = CameraMotion()
    gt, frames, est, true = [], {}, {}, {}
    for i, image, rows, warp in generate_scene(cfg, with_camera=True):
        f = i + 1
        est[f], true[f] = motion.estimate(image), warp
        boxes, scores = [], []
        for tid, _cls, x1, y1, x2, y2, vis in rows:
            gt.append([f, tid, x1, y1, x2 - x1, y2 - y1, int(vis >= 0.2), -1, -1, -1])
            if vis < 0.2 or rng.random() > 0.9:
                continue
            w, h = x2 - x1, y2 - y1
            boxes.append(np.array([x1, y1, x2, y2]) + rng.normal(0, 0.03, 4) * [w, h, w, h])
            scores.append(float(np.clip(0.35 + 0.6 * vis + rng.normal(0, 0.05), 0.05, 1.0)))
        frames[f] = Detections(np.array(boxes, np.float32).reshape(-1, 4), scores, np.zeros(len(boxes), np.int32))
    return np.array(gt, float), frames, est, true


def _score(gt: np.ndarray, rows: list) -> dict:
    res = np.array([[f, i, x1, y1, x2 - x1, y2 - y1, s, -1, -1, -1] for f, i, x1, y1, x2, y2, s in rows], float)
    return evaluate_rows(gt, res)


def synthetic() -> None:
    scenes = {
        "pan 3 px/frame, shake 1": dict(camera_pan=(3.0, 0.5), camera_shake=1.0),
        "pan 2, shake 4, small": dict(camera_pan=(2.0, 0.5), camera_shake=4.0, size_scale=0.6),
        "still, shake 6, small": dict(camera_shake=6.0, size_scale=0.7),
    }
    print("generated scenes, 120 frames 640x360: warp error (px, 5x5 grid) and IDF1 / IDSW / HOTA")
    for name, options in scenes.items():
        for seed in (3, 4, 5):
            cfg = SceneConfig(seed=seed, num_frames=120, max_objects=8, **options)
            gt, frames, est, true = scene_detections(cfg, seed)
            errors = [_grid_error(est[f], true[f], cfg.width, cfg.height) for f in range(2, 121)]
            cells = []
            for warps in (None, est, true):
                m = _score(gt, track_sequence(frames, TrackerConfig(), cfg.num_frames, warps=warps)[0])
                cells.append(f"{m['IDF1']:.3f}/{m['IDSW']:3.0f}/{m['HOTA']:.3f}")
            print(f"  {name:26s} seed {seed}: err median {np.median(errors):.2f} p95 {np.quantile(errors, 0.95):.2f}"
                  f" | none {cells[0]} | estimated {cells[1]} | true {cells[2]}")


def mot(tmp: Path) -> None:
    print("MOT15 FRCNN detections, default tracker: HOTA / IDF1 / IDSW without and with camera motion")
    means = {"none": [], "sparse_flow": []}
    for seq in SEQS:
        if not (DATA / seq / "img1").is_dir():
            print(f"  {seq}: no frames under {DATA / seq}")
            continue
        frames = read_detections(DATA / "sort-frcnn-det" / seq / "det.txt")
        warps = sequence_warps(seq)
        shift = np.median([np.abs(w[:, 2]).max() for w in warps.values()])
        cells = []
        for name, w in (("none", None), ("sparse_flow", warps)):
            rows, _ = track_sequence(frames, TrackerConfig(), len(warps), warps=w)
            out = tmp / f"{seq}-{name}.txt"
            write_mot(out, rows)
            m = evaluate_mot(DATA / seq / "gt" / "gt.txt", out)
            means[name].append((m["HOTA"], m["IDF1"]))
            cells.append(f"{name} {m['HOTA']:.4f} / {m['IDF1']:.4f} / {m['IDSW']:.0f}")
        print(f"  {seq:15s} {' | '.join(cells)}  (median |shift| {shift:.2f} px/frame)")
    for name, values in means.items():
        if values:
            print(f"  mean {name:12s} HOTA {np.mean([v[0] for v in values]):.4f} IDF1 {np.mean([v[1] for v in values]):.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-synthetic", action="store_true")
    ap.add_argument("--skip-mot", action="store_true")
    args = ap.parse_args()
    import tempfile

    if not args.skip_speed:
        speed()
    if not args.skip_synthetic:
        synthetic()
    if not args.skip_mot:
        with tempfile.TemporaryDirectory() as tmp:
            mot(Path(tmp))


if __name__ == "__main__":
    main()
