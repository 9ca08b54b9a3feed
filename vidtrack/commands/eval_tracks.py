"""``vidtrack eval-tracks gt.txt out.txt``: HOTA, MOTA, IDF1, IDSW of MOT tracks (TrackEval)."""
from __future__ import annotations

import argparse
import json

from vidtrack.evaluation import evaluate_mot

COLUMNS = ["HOTA", "DetA", "AssA", "MOTA", "IDF1", "IDSW", "MT", "ML", "FP", "FN"]


def format_table(name: str, m: dict) -> str:
    head = f"{'sequence':<20}" + "".join(f"{c:>8}" for c in COLUMNS)
    vals = "".join(f"{m[c]:>8.3f}" if isinstance(m[c], float) else f"{m[c]:>8d}" for c in COLUMNS)
    return head + "\n" + f"{name[:20]:<20}" + vals


def run(args: argparse.Namespace) -> int:
    m = evaluate_mot(args.gt, args.result)
    print(json.dumps(m, indent=2) if args.json else format_table(args.name or args.result, m))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("eval-tracks", help="score MOT tracks against gt (HOTA, MOTA, IDF1, IDSW)")
    p.add_argument("gt", help="ground truth gt.txt")
    p.add_argument("result", help="tracker output (MOT txt)")
    p.add_argument("--json", action="store_true", help="print all metrics as JSON")
    p.add_argument("--name", help="row label")
    p.set_defaults(func=run)
