"""``vidtrack generate``: write a synthetic scene (video + MOT gt) or a YOLO dataset."""
from __future__ import annotations

import time


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "generate",
        help="generate a synthetic scene (video.mp4 + MOTChallenge gt) or a YOLO dataset",
        description="Deterministic synthetic scenes: persons, cars and balls moving over a textured "
                    "background, with occlusions and camera noise (see vidtrack.synthetic).",
    )
    p.add_argument("out", help="output directory")
    p.add_argument("--frames", type=int, default=250, help="frames in the scene (default 250)")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=360)
    p.add_argument("--fps", type=float, default=25.0)
    p.add_argument("--objects", type=int, default=8, help="max objects at once (default 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--images", action="store_true", help="also write img1/*.jpg frames")
    p.add_argument("--yolo", action="store_true", help="write a YOLO-format dataset instead of a scene")
    p.add_argument("--train", type=int, default=2000, help="with --yolo: training images (default 2000)")
    p.add_argument("--val", type=int, default=300, help="with --yolo: validation images (default 300)")
    p.set_defaults(func=run)


def run(args) -> int:
    from base.errors import ConfigError
    from vidtrack.synthetic import SceneConfig, write_scene, write_yolo_dataset

    for key in ("frames", "width", "height", "objects"):
        if getattr(args, key) <= 0:
            raise ConfigError(f"--{key} must be positive, got {getattr(args, key)}")
    t0 = time.perf_counter()
    if args.yolo:
        out = write_yolo_dataset(args.out, args.train, args.val, seed=args.seed, width=args.width,
                                 height=args.height, progress=True)
        print(f"wrote YOLO dataset {out}/dataset.toml: {args.train} train + {args.val} val images "
              f"in {time.perf_counter() - t0:.1f} s")
        return 0
    cfg = SceneConfig(width=args.width, height=args.height, num_frames=args.frames, fps=args.fps,
                      max_objects=args.objects, seed=args.seed)
    out = write_scene(args.out, cfg, write_images=args.images)
    print(f"wrote {out}/video.mp4 and {out}/gt/gt.txt: {args.frames} frames {args.width}x{args.height} "
          f"in {time.perf_counter() - t0:.1f} s")
    return 0
