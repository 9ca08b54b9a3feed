"""``vidtrack demo``: the whole service on a generated scene, offline, scored on its ground truth.

Generates a synthetic street scene (video + MOTChallenge ground truth) with a seed that the
shipped detector never saw in training, runs grabber, detector and tracker as separate
processes over ZeroMQ, shows the track events as a subscriber receives them, writes the
outputs (MOT txt, JSONL events, annotated mp4) and prints HOTA, MOTA and IDF1.
"""
from __future__ import annotations

import socket
import sys
from collections import Counter
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("demo", help="offline demo: generate a scene, track it, stream events, print HOTA/MOTA/IDF1")
    p.add_argument("-o", "--out", default="runs/demo", help="output folder (default runs/demo)")
    p.add_argument("--frames", type=int, default=250, help="length of the generated scene")
    p.add_argument("--seed", type=int, default=2026, help="scene seed (training used other seeds)")
    p.add_argument("--model", default="default", help="detector model (default: the shipped one)")
    p.add_argument("--embedder", default="histogram", help="appearance: histogram, default, none or a path")
    p.add_argument("--show-events", type=int, default=8, help="print this many events as they arrive")
    p.add_argument("--no-video", action="store_true", help="skip the annotated mp4")
    p.set_defaults(func=main)


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(args) -> int:
    from pipeline.config import config_from_dict
    from pipeline.report import format_summary
    from pipeline.service import Service
    from pipeline.subscriber import EventCollector
    from vidtrack.evaluation import evaluate_mot
    from vidtrack.synthetic import SceneConfig, write_scene

    out = Path(args.out)
    scene_dir = out / "scene"
    config = config_from_dict({  # checked before the scene is made
        "sources": [{"url": str(scene_dir / "video.mp4"), "id": "demo"}],
        "detector": {"model": args.model, "embedder": args.embedder},
        "events": {"endpoint": f"tcp://127.0.0.1:{free_tcp_port()}"},
        "output": {"dir": str(out), "video": not args.no_video},
    })
    print(f"1/3 generating a {args.frames}-frame synthetic scene (seed {args.seed}) in {scene_dir}/")
    write_scene(scene_dir, SceneConfig(num_frames=args.frames, seed=args.seed))

    shown = [0]

    def show(event):
        if shown[0] < args.show_events and event["type"] != "stream.started":
            shown[0] += 1
            print(f"    event: {event}", file=sys.stderr)

    print(f"2/3 running grabber -> detector -> tracker; events published on {config.events.endpoint}")
    service = Service(config)  # makes the run's CURVE keys: the subscriber uses its subscriber key
    collector = EventCollector(config.events.endpoint, service.endpoints.security, on_event=show)
    collector.start()
    summary = service.run()
    collector.close()
    print(format_summary(summary))
    counts = Counter(e["type"] for e in collector.events)
    print("  events received by a subscriber: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if summary.exit_code:
        for error in summary.errors:
            print(f"vidtrack: {error}", file=sys.stderr)
        return 1

    print("3/3 scoring the tracks against the scene's ground truth (TrackEval)")
    metrics = evaluate_mot(scene_dir / "gt" / "gt.txt", out / "demo.mot.txt")
    print(f"  HOTA {metrics['HOTA']:.3f}  MOTA {metrics['MOTA']:.3f}  IDF1 {metrics['IDF1']:.3f}  "
          f"IDSW {metrics['IDSW']}  (gt: {metrics['GT_ids']} objects, {metrics['GT_dets']} boxes)")
    for path in sorted(out.glob("demo.*")):
        print(f"  wrote {path}")
    return 0
