"""``vidtrack train-embedder``: train the re-id CNN on MOT-format sequences and score it
against the colour-histogram baseline on a held-out sequence (rank-1, mAP)."""
from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

from base.errors import SourceError, VidtrackError
from base.paths import DEFAULT_EMBEDDER

log = logging.getLogger(__name__)


def shared_mot_dir() -> Path:
    """$VIDTRACK_SHARED_DATA/mot, or ../shared/data/mot beside the working directory (the repo)."""
    return Path(os.environ.get("VIDTRACK_SHARED_DATA", Path.cwd().parent / "shared" / "data")) / "mot"


def _resolve_sequence(name: str) -> Path:
    path = Path(name).expanduser()
    if not path.is_dir() and "/" not in name:
        path = shared_mot_dir() / name
    if not (path / "gt" / "gt.txt").is_file():
        raise SourceError(f"not a MOT-format sequence with gt/gt.txt: {name}")
    return path


def register(subparsers) -> None:
    p = subparsers.add_parser("train-embedder", help="train the appearance (re-id) CNN",
                              description=__doc__.splitlines()[0])
    p.add_argument("--sequences", nargs="+", metavar="DIR",
                   help="MOT-format sequence dirs (gt/gt.txt + img1/ or a video) to train on "
                        "(default: every sequence with gt in the shared data, minus --holdout)")
    p.add_argument("--holdout", default="TUD-Campus",
                   help="sequence name or dir scored at the end, never trained on ('none' to skip)")
    p.add_argument("--tracks", nargs=2, action="append", default=[], metavar=("VIDEO", "TRACKS"),
                   help="also train on footage without gt: a person tracker's MOT output on VIDEO (e.g. "
                        "'vidtrack track VIDEO --embedder none'), cut into tracklets where people overlap or a "
                        "track skips a frame; each tracklet one identity (repeatable)")
    p.add_argument("--synthetic", type=int, default=0, metavar="N",
                   help="also train on N generated scenes (vidtrack.synthetic; every object class)")
    p.add_argument("--synthetic-frames", type=int, default=250, help="frames per generated scene")
    p.add_argument("--out", default=str(DEFAULT_EMBEDDER), help="output .keras file")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--steps-per-epoch", type=int, default=50)
    p.add_argument("--p", type=int, default=16, help="identities per batch")
    p.add_argument("--k", type=int, default=4, help="crops per identity per batch")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--margin", type=float, default=None, help="triplet margin (default: soft margin)")
    p.add_argument("--max-minutes", type=float, default=20.0, help="wall-time bound on training")
    p.add_argument("--min-gap", type=int, default=10,
                   help="evaluation: same-identity gallery crops within this many frames of the query are excluded")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--metrics-json", help="also write the held-out metrics to this JSON file")
    p.set_defaults(func=run)


def _synthetic_sequences(n: int, root: Path, seed: int, frames: int) -> list[Path]:
    try:
        from vidtrack import synthetic
    except ImportError as exc:
        raise VidtrackError(f"--synthetic needs vidtrack.synthetic, which is not available ({exc})") from exc
    out = []
    for i in range(n):
        d = root / f"synthetic-{i:03d}"
        synthetic.write_scene(d, synthetic.SceneConfig(seed=1000 + seed + i, num_frames=frames))
        out.append(d)
    return out


def _tracklet_crops(video: Path, tracks: Path, size: tuple[int, int], context: float):
    """Identity crops of the tracklets of a tracker's output ``tracks`` on ``video``."""
    from detector.training.reid_data import MIN_TRACKLET_ROWS, load_sequence_crops, read_mot_boxes, tracklet_identities

    if not video.is_file():
        raise SourceError(f"--tracks: video file not found: {video}")
    pseudo = tracklet_identities(read_mot_boxes(tracks, min_height=24.0))
    if not len(pseudo):
        raise SourceError(f"--tracks: no tracklet of {MIN_TRACKLET_ROWS} frames or more in {tracks}")
    return load_sequence_crops(video, size=size, margin=context, gt=pseudo)


def run(args: argparse.Namespace) -> int:
    from detector.appearance import ColourHistogramEmbedder
    from detector.embedder import INPUT_SIZE, KerasEmbedder
    from detector.training.embedder import train_embedder
    from detector.training.reid_data import ReidCrops, evaluate_reid, load_sequence_crops

    holdout = None if args.holdout.lower() == "none" else _resolve_sequence(args.holdout)
    if args.sequences:
        seqs = [_resolve_sequence(s) for s in args.sequences]
    else:
        root = shared_mot_dir()
        seqs = sorted(p for p in root.glob("*") if (p / "gt" / "gt.txt").is_file() and (p / "img1").is_dir())
        if not seqs:
            raise SourceError(f"no MOT sequences with gt found in {root}; pass --sequences")
    if holdout is not None:
        seqs = [s for s in seqs if s.resolve() != holdout.resolve()]
    context = 0.125  # crops keep this much context per side for crop-jitter augmentation
    size = tuple(int(round(s * (1 + 2 * context))) for s in INPUT_SIZE)
    with tempfile.TemporaryDirectory(prefix="vidtrack-synth-") as tmp:
        synth = _synthetic_sequences(args.synthetic, Path(tmp), args.seed, args.synthetic_frames) if args.synthetic else []
        if not seqs + synth and not args.tracks:
            raise SourceError("no training sequences left after removing the holdout")
        parts = [load_sequence_crops(s, size=size, margin=context) for s in seqs]
        parts += [load_sequence_crops(s, size=size, margin=context, classes=None, frame_step=3) for s in synth]
    parts += [_tracklet_crops(Path(video), Path(tracks), size, context) for video, tracks in args.tracks]
    seqs = seqs + synth + [Path(video) for video, _ in args.tracks]
    data = ReidCrops.concat(parts)
    print(f"training data: {len(data.labels)} crops, {data.num_ids} identities from "
          f"{len(seqs)} sequences: {', '.join(s.name for s in seqs)}", flush=True)
    t0 = time.monotonic()
    model, hist = train_embedder(
        data, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, p=args.p, k=args.k, lr=args.lr,
        margin=args.margin, context=context, seed=args.seed,
        max_seconds=args.max_minutes * 60 if args.max_minutes else None, verbose=2)
    train_s = time.monotonic() - t0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    losses = hist.get("loss", [])
    print(f"trained {len(losses)} epochs in {train_s:.0f} s, final loss {losses[-1]:.4f}; saved {out} "
          f"({out.stat().st_size / 1e6:.2f} MB, {model.count_params()} parameters)", flush=True)
    if holdout is None:
        return 0
    results = {}
    for name, emb in (("learned", KerasEmbedder.load(out)), ("histogram", ColourHistogramEmbedder())):
        results[name] = evaluate_reid(emb, holdout, min_gap=args.min_gap)
    print(f"re-id on held-out {holdout.name} (min gap {args.min_gap} frames, "
          f"{results['learned']['queries']} queries, {results['learned']['identities']} identities):")
    for name, r in results.items():
        print(f"  {name:9s} rank-1 {r['rank1']:.3f}  rank-5 {r['rank5']:.3f}  mAP {r['mAP']:.3f}")
    if args.metrics_json:
        Path(args.metrics_json).write_text(json.dumps({"holdout": holdout.name, "min_gap": args.min_gap,
                                                       "train_seconds": train_s, **results}, indent=2))
    return 0
