"""``vidtrack status [--endpoint HOST:PORT]``: the health and metrics of a running service, as tables.

Reads the supervisor's ``/healthz`` and ``/metrics`` (``[metrics] endpoint``). Exits 0 when
every stage is up, 1 when one is not, 3 when the service cannot be reached.
"""
from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from collections import defaultdict

DEFAULT_ENDPOINT = "127.0.0.1:9560"
UNREACHABLE = 3
STAGES = ("grabber", "detector", "tracker")


def register(sub) -> None:
    p = sub.add_parser("status", help="print the health and metrics of a running service ([metrics] endpoint)")
    p.add_argument("--endpoint", default=DEFAULT_ENDPOINT, help=f"the service's metrics HOST:PORT (default {DEFAULT_ENDPOINT})")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for an answer")
    p.set_defaults(func=main)


def fetch(endpoint: str, timeout: float) -> tuple[dict, str]:
    """(the /healthz JSON, the /metrics text) of the service at ``endpoint``; OSError if unreachable."""
    base = endpoint if endpoint.startswith("http") else f"http://{endpoint}"
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=timeout) as answer:
            health = json.loads(answer.read())
    except urllib.error.HTTPError as exc:  # 503: some stage is down; the body still says which
        if exc.code != 503:
            raise OSError(f"/healthz answered {exc.code}") from None
        health = json.loads(exc.read())
    with urllib.request.urlopen(f"{base}/metrics", timeout=timeout) as answer:
        text = answer.read().decode()
    return health, text


def samples(text: str) -> dict[str, list[tuple[dict, float]]]:
    """Sample name -> [(labels, value)] of a Prometheus text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, list] = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name].append((sample.labels, sample.value))
    return out


def _table(header: list[str], rows: list[list]) -> list[str]:
    cells = [header, *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
            for row in cells]


def process_table(health: dict, s: dict) -> list[str]:
    restarts = {labels["process"]: int(v) for labels, v in s.get("vidtrack_restarts_total", [])}
    rows = [[name, state, restarts.get(name, 0)] for name, state in health.get("stages", {}).items()]
    return _table(["process", "state", "restarts"], rows)


def stream_table(s: dict) -> list[str]:
    """Per stream and stage: frames in and out, drops, skips, decode errors; tracked frames/s."""
    per: dict[tuple[str, str], dict] = defaultdict(dict)
    for key, name in (("in", "vidtrack_frames_in_total"), ("out", "vidtrack_frames_out_total")):
        for labels, v in s.get(name, []):
            per[(labels["stream"], labels["stage"])][key] = int(v)
    for key, name, stage in (("dropped", "vidtrack_dropped_frames_total", "grabber"),
                             ("decode errors", "vidtrack_decode_errors_total", "grabber"),
                             ("skipped", "vidtrack_skipped_frames_total", "tracker")):
        for labels, v in s.get(name, []):
            per[(labels["stream"], stage)][key] = int(v)
    for labels, v in s.get("vidtrack_stream_fps", []):
        per[(labels["stream"], "tracker")]["fps"] = f"{v:.1f}"
    columns = ["in", "out", "dropped", "skipped", "decode errors", "fps"]
    order = sorted(per, key=lambda k: (k[0], STAGES.index(k[1]) if k[1] in STAGES else 9))
    rows = [[stream, stage, *[per[(stream, stage)].get(c, "-") for c in columns]] for stream, stage in order]
    return _table(["stream", "stage", *columns], rows)


def latency_table(s: dict) -> list[str]:
    """Per stage (and live stream): frames timed, mean and the bucket bound under which 99 % fall."""
    buckets: dict[tuple, list] = defaultdict(list)
    for name, label in (("vidtrack_stage_latency_seconds", None), ("vidtrack_capture_to_event_seconds", "stream")):
        for labels, v in s.get(f"{name}_bucket", []):
            key = (labels["stage"], labels["kind"]) if label is None else ("capture to event", labels["stream"])
            buckets[key].append((float(labels["le"]), v))
        sums = {}
        for labels, v in s.get(f"{name}_sum", []):
            sums[(labels["stage"], labels["kind"]) if label is None else ("capture to event", labels["stream"])] = v
        for key in sums:
            buckets[key].append(("sum", sums[key]))
    rows = []
    for key, entries in sorted(buckets.items()):
        total = next((v for le, v in entries if le == "sum"), 0.0)
        counts = sorted((le, v) for le, v in entries if le != "sum")
        n = counts[-1][1] if counts else 0
        if n:
            p99 = next(le for le, v in counts if v >= 0.99 * n)
            rows.append([*key, int(n), f"{1000 * total / n:.1f}", "+Inf" if p99 == float("inf") else f"{1000 * p99:g}"])
    return _table(["stage", "kind / stream", "frames", "mean ms", "p99 ≤ ms"], rows)


def other_lines(s: dict) -> list[str]:
    bad = [f"{labels['stage']} {labels['reason']} {int(v)}" for labels, v in s.get("vidtrack_bad_messages_total", [])]
    depths = [f"{labels['stage']} {labels['queue']}{' ' + labels['stream'] if labels['stream'] else ''} {int(v)}"
              for labels, v in s.get("vidtrack_queue_depth", [])]
    return [f"bad messages: {', '.join(bad) or 'none'}", f"queue depths: {', '.join(depths) or '-'}"]


def main(args) -> int:
    try:
        health, text = fetch(args.endpoint, args.timeout)
    except (OSError, ValueError) as exc:
        print(f"vidtrack: error: cannot reach a vidtrack service at {args.endpoint}: {exc}", file=sys.stderr)
        return UNREACHABLE
    s = samples(text)
    print(f"vidtrack service at {args.endpoint}: {health.get('status', 'unknown')}")
    for block in (process_table(health, s), stream_table(s), latency_table(s), other_lines(s)):
        print()
        print("\n".join(block))
    return 0 if health.get("status") == "ok" else 1
