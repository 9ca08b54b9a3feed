"""The frame record that grabbers produce."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
