"""``vidtrack eval-detector``: COCO mAP of a detector on a YOLO-format dataset split."""
from __future__ import annotations

import json


def register(subparsers) -> None:
    p = subparsers.add_parser("eval-detector", help="COCO mAP@0.5 and mAP@0.5:0.95 (pycocotools) on a YOLO dataset")
    p.add_argument("--model", required=True, help="detector (.keras file)")
    p.add_argument("--data", help="dataset directory with dataset.toml")
    p.add_argument("--split", default="val", help="split to score (default val)")
    p.add_argument("--mot", metavar="SEQ", help="score on a MOTChallenge sequence instead (img1 + gt, pedestrians)")
    p.add_argument("--conf", type=float, default=0.001, help="score threshold (default 0.001, as for mAP)")
    p.add_argument("--iou", type=float, default=0.6, help="NMS IoU threshold (default 0.6)")
    p.add_argument("--resize", choices=["letterbox", "stretch"], default="letterbox")
    p.add_argument("--limit", type=int, help="score only the first N images")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    import tempfile
    import time

    from detector.training.dataset import YoloDataset, read_split
    from detector.training.evaluate import evaluate_detector, format_metrics, mot_to_yolo
    from detector.runtime import Detector
    from base.errors import ConfigError

    if bool(args.data) == bool(args.mot):
        raise ConfigError("give exactly one of --data or --mot")
    det = Detector.load(args.model, conf_threshold=args.conf, iou_threshold=args.iou, resize=args.resize)
    with tempfile.TemporaryDirectory() as tmp:
        if args.mot:
            mot_to_yolo(args.mot, tmp)
            items = read_split(tmp)
        else:
            items = YoloDataset.open(args.data).items(args.split)
        if args.limit:
            items = items[:args.limit]
        t0 = time.perf_counter()
        m = evaluate_detector(det, items, progress=not args.json)
    if args.json:
        print(json.dumps({"images": len(items), **m, "per_class": {det.class_names[k]: v for k, v in
                                                                     m["per_class"].items()}}))
    else:
        print(f"{len(items)} images, {time.perf_counter() - t0:.1f} s")
        print(format_metrics(m, det.class_names))
    return 0
