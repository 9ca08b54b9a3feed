"""``vidtrack export-darknet MODEL.keras -o OUT.cfg OUT.weights``: write a model as Darknet files."""
from __future__ import annotations

import argparse
from pathlib import Path

from base.errors import ModelError


def run(args: argparse.Namespace) -> int:
    from detector.darknet import export_darknet
    from detector.loading import load_keras

    path = Path(args.model)
    if not path.is_file():
        raise ModelError(f"model not found: {path}")
    try:
        model = load_keras(path)
    except Exception as exc:
        raise ModelError(f"cannot load model {path}: {exc.__class__.__name__}: {str(exc)[:200]}") from exc
    cfg, weights = args.output
    layers, size = export_darknet(model, cfg, weights)
    print(f"wrote {cfg} ({layers} layers) and {weights} ({size} bytes)")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("export-darknet", help="write a vidtrack .keras detector as Darknet .cfg + .weights")
    p.add_argument("model", help="input .keras model (graph ending in YoloDecode)")
    p.add_argument("-o", "--output", nargs=2, required=True, metavar=("CFG", "WEIGHTS"),
                   help="output .cfg and .weights paths")
    p.set_defaults(func=run)
