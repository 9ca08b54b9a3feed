"""``vidtrack mot-to-yolo``: MOTChallenge sequences (img1/ + gt) -> a YOLO-format dataset."""
from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "mot-to-yolo", help="convert MOTChallenge sequences into a YOLO-format person dataset",
        description="Writes OUT/dataset.toml, OUT/train/{images,labels} from --train sequences and "
                    "OUT/val/{images,labels} from --val sequences (class 0 = person; frames are "
                    "linked, not re-encoded).")
    p.add_argument("out", help="dataset directory to write")
    p.add_argument("--train", nargs="+", required=True, metavar="SEQ", help="sequence dirs for the train split")
    p.add_argument("--val", nargs="+", required=True, metavar="SEQ", help="sequence dirs for the val split")
    p.add_argument("--frame-step", type=int, default=1, help="keep every N-th frame (default 1)")
    p.add_argument("--min-visibility", type=float, default=0.0, help="drop gt boxes less visible than this")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from detector.training.dataset import write_dataset_toml
    from detector.training.evaluate import mot_to_yolo
    from base.errors import ConfigError

    if args.frame_step < 1:
        raise ConfigError("--frame-step must be >= 1")
    out = Path(args.out)
    counts = {}
    for split, seqs in (("train", args.train), ("val", args.val)):
        counts[split] = sum(mot_to_yolo(s, out / split, frame_step=args.frame_step,
                                        min_visibility=args.min_visibility) for s in seqs)
    path = write_dataset_toml(out, ["person"], "vidtrack YOLO-format dataset converted from MOTChallenge sequences")
    print(f"wrote {path}: {counts['train']} train + {counts['val']} val images")
    return 0
