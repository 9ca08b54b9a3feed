"""Imported Darknet models: vidtrack (Keras/TF) vs OpenCV 4.x DNN on the same cfg/weights.

For yolov4-tiny (random weights) and the real Yolo-Fastest 1.1 body model, both at
416x416 (the Yolo-Fastest cfg's 320 is rewritten to 416 for both sides), prints network
frames/s at batch 1 and 8 (same input blob; vidtrack: the frozen graph ``Detector`` runs,
on TensorFlow's oneDNN kernels, and a tf.function with XLA ``jit_compile=True``; OpenCV:
``net.forward`` of the yolo outputs, and the same with its Winograd 3x3 convolutions
turned off, to show where its speed comes from), their ratios, and whether
the final boxes (score threshold + class-aware NMS) on the Darknet sample images and MOT
frames are identical. Then the person AP@0.5 (pycocotools) of the imported Yolo-Fastest
body model at its native 320x320 on TUD-Campus, TUD-Stadtmitte and KITTI-17.

Rates are medians of interleaved rounds (the machine is shared; see the printed load average).

Usage: .venv/bin/python bench/detector.py [--seconds 3] [--rounds 3] [--threads 2] [--no-ap]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import detector  # noqa: E402,F401  (TensorFlow environment defaults, before TensorFlow loads)
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from bench import opencv4_env as cv4  # noqa: E402

DATA = Path(os.environ.get("VIDTRACK_SHARED_DATA", ROOT.parent / "shared" / "data"))
SIZE = 416


def resized_cfg(cfg: Path, out: Path, size: int) -> Path:
    """Copy ``cfg`` with [net] width/height set to ``size``."""
    lines, in_net = [], False
    for line in cfg.read_text().splitlines():
        s = line.strip()
        if s.startswith("["):
            in_net = s.lower() in ("[net]", "[network]")
        key = s.split("=", 1)[0].strip()
        if in_net and key in ("width", "height"):
            line = f"{key}={size}"
        lines.append(line)
    out.write_text("\n".join(lines) + "\n")
    return out


_COMPILED = {}


def vidtrack_rate(model, x, seconds, jit):
    """Frames/s of the network as ``Detector`` runs it (frozen graph on oneDNN; or with
    ``jit`` a tf.function compiled by XLA) on a fixed batch ``x``."""
    import tensorflow as tf

    from detector.runtime import Detector

    key = (id(model), x.shape, jit)
    if key not in _COMPILED:
        fn = Detector.from_model(model, jit_compile=jit)._predict_fn
        _COMPILED[key] = fn
        [o.numpy() for o in fn(tf.constant(x))]  # trace / compile outside the timing
    fn, t = _COMPILED[key], tf.constant(x)
    [o.numpy() for o in fn(t)]
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        [o.numpy() for o in fn(t)]
        n += 1
    return n * len(x) / (time.perf_counter() - t0)


def opencv_rate(cfg, weights, blob, seconds, threads, winograd=True):
    """Frames/s of OpenCV 4 ``net.forward`` (yolo outputs) on the same blob, in its own venv.
    ``winograd=False`` turns off OpenCV's Winograd F(6x6, 3x3) 3x3 convolutions (its default)."""
    probe = cv4.run(cfg, weights, "time", blob, threads=threads, warmup=1, repeats=2, winograd=winograd)["seconds"]
    repeats = max(3, int(seconds / max(float(np.median(probe)), 1e-3)))
    secs = cv4.run(cfg, weights, "time", blob, threads=threads, warmup=2, repeats=repeats,
                   winograd=winograd)["seconds"]
    return len(blob) / float(np.mean(secs))


def interleaved(model, cfg, weights, x, seconds, threads, rounds):
    """Median frames/s over ``rounds`` of (vidtrack, vidtrack+XLA, OpenCV, OpenCV without
    Winograd) measured back to back, so that the load of this shared machine hits all alike."""
    runs = {"plain": [], "xla": [], "opencv": [], "direct": []}
    blob = cv4.nhwc_to_blob(x)
    for _ in range(rounds):
        runs["plain"].append(vidtrack_rate(model, x, seconds, jit=False))
        runs["xla"].append(vidtrack_rate(model, x, seconds, jit=True))
        runs["opencv"].append(opencv_rate(cfg, weights, blob, seconds, threads))
        runs["direct"].append(opencv_rate(cfg, weights, blob, seconds / 2, threads, winograd=False))
    return {k: float(np.median(v)) for k, v in runs.items()}


def boxes_identical(model, cfg, weights, images, conf):
    from detector.runtime import Detector

    det = Detector.from_model(model, conf_threshold=conf, iou_threshold=0.45, resize="stretch")
    prepared = det.prepare(images)
    x, transforms = prepared.inputs, prepared.transforms
    theirs = cv4.run(cfg, weights, "detect", cv4.nhwc_to_blob(x[:len(images)]), conf=conf, iou=0.45)
    same, total, worst = True, 0, 0.0
    for i, (d, tr) in enumerate(zip(det.detect(images), transforms)):
        ob = tr.to_original(theirs[f"boxes{i}"])
        total += len(d)
        _, diff = cv4.pair_boxes(d.boxes, d.class_ids, ob, theirs[f"classes{i}"])
        if not np.isfinite(diff):
            same = False
            continue
        worst = max(worst, diff)
    return same and worst < 0.5, total, worst


def person_ap(model_path, seqs):
    from detector.training.evaluate import coco_map, read_mot_gt
    from detector.runtime import Detector

    det = Detector.load(model_path, conf_threshold=0.005, iou_threshold=0.45, resize="letterbox", max_detections=100)
    results = {}
    for seq in seqs:
        d = DATA / "mot" / seq
        if not (d / "gt" / "gt.txt").is_file():
            print(f"  {seq}: missing, skipped")
            continue
        gt_all = read_mot_gt(d / "gt" / "gt.txt")
        frames = sorted((d / "img1").glob("*.jpg"))
        gt, preds = [], []
        for start in range(0, len(frames), 8):
            imgs = [cv2.imread(str(f)) for f in frames[start:start + 8]]
            for f, img, r in zip(frames[start:start + 8], imgs, det.detect(imgs)):
                h, w = img.shape[:2]
                b = np.clip(gt_all.get(int(f.stem), np.zeros((0, 4), np.float32)), 0, [w, h, w, h])
                gt.append((b, np.zeros(len(b), np.int32)))
                preds.append((r.boxes, r.scores, r.class_ids))
        m = coco_map(gt, preds, 1)
        results[seq] = m
        print(f"  {seq:<15} frames {len(frames):>4}  person AP@0.5 {m['map50']:.3f}  AP@0.5:0.95 {m['map']:.3f}")
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="measuring time per rate")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads for both TF and OpenCV")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are printed")
    ap.add_argument("--no-ap", action="store_true", help="skip the AP evaluation")
    args = ap.parse_args()

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from detector.darknet import import_darknet, plan_file, write_random_weights

    print(f"OpenCV peer {cv4.version()}, TensorFlow {tf.__version__}, {args.threads} threads, input {SIZE}x{SIZE}, "
          f"{os.cpu_count()} CPUs (shared; load average {os.getloadavg()[0]:.1f})")
    tmp = Path(tempfile.mkdtemp(prefix="vidtrack-bench-"))
    body = DATA / "yolo-fastest" / "yolo-fastest-1.1_body"
    v4_cfg = DATA / "darknet" / "yolov4-tiny.cfg"
    write_random_weights(tmp / "yolov4-tiny.weights", plan_file(v4_cfg), seed=0)
    cases = [
        ("yolov4-tiny (random weights)", v4_cfg, tmp / "yolov4-tiny.weights", DATA / "darknet" / "coco.names", 0.5),
        ("yolo-fastest-1.1 body (real)", resized_cfg(body / "yolo-fastest-1.1_body.cfg", tmp / "yf416.cfg", SIZE),
         body / "yolo-fastest-1.1_body.weights", body / "body.names", 0.25),
    ]
    images = [cv2.imread(str(p)) for p in sorted((DATA / "darknet" / "images").glob("*.jpg"))]
    images += [cv2.imread(str(DATA / "mot" / s / "img1" / "000001.jpg")) for s in ("TUD-Campus", "KITTI-17")]
    rng = np.random.default_rng(0)
    print(f"(medians of {args.rounds} interleaved rounds of {args.seconds:g} s each)")
    print(f"\n{'model':<30}{'batch':>6}{'vidtrack fps':>14}{'+XLA fps':>10}{'OpenCV fps':>12}"
          f"{'ratio':>8}{'XLA ratio':>10}{'OpenCV no-Winograd':>20}{'ratio':>7}")
    for name, cfg, weights, names, conf in cases:
        model = import_darknet(cfg, weights, names)
        for batch in (1, 8):
            x = rng.random((batch, SIZE, SIZE, 3), dtype=np.float32)
            r = interleaved(model, cfg, weights, x, args.seconds, args.threads, args.rounds)
            plain, xla, ocv, direct = r["plain"], r["xla"], r["opencv"], r["direct"]
            print(f"{name:<30}{batch:>6}{plain:>14.1f}{xla:>10.1f}{ocv:>12.1f}{plain / ocv:>8.2f}{xla / ocv:>10.2f}"
                  f"{direct:>20.1f}{plain / direct:>7.2f}", flush=True)
        same, total, worst = boxes_identical(model, cfg, weights, images, conf)
        print(f"{name:<30} final boxes on {len(images)} images (conf {conf}): "
              f"{'IDENTICAL' if same else 'DIFFERENT'} to OpenCV ({total} boxes, max corner diff {worst:.4f} px)",
              flush=True)
    if not args.no_ap:
        from vidtrack.commands.import_darknet import convert

        print("\nYolo-Fastest 1.1 body, imported, 320x320 letterbox, conf 0.005, class-aware NMS 0.45:")
        path = convert(body / "yolo-fastest-1.1_body.cfg", body / "yolo-fastest-1.1_body.weights",
                       tmp / "body.keras", body / "body.names")
        res = person_ap(path, ["TUD-Campus", "TUD-Stadtmitte", "KITTI-17"])
        if res:
            print(f"  mean person AP@0.5 over {len(res)} sequences: {np.mean([m['map50'] for m in res.values()]):.3f}")


if __name__ == "__main__":
    main()
