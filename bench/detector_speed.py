"""Detector runtime speed, with peers measured in the same run.

1. NMS: detector.nms.nms (which calls cv2.dnn.NMSBoxesBatched) vs the numpy reference
   detector.nms.nms_reference (same inputs; also checks they keep the same boxes, in order)
2. Preprocessing: detector.letterbox (stretch) vs cv2.dnn.blobFromImages for a batch of 8 frames
3. Model: Detector.detect frames/s at batch 1 and 8, the default frozen graph vs an XLA tf.function (jit_compile=True)

Usage: .venv/bin/python bench/detector_speed.py [--model base/models/detector-synthetic.keras] [--seconds 3]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# the repository root first: this folder's detector.py would otherwise shadow the package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2
import numpy as np


def rate(fn, seconds, per_call=1):
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += per_call
    return n / (time.perf_counter() - t0)


def nms_inputs(rng, n):
    centres = rng.uniform(0, 600, (max(1, n // 8), 2))
    pts = centres[rng.integers(0, len(centres), n)] + rng.normal(0, 8, (n, 2))
    wh = rng.uniform(20, 80, (n, 2))
    boxes = np.concatenate([pts - wh / 2, pts + wh / 2], 1).astype(np.float32)
    return boxes, rng.uniform(0.25, 1, n).astype(np.float32), rng.integers(0, 3, n).astype(np.int32)


def main():
    from detector.nms import nms, nms_reference

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="base/models/detector-synthetic.keras")
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    rng = np.random.default_rng(0)

    print("== NMS (class-aware, IoU 0.45), calls/s ==")
    for n in (50, 300, 2000):
        b, s, c = nms_inputs(rng, n)
        ours = rate(lambda: nms(b, s, c, 0.45, None), args.seconds / 2)
        ref = rate(lambda: nms_reference(b, s, c, 0.45, None), args.seconds / 2)
        k1, k2 = nms(b, s, c, 0.45, None), nms_reference(b, s, c, 0.45, None)
        print(f"N={n:5d}: nms (OpenCV C++) {ours:9.0f}/s  numpy reference {ref:9.0f}/s  ratio {ours / ref:5.1f}  "
              f"same boxes in the same order: {np.array_equal(k1, k2)} ({len(k1)} vs {len(k2)})")

    from detector.letterbox import letterbox_uint8

    frames = [rng.integers(0, 255, (360, 640, 3), dtype=np.uint8) for _ in range(8)]
    print("== preprocessing 8 frames 640x360 -> 192x320 float32 RGB, batches/s ==")

    def ours_pre():
        out = np.empty((8, 192, 320, 3), np.uint8)
        for i, f in enumerate(frames):
            letterbox_uint8(f, (192, 320), "stretch", out=out[i])
        return out.astype(np.float32) / 255

    ours = rate(ours_pre, args.seconds / 2)
    peer = rate(lambda: cv2.dnn.blobFromImages(frames, 1 / 255, (320, 192), swapRB=True), args.seconds / 2)
    print(f"letterbox_uint8+astype {ours:.0f}/s  cv2.dnn.blobFromImages {peer:.0f}/s  ratio {ours / peer:.2f}")

    if not os.path.exists(args.model):
        print(f"(no model at {args.model}; skipping model timings)")
        return
    from detector.runtime import Detector

    print(f"== Detector.detect on 640x360 frames, frames/s ({args.model}) ==")
    for jit in (False, True):
        det = Detector.load(args.model, jit_compile=jit)
        for bs in (1, 8):
            fps = rate(lambda: det.detect(frames[:bs]), args.seconds, bs)
            print(f"jit_compile={jit!s:5} batch {bs}: {fps:6.1f} frames/s")


if __name__ == "__main__":
    main()
