"""``vidtrack detect``: run a detector on image files and print the detections."""
from __future__ import annotations

import json


def register(subparsers) -> None:
    p = subparsers.add_parser("detect", help="detect objects in images with a .keras detector")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image file(s)")
    p.add_argument("--model", default="default", help="detector: \"default\", a pulled model name or a .keras path")
    p.add_argument("--conf", type=float, default=0.25, help="score threshold (objectness x class prob)")
    p.add_argument("--iou", type=float, default=0.45, help="NMS IoU threshold")
    p.add_argument("--resize", choices=["letterbox", "stretch"], default="letterbox")
    p.add_argument("--json", action="store_true",
                   help="print JSON: a list of {box [x1,y1,x2,y2] px, score, class_id, class_name} "
                        "(one list per image when several images are given)")
    p.add_argument("--annotate", metavar="OUT", help="write the (first) image with boxes drawn to OUT")
    p.set_defaults(func=run)


def run(args) -> int:
    import cv2

    from detector.runtime import Detector
    from base.errors import ConfigError, SourceError
    from base.paths import resolve_model

    if not 0.0 <= args.conf <= 1.0 or not 0.0 <= args.iou <= 1.0:
        raise ConfigError("--conf and --iou must be in 0..1")
    imgs = []
    for path in args.images:
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            raise SourceError(f"cannot read image {path}")
        imgs.append(img)
    det = Detector.load(resolve_model(args.model), conf_threshold=args.conf, iou_threshold=args.iou, resize=args.resize)
    names = det.class_names
    results = det.detect(imgs)
    as_lists = [[{"box": [round(float(v), 2) for v in b], "score": round(float(s), 4), "class_id": int(c),
                  "class_name": names[c] if c < len(names) else str(c)}
                 for b, s, c in zip(d.boxes, d.scores, d.class_ids)] for d in results]
    if args.json:
        print(json.dumps(as_lists[0] if len(as_lists) == 1 else as_lists))
    else:
        for path, dets in zip(args.images, as_lists):
            print(f"{path}: {len(dets)} detections")
            for d in dets:
                x1, y1, x2, y2 = d["box"]
                print(f"  {d['class_name']:<12} {d['score']:.3f}  [{x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f}]")
    if args.annotate:
        img = imgs[0].copy()
        for d in as_lists[0]:
            x1, y1, x2, y2 = (int(round(v)) for v in d["box"])
            cv2.rectangle(img, (x1, y1), (x2, y2), (0, 255, 0), 2)
            cv2.putText(img, f"{d['class_name']} {d['score']:.2f}", (x1, max(10, y1 - 3)),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 255, 0), 1)
        cv2.imwrite(args.annotate, img)
    return 0
