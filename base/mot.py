"""MOTChallenge text files: ``frame,id,x,y,w,h,conf,x,y,z`` with 1-based frames and
top-left/size pixel boxes.

- :func:`read_mot` -> float64[N, 10] rows as in the file.
- :func:`read_detections` (det.txt) and :func:`read_feature_detections` (DeepSORT
  ``<SEQ>.npy``: float64[N, 138] = 10 MOT columns + 128-d feature) -> ``{frame: Detections}``
  with boxes as pixel x1,y1,x2,y2, class 0, embeddings L2-normalised (feature files only).
- :func:`write_mot` writes (frame, id, x1, y1, x2, y2, score) rows as MOT tracks.
- :func:`read_seqinfo`: a sequence's ``seqinfo.ini`` (``frameRate``, ``seqLength``, ...).
"""
from __future__ import annotations

import configparser
from pathlib import Path
from typing import Iterable

import numpy as np

from base.types import Detections
from base.errors import VidtrackError


def read_mot(path: str | Path) -> np.ndarray:
    """Rows of a MOT txt file (comma or whitespace separated) as float64[N, 10]."""
    path = Path(path)
    if not path.is_file():
        raise VidtrackError(f"MOT file not found: {path}")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        parts = line.replace(",", " ").split()
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            raise VidtrackError(f"{path}:{n}: not a MOT row: {line[:60]!r}") from None
        if len(vals) < 6:
            raise VidtrackError(f"{path}:{n}: a MOT row needs at least 6 columns, got {len(vals)}")
        rows.append((vals + [-1.0] * 10)[:10])
    return np.array(rows, dtype=np.float64).reshape(-1, 10)


def _to_detections(rows: np.ndarray, features: np.ndarray | None) -> dict[int, Detections]:
    out: dict[int, Detections] = {}
    frames = rows[:, 0].astype(int)
    for f in np.unique(frames):
        sel = frames == f
        r = rows[sel]
        boxes = np.stack([r[:, 2], r[:, 3], r[:, 2] + r[:, 4], r[:, 3] + r[:, 5]], axis=1)
        emb = None if features is None else features[sel]
        out[int(f)] = Detections(boxes, r[:, 6], np.zeros(len(r), np.int32), emb)
    return out


def read_detections(path: str | Path, min_score: float | None = None) -> dict[int, Detections]:
    """det.txt -> {1-based frame: Detections} (class 0, no embeddings)."""
    rows = read_mot(path)
    if min_score is not None:
        rows = rows[rows[:, 6] >= min_score]
    return _to_detections(rows, None)


def read_feature_detections(path: str | Path, min_score: float | None = None) -> dict[int, Detections]:
    """DeepSORT feature file float64[N, 138] -> {frame: Detections} with L2-normalised embeddings."""
    path = Path(path)
    if not path.is_file():
        raise VidtrackError(f"feature file not found: {path}")
    data = np.load(path)
    if data.ndim != 2 or data.shape[1] <= 10:
        raise VidtrackError(f"{path}: expected [N, 10 + D] rows, got shape {data.shape}")
    if min_score is not None:
        data = data[data[:, 6] >= min_score]
    feats = data[:, 10:]
    feats = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
    return _to_detections(data[:, :10], feats)


def write_mot(path: str | Path, rows: Iterable[tuple]) -> int:
    """Write (frame, id, x1, y1, x2, y2, score) rows as MOT tracks; returns the row count."""
    lines = []
    for frame, tid, x1, y1, x2, y2, score in rows:
        lines.append(f"{int(frame)},{int(tid)},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{score:.4f},-1,-1,-1")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines) + ("\n" if lines else ""))
    return len(lines)


def read_seqinfo(path: str | Path) -> dict[str, str]:
    """The ``[Sequence]`` table of a MOTChallenge ``seqinfo.ini`` as written (keys keep their
    case: ``frameRate``, ``seqLength``, ``imWidth``, ...); an unreadable file is a VidtrackError."""
    ini = configparser.ConfigParser(interpolation=None)
    ini.optionxform = str  # keep frameRate's case
    try:
        with open(path) as f:
            ini.read_file(f)
    except (OSError, configparser.Error) as exc:
        raise VidtrackError(f"{path}: not a readable seqinfo.ini: {exc}") from None
    if not ini.has_section("Sequence"):
        raise VidtrackError(f"{path}: no [Sequence] section")
    return dict(ini["Sequence"])
