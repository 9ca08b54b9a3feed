"""``vidtrack import-darknet MODEL.cfg MODEL.weights -o models/NAME.keras [--names FILE]``.

Builds the Keras graph of a Darknet YOLO cfg, fills it from the .weights file (batch norm
folded into the convs) and saves a ``.keras`` file that ``Detector.load`` serves.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from base.errors import ModelError

log = logging.getLogger("vidtrack.import_darknet")


def convert(cfg, weights, out, names=None) -> Path:
    """cfg + weights (+ names) -> saved ``out`` .keras; returns the output path."""
    from detector.darknet import import_darknet

    out = Path(out)
    if out.suffix != ".keras":
        raise ModelError(f"output must end in .keras, got {out}")
    model = import_darknet(cfg, weights, names)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    return out


def run(args: argparse.Namespace) -> int:
    out = convert(args.cfg, args.weights, args.output, args.names)
    from detector.darknet import plan_file

    net = plan_file(args.cfg)
    h, w, _ = net.input_shape
    print(f"wrote {out}: {len(net.layers)} Darknet layers, {len(net.convs)} convs, {len(net.yolos)} yolo heads, "
          f"input {w}x{h}, {net.yolos[0].params['classes']} classes")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("import-darknet", help="convert a Darknet .cfg + .weights to a vidtrack .keras model")
    p.add_argument("cfg", help="Darknet .cfg")
    p.add_argument("weights", help="Darknet .weights")
    p.add_argument("-o", "--output", required=True, help="output .keras path (e.g. models/NAME.keras)")
    p.add_argument("--names", help="class names file, one per line (default: class indices)")
    p.set_defaults(func=run)
