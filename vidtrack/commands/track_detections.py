"""``vidtrack track-detections``: run the tracker over MOT detections, write MOT tracks.

Appearance comes from ``--features SEQ.npy`` (DeepSORT feature file, used as the
detections) or, with ``--frames DIR`` / ``--video FILE``, from an embedder of
:mod:`detector.appearance` (``--embedder``, default: the shipped model or histogram).

The frame rate the tracker counts its seconds in: ``--fps``, else the config's
``tracker.frame_rate``, else ``frameRate`` of the sequence's ``seqinfo.ini``
(:func:`find_seqinfo`), else 25 (with a note).

With frames or a video the camera's motion is estimated from them too (``--camera-motion``,
default ``sparse_flow``: :mod:`detector.camera_motion`) and the tracks move with it.
"""
from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from pathlib import Path


from base.types import Detections
from tracker import DEFAULT_FRAME_RATE
from workers.offline import load_tracker_config, track_sequence
from base.errors import SourceError, VidtrackError
from base.mot import read_detections, read_feature_detections, read_seqinfo, write_mot

log = logging.getLogger(__name__)


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


def find_seqinfo(det_file: str | Path, frames_dir: str | Path | None = None) -> Path | None:
    """The ``seqinfo.ini`` of the sequence a detection file belongs to: beside the sequence
    folder in MOTChallenge's layout (``SEQ/det/det.txt``), or of the sequence named like the
    file's folder or stem in a parent folder (``sort-frcnn-det/SEQ/det.txt`` and
    ``deepsort-features/SEQ.npy`` next to ``SEQ/``), or in the ``--frames`` folder's parent."""
    det = Path(det_file).resolve()
    names = [n for n in dict.fromkeys((det.parent.name, det.stem)) if n]
    candidates = [Path(frames_dir).resolve().parent / "seqinfo.ini"] if frames_dir else []
    for folder in det.parents[:3]:
        candidates.append(folder / "seqinfo.ini")
        candidates.extend(folder / name / "seqinfo.ini" for name in names)
    return next((c for c in candidates if c.is_file()), None)


def frame_rate_of(args: argparse.Namespace, configured: float | None) -> tuple[float, str]:
    """(frames/s, where it came from) for this run: ``--fps``, the config, seqinfo.ini, 25."""
    if args.fps is not None:
        return args.fps, "--fps"
    if configured is not None:
        return configured, "tracker.frame_rate"
    path = find_seqinfo(args.features or args.detections, args.frames)
    if path is not None:
        text = read_seqinfo(path).get("frameRate")
        try:
            fps = float(text) if text is not None else 0.0
        except ValueError:
            fps = 0.0
        if not fps > 0:
            raise VidtrackError(f"{path}: frameRate must be a number above 0, got {text!r} (or give --fps)")
        return fps, str(path)
    return DEFAULT_FRAME_RATE, "default: no seqinfo.ini found beside the detections (give --fps)"


def _video_images(path: str):
    """The frames of a video file, in order."""
    import cv2

    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise SourceError(f"cannot open video {path}")
    try:
        while True:
            ok, img = cap.read()
            if not ok:
                return
            yield img
    finally:
        cap.release()


def _camera_warps(args) -> dict | None:
    """``{frame: float32[2,3]}`` estimated from ``--frames`` / ``--video``, or None."""
    from detector.camera_motion import DEFAULT_METHOD, image_files, warps_of_frames, warps_of_images

    method = args.camera_motion or DEFAULT_METHOD
    if method == "none" or not (args.frames or args.video):
        if args.camera_motion not in (None, "none"):
            raise SourceError("--camera-motion needs the images: --frames DIR or --video FILE")
        return None
    if args.frames:
        files = image_files(args.frames)
        if not files:
            raise SourceError(f"no images in {args.frames}")
        return warps_of_frames(files)
    return warps_of_images(_video_images(args.video))


def run(args: argparse.Namespace) -> int:
    cfg = load_tracker_config(args.config)
    fps, origin = frame_rate_of(args, cfg.frame_rate)
    print(f"frame rate {fps:g} frames/s ({origin})")
    if args.features:
        frames = read_feature_detections(args.features, args.min_score)
    else:
        frames = read_detections(args.detections, args.min_score)
        if args.frames or args.video:
            frames = _embed_from_images(frames, args)
    warps = _camera_warps(args)
    rows, spent = track_sequence(frames, replace(cfg, frame_rate=fps), backfill=not args.no_backfill,
                                 interpolate=args.interpolate, warps=warps)  # fps as the config's: --fps wins
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


def _positive_fps(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected frames per second, got {text!r}") from None
    if not 0 < value <= 1000:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most 1000 frames/s, got {text}")
    return value


def register(subparsers) -> None:
    p = subparsers.add_parser("track-detections", help="track MOT detections (det.txt) and write MOT tracks")
    p.add_argument("detections", help="MOTChallenge det.txt")
    p.add_argument("--features", help="DeepSORT feature file <SEQ>.npy (its rows are used as the detections)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--frames", help="image folder (img1/) to compute embeddings from")
    src.add_argument("--video", help="video file to compute embeddings from")
    p.add_argument("--embedder", default="default",
                   help="embedder spec for --frames/--video (none|histogram|default|file.keras|A+B)")
    p.add_argument("--camera-motion", choices=("sparse_flow", "none"), default=None,
                   help="camera-motion compensation from --frames/--video (default with them: sparse_flow)")
    p.add_argument("-o", "--output", required=True, help="MOT txt to write")
    p.add_argument("--config", help="config.toml with a [tracker] table")
    p.add_argument("--fps", type=_positive_fps, default=None,
                   help="the sequence's frame rate (default: tracker.frame_rate, else seqinfo.ini's frameRate, else 25)")
    p.add_argument("--min-score", type=float, default=None, help="drop detections below this score")
    p.add_argument("--no-backfill", action="store_true", help="do not write a track's tentative frames once confirmed")
    p.add_argument("--interpolate", type=_non_negative_int, default=0, metavar="MAX_GAP",
                   help="fill gaps of up to MAX_GAP frames inside a track by linear interpolation (offline; 0 = off)")
    p.set_defaults(func=run)
