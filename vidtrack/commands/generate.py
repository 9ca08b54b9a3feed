"""``vidtrack generate``: write a synthetic scene (video + MOT gt) or a YOLO dataset."""
from __future__ import annotations

import argparse
import time

_HARD = ("hard: a camera panning 1.5 px/frame (at 25 fps) with 1 px of shake, a crowd of 30 small "
         "look-alike people (3 looks) on shared lanes, 3 static occluders per view width, 6 other "
         "objects; simulated at 30 fps, 10 s (300 frames; --fps 7.5 gives exactly every 4th frame "
         "of the same scene, --fps must divide 30). Options given explicitly override the preset.")


def _pair(text: str) -> tuple[float, float]:
    try:
        dx, dy = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected DX,DY, got {text!r}") from None
    return dx, dy


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "generate",
        help="generate a synthetic scene (video.mp4 + MOTChallenge gt) or a YOLO dataset",
        description="Deterministic synthetic scenes: persons, cars and balls moving over a textured "
                    "background, with occlusions and camera noise (see vidtrack.synthetic). Also writes "
                    "camera.txt: per frame, the true camera motion as a 2x3 warp from the previous frame.",
        epilog="presets: " + _HARD,
    )
    p.add_argument("out", help="output directory")
    p.add_argument("--preset", choices=["hard"], help="a named scene preset (see below)")
    p.add_argument("--frames", type=int, help="frames in the scene (default 250; hard: 10 s)")
    p.add_argument("--width", type=int, help="default 640")
    p.add_argument("--height", type=int, help="default 360")
    p.add_argument("--fps", type=float, help="default 25 (hard: 30)")
    p.add_argument("--objects", type=int, help="max objects at once, crowd not counted (default 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pan", type=_pair, metavar="DX,DY", help="camera pan, pixels/frame at 25 fps")
    p.add_argument("--shake", type=float, metavar="PX", help="camera shake (std of its offset), pixels")
    p.add_argument("--crowd", type=int, metavar="N", help="a crowd of N small people on shared lanes")
    p.add_argument("--occluders", type=int, metavar="N", help="static occluders (pillars, walls, trees) per view width")
    p.add_argument("--look-alike", type=int, metavar="N", help="people share N looks (0: all differ)")
    p.add_argument("--size-scale", type=float, metavar="S", help="multiply all object sizes (default 1)")
    p.add_argument("--images", action="store_true", help="also write img1/*.jpg frames")
    p.add_argument("--yolo", action="store_true", help="write a YOLO-format dataset instead of a scene")
    p.add_argument("--train", type=int, default=2000, help="with --yolo: training images (default 2000)")
    p.add_argument("--val", type=int, default=300, help="with --yolo: validation images (default 300)")
    p.set_defaults(func=run)


_FIELDS = {"frames": "num_frames", "width": "width", "height": "height", "fps": "fps", "objects": "max_objects",
           "pan": "camera_pan", "shake": "camera_shake", "crowd": "crowd", "occluders": "occluders",
           "look_alike": "look_alike", "size_scale": "size_scale"}


def run(args) -> int:
    from base.errors import ConfigError
    from vidtrack.synthetic import SceneConfig, write_scene, write_yolo_dataset

    for key in ("frames", "width", "height", "objects", "fps"):
        if getattr(args, key) is not None and getattr(args, key) <= 0:
            raise ConfigError(f"--{key} must be positive, got {getattr(args, key)}")
    for key in ("shake", "crowd", "occluders", "look_alike"):
        if getattr(args, key) is not None and getattr(args, key) < 0:
            raise ConfigError(f"--{key.replace('_', '-')} must not be negative, got {getattr(args, key)}")
    t0 = time.perf_counter()
    if args.yolo:
        width, height = args.width or 640, args.height or 360
        out = write_yolo_dataset(args.out, args.train, args.val, seed=args.seed, width=width,
                                 height=height, progress=True)
        print(f"wrote YOLO dataset {out}/dataset.toml: {args.train} train + {args.val} val images "
              f"in {time.perf_counter() - t0:.1f} s")
        return 0
    given = {f: getattr(args, a) for a, f in _FIELDS.items() if getattr(args, a) is not None}
    if args.preset == "hard":
        fps = given.pop("fps", 30.0)
        if abs(30.0 / fps - round(30.0 / fps)) > 1e-6:
            raise ConfigError(f"--fps must divide 30 with --preset hard, got {fps:g}")
        cfg = SceneConfig.hard(args.seed, fps=fps, **given)
    else:
        cfg = SceneConfig(seed=args.seed, **given)
    out = write_scene(args.out, cfg, write_images=args.images)
    print(f"wrote {out}/video.mp4, {out}/gt/gt.txt and {out}/camera.txt: {cfg.num_frames} frames "
          f"{cfg.width}x{cfg.height} at {cfg.fps:g} fps in {time.perf_counter() - t0:.1f} s")
    return 0
