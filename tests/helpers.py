"""Small real inputs the tests make for themselves."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def write_test_video(path: Path, frames: int = 30, size=(160, 120), fps: float = 25.0) -> Path:
    """An MJPG .avi whose frame i has a bright square at a position that encodes i."""
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened()
    rng = np.random.default_rng(0)
    for i in range(frames):
        image = rng.integers(0, 40, (h, w, 3), dtype=np.uint8)
        x = 5 + (i * 7) % (w - 30)
        cv2.rectangle(image, (x, 40), (x + 20, 80), (255, 255, 255), -1)
        writer.write(image)
    writer.release()
    return path


def decode_all(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(image)
    return frames


def start_catching(target, exc_type):
    """Run ``target()`` on a new thread; returns (thread, errors) where errors collects the
    ``exc_type`` it raises (any other exception fails the thread as usual)."""
    import threading

    errors = []

    def run():
        try:
            target()
        except exc_type as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors
