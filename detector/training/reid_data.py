"""Identity crops from MOTChallenge-format sequences (ground truth + frames).

A sequence directory holds ``gt/gt.txt`` (MOT rows ``frame, id, x, y, w, h, conf,
class, visibility``; frames 1-based, boxes in pixels, top-left + size) and its frames,
either ``img1/000001.jpg ...`` or one video file (``video.mp4`` or any ``*.mp4``/``*.avi``
in the directory; frame i of the video = gt frame i).

Footage without ground truth gives pseudo identities: a tracker's MOT output on it (e.g.
``vidtrack track VIDEO --embedder none``) cut into tracklets by :func:`tracklet_identities`
and cropped from the video itself (:func:`load_sequence_crops` with ``gt=``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

from base.geometry import iou_matrix
from detector.crops import crop_batch
from base.errors import SourceError

# MOT16+ class ids counted as people (pedestrian, person on vehicle, static person);
# MOT15 files carry -1 there.
PERSON_CLASSES = (-1, 1, 2, 7)


@dataclass
class GroundTruth:
    """Active ground-truth boxes of one sequence.

    frames: int32[N] 1-based frame numbers; ids: int64[N] identities;
    boxes: float32[N, 4] pixel x1, y1, x2, y2.
    """

    frames: np.ndarray
    ids: np.ndarray
    boxes: np.ndarray

    def __len__(self) -> int:
        return len(self.frames)


@dataclass
class ReidCrops:
    """Identity crops: uint8[M, h, w, 3] BGR, labels int64[M] (0..P-1 across all
    sequences), frames int32[M] (frame number within its sequence), seq int32[M]."""

    crops: np.ndarray
    labels: np.ndarray
    frames: np.ndarray
    seq: np.ndarray

    @property
    def num_ids(self) -> int:
        return int(self.labels.max()) + 1 if len(self.labels) else 0

    @staticmethod
    def concat(parts: list["ReidCrops"]) -> "ReidCrops":
        """Concatenate, renumbering labels so identities of different parts never collide."""
        crops, labels, frames, seq, offset = [], [], [], [], 0
        for i, p in enumerate(parts):
            if len(p.labels) == 0:
                continue
            crops.append(p.crops)
            labels.append(p.labels + offset)
            frames.append(p.frames)
            seq.append(np.full(len(p.labels), i, np.int32))
            offset += p.num_ids
        if not crops:
            raise SourceError("no identity crops in the given sequences")
        return ReidCrops(np.concatenate(crops), np.concatenate(labels), np.concatenate(frames), np.concatenate(seq))


def read_gt(seq_dir: str | Path, min_height: float = 0.0, min_visibility: float = 0.0,
            classes: Sequence[int] | None = PERSON_CLASSES) -> GroundTruth:
    """Read the active boxes of ``seq_dir/gt/gt.txt``.

    Keeps rows with conf != 0, a class in ``classes`` (None: any class), height >= ``min_height`` pixels and
    visibility >= ``min_visibility``. MOT15 files (10 columns: the last three are world
    coordinates) have no class or visibility; all their active rows count.
    """
    return read_mot_boxes(Path(seq_dir) / "gt" / "gt.txt", min_height, min_visibility, classes)


def read_mot_boxes(path: str | Path, min_height: float = 0.0, min_visibility: float = 0.0,
                   classes: Sequence[int] | None = PERSON_CLASSES) -> GroundTruth:
    """The active boxes of one MOT file (ground truth, or a tracker's output), as :func:`read_gt`."""
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"no ground truth at {path}")
    rows = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)
    if rows.size == 0:
        return GroundTruth(np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros((0, 4), np.float32))
    if rows.shape[1] >= 10:  # MOT15: columns 7..9 are world x, y, z, not class/visibility
        rows = rows[:, :7]
    rows = np.pad(rows, ((0, 0), (0, max(0, 9 - rows.shape[1]))), constant_values=-1)
    conf, cls, vis = rows[:, 6], rows[:, 7].astype(int), rows[:, 8]
    keep = (conf != 0) & (rows[:, 5] >= min_height)
    if classes is not None:
        keep &= np.isin(cls, list(classes))
    keep &= (vis < 0) | (vis >= min_visibility)
    r = rows[keep]
    boxes = np.stack([r[:, 2], r[:, 3], r[:, 2] + r[:, 4], r[:, 3] + r[:, 5]], axis=1)
    order = np.lexsort((r[:, 1], r[:, 0]))
    return GroundTruth(r[order, 0].astype(np.int32), r[order, 1].astype(np.int64), boxes[order].astype(np.float32))


MIN_TRACKLET_ROWS = 10  # shorter tracklets give too few views of a person to learn from


def tracklet_identities(tracks: GroundTruth, max_overlap: float = 0.3, min_rows: int = MIN_TRACKLET_ROWS) -> GroundTruth:
    """Pseudo identities from a tracker's output ``tracks``: each track cut into tracklets
    where its box overlaps another box of the same frame by IoU > ``max_overlap`` (those rows
    dropped: a tracker switches identities where people overlap) and where it skips a frame
    (found again after a miss); tracklets of fewer than ``min_rows`` rows dropped. Ids 1..P."""
    crowded = np.zeros(len(tracks), bool)
    for f in np.unique(tracks.frames):
        rows = np.flatnonzero(tracks.frames == f)
        if len(rows) > 1:
            iou = iou_matrix(tracks.boxes[rows], tracks.boxes[rows])
            np.fill_diagonal(iou, 0.0)
            crowded[rows] = iou.max(axis=1) > max_overlap
    kept = np.flatnonzero(~crowded)
    kept = kept[np.lexsort((tracks.frames[kept], tracks.ids[kept]))]
    ids, frames = tracks.ids[kept], tracks.frames[kept]
    starts = np.ones(len(kept), bool)
    starts[1:] = (ids[1:] != ids[:-1]) | (frames[1:] != frames[:-1] + 1)
    segment = np.cumsum(starts)
    sizes = np.bincount(segment)
    long_enough = sizes[segment] >= min_rows
    kept, segment = kept[long_enough], segment[long_enough]
    _, new_ids = np.unique(segment, return_inverse=True)
    order = np.lexsort((new_ids, tracks.frames[kept]))
    return GroundTruth(tracks.frames[kept][order], (new_ids + 1).astype(np.int64)[order], tracks.boxes[kept][order])


def iter_frames(seq_dir: str | Path, wanted: set[int]) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (1-based frame number, uint8[H, W, 3] BGR image) for the wanted frames, in order,
    from a sequence directory or a video file."""
    seq_dir = Path(seq_dir)
    if seq_dir.is_file():
        yield from _video_frames(seq_dir, wanted)
        return
    img_dir = seq_dir / "img1"
    if img_dir.is_dir():
        files = {int(p.stem): p for p in img_dir.iterdir() if p.stem.isdigit()}
        for f in sorted(wanted):
            if f in files:
                image = cv2.imread(str(files[f]), cv2.IMREAD_COLOR)
                if image is None:
                    raise SourceError(f"cannot read frame {files[f]}")
                yield f, image
        return
    videos = sorted(p for p in seq_dir.iterdir() if p.suffix.lower() in (".mp4", ".avi", ".mkv"))
    if not videos:
        raise SourceError(f"no img1/ folder or video file in {seq_dir}")
    yield from _video_frames(videos[0], wanted)


def _video_frames(video: Path, wanted: set[int]) -> Iterator[tuple[int, np.ndarray]]:
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise SourceError(f"cannot open {video}")
    try:
        last = max(wanted) if wanted else 0
        f = 0
        while f < last:
            ok, image = cap.read()
            if not ok:
                break
            f += 1
            if f in wanted:
                yield f, image
    finally:
        cap.release()


def iter_gt_frames(seq_dir: str | Path, gt: GroundTruth) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield (image, boxes float32[n, 4], row indices into gt int[n]) per frame with boxes."""
    for f, image in iter_frames(seq_dir, set(gt.frames.tolist())):
        rows = np.flatnonzero(gt.frames == f)
        yield image, gt.boxes[rows], rows


def expand_boxes(boxes: np.ndarray, margin: float) -> np.ndarray:
    """Grow float32[N, 4] x1, y1, x2, y2 boxes by ``margin`` x their size on each side."""
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    wh = b[:, 2:] - b[:, :2]
    return np.concatenate([b[:, :2] - margin * wh, b[:, 2:] + margin * wh], axis=1)


def load_sequence_crops(
    seq_dir: str | Path,
    size: tuple[int, int] = (128, 64),
    margin: float = 0.0,
    min_height: float = 24.0,
    min_visibility: float = 0.3,
    frame_step: int = 1,
    classes: Sequence[int] | None = PERSON_CLASSES,
    gt: GroundTruth | None = None,
) -> ReidCrops:
    """Crops of every active gt box (every ``frame_step``-th frame), resized to ``size``
    = (height, width), the box grown by ``margin`` of its size per side (context for
    crop-jitter augmentation). Labels are the sequence's ids renumbered 0..P-1;
    ``classes`` as in :func:`read_gt`. ``gt``: these boxes instead of ``seq_dir``'s
    gt/gt.txt (``seq_dir`` may then be a video file), e.g. :func:`tracklet_identities`."""
    if gt is None:
        gt = read_gt(seq_dir, min_height=min_height, min_visibility=min_visibility, classes=classes)
    if frame_step > 1:
        keep = (gt.frames - 1) % frame_step == 0
        gt = GroundTruth(gt.frames[keep], gt.ids[keep], gt.boxes[keep])
    crops, rows = [], []
    for image, b, r in iter_gt_frames(seq_dir, gt):
        crops.append(crop_batch([image], [expand_boxes(b, margin)], size)[0])
        rows.append(r)
    if not rows:
        raise SourceError(f"no frames with ground truth found in {seq_dir}")
    crops, rows = np.concatenate(crops), np.concatenate(rows)
    _, labels = np.unique(gt.ids[rows], return_inverse=True)
    return ReidCrops(crops, labels.astype(np.int64), gt.frames[rows], np.zeros(len(rows), np.int32))


def reid_metrics(embeddings: np.ndarray, ids: np.ndarray, frames: np.ndarray, min_gap: int = 10) -> dict:
    """Leave-one-out re-identification scores over one sequence's crops.

    embeddings: float32[M, D] unit vectors; ids: int[M] identities; frames: int[M] frame
    numbers. Every crop is a query against all other crops (the gallery), ranked by cosine
    similarity. Gallery crops of the query's own identity within ``min_gap`` frames of the
    query (near-duplicates, the same frame included) are excluded; crops of other
    identities always stay as distractors. Queries left without a positive are skipped.

    Returns {"rank1", "rank5", "mAP" (fractions 0..1), "queries", "gallery"}.
    """
    e = np.asarray(embeddings, np.float32)
    ids = np.asarray(ids).reshape(-1)
    frames = np.asarray(frames).reshape(-1)
    m = len(ids)
    sim = e @ e.T
    same = ids[:, None] == ids[None, :]
    near = np.abs(frames[:, None] - frames[None, :]) <= min_gap
    allowed = ~(same & near)
    np.fill_diagonal(allowed, False)
    pos = same & allowed
    has_pos = pos.any(axis=1)
    if not has_pos.any():
        return {"rank1": float("nan"), "rank5": float("nan"), "mAP": float("nan"), "queries": 0, "gallery": m}
    sim, pos, allowed = sim[has_pos], pos[has_pos], allowed[has_pos]
    sim = np.where(allowed, sim, -np.inf)
    order = np.argsort(-sim, axis=1, kind="stable")
    hits = np.take_along_axis(pos, order, axis=1)  # bool[Q, M] positives in rank order
    valid = np.take_along_axis(allowed, order, axis=1)  # excluded items sort last
    hits &= valid
    cum = np.cumsum(hits, axis=1)
    ranks = np.arange(1, m + 1)[None, :]
    ap = (hits * cum / ranks).sum(axis=1) / hits.sum(axis=1)
    return {
        "rank1": float(hits[:, 0].mean()),
        "rank5": float(hits[:, :5].any(axis=1).mean()),
        "mAP": float(ap.mean()),
        "queries": int(has_pos.sum()),
        "gallery": m,
    }


def evaluate_reid(embedder, sequence_dir: str | Path, min_gap: int = 10, min_height: float = 24.0,
                  min_visibility: float = 0.3, frames_per_batch: int = 8) -> dict:
    """Embed every active gt box of ``sequence_dir`` with ``embedder`` (an
    :class:`detector.appearance.Embedder`, called ``frames_per_batch`` frames at a time)
    and score re-identification with :func:`reid_metrics`."""
    gt = read_gt(sequence_dir, min_height=min_height, min_visibility=min_visibility)
    embs, rows, images, boxes, idx = [], [], [], [], []

    def flush() -> None:
        if images:
            embs.extend(embedder.embed(images, boxes))
            rows.extend(idx)
            images.clear(), boxes.clear(), idx.clear()

    for image, b, r in iter_gt_frames(sequence_dir, gt):
        images.append(image), boxes.append(b), idx.append(r)
        if len(images) >= frames_per_batch:
            flush()
    flush()
    if not rows:
        raise SourceError(f"no frames with ground truth found in {sequence_dir}")
    r = np.concatenate(rows)
    out = reid_metrics(np.concatenate(embs), gt.ids[r], gt.frames[r], min_gap=min_gap)
    out["identities"] = int(len(np.unique(gt.ids[r])))
    return out
