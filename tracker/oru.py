"""OC-SORT's observation-centric re-update (ORU) for tracks re-found after a gap.

While a track goes unmatched its Kalman state drifts on the constant-velocity prediction.
When it is matched again after ``gap`` frames, ORU goes back to the state saved right
after its last observation and steps frame by frame along the straight line from that
observation to the new one, updating on each virtual observation (each step one frame,
``step_s`` seconds of the Kalman filter).
"""
from __future__ import annotations

import numpy as np

from tracker import kalman as K


def re_update(mean: np.ndarray, cov: np.ndarray, z_last: np.ndarray, z_new: np.ndarray, gaps: np.ndarray,
              step_s: float, aspect: K.AspectNoise = K.DEFAULT_ASPECT) -> tuple[np.ndarray, np.ndarray]:
    """New (mean [M,8], cov [M,8,8]) of M tracks from their saved states mean, cov, their
    last observations z_last float[M,4] xyah, the new observations z_new float[M,4] xyah,
    their gaps int[M] frames and the frame step ``step_s`` (seconds, 1 / fps); batched over
    the M tracks."""
    mean, cov = mean.copy(), cov.copy()
    for k in range(1, int(gaps.max()) + 1):
        act = gaps >= k
        m, c = K.predict(mean[act], cov[act], step_s, aspect)
        zk = z_last[act] + (z_new[act] - z_last[act]) * (k / gaps[act])[:, None]
        mean[act], cov[act] = K.update(m, c, zk, aspect)
    return mean, cov
