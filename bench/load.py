"""Load soak: 1, 4, 8 and 16 live 720p streams from a real RTSP server through `vidtrack run`.

For each step it starts GStreamer's RTSP server (tests/rtsp_server.py, system Python; one
shared H.264 720p session that every stream of the step reads over its own RTSP connection)
and the service with N sources, subscribes to its events (mode "frame") and, for ``--seconds``,
samples every process of the service once a second. It prints:

- streams held: streams with tracked frames in the last 10 s of the soak and no stream.ended;
- capture-to-event latency p50 / p99 (ms) after the warm-up: event arrival (wall clock) minus
  the frame's capture timestamp (the grabber's wall clock when the frame was read);
- frames tracked and dropped per stream over the soak (mean and max; dropped = frames
  captured, by their frame numbers, but never tracked: the newest frame won);
- restarts (a process title seen with a new pid) and peak RSS (MiB) per process kind;
- memory growth after warm-up (RSS at the end over RSS at ``--warmup`` s, per process; the
  largest), target < 5 %.

    .venv/bin/python bench/load.py                    # 1 4 8 16 streams, 300 s each
    .venv/bin/python bench/load.py --streams 1 4 8 --seconds 90
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import zmq

REPO = Path(__file__).resolve().parents[1]
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Events(threading.Thread):
    """Collects per stream: (arrival wall clock, capture ts) of frame events, and stream.ended."""

    def __init__(self, endpoint: str):
        super().__init__(daemon=True)
        self.frames: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
        self.ended: dict[str, dict] = {}
        self.stalls: dict[str, int] = defaultdict(int)
        self.stop = threading.Event()
        self.sock = zmq.Context.instance().socket(zmq.SUB)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.rcvhwm = 0
        self.sock.connect(endpoint)

    def run(self) -> None:
        while not self.stop.is_set():
            if not self.sock.poll(100):
                continue
            _, body = self.sock.recv_multipart()
            now, event = time.time(), json.loads(body)
            kind, stream = event["type"], event["stream"]
            if kind == "frame":
                self.frames[stream].append((now, event["ts"], event["frame"]))
            elif kind == "stream.ended":
                self.ended[stream] = event
            elif kind == "stream.stalled":
                self.stalls[stream] += 1


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                pass
    return found


def sample(pid: int) -> dict[int, tuple[str, float]]:
    """pid -> (process title, RSS MiB) of the service and its children."""
    out = {}
    for p in [pid] + children(pid):
        try:
            title = Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            rss = int(Path(f"/proc/{p}/statm").read_text().split()[1]) * PAGE_KB / 1024
        except (OSError, ValueError, IndexError):
            continue
        out[p] = ("vidtrack run" if p == pid else title, rss)
    return out


def write_config(path: Path, url: str, streams: int, events_endpoint: str) -> None:
    sources = "".join(f'[[sources]]\nurl = "{url}"\nid = "s{i}"\n\n' for i in range(streams))
    # events over ipc: a tcp endpoint would need the run's CURVE subscriber keys
    path.write_text(sources + f'[events]\nendpoint = "{events_endpoint}"\nmode = "frame"\n\n'
                    '[output]\ndir = ""\nprogress = false\n')


def soak(streams: int, seconds: float, warmup: float, size: str, fps: int) -> dict:
    """One step: ``streams`` RTSP streams for ``seconds`` after every stream has a first frame."""
    rtsp_port = free_port()
    server = subprocess.Popen(["/usr/bin/python3", str(REPO / "tests/rtsp_server.py"), "--port", str(rtsp_port),
                               "--size", size, "--fps", str(fps), "--kbps", "2000"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    tmp = Path(tempfile.mkdtemp(prefix="vt-load-"))
    config = tmp / "load.toml"
    events_endpoint = f"ipc://{tmp}/events"
    write_config(config, f"rtsp://127.0.0.1:{rtsp_port}/cam", streams, events_endpoint)
    events = Events(events_endpoint)
    events.start()
    # its output to a file: a pipe read only at the end blocks the service's next log line once full
    with (tmp / "service.log").open("w") as output:
        service = subprocess.Popen([sys.executable, "-m", "vidtrack", "run", str(config)], cwd=tmp,
                                   env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while len(events.frames) < streams and time.monotonic() < deadline and service.poll() is None:
            time.sleep(0.5)
        start, start_wall = time.monotonic(), time.time()
        pids: dict[str, set] = defaultdict(set)
        rss: dict[int, list[tuple[float, float]]] = defaultdict(list)
        titles: dict[int, str] = {}
        while time.monotonic() - start < seconds and service.poll() is None:
            for p, (title, mib) in sample(service.pid).items():
                pids[title].add(p)
                titles[p] = title
                rss[p].append((time.monotonic() - start, mib))
            time.sleep(1.0)
        end_wall = time.time()
    finally:
        service.send_signal(signal.SIGTERM)
        try:
            service.wait(timeout=60)
        except subprocess.TimeoutExpired:
            service.kill()
        time.sleep(0.5)
        events.stop.set()
        server.kill()
        server.wait()
    return summarise(streams, events, start_wall, end_wall, pids, rss, titles, warmup)


def summarise(streams, events, start_wall, end_wall, pids, rss, titles, warmup) -> dict:
    latencies, tracked, dropped = [], [], []
    held = 0
    for i in range(streams):
        frames = [f for f in events.frames.get(f"s{i}", []) if start_wall <= f[0] <= end_wall]
        latencies += [arrived - ts for arrived, ts, _ in frames if arrived >= start_wall + warmup]
        tracked.append(len(frames))
        # frames captured in the soak but not tracked: dropped at the grabber (newest wins)
        dropped.append(frames[-1][2] - frames[0][2] + 1 - len(frames) if frames else 0)
        ended = events.ended.get(f"s{i}")
        if frames and frames[-1][0] > end_wall - 10 and (ended is None or ended["reason"] == "stopped"):
            held += 1
    peak, growth = defaultdict(float), []
    for p, series in rss.items():
        kind = titles[p].split(" ")[1] if titles[p].startswith("vidtrack: ") else os.path.basename(titles[p])
        kind = kind.rstrip("0123456789-") if kind.startswith("detector") else kind
        peak[kind] = max(peak[kind], max(m for _, m in series))
        base = [m for t, m in series if t >= warmup]
        if len(base) >= 2:
            growth.append((base[-1] - base[0]) / base[0] * 100)
    lat = np.array(latencies) * 1000 if latencies else np.array([np.nan])
    return {
        "streams": streams, "held": held, "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
        "tracked_mean": float(np.mean(tracked)), "dropped_mean": float(np.mean(dropped)), "dropped_max": max(dropped),
        "stalls": sum(events.stalls.values()),
        "restarts": sum(len(v) - 1 for v in pids.values()), "peak_rss_mib": dict(peak),
        "growth_max_pct": max(growth) if growth else float("nan"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--seconds", type=float, default=300.0, help="soak per step, after every stream started")
    parser.add_argument("--warmup", type=float, default=None, help="growth measured from here (default: a third of the soak)")
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--fps", type=int, default=25)
    args = parser.parse_args()
    warmup = args.seconds / 3 if args.warmup is None else args.warmup
    print(f"live {args.size} @ {args.fps} fps from GStreamer's RTSP server, {args.seconds:g} s soak per step, "
          f"growth after {warmup:g} s")
    print(f"{'streams':>7} {'held':>4} {'p50 ms':>7} {'p99 ms':>7} {'tracked/stream':>14} {'dropped mean/max':>16} "
          f"{'stalls':>6} {'restarts':>8} {'growth %':>8}  peak RSS MiB")
    for n in args.streams:
        r = soak(n, args.seconds, warmup, args.size, args.fps)
        rss = ", ".join(f"{k} {v:.0f}" for k, v in sorted(r["peak_rss_mib"].items()))
        print(f"{n:>7} {r['held']:>4} {r['p50_ms']:>7.0f} {r['p99_ms']:>7.0f} {r['tracked_mean']:>14.0f} "
              f"{r['dropped_mean']:>9.0f}/{r['dropped_max']:<6} {r['stalls']:>6} {r['restarts']:>8} "
              f"{r['growth_max_pct']:>8.1f}  {rss}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
