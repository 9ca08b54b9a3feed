"""``vidtrack worker grabber|detector|tracker --config config.toml``: one stage as its own
process, for an orchestrator that runs each stage on its own host (pipeline.standalone)."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("worker", help="run one stage (grabber, detector or tracker) as its own process over tcp")
    p.add_argument("stage", choices=("grabber", "detector", "tracker"))
    p.add_argument("--config", required=True, help="the config.toml shared by every stage (transport.kind = \"tcp\")")
    p.add_argument("--source", help="grabber: the id of the source to serve")
    p.add_argument("--metrics", default="", metavar="HOST:PORT", help="serve this worker's /metrics and /healthz there")
    p.add_argument("--hold-open", type=float, default=30.0, metavar="S",
                   help="grabber: keep the socket open this long after the end marker, or until SIGTERM (default 30)")
    p.set_defaults(func=main)


def main(args) -> int:
    from base.errors import ConfigError
    from pipeline import standalone
    from pipeline.config import load_config

    config = load_config(args.config)
    if args.stage == "grabber":
        if not args.source:
            raise ConfigError("--source: vidtrack worker grabber needs the id of the source to serve")
        return standalone.run_grabber(config, args.source, args.metrics, args.hold_open)
    if args.stage == "detector":
        return standalone.run_detector(config, args.metrics)
    return standalone.run_tracker(config, args.metrics)
