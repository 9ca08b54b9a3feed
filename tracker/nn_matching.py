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


class DistanceScale:
    """A stream's typical cosine distance between the embeddings of two different objects:
    the running mean of each frame's median distance over pairs of detections whose boxes
    do not overlap (two such boxes of one frame hold two different objects). Dividing an
    appearance distance by :attr:`value` puts it in units of that (about 1 for two different
    objects), whatever the embedder's own scale. :attr:`value` is 1 until a frame had a pair.

    Frame k's median enters with weight max(1 / k, ``min_weight``): the plain mean at first,
    then an exponential average over about 1 / ``min_weight`` frames.
    """

    def __init__(self, min_weight: float = 0.02) -> None:
        self.value = 1.0
        self.frames = 0
        self.min_weight = min_weight

    def observe(self, features: np.ndarray, iou: np.ndarray) -> None:
        """One frame's embeddings float32[N, D] (L2-normalised) and their boxes' IoU float[N, N]."""
        apart = iou <= 0.0
        np.fill_diagonal(apart, False)
        # each pair twice (both triangles), which leaves the median as it is; the Gram matrix in
        # one BLAS call beats gathering the pairs' rows (50 boxes: ~1,200 pairs)
        similarity = (features @ features.T)[apart]
        if not len(similarity):
            return
        median = 1.0 - _median(similarity)
        self.frames += 1
        self.value += max(1.0 / self.frames, self.min_weight) * (max(median, 1e-6) - self.value)


def _median(values: np.ndarray) -> float:
    """np.median of a 1-d array by partition (a tenth of np.median's cost at ~1,000 values)."""
    k = len(values) // 2
    if len(values) % 2:
        return float(np.partition(values, k)[k])
    low, high = np.partition(values, (k - 1, k))[k - 1:k + 1]
    return 0.5 * (float(low) + float(high))


class AppearanceBank:
    """Appearance memory of all tracks of a stream, rows aligned with the tracker's tracks.

    ema None: one budgeted :class:`Gallery` per track (nearest neighbour over the gallery).
    ema alpha: one vector per track in an array float32[T, D], updated for all matched
    tracks at once (vectorised). Rows start empty (distance 2) until a feature is added.
    """

    def __init__(self, budget: int = 100, ema: float | None = None) -> None:
        self.budget, self.ema = budget, ema
        self.galleries: list[Gallery] = []
        self.vectors: np.ndarray | None = None  # float32[T, D] (EMA mode)
        self.has = np.zeros(0, bool)  # bool[T]: row holds a feature

    def __len__(self) -> int:
        return len(self.has)

    def append(self, n: int, features: np.ndarray | None = None) -> None:
        """Add n rows, with their first features float32[n, D] or empty."""
        if self.ema is None:
            for i in range(n):
                g = Gallery(self.budget)
                if features is not None:
                    g.add(features[i])
                self.galleries.append(g)
        else:
            if features is not None and self.vectors is None:
                self.vectors = np.zeros((len(self.has), features.shape[1]), np.float32)
            if self.vectors is not None:
                new = np.zeros((n, self.vectors.shape[1]), np.float32) if features is None else features
                self.vectors = np.concatenate([self.vectors, np.asarray(new, np.float32)])
        self.has = np.concatenate([self.has, np.full(n, features is not None)])

    def keep(self, mask: np.ndarray) -> None:
        """Drop the rows where mask (bool[T]) is False."""
        if self.ema is None:
            self.galleries = [g for g, k in zip(self.galleries, mask) if k]
        elif self.vectors is not None:
            self.vectors = self.vectors[mask]
        self.has = self.has[mask]

    def add(self, rows: np.ndarray, features: np.ndarray) -> None:
        """Record features float32[M, D] for the tracks at int rows[M]."""
        if len(rows) == 0:
            return
        if self.ema is None:
            for r, f in zip(rows.tolist(), features):
                self.galleries[r].add(f)
        else:
            if self.vectors is None:
                self.vectors = np.zeros((len(self.has), features.shape[1]), np.float32)
            old = self.vectors[rows]
            first = ~self.has[rows]
            v = np.where(first[:, None], features, self.ema * old + (1.0 - self.ema) * features)
            v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
            self.vectors[rows] = v
        self.has[rows] = True

    def clear(self, rows: np.ndarray) -> None:
        """Empty the rows at int rows[] (distance 2 to everything until a feature is added)."""
        if len(rows) == 0:
            return
        if self.ema is None:
            for r in rows.tolist():
                self.galleries[r] = Gallery(self.budget)
        self.has[rows] = False

    def pair_distance(self, rows: np.ndarray, features: np.ndarray) -> np.ndarray:
        """Cosine distance float32[K] of track ``rows[k]`` to ``features[k]`` float32[K, D]
        (2 for a row without a feature): :meth:`distance` of K pairs only, not of every row
        against every feature."""
        if self.ema is None:
            return np.array([self.distance(rows[k:k + 1], features[k:k + 1])[0, 0] for k in range(len(rows))],
                            np.float32).reshape(len(rows))
        if self.vectors is None:  # no feature recorded yet
            return np.full(len(rows), 2.0, np.float32)
        d = 1.0 - np.einsum("ij,ij->i", self.vectors[rows], np.asarray(features, np.float32))
        return np.where(self.has[rows], d, np.float32(2.0)).astype(np.float32, copy=False)

    def distance(self, rows: np.ndarray, features: np.ndarray) -> np.ndarray:
        """Cosine distance float32[len(rows), N] of those tracks to features float32[N, D]."""
        if self.ema is None:
            return cosine_distance_matrix([self.galleries[r] for r in rows], features)
        out = np.full((len(rows), len(features)), 2.0, np.float32)
        if self.vectors is None or len(rows) == 0 or len(features) == 0:
            return out
        d = 1.0 - self.vectors[rows] @ np.asarray(features, np.float32).T
        return np.where(self.has[rows][:, None], d, out)
