"""Plain data types at the seams: a decoded frame, the detections of one frame."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Detections:
    """Detections of one frame.

    boxes:      float32[N, 4]  pixel x1, y1, x2, y2 in the original frame
    scores:     float32[N]     objectness x class probability, 0..1
    class_ids:  int32[N]
    embeddings: float32[N, D]  L2-normalised appearance vectors (D may be 0)
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    embeddings: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        n = len(self.boxes)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(n)
        self.class_ids = np.asarray(self.class_ids, dtype=np.int32).reshape(n)
        if self.embeddings is None:
            self.embeddings = np.zeros((n, 0), dtype=np.float32)
        emb = np.asarray(self.embeddings, dtype=np.float32)
        dim = emb.shape[-1] if emb.ndim == 2 else (emb.size // n if n else 0)
        self.embeddings = emb.reshape(n, dim)

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def empty(cls, embedding_dim: int = 0) -> "Detections":
        return cls(
            np.zeros((0, 4), np.float32),
            np.zeros(0, np.float32),
            np.zeros(0, np.int32),
            np.zeros((0, embedding_dim), np.float32),
        )

    def select(self, mask_or_index) -> "Detections":
        return Detections(
            self.boxes[mask_or_index],
            self.scores[mask_or_index],
            self.class_ids[mask_or_index],
            self.embeddings[mask_or_index],
        )


@dataclass
class Frame:
    """One decoded frame.

    stream_id:   name of the source it came from
    index:       frame number, 0-based, monotonic per stream (gaps mean dropped frames)
    timestamp:   capture time in seconds (wall clock for live sources, media time for files)
    image:       uint8[H, W, 3] BGR
    """

    stream_id: str
    index: int
    timestamp: float
    image: np.ndarray
