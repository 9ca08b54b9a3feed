"""``vidtrack subscribe``: print track events from a running service as JSON lines."""
from __future__ import annotations

import json
import sys


def register(sub) -> None:
    p = sub.add_parser("subscribe", help="print the events of a running service (JSON lines)")
    p.add_argument("--endpoint", default="tcp://127.0.0.1:5560", help="events endpoint (config events.endpoint)")
    p.add_argument("--stream", action="append", default=[], help="only this stream id (repeatable)")
    p.add_argument("--type", action="append", default=[], help="only events of this type, e.g. track.started")
    p.add_argument("--count", type=int, default=0, help="exit after this many events")
    p.add_argument("--timeout", type=float, default=0, help="exit after this many seconds without an event")
    p.add_argument("--keys", "--keys-dir", dest="keys", default=None,
                   help="folder with server.key and subscriber.key_secret (from `vidtrack keys`, or the folder "
                        "a running service names); needed for a tcp endpoint")
    p.set_defaults(func=main)


def main(args) -> int:
    import zmq

    from wire.transport import Security, SocketFactory

    if args.endpoint.startswith("tcp://") and not args.keys:
        print("vidtrack: error: --keys DIR is needed: tcp event sockets are always CURVE-encrypted "
              "(vidtrack run prints the folder)", file=sys.stderr)
        return 2
    factory = SocketFactory(Security(args.keys), role="subscriber")
    sock = factory.connect(zmq.SUB, args.endpoint)
    for stream in args.stream or [""]:
        sock.setsockopt(zmq.SUBSCRIBE, stream.encode())
    # on stderr, so stdout stays pure JSON lines; a script may wait for it before starting a run
    print(f"vidtrack subscribe: listening on {args.endpoint}", file=sys.stderr, flush=True)
    seen = 0
    try:
        while True:
            if not sock.poll(int(args.timeout * 1000) if args.timeout else -1):
                break
            topic, payload = sock.recv_multipart()
            try:
                event = json.loads(payload)
            except json.JSONDecodeError:
                continue
            if args.stream and topic.decode(errors="replace") not in args.stream:
                continue  # SUBSCRIBE matches prefixes; keep exact stream ids only
            if args.type and event.get("type") not in args.type:
                continue
            sys.stdout.write(json.dumps(event, separators=(",", ":")) + "\n")
            sys.stdout.flush()
            seen += 1
            if args.count and seen >= args.count:
                break
    except KeyboardInterrupt:
        pass
    finally:
        factory.close()
    return 0
