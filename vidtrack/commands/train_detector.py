"""``vidtrack train-detector``: train the tiny YOLO on a YOLO-format dataset (or a synthetic one)."""
from __future__ import annotations

from pathlib import Path


def _img_size(text: str) -> tuple[int, int]:
    import argparse

    try:
        parts = [int(v) for v in text.lower().replace("x", ",").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or HxW, got {text!r}") from None
    h, w = (parts[0], parts[0]) if len(parts) == 1 else parts[:2]
    if h <= 0 or w <= 0 or h % 16 or w % 16:
        raise argparse.ArgumentTypeError(f"image size must be positive multiples of 16, got {h}x{w}")
    return h, w


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train-detector",
        help="train the tiny YOLO detector (generates a synthetic dataset when --data is omitted)",
        description="Train the two-scale tiny YOLO on a YOLO-format dataset (dataset.toml + "
                    "<split>/images + <split>/labels). Without --data, or with --synthetic N, a synthetic "
                    "dataset of N training images is generated first (in --data, or in ~/.cache/vidtrack/).",
    )
    p.add_argument("--data", help="dataset directory (with dataset.toml) or the dataset.toml itself")
    p.add_argument("--out", required=True, help="output model file, e.g. models/NAME.keras")
    p.add_argument("--synthetic", type=int, metavar="N", help="generate N synthetic training images first")
    p.add_argument("--synthetic-val", type=int, default=300, metavar="N", help="synthetic val images (default 300)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--img-size", type=_img_size, default=(192, 320), help="N or HxW, multiples of 16 (default 192x320)")
    p.add_argument("--width", type=int, default=16, help="channels of the first conv (default 16)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--val-images", type=int, default=200, help="val images scored after each epoch (0 = none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", metavar="MODEL", help="warm start: copy matching layers from this .keras model")
    p.add_argument("--resume", action="store_true", help="continue from OUT.ckpt/")
    p.set_defaults(func=run)


def run(args) -> int:
    from base.errors import ConfigError

    if not str(args.out).endswith(".keras"):
        raise ConfigError(f"--out must end in .keras, got {args.out}")
    for key in ("epochs", "batch", "width"):
        if getattr(args, key) <= 0:
            raise ConfigError(f"--{key.replace('_', '-')} must be positive")
    data = args.data
    if data is None or args.synthetic:
        from vidtrack.synthetic import write_yolo_dataset

        n = args.synthetic or 3000
        if data is None:
            import os

            cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vidtrack"
            data = str(cache / f"synthetic-seed{args.seed}-n{n}-v{args.synthetic_val}")
        if not (Path(data) / "dataset.toml").is_file():
            print(f"generating a synthetic dataset in {data}: {n} train + {args.synthetic_val} val images "
                  f"(seed {args.seed})")
            write_yolo_dataset(data, n, args.synthetic_val, seed=args.seed, progress=True)
    from detector.training.train import TrainConfig, train

    cfg = TrainConfig(epochs=args.epochs, batch=args.batch, img_size=tuple(args.img_size), seed=args.seed,
                      width=args.width, lr=args.lr, val_images=args.val_images, init=args.init)
    _, history = train(data, args.out, cfg, resume=args.resume, log=lambda m: print(m, flush=True))
    last = history[-1] if history else {}
    print(f"saved {args.out}" + (f"  (val mAP@0.5 {last['val_map50']:.4f})" if "val_map50" in last else ""))
    return 0
