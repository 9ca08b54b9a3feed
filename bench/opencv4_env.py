"""A cached OpenCV 4.x virtualenv (peer for the Darknet import) and a client to run it.

OpenCV 5 (the project's) dropped ``cv2.dnn.readNetFromDarknet``; this module creates
``bench/.venv-opencv4`` (``opencv-python-headless<5`` + numpy, from PyPI) on first use and
runs :mod:`bench.opencv4_worker` in it as a subprocess, exchanging arrays via ``.npz``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
VENV_DIR = Path(os.environ.get("VIDTRACK_OPENCV4_VENV", BENCH_DIR / ".venv-opencv4"))
WORKER = BENCH_DIR / "opencv4_worker.py"
REQUIREMENTS = ["opencv-python-headless<5", "numpy"]


class OpenCV4Unavailable(RuntimeError):
    """The OpenCV 4 venv could not be created (e.g. no network for pip)."""


def python_path(venv: Path = VENV_DIR) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _works(py: Path) -> str | None:
    try:
        res = subprocess.run([str(py), "-c", "import cv2; print(cv2.__version__); cv2.dnn.readNetFromDarknet"],
                             capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.stdout.strip() if res.returncode == 0 else None


def ensure_venv(venv: Path = VENV_DIR, timeout: float = 600) -> Path:
    """Return the venv's python, creating the venv if needed; raise OpenCV4Unavailable with the reason."""
    py = python_path(venv)
    if py.exists() and _works(py):
        return py
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
        res = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", *REQUIREMENTS],
                             capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as exc:
        raise OpenCV4Unavailable(f"cannot create OpenCV 4 venv at {venv}: {exc}") from None
    if res.returncode != 0:
        raise OpenCV4Unavailable(f"pip install {' '.join(REQUIREMENTS)} failed in {venv}: "
                                 f"{(res.stderr or res.stdout).strip().splitlines()[-1:]}")
    if not _works(py):
        raise OpenCV4Unavailable(f"OpenCV 4 in {venv} has no cv2.dnn.readNetFromDarknet")
    return py


def version() -> str:
    return _works(ensure_venv()) or "?"


def run(cfg, weights, task: str, blob: np.ndarray, threads: int | None = None, timeout: float = 600,
        **options) -> dict[str, np.ndarray]:
    """Run ``task`` of the worker on ``blob`` float32[B,3,H,W]; returns the worker's output arrays."""
    py = ensure_venv()
    with tempfile.TemporaryDirectory(prefix="vidtrack-cv4-") as tmp:
        tmp = Path(tmp)
        np.savez(tmp / "in.npz", blob=np.ascontiguousarray(blob, np.float32))
        job = dict(cfg=str(cfg), weights=str(weights), task=task, threads=threads,
                   **{"in": str(tmp / "in.npz"), "out": str(tmp / "out.npz")}, **options)
        (tmp / "job.json").write_text(json.dumps(job))
        res = subprocess.run([str(py), str(WORKER), str(tmp / "job.json")], capture_output=True, text=True,
                             timeout=timeout)
        if res.returncode != 0:
            raise RuntimeError(f"OpenCV 4 worker failed ({task}): {res.stderr.strip()[-2000:]}")
        with np.load(tmp / "out.npz") as data:
            return {k: data[k] for k in data.files}


def nhwc_to_blob(x: np.ndarray) -> np.ndarray:
    """float32[B,H,W,3] (vidtrack input, RGB 0..1) -> float32[B,3,H,W] (OpenCV blob)."""
    return np.ascontiguousarray(np.asarray(x, np.float32).transpose(0, 3, 1, 2))


def pair_boxes(boxes_a, classes_a, boxes_b, classes_b) -> tuple[np.ndarray, float]:
    """Pair two detection sets one-to-one by class and position (Hungarian on the max corner
    difference). Returns (int[N] index into b of each box of a, largest corner difference in
    pixels over the pairs); the difference is inf if the sets differ in size or classes.
    Order-free: boxes whose scores differ in the 7th digit may swap places in score order
    between two correct implementations."""
    from scipy.optimize import linear_sum_assignment

    a, b = np.asarray(boxes_a, np.float64).reshape(-1, 4), np.asarray(boxes_b, np.float64).reshape(-1, 4)
    if len(a) != len(b):
        return np.zeros(0, np.int64), float("inf")
    if len(a) == 0:
        return np.zeros(0, np.int64), 0.0
    cost = np.abs(a[:, None, :] - b[None, :, :]).max(axis=2)
    cost[np.asarray(classes_a)[:, None] != np.asarray(classes_b)[None, :]] = 1e9
    rows, cols = linear_sum_assignment(cost)  # rows == arange(N) for a square matrix
    worst = float(cost[rows, cols].max())
    return cols, (worst if worst < 1e9 else float("inf"))
