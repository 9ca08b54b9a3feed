"""Synthetic scene generator speed (one thread), vs encoding the same frames with cv2.VideoWriter (mp4v).

Usage: .venv/bin/python bench/synthetic_speed.py [--frames 300] [--width 640 --height 360] [--preset hard]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import cv2

from vidtrack.synthetic import SceneConfig, generate_scene


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--preset", choices=["hard"], help="SceneConfig.hard (pan, shake, crowd, occluders, look-alikes)")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    size = dict(width=args.width, height=args.height, num_frames=args.frames)
    cfg = SceneConfig.hard(1, **size) if args.preset else SceneConfig(seed=1, **size)
    t0 = time.perf_counter()
    frames, objects = [], 0
    for _, img, gt in generate_scene(cfg):
        frames.append(img)
        objects += len(gt)
    gen = len(frames) / (time.perf_counter() - t0)
    with tempfile.TemporaryDirectory() as tmp:
        w = cv2.VideoWriter(os.path.join(tmp, "v.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25, (args.width, args.height))
        t0 = time.perf_counter()
        for f in frames:
            w.write(f)
        w.release()
        enc = len(frames) / (time.perf_counter() - t0)
    print(f"generate_scene {args.preset or 'default'} {args.width}x{args.height}: {gen:.0f} frames/s "
          f"({objects / len(frames):.1f} objects/frame)")
    print(f"cv2.VideoWriter mp4v encode: {enc:.0f} frames/s")
    print(f"ratio generate/encode: {gen / enc:.2f}")


if __name__ == "__main__":
    main()
