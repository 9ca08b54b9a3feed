"""Camera-motion estimation (BoT-SORT's global motion compensation, its ``sparseOptFlow``).

Per stream, frame after frame: the frame in grey, downscaled to at most ``max_width``
pixels wide; corners of the previous frame (``cv2.goodFeaturesToTrack``) followed into this
one by pyramidal Lucas-Kanade optical flow; a 4-degree-of-freedom affine (rotation, uniform
scale, translation) fitted to the pairs with RANSAC (``cv2.estimateAffinePartial2D``), its
translation scaled back to full-resolution pixels. Moving objects are outliers of the fit
as long as the background holds most of the corners.

A warp is float32[2,3] ``[A | t]`` taking pixel coordinates (x, y) of the previous frame
to this frame: ``p' = A @ p + t``. It is the identity for a stream's first frame, after
:meth:`CameraMotion.reset`, on a change of frame size, and whenever the estimate fails
(too few corners or tracked pairs, RANSAC finds no model, a non-finite result, a scale
change per frame beyond ``max_scale_change``).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

METHODS = ("sparse_flow", "none")
DEFAULT_METHOD = "sparse_flow"  # a source's default (``[[sources]] camera_motion``, ``track-detections``)


def identity_warp() -> np.ndarray:
    """float32[2,3]: no camera motion."""
    return np.eye(2, 3, dtype=np.float32)


class CameraMotion:
    """A stream's camera-motion estimator; feed it every frame of the stream in order.

    max_width: frames are downscaled (INTER_LINEAR, any factor) to at most this many pixels
    wide; max_corners / min_distance (downscaled pixels): corners tracked per frame;
    min_inliers: RANSAC inliers needed; max_scale_change: the largest relative change of
    scale per frame accepted (0.1: 1/1.1 .. 1.1); window / levels: the Lucas-Kanade window
    side (pixels) and pyramid levels; reuse: the inliers of a fit are followed on into the
    next frame while at least this fraction of ``max_corners`` is left, else corners are
    detected afresh (2: every frame, as BoT-SORT). 480 px and 200 corners: ~0.1 px from the true warp on a
    generated panning scene (640 px and 300 corners: ~0.05 px at twice the cost).
    redetect_every: corners are also detected afresh at every frame whose ``index`` (given
    to :meth:`estimate`) is a multiple of this, so the estimate of a frame depends only on the
    frames since the last such index: a grabber that goes back to frame p replays frames
    from there (:func:`replay_start`) and sends the warps an undisturbed run sent."""

    def __init__(self, max_width: int = 480, max_corners: int = 200, min_distance: int = 8,
                 min_inliers: int = 12, max_scale_change: float = 0.1, window: int = 21, levels: int = 3,
                 reuse: float = 0.5, redetect_every: int = 16) -> None:
        self.max_width = max_width
        self.redetect_every = max(1, int(redetect_every))
        self.reuse = reuse
        self.window, self.levels = (window, window), levels
        self.max_corners = max_corners
        self.min_distance = min_distance
        self.min_inliers = min_inliers
        self.max_scale_change = max_scale_change
        self.failures = 0  # frames (not first ones) whose estimate failed and gave the identity
        self._prev: np.ndarray | None = None  # uint8[h,w] downscaled grey previous frame
        self._prev_points: np.ndarray | None = None  # float32[K,1,2] its corners
        self._shape: tuple | None = None
        self._mask: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the previous frame (a rewind or a restart): the next warp is the identity."""
        self._prev = self._prev_points = None

    def estimate(self, frame_bgr: np.ndarray, index: int | None = None) -> np.ndarray:
        """float32[2,3] warp from the previous frame to ``frame_bgr`` (uint8[H,W,3] BGR or
        uint8[H,W] grey), full-resolution pixels; ``index``: the frame's number in its
        stream (corners detected afresh at multiples of ``redetect_every``)."""
        grey, scale = self._small_grey(frame_bgr)
        prev, prev_points = self._prev, self._prev_points
        warp = kept = None
        if prev is not None and prev.shape == grey.shape:
            warp, kept = self._fit(prev, prev_points, grey, scale)
            self.failures += warp is None
        # the inliers followed into this frame are the next frame's corners while enough are left
        fresh = index is not None and index % self.redetect_every == 0
        if fresh or kept is None or len(kept) < self.reuse * self.max_corners:
            kept = self._corners(grey)
        self._prev, self._prev_points = grey, kept
        return identity_warp() if warp is None else warp

    # ------------------------------------------------------------------ steps
    def _small_grey(self, frame: np.ndarray) -> tuple[np.ndarray, float]:
        """The frame in grey, at most ``max_width`` wide; and the factor full / small."""
        h, w = frame.shape[:2]
        if w > self.max_width:  # INTER_LINEAR before the colour conversion: ~1 ms for 1080p, INTER_AREA ~5
            small_w, small_h = self.max_width, max(1, int(round(h * self.max_width / w)))
            frame = cv2.resize(frame, (small_w, small_h), interpolation=cv2.INTER_LINEAR)
        grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        return grey, w / grey.shape[1]

    def _corners(self, grey: np.ndarray) -> np.ndarray | None:
        """float32[K,1,2] corners of ``grey`` away from its outer 2 % (burnt-in text, borders)."""
        if self._shape != grey.shape:
            h, w = grey.shape
            self._shape = grey.shape
            self._mask = np.zeros((h, w), np.uint8)
            self._mask[int(0.02 * h):int(math.ceil(0.98 * h)), int(0.02 * w):int(math.ceil(0.98 * w))] = 255
        return cv2.goodFeaturesToTrack(grey, maxCorners=self.max_corners, qualityLevel=0.01,
                                       minDistance=self.min_distance, blockSize=3, mask=self._mask)

    def _fit(self, prev: np.ndarray, points: np.ndarray | None, grey: np.ndarray, scale: float) -> tuple:
        """(the full-resolution warp prev -> grey or None where it fails, the RANSAC inliers
        float32[K,1,2] where they went in ``grey`` and still inside its mask, or None)."""
        if points is None or len(points) < self.min_inliers:
            return None, None
        moved, status, _ = cv2.calcOpticalFlowPyrLK(prev, grey, points, None, winSize=self.window,
                                                    maxLevel=self.levels)
        if moved is None:
            return None, None
        ok = status.ravel() == 1
        if ok.sum() < self.min_inliers:
            return None, None
        model, inliers = cv2.estimateAffinePartial2D(points[ok], moved[ok], method=cv2.RANSAC,
                                                     ransacReprojThreshold=1.0)
        if model is None or inliers is None or int(inliers.sum()) < self.min_inliers:
            return None, None
        kept = moved[ok][inliers.ravel() == 1]
        h, w = grey.shape
        x, y = kept[:, 0, 0], kept[:, 0, 1]
        kept = kept[(x >= 0.02 * w) & (x < 0.98 * w) & (y >= 0.02 * h) & (y < 0.98 * h)]
        model[:, 2] *= scale
        return (model.astype(np.float32), kept) if self._plausible(model, w * scale) else (None, None)

    def _plausible(self, model: np.ndarray, width: float) -> bool:
        """Finite, a translation within the frame's width, a positive determinant, a scale
        change within ``max_scale_change``."""
        if not np.isfinite(model).all() or np.abs(model[:, 2]).max() > width:
            return False
        det = float(np.linalg.det(model[:, :2]))
        if det <= 0:
            return False
        s = math.sqrt(det)
        return 1.0 / (1.0 + self.max_scale_change) <= s <= 1.0 + self.max_scale_change


def replay_start(estimator: CameraMotion, position: int) -> int:
    """The frame to feed ``estimator`` from (after :meth:`CameraMotion.reset`), up to
    ``position`` - 1, so that frame ``position``'s warp is the one an estimator fed every frame
    from the start gives: the last corner detection at or before ``position`` - 1."""
    if position <= 0:
        return 0
    return (position - 1) // estimator.redetect_every * estimator.redetect_every


def make_estimator(method: str, **options) -> CameraMotion | None:
    """An estimator for ``method`` ("sparse_flow"), or None for "none"."""
    if method == "none":
        return None
    if method == "sparse_flow":
        return CameraMotion(**options)
    raise ValueError(f"unknown camera-motion method {method!r}, expected one of {METHODS}")


def warps_of_images(images: Iterable[np.ndarray], first: int = 1, **options) -> dict[int, np.ndarray]:
    """``{frame number: float32[2,3]}`` of a stream's images in order, numbered from ``first``
    (MOT frames are 1-based; frame ``first`` gets the identity); the i-th image is frame i of
    the stream for the corner-detection schedule, as a grabber numbers what it sends."""
    estimator = CameraMotion(**options)
    return {first + i: estimator.estimate(image, i) for i, image in enumerate(images)}


def warps_of_frames(paths: Iterable[str | Path], **options) -> dict[int, np.ndarray]:
    """``{1-based frame number: float32[2,3]}`` of the image files ``paths`` in order (an
    img1/ folder's sorted files)."""
    def images():
        for p in paths:
            image = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
            if image is None:
                raise OSError(f"cannot read image {p}")
            yield image

    return warps_of_images(images(), **options)


def image_files(folder: str | Path) -> list[Path]:
    """The .jpg / .jpeg / .png files of ``folder``, sorted by name (a MOT img1/ folder)."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
