"""``vidtrack run config.toml``: run the service described by a config file."""
from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser("run", help="run the service from a config.toml (sources, detector, tracker, events, sinks)")
    p.add_argument("config", help="path to config.toml")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=main)


def main(args) -> int:
    from pipeline.config import load_config
    from pipeline.report import format_summary
    from pipeline.service import Service

    config = load_config(args.config)
    service = Service(config, progress=False if args.no_progress else None, verbose=args.verbose)
    keys = f" --keys {service.endpoints.keys_dir}" if service.endpoints.keys_dir else ""
    print(f"vidtrack: {len(config.sources)} source(s); events on {config.events.endpoint} "
          f"(watch with: vidtrack subscribe --endpoint {config.events.endpoint}{keys})", file=sys.stderr)
    summary = service.run()
    print(format_summary(summary))
    for error in summary.errors:
        print(f"vidtrack: {error}", file=sys.stderr)
    return summary.exit_code
