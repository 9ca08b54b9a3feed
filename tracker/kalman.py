"""Constant-velocity Kalman filter in box space, DeepSORT-style, in seconds.

State (8): cx, cy, a, h, vcx, vcy, va, vh -- pixel centre, aspect ratio w/h, pixel height
and their velocities per second (px/s, 1/s). Measurement (4): cx, cy, a, h.

Predict takes the real time step ``dt`` in seconds (frame index difference / frame rate):
F has dt on the position/velocity coupling and the process noise Q is a random walk whose
variance grows linearly with elapsed time, its constants stated per second. Noise is scaled
by the box height, except the aspect ratio's, which has its own :class:`AspectNoise`.

The constants are DeepSORT's per-frame ones (std_weight_position = 1/20, std_weight_velocity
= 1/160 px/frame per px of height) restated per second at ``REFERENCE_FPS`` = 25 frames/s,
so a 25 fps stream is filtered exactly as by the per-frame filter (up to float rounding),
and any other rate gets the same noise per second of motion: a std per sqrt(frame) s is
s * sqrt(25) per sqrt(second); a velocity of v px/frame is 25 v px/s, so a velocity std
weight w (px/frame) is 25 w in px/s, and per sqrt(second) 25 w sqrt(25).

Two implementations with the same maths:
- :class:`BatchedKalman`: all tracks of a stream in arrays (mean [T,8], cov [T,8,8]),
  predict/update/gating vectorised with numpy.
- :class:`tracker.kalman_reference.FilterpyKalman`: one ``filterpy.kalman.KalmanFilter``
  per track, the reference that tests and bench/tracker.py hold the batched one to; loaded
  only when ``TrackerConfig(kalman="filterpy")`` asks for it.
Both expose the same store interface used by the tracker (add / keep / predict / update /
set_state / warp / mean / cov).

Camera motion: :func:`warp_states` moves states by a 2x3 warp of the image (pixels of the
previous frame -> this frame, e.g. from :mod:`detector.camera_motion`), BoT-SORT's global
motion compensation.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

REFERENCE_FPS = 25.0
"""The frame rate at which these per-second constants equal DeepSORT's per-frame ones."""
STD_WEIGHT_POSITION = 1.0 / 20
"""Measurement std of cx, cy, h, and half the initial position std, per px of box height."""
POSITION_PROCESS_STD = 0.25
"""Process std of cx, cy, h per sqrt(second), per px of height (DeepSORT's 1/20 per sqrt(frame) x sqrt(25))."""
VELOCITY_PROCESS_STD = 0.78125
"""Process std of vcx, vcy, vh in px/s per sqrt(second), per px of height (DeepSORT's 1/160
px/frame per sqrt(frame) x 25 x sqrt(25))."""
INITIAL_VELOCITY_STD = 1.5625
"""Initial std of vcx, vcy, vh in px/s, per px of height (DeepSORT's 10/160 px/frame x 25)."""
ASPECT_VELOCITY_PROCESS_STD = 1.25e-3
"""Process std of the aspect ratio's velocity, 1/s per sqrt(second) (DeepSORT's 1e-5 per frame x 25 x sqrt(25))."""
INITIAL_ASPECT_VELOCITY_STD = 2.5e-4
"""Initial std of the aspect ratio's velocity, 1/s (DeepSORT's 1e-5 per frame x 25)."""
CHI2INV95 = {1: 3.8415, 2: 5.9915, 3: 7.8147, 4: 9.4877}
"""0.95 quantile of the chi-square distribution by degrees of freedom (Mahalanobis gating)."""


@dataclass(frozen=True)
class AspectNoise:
    """Standard deviations of the aspect ratio w/h (unitless): ``process`` per sqrt(second)
    of the random walk, ``measurement`` of a detection.

    DeepSORT uses 0.01 per sqrt(frame) (0.05 per sqrt(second) at 25 fps) and 0.1, which
    makes the filter trust its predicted shape far more than the detector's (steady-state
    gain about 0.1 at 25 fps), so a walking person's box, whose width changes with the
    stride, lags its detections. Equal stds per frame at 25 fps (0.25 per sqrt(second) and
    0.05) give a gain of (sqrt(5) - 1) / 2 ~ 0.62 at any scale; with FRCNN detections on
    the three MOT15 sequences this lifts mean HOTA / IDF1 (bench/tracker.py, the ablation's
    DeepSORT-aspect row).
    """

    process: float = 0.25
    measurement: float = 0.05


DEEPSORT_ASPECT = AspectNoise(process=5e-2, measurement=1e-1)
DEFAULT_ASPECT = AspectNoise()


def xyxy_to_xyah(boxes: np.ndarray) -> np.ndarray:
    """float[N,4] pixel x1,y1,x2,y2 -> float64[N,4] cx, cy, aspect w/h, h."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    out = np.empty_like(b)
    w = b[:, 2] - b[:, 0]
    h = np.maximum(b[:, 3] - b[:, 1], 1e-6)
    out[:, 0] = b[:, 0] + w / 2
    out[:, 1] = b[:, 1] + h / 2
    out[:, 2] = w / h
    out[:, 3] = h
    return out


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    """float[N,>=4] cx, cy, a, h -> float64[N,4] pixel x1,y1,x2,y2."""
    m = np.asarray(xyah, dtype=np.float64)
    out = np.empty((len(m), 4))
    half_w = m[:, 2] * m[:, 3] / 2
    half_h = m[:, 3] / 2
    out[:, 0] = m[:, 0] - half_w
    out[:, 1] = m[:, 1] - half_h
    out[:, 2] = m[:, 0] + half_w
    out[:, 3] = m[:, 1] + half_h
    return out


# ---------------------------------------------------------------- the maths, vectorised
def initiate(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New states from measurements z float[N,4] (xyah) -> mean [N,8], cov [N,8,8]."""
    z = np.asarray(z, dtype=np.float64).reshape(-1, 4)
    h = z[:, 3]
    wp, wv = 2 * STD_WEIGHT_POSITION * h, INITIAL_VELOCITY_STD * h
    std = np.stack([wp, wp, np.full_like(h, 1e-2), wp, wv, wv, np.full_like(h, INITIAL_ASPECT_VELOCITY_STD), wv],
                   axis=1)
    mean = np.concatenate([z, np.zeros_like(z)], axis=1)
    cov = np.zeros((len(z), 8, 8))
    idx = np.arange(8)
    cov[:, idx, idx] = std**2
    return mean, cov


_Q_WEIGHTS = np.array([POSITION_PROCESS_STD] * 2 + [0.0, POSITION_PROCESS_STD] + [VELOCITY_PROCESS_STD] * 2
                      + [0.0, VELOCITY_PROCESS_STD])
_R_WEIGHTS = np.array([STD_WEIGHT_POSITION] * 2 + [0.0, STD_WEIGHT_POSITION])


def process_noise_diag(mean: np.ndarray, dt: np.ndarray, aspect: AspectNoise = DEFAULT_ASPECT) -> np.ndarray:
    """Diagonal of Q for a step of dt seconds: float[T,8] (variance, scaled by height and dt).

    std per sqrt(second) = weight * h for positions/velocities (``POSITION_PROCESS_STD``,
    ``VELOCITY_PROCESS_STD``), ``aspect.process`` (aspect) and ``ASPECT_VELOCITY_PROCESS_STD``."""
    std = mean[:, 3:4] * _Q_WEIGHTS
    std[:, 2], std[:, 6] = aspect.process, ASPECT_VELOCITY_PROCESS_STD
    return std**2 * np.asarray(dt, dtype=np.float64).reshape(-1, 1)


def measurement_noise_diag(mean: np.ndarray, aspect: AspectNoise = DEFAULT_ASPECT) -> np.ndarray:
    """Diagonal of R: float[T,4] variance of cx, cy, a, h (std h/20, aspect ``aspect.measurement``)."""
    std = mean[:, 3:4] * _R_WEIGHTS
    std[:, 2] = aspect.measurement
    return std**2


def transition_matrix(dt: float) -> np.ndarray:
    """F for a step of dt seconds: float64[8,8]."""
    F = np.eye(8)
    F[:4, 4:] = dt * np.eye(4)
    return F


_IDX4 = np.arange(4)
_PAIRED = np.zeros((8, 8), bool)  # the entries of P in the 2x2 blocks (coordinate i, its velocity)
_PAIRED[_IDX4, _IDX4] = _PAIRED[_IDX4 + 4, _IDX4 + 4] = _PAIRED[_IDX4, _IDX4 + 4] = _PAIRED[_IDX4 + 4, _IDX4] = True


def is_paired(cov: np.ndarray) -> bool:
    """Whether every covariance [T,8,8] couples each coordinate only with its own velocity.

    So it stays from :func:`initiate` through predictions and updates (F, Q, H and R act on
    each coordinate apart), and the filter then runs as four 2x2 filters, elementwise; a
    camera warp that rotates (:func:`warp_states`) couples cx and cy and ends it."""
    return not cov[:, ~_PAIRED].any()


def _paired_views(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Views float64[T,4] of a C-contiguous cov [T,8,8]: (xx, xv, vx, vv), the variance of
    each coordinate, its covariance with its velocity (both triangles) and the velocity's
    variance. Strided slices of the flat rows (entry (i, j) is at 8 i + j), so no gather."""
    flat = cov.reshape(len(cov), 64)
    return flat[:, 0:28:9], flat[:, 4:32:9], flat[:, 32:60:9], flat[:, 36:64:9]


def predict(mean: np.ndarray, cov: np.ndarray, dt, aspect: AspectNoise = DEFAULT_ASPECT,
            paired: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Predict T states dt seconds ahead (dt scalar or float[T]). Returns new (mean, cov).
    ``paired``: whether :func:`is_paired` holds, where the caller knows (None: checked)."""
    # a scalar step stays a scalar (it broadcasts to the same numbers as a filled array)
    step = float(dt) if np.ndim(dt) == 0 else np.asarray(dt, dtype=np.float64).reshape(len(mean), 1)
    Q = process_noise_diag(mean, step, aspect)
    new_mean = mean.copy()
    new_mean[:, :4] += step * mean[:, 4:]
    if is_paired(cov) if paired is None else paired:
        return new_mean, _predict_paired(cov, step, Q)
    # F P F^T with F = [[I, dt I], [0, I]], using the block structure of P = [[A, B], [B', C]].
    A, B, C = cov[:, :4, :4], cov[:, :4, 4:], cov[:, 4:, 4:]
    d = step if np.ndim(step) == 0 else step[:, :, None]
    B2 = B + d * C
    new_cov = np.empty_like(cov)
    new_cov[:, :4, :4] = A + d * (B + np.swapaxes(B, 1, 2)) + d * d * C
    new_cov[:, :4, 4:] = B2
    new_cov[:, 4:, :4] = np.swapaxes(B2, 1, 2)
    new_cov[:, 4:, 4:] = C
    idx = np.arange(8)
    new_cov[:, idx, idx] += Q
    return new_mean, new_cov


def _predict_paired(cov: np.ndarray, d: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """:func:`predict`'s covariance for paired covariances (:func:`is_paired`), per
    coordinate: [[xx + 2 d xv + d^2 vv, xv + d vv], [., vv]] + Q; d seconds, float or float[T,1]."""
    new_cov = np.array(cov, dtype=np.float64, order="C")  # a copy; its other entries are 0
    xx, xv, vx, vv = _paired_views(new_cov)
    xx += d * (2.0 * xv + d * vv)
    xx += Q[:, :4]
    xv += d * vv
    vx[...] = xv
    vv += Q[:, 4:]
    return new_cov


def project(mean: np.ndarray, cov: np.ndarray, aspect: AspectNoise = DEFAULT_ASPECT) -> tuple[np.ndarray, np.ndarray]:
    """Measurement-space mean [T,4] and innovation covariance S = H P H' + R [T,4,4]."""
    S = cov[:, :4, :4].copy()
    idx = np.arange(4)
    S[:, idx, idx] += measurement_noise_diag(mean, aspect)
    return mean[:, :4].copy(), S


def update(mean: np.ndarray, cov: np.ndarray, z: np.ndarray, aspect: AspectNoise = DEFAULT_ASPECT,
           paired: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Correct T states with measurements z float[T,4] (xyah). Returns new (mean, cov).
    ``paired``: as in :func:`predict`."""
    if is_paired(cov) if paired is None else paired:
        return _update_paired(mean, cov, np.asarray(z, dtype=np.float64), aspect)
    zm, S = project(mean, cov, aspect)
    PHt = cov[:, :, :4]  # P H'  [T,8,4]
    # K = P H' S^-1  ->  K' = S^-1 (H P)   (S symmetric)
    Kt = np.linalg.solve(S, np.swapaxes(PHt, 1, 2))  # [T,4,8]
    K = np.swapaxes(Kt, 1, 2)
    innov = np.asarray(z, dtype=np.float64) - zm
    new_mean = mean + (K @ innov[:, :, None])[:, :, 0]
    new_cov = cov - K @ np.swapaxes(PHt, 1, 2)  # P - K S K' = P - K H P
    return new_mean, new_cov


def _update_paired(mean: np.ndarray, cov: np.ndarray, z: np.ndarray, aspect: AspectNoise) -> tuple[np.ndarray, np.ndarray]:
    """:func:`update` for paired covariances (:func:`is_paired`): per coordinate the gains
    are xx / s and xv / s with s = xx + r, the same numbers as the 4x4 solve."""
    new_cov = np.array(cov, dtype=np.float64, order="C")  # a copy; its other entries are 0
    xx, xv, vx, vv = _paired_views(new_cov)
    s = xx + measurement_noise_diag(mean, aspect)
    kx, kv = xx / s, xv / s
    innov = z - mean[:, :4]
    new_mean = np.empty_like(mean)
    new_mean[:, :4] = mean[:, :4] + kx * innov
    new_mean[:, 4:] = mean[:, 4:] + kv * innov
    vv -= kv * xv
    xv -= kx * xv
    xx -= kx * xx
    vx[...] = xv
    return new_mean, new_cov


def gating_distance(mean: np.ndarray, cov: np.ndarray, z: np.ndarray, only_position: bool = False,
                    aspect: AspectNoise = DEFAULT_ASPECT) -> np.ndarray:
    """Squared Mahalanobis distance of every measurement to every state.

    mean [T,8], cov [T,8,8], z float[N,4] xyah -> float64[T,N]. Compare with
    CHI2INV95[4] (or CHI2INV95[2] when only_position, using cx, cy only).
    """
    T, N = len(mean), len(z)
    if T == 0 or N == 0:
        return np.zeros((T, N))
    zm, S = project(mean, cov, aspect)
    diff = np.asarray(z, dtype=np.float64)[None, :, :] - zm[:, None, :]  # [T,N,4]
    if only_position:
        diff, S = diff[..., :2], S[:, :2, :2]
    Sinv = np.linalg.inv(S)
    return ((diff @ Sinv) * diff).sum(axis=2)


def warp_matrix(warp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The state-space form of a camera warp float[2,3] ``[A | t]`` (pixels of the previous
    frame -> this frame): (J float64[8,8], offset float64[8]) with state' = J state + offset.
    Centre -> A c + t, centre velocity -> A v, height and its velocity x s = sqrt(|det A|),
    aspect and its velocity unchanged."""
    w = np.asarray(warp, dtype=np.float64).reshape(2, 3)
    A, s = w[:, :2], np.sqrt(abs(np.linalg.det(w[:, :2])))
    J = np.eye(8)
    J[0:2, 0:2] = J[4:6, 4:6] = A
    J[3, 3] = J[7, 7] = s
    offset = np.zeros(8)
    offset[:2] = w[:, 2]
    return J, offset


def warp_states(mean: np.ndarray, cov: np.ndarray, warp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """T states (mean [T,8], cov [T,8,8]) moved by the camera warp float[2,3] (see
    :func:`warp_matrix`): mean' = J mean + offset, cov' = J cov J^T. Returns new arrays."""
    J, offset = warp_matrix(warp)
    return mean @ J.T + offset, J @ cov @ J.T


def warp_xyah(z: np.ndarray, warp: np.ndarray) -> np.ndarray:
    """Boxes z float[N,4] cx, cy, aspect, h moved by the camera warp float[2,3]: centre ->
    A c + t, h x sqrt(|det A|), aspect unchanged. float64[N,4]."""
    J, offset = warp_matrix(warp)
    return np.asarray(z, dtype=np.float64).reshape(-1, 4) @ J[:4, :4].T + offset[:4]


# ---------------------------------------------------------------- stores
class BatchedKalman:
    """All track states of a stream in arrays: mean float64[T,8], cov float64[T,8,8]."""

    name = "batched"

    def __init__(self, aspect: AspectNoise = DEFAULT_ASPECT) -> None:
        self.aspect = aspect
        self.mean = np.zeros((0, 8))
        self.cov = np.zeros((0, 8, 8))
        self._paired = True  # True: :func:`is_paired` holds; False: not known, checked when asked

    def _is_paired(self) -> bool:
        """:func:`is_paired` of the store, checked only after what can end it (a warp, a set state)."""
        if not self._paired:
            self._paired = is_paired(self.cov)
        return self._paired

    def __len__(self) -> int:
        return len(self.mean)

    def add(self, z: np.ndarray) -> None:
        """Append new states initiated from measurements z float[N,4] xyah."""
        m, c = initiate(z)
        self.mean = np.concatenate([self.mean, m])
        self.cov = np.concatenate([self.cov, c])

    def keep(self, mask: np.ndarray) -> None:
        """Drop the rows where mask (bool[T]) is False."""
        self.mean, self.cov = self.mean[mask], self.cov[mask]

    def predict(self, dt) -> None:
        """Predict every state dt seconds ahead (scalar or float[T])."""
        if len(self.mean):
            self.mean, self.cov = predict(self.mean, self.cov, dt, self.aspect, self._is_paired())

    def update(self, rows: np.ndarray, z: np.ndarray) -> None:
        """Correct the states at int rows[M] with measurements z float[M,4] xyah."""
        if len(rows):
            # a store that is not paired may still have paired rows: those are checked
            self.mean[rows], self.cov[rows] = update(self.mean[rows], self.cov[rows], z, self.aspect,
                                                     True if self._is_paired() else None)

    def set_state(self, rows: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> None:
        """Overwrite the states at int rows[M] with mean [M,8], cov [M,8,8]."""
        self.mean[rows], self.cov[rows] = mean, cov
        self._paired = False

    def warp(self, warp: np.ndarray) -> None:
        """Move every state by the camera warp float[2,3] (:func:`warp_states`)."""
        if len(self.mean):
            self.mean, self.cov = warp_states(self.mean, self.cov, warp)
            self._paired = False


def make_store(kind: str, aspect: AspectNoise = DEFAULT_ASPECT):
    """``"batched"`` -> BatchedKalman, ``"filterpy"`` -> the reference FilterpyKalman."""
    if kind == "batched":
        return BatchedKalman(aspect)
    if kind == "filterpy":
        from tracker.kalman_reference import FilterpyKalman

        return FilterpyKalman(aspect)
    raise ValueError(f"unknown kalman implementation {kind!r}")
