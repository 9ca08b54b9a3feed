"""``vidtrack track-detections``: run the tracker over MOT detections, write MOT tracks.

Appearance comes from ``--features SEQ.npy`` (DeepSORT feature file, used as the
detections) or, with ``--frames DIR`` / ``--video FILE``, from an embedder of
:mod:`detector.appearance` (``--embedder``, default: the shipped model or histogram).
"""
from __future__ import annotations

import argparse
import logging
import time
import tomllib
from pathlib import Path

import numpy as np

from detector.types import Detections
from tracker import Tracker, TrackerConfig
from tracker.interpolation import interpolate_gaps
from vidtrack.errors import ConfigError, SourceError
from vidtrack.mot import read_detections, read_feature_detections, write_mot

log = logging.getLogger(__name__)


def load_tracker_config(path: str | Path | None, overrides: dict | None = None) -> TrackerConfig:
    """TrackerConfig from the ``[tracker]`` table of a TOML file (or its top level), plus overrides."""
    d: dict = {}
    if path is not None:
        try:
            with open(path, "rb") as fh:
                doc = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        d = dict(doc.get("tracker", doc))
    d.update(overrides or {})
    return TrackerConfig.from_dict(d)


def track_sequence(frames: dict[int, Detections], config: TrackerConfig, n_frames: int | None = None,
                   backfill: bool = True, interpolate: int = 0) -> tuple[list[tuple], float]:
    """Track frames 1..n_frames of ``{frame: Detections}``.

    Returns (rows (frame, id, x1, y1, x2, y2, score) of the confirmed tracks reported in each
    frame, tracker update seconds). A track is reported where it was matched and, with its
    predicted box, for up to ``config.coast_frames`` frames after. Offline extras: with
    ``backfill`` a track's tentative frames are written once it is confirmed; with
    ``interpolate`` > 0, gaps of up to that many frames between two *matched* rows of a track
    are filled by :func:`tracker.interpolation.interpolate_gaps`, replacing any coasted rows
    inside them (coasting still covers a track's end and longer gaps)."""
    tracker = Tracker(config)
    n_frames = n_frames or (max(frames) if frames else 0)
    dim = next((d.embeddings.shape[1] for d in frames.values()), 0)
    empty = Detections.empty(dim)
    matched: list[tuple] = []
    coasted: list[tuple] = []
    pending: dict[int, list[tuple]] = {}
    spent = 0.0
    for f in range(1, n_frames + 1):
        t0 = time.perf_counter()
        snaps = tracker.update(frames.get(f, empty), f)
        spent += time.perf_counter() - t0
        for s in snaps:
            row = (f, s.track_id, *map(float, s.box), s.score)
            if s.is_reported(config.coast_frames):
                if backfill and s.track_id in pending:
                    matched.extend(pending.pop(s.track_id))
                (matched if s.time_since_update == 0 else coasted).append(row)
            elif backfill and s.state == "tentative" and s.time_since_update == 0:
                pending.setdefault(s.track_id, []).append(row)
    if interpolate > 0:
        matched = interpolate_gaps(matched, interpolate)
        covered = {(r[0], r[1]) for r in matched}
        coasted = [r for r in coasted if (r[0], r[1]) not in covered]
    rows = matched + coasted
    rows.sort(key=lambda r: (r[0], r[1]))
    return rows, spent


def _embed_from_images(frames: dict[int, Detections], args) -> dict[int, Detections]:
    import cv2

    from detector.appearance import load_embedder

    embedder = load_embedder(args.embedder)
    if embedder is None:
        return frames
    if args.frames:
        files = sorted(p for p in Path(args.frames).iterdir() if p.suffix.lower() in (".jpg", ".png", ".jpeg"))
        if not files:
            raise SourceError(f"no images in {args.frames}")
        read = lambda i: cv2.imread(str(files[i - 1])) if i <= len(files) else None  # noqa: E731
        cap = None
    else:
        cap = cv2.VideoCapture(args.video)
        if not cap.isOpened():
            raise SourceError(f"cannot open video {args.video}")
    out = {}
    for f in range(1, max(frames) + 1):
        if cap is not None:
            ok, img = cap.read()
            img = img if ok else None
        else:
            img = read(f)
        d = frames.get(f)
        if d is None:
            continue
        if img is None:
            raise SourceError(f"frame {f} missing from the images/video")
        emb = embedder.embed([img], [d.boxes])[0]
        out[f] = Detections(d.boxes, d.scores, d.class_ids, emb)
    return out


def run(args: argparse.Namespace) -> int:
    cfg = load_tracker_config(args.config)
    if args.features:
        frames = read_feature_detections(args.features, args.min_score)
    else:
        frames = read_detections(args.detections, args.min_score)
        if args.frames or args.video:
            frames = _embed_from_images(frames, args)
    rows, spent = track_sequence(frames, cfg, backfill=not args.no_backfill, interpolate=args.interpolate)
    n = write_mot(args.output, rows)
    nf = max(frames) if frames else 0
    print(f"{nf} frames, {len({r[1] for r in rows})} tracks, {n} rows -> {args.output} "
          f"({nf / max(spent, 1e-9):.0f} tracker updates/s)")
    return 0


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of frames, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 frames, got {value}")
    return value


def register(subparsers) -> None:
    p = subparsers.add_parser("track-detections", help="track MOT detections (det.txt) and write MOT tracks")
    p.add_argument("detections", help="MOTChallenge det.txt")
    p.add_argument("--features", help="DeepSORT feature file <SEQ>.npy (its rows are used as the detections)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--frames", help="image folder (img1/) to compute embeddings from")
    src.add_argument("--video", help="video file to compute embeddings from")
    p.add_argument("--embedder", default="default", help="embedder spec for --frames/--video (none|histogram|default|file.keras|A+B)")
    p.add_argument("-o", "--output", required=True, help="MOT txt to write")
    p.add_argument("--config", help="config.toml with a [tracker] table")
    p.add_argument("--min-score", type=float, default=None, help="drop detections below this score")
    p.add_argument("--no-backfill", action="store_true", help="do not write a track's tentative frames once confirmed")
    p.add_argument("--interpolate", type=_non_negative_int, default=0, metavar="MAX_GAP",
                   help="fill gaps of up to MAX_GAP frames inside a track by linear interpolation (offline; 0 = off)")
    p.set_defaults(func=run)
