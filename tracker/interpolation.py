"""Offline gap filling: linear interpolation of a track's box over the frames it missed.

A track that misses a few frames (a dropped detection, a short occlusion) and is then
matched again has no rows for those frames. Once the whole sequence is tracked, the
missing boxes can be filled in between the two matched boxes, as ByteTrack and BoT-SORT
do for their offline MOTChallenge results. Only gaps that end in a re-match are filled,
so nothing is invented after a track's last detection. This needs the future, so it is
for offline use (``vidtrack track-detections --interpolate N``), not the live service.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def interpolate_gaps(rows: Iterable[tuple], max_gap: int) -> list[tuple]:
    """Rows (frame, track_id, x1, y1, x2, y2, score) plus linearly interpolated rows for
    every gap of 1..``max_gap`` frames between two rows of the same track.

    An interpolated row's box is the linear blend of the two matched boxes (pixels) and its
    score the lower of their two scores. Returns all rows sorted by (frame, track_id);
    ``max_gap`` <= 0 returns the rows sorted, unchanged."""
    rows = [tuple(r) for r in rows]
    if max_gap <= 0 or not rows:
        return sorted(rows, key=lambda r: (r[0], r[1]))
    a = np.array([r[:7] for r in rows], dtype=np.float64)
    a = a[np.lexsort((a[:, 0], a[:, 1]))]  # by track, then frame
    same_track = a[1:, 1] == a[:-1, 1]
    gap = a[1:, 0] - a[:-1, 0] - 1  # missing frames between consecutive rows
    starts = np.flatnonzero(same_track & (gap >= 1) & (gap <= max_gap))
    new = []
    for i in starts:  # one vectorised fill per gap; gaps are few
        lo, hi = a[i], a[i + 1]
        n = int(gap[i])
        t = (np.arange(1, n + 1) / (n + 1))[:, None]
        boxes = lo[2:6] + t * (hi[2:6] - lo[2:6])
        fill = np.empty((n, 7))
        fill[:, 0] = lo[0] + np.arange(1, n + 1)
        fill[:, 1] = lo[1]
        fill[:, 2:6] = boxes
        fill[:, 6] = min(lo[6], hi[6])
        new.append(fill)
    out = rows + [(int(r[0]), int(r[1]), *map(float, r[2:7])) for r in (np.concatenate(new) if new else [])]
    return sorted(out, key=lambda r: (r[0], r[1]))
