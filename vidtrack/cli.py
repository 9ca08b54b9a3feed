"""The ``vidtrack`` command line.

Each sub-command lives in its own module under :mod:`vidtrack.commands` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` (called with the parsed
arguments, returns an exit code). To add a command, add its module name to COMMANDS.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMANDS = [
    "demo",
    "run",
    "track",
    "subscribe",
    "generate",
    "train_detector",
    "eval_detector",
    "mot_to_yolo",
    "detect",
    "track_detections",
    "eval_tracks",
    "import_darknet",
    "export_darknet",
    "train_embedder",
    "models",
    "keys",
    "status",
    "worker",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vidtrack", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"vidtrack.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    import detector  # noqa: F401  (TensorFlow environment defaults, before any command loads TensorFlow)

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except VidtrackError as exc:
        print(f"vidtrack: error: {exc}", file=sys.stderr)
        return 2


from base.errors import VidtrackError  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
