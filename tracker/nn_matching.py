"""Appearance: per-track galleries of recent embeddings and cosine distances to detections.

Embeddings are L2-normalised float32[D]; cosine distance = 1 - dot, in 0..2.
"""
from __future__ import annotations

import numpy as np


class Gallery:
    """Recent embeddings of one track: a ring of at most ``budget`` rows, or one EMA vector.

    ema: None keeps the last ``budget`` embeddings (DeepSORT's nearest-neighbour gallery);
    a float alpha keeps one vector  v <- normalise(alpha * v + (1 - alpha) * new)
    (StrongSORT/JDE-style).
    """

    __slots__ = ("rows", "budget", "ema", "_next")

    def __init__(self, budget: int = 100, ema: float | None = None) -> None:
        self.rows: np.ndarray | None = None  # float32[k, D]
        self.budget = max(1, int(budget)) if ema is None else 1
        self.ema = ema
        self._next = 0

    def add(self, feature: np.ndarray) -> None:
        f = np.asarray(feature, dtype=np.float32).reshape(1, -1)
        if self.rows is None:
            self.rows = f.copy()
        elif self.ema is not None:
            v = self.ema * self.rows[0] + (1.0 - self.ema) * f[0]
            self.rows = (v / max(float(np.linalg.norm(v)), 1e-12)).reshape(1, -1)
        elif len(self.rows) < self.budget:
            self.rows = np.concatenate([self.rows, f])
        else:
            self.rows[self._next] = f[0]
            self._next = (self._next + 1) % self.budget

    def __len__(self) -> int:
        return 0 if self.rows is None else len(self.rows)


def cosine_distance_matrix(galleries: list[Gallery], features: np.ndarray) -> np.ndarray:
    """Smallest cosine distance from each track's gallery to each detection.

    galleries: T galleries; features float32[N,D] L2-normalised -> float32[T,N] in 0..2;
    a track with an empty gallery gets distance 2 (no appearance evidence) to all.
    """
    T, N = len(galleries), len(features)
    out = np.full((T, N), 2.0, dtype=np.float32)
    if T == 0 or N == 0:
        return out
    have = [i for i, g in enumerate(galleries) if len(g)]
    if not have:
        return out
    stacked = np.concatenate([galleries[i].rows for i in have])  # [sum k, D]
    starts = np.cumsum([0] + [len(galleries[i]) for i in have[:-1]])
    sim = stacked @ np.asarray(features, dtype=np.float32).T  # [sum k, N]
    best = np.maximum.reduceat(sim, starts, axis=0)  # [len(have), N]
    out[have] = 1.0 - best
    return out
