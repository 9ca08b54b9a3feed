"""Checkpoints of the tracker stage: one file per stream holding its whole state (the
Tracker with its Kalman states and appearance galleries, the event builder, the reorder
position) and the byte offsets its output files had then, so that a restarted tracker goes
on from there and truncates the files to match.

Files are pickles in the run's private checkpoint folder (0700, made by the service and
removed at the end); each is written to a temporary name and renamed, so a tracker killed
while writing leaves the previous checkpoint whole.
"""
from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class StreamCheckpoint:
    """One stream's state (a ``StreamState`` without its open files and buffered messages)
    and the byte offsets of its outputs (``{"mot": n, "jsonl": n}``; None without outputs)."""

    state: Any
    offsets: dict[str, int] | None


def _path(folder: str | Path, stream_id: str) -> Path:
    return Path(folder) / f"{stream_id}.checkpoint"


def save(folder: str | Path, stream_id: str, checkpoint: StreamCheckpoint) -> None:
    """Write ``checkpoint`` atomically (temporary file, fsync-free rename: the folder is
    local and the supervisor, not the machine, is what fails here)."""
    path = _path(folder, stream_id)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        pickle.dump(checkpoint, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)


def load(folder: str | Path, stream_id: str) -> StreamCheckpoint | None:
    """The last checkpoint of ``stream_id``, or None if it has none."""
    path = _path(folder, stream_id)
    if not path.exists():
        return None
    with open(path, "rb") as f:
        return pickle.load(f)  # noqa: S301 - our own file, in the run's 0700 folder
