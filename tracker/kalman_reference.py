"""The reference Kalman store: one ``filterpy.kalman.KalmanFilter`` per track, the same
model as :mod:`tracker.kalman` (which it takes its noise and transition from). Tests and
bench/tracker.py hold :class:`tracker.kalman.BatchedKalman` to it; the service never loads
it unless ``TrackerConfig(kalman="filterpy")`` asks. Time steps are in seconds and the
noise constants per second, as there."""
from __future__ import annotations

import numpy as np

from tracker.kalman import (DEFAULT_ASPECT, AspectNoise, initiate, measurement_noise_diag, process_noise_diag,
                            transition_matrix, warp_matrix)


class FilterpyKalman:
    """Reference store: one ``filterpy.kalman.KalmanFilter`` per track, same model as above."""

    name = "filterpy"

    def __init__(self, aspect: AspectNoise = DEFAULT_ASPECT) -> None:
        from filterpy.kalman import KalmanFilter

        self.aspect = aspect
        self._cls = KalmanFilter
        self.filters: list = []

    def __len__(self) -> int:
        return len(self.filters)

    @property
    def mean(self) -> np.ndarray:
        return np.array([f.x[:, 0] for f in self.filters]).reshape(-1, 8)

    @property
    def cov(self) -> np.ndarray:
        return np.array([f.P for f in self.filters]).reshape(-1, 8, 8)

    def add(self, z: np.ndarray) -> None:
        m, c = initiate(z)
        for mi, ci in zip(m, c):
            f = self._cls(dim_x=8, dim_z=4)
            f.x = mi.reshape(8, 1).copy()
            f.P = ci.copy()
            f.H = np.eye(4, 8)
            self.filters.append(f)

    def keep(self, mask: np.ndarray) -> None:
        self.filters = [f for f, k in zip(self.filters, mask) if k]

    def predict(self, dt) -> None:
        """Every filter dt seconds ahead (scalar or float[T])."""
        dts = np.broadcast_to(np.asarray(dt, dtype=np.float64), (len(self.filters),))
        for f, d in zip(self.filters, dts):
            f.F = transition_matrix(d)
            f.Q = np.diag(process_noise_diag(f.x.T, [d], self.aspect)[0])
            f.predict()

    def update(self, rows: np.ndarray, z: np.ndarray) -> None:
        for r, zi in zip(rows, np.asarray(z, dtype=np.float64)):
            f = self.filters[r]
            f.update(zi.reshape(4, 1), R=np.diag(measurement_noise_diag(f.x.T, self.aspect)[0]))

    def set_state(self, rows: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> None:
        for r, m, c in zip(rows, mean, cov):
            f = self.filters[r]
            f.x, f.P = m.reshape(8, 1).copy(), c.copy()

    def warp(self, warp: np.ndarray) -> None:
        """Move every filter's state by the camera warp float[2,3]: x = J x + offset, P = J P J'."""
        J, offset = warp_matrix(warp)
        for f in self.filters:
            f.x = J @ f.x + offset[:, None]
            f.P = J @ f.P @ J.T
