"""``vidtrack track VIDEO``: run the same stages on one file and write its outputs."""
from __future__ import annotations

import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("track", help="detect and track one video file; writes MOT txt, JSONL events, annotated mp4")
    p.add_argument("video", help="video file (or a camera index / stream URL)")
    p.add_argument("--model", default="default", help="detector: 'default', a pulled model name or a .keras file "
                   "(default: the shipped synthetic-scene model)")
    p.add_argument("--embedder", default=None, help="appearance: histogram, default, none or a .keras path")
    p.add_argument("-o", "--out", default=None, help="output folder (default: runs/<video name>)")
    p.add_argument("--config", default=None, help="config.toml for tracker/detector settings (its sources are ignored)")
    p.add_argument("--conf", type=float, default=None, help="detection score threshold")
    p.add_argument("--no-video", action="store_true", help="skip the annotated mp4")
    p.add_argument("--max-frames", type=int, default=0, help="stop after this many frames")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=main)


def build_config(video: str, model: str = "default", out: str | None = None, config_path: str | None = None,
                 embedder: str | None = None, conf: float | None = None, video_sink: bool = True,
                 max_frames: int = 0):
    """The service config for one video: ``config_path``'s tables (its sources are ignored)
    with the command line's values over them, validated as ``vidtrack run`` does."""
    from pipeline.config import _default_stream_id, config_from_dict, load_config
    from base.errors import SourceError
    from workers.sources import source_kind

    kind = source_kind(video)
    if kind == "file" and not Path(video).is_file():
        raise SourceError(f"video file not found: {video}")
    stream_id = _default_stream_id(video, 0)
    detector = {"model": model, **({"embedder": embedder} if embedder else {}),
                **({"conf_threshold": conf} if conf is not None else {})}
    overrides = {
        "sources": [{"url": str(Path(video).resolve()) if kind == "file" else video, "id": stream_id,
                     "max_frames": max_frames}],
        "detector": detector,
        "output": {"dir": out or f"runs/{stream_id}", "video": video_sink and kind == "file"},
    }
    if config_path:
        return load_config(config_path, require_sources=False, overrides=overrides)
    return config_from_dict(overrides)


def main(args) -> int:
    from pipeline.report import format_summary
    from pipeline.service import Service

    config = build_config(args.video, args.model, args.out, args.config, args.embedder, args.conf,
                          not args.no_video, args.max_frames)
    summary = Service(config, progress=False if args.no_progress else None, verbose=args.verbose).run()
    print(format_summary(summary))
    for error in summary.errors:
        print(f"vidtrack: {error}", file=sys.stderr)
    stream = next(iter(summary.streams.values()))
    if summary.exit_code:
        return summary.exit_code
    out = Path(config.output.dir)
    for path in sorted(out.glob(f"{stream.stream_id}.*")):
        print(f"  wrote {path}")
    return 0
