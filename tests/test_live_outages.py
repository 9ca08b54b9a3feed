"""Live sources ride out outages: the whole service (``vidtrack run``, real processes) on
three real servers on loopback, each stopped (killed, then started again) or paused with
SIGSTOP while the other two go on.

Servers: GStreamer's RTSP server (``tests/rtsp_server.py``, system Python with the Debian
bindings), the HTTP MJPEG camera (``tests/mjpeg_server.py`` as a process, looping a generated
scene) and ffmpeg pushing MPEG-TS over UDP (the same scene, looped). Each is stopped for 10 s
and for 60 s, and paused (SIGSTOP) for 10 s. The service runs with
``stall_seconds = 2``, ``reconnect_max_delay_seconds = 1`` and ``timeout_seconds = 2`` to keep
the tests short; the defaults (5, 2, 5) take the same path.

One service runs for the whole module (TensorFlow starts once); each test marks where it
begins in the event log and asserts what it did: the stream is not ended, one
``stream.stalled`` then one ``stream.resumed`` with a gap close to the outage, the tracks of
that stream ended with ``reason: "stream stalled"``, frames after the outage tracked (new
track ids above the old ones), the other streams tracked throughout without a stall.

The service's output goes to a file, never to a pipe nobody reads until the end: once 64 KiB
were waiting there, the next process to log (FFmpeg's reconnect lines alone came to 27 KB in
one run of the module) would block in write(2), and a stream with it. A failed check says
how late the frames on either side of the gap were and ends with the service's last lines.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import zmq

from base.paths import DEFAULT_DETECTOR
from vidtrack.commands.demo import free_tcp_port
from vidtrack.synthetic import SceneConfig, write_scene

REPO = Path(__file__).resolve().parents[1]
SYSTEM_PYTHON = "/usr/bin/python3"
STALL_S = 2.0


def _has_rtsp_server() -> bool:
    if not os.path.exists(SYSTEM_PYTHON):
        return False
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    return subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True).returncode == 0


pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(not DEFAULT_DETECTOR.exists(), reason=f"shipped model missing: {DEFAULT_DETECTOR}"),
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed (apt-get install ffmpeg)"),
    pytest.mark.skipif(not _has_rtsp_server(), reason="GStreamer RTSP server bindings missing "
                       "(apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-ugly)"),
]


class Server:
    """One server process that a test can stop, start again, pause and continue."""

    def __init__(self, argv: list[str]):
        self.argv = argv
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env={**os.environ, "PYTHONPATH": str(REPO)})

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def pause(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)


class EventLog:
    """Every event the service publishes, with the ``time.monotonic()`` it arrived at."""

    def __init__(self, endpoint: str):
        self.events: list[tuple[float, dict]] = []
        self.wall_offset = time.time() - time.monotonic()  # a frame's "ts" is the wall clock at capture
        self._stop = threading.Event()
        self._sock = zmq.Context.instance().socket(zmq.SUB)
        self._sock.setsockopt(zmq.SUBSCRIBE, b"")
        self._sock.connect(endpoint)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._sock.poll(100):
                _, body = self._sock.recv_multipart()
                self.events.append((time.monotonic(), json.loads(body)))

    def since(self, mark: int, stream: str | None = None, kind: str | None = None) -> list[tuple[float, dict]]:
        return [(t, e) for t, e in self.events[mark:]
                if (stream is None or e["stream"] == stream) and (kind is None or e["type"] == kind)]

    def wait_for(self, mark: int, stream: str, kind: str, timeout_s: float, count: int = 1) -> list:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.since(mark, stream, kind)
            if len(found) >= count:
                return found
            time.sleep(0.1)
        raise AssertionError(f"no {count} {kind} of {stream} within {timeout_s} s; "
                             f"since the mark: {[e['type'] for _, e in self.since(mark, stream)][-20:]}")

    def latency(self, arrived: float, event: dict) -> float:
        """Seconds from a live frame's capture to its event's arrival here."""
        return arrived + self.wall_offset - event["ts"]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close(0)


@dataclass
class Live:
    """What the tests share: the servers, the event log, and the file the service writes its output to."""

    servers: dict[str, Server]
    log: EventLog
    service_log: Path

    def output_tail(self, lines: int = 40) -> str:
        return "\n".join(self.service_log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """Three servers and one ``vidtrack run`` reading them; yields a :class:`Live`."""
    tmp = tmp_path_factory.mktemp("live")
    scene = write_scene(tmp / "scene", SceneConfig(num_frames=250, width=320, height=180, seed=3))
    video = str(scene / "video.mp4")
    ports = {name: free_tcp_port() for name in ("rtsp", "mjpeg", "mpegts")}
    servers = {
        "rtsp": Server([SYSTEM_PYTHON, str(REPO / "tests/rtsp_server.py"), "--port", str(ports["rtsp"])]),
        "mjpeg": Server([sys.executable, str(REPO / "tests/mjpeg_server.py"), video, "--port", str(ports["mjpeg"])]),
        "mpegts": Server(["ffmpeg", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", video, "-c:v", "libx264",
                          "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25", "-f", "mpegts",
                          f"udp://127.0.0.1:{ports['mpegts']}?pkt_size=1316"]),
    }
    urls = {"rtsp": f"rtsp://127.0.0.1:{ports['rtsp']}/cam", "mjpeg": f"http://127.0.0.1:{ports['mjpeg']}/stream.mjpg",
            "mpegts": f"udp://127.0.0.1:{ports['mpegts']}"}
    time.sleep(1.0)  # the servers listen
    config = tmp / "live.toml"
    config.write_text("".join(
        f'[[sources]]\nurl = "{url}"\nid = "{name}"\nstall_seconds = {STALL_S}\n'
        f'reconnect_max_delay_seconds = 1.0\ntimeout_seconds = 2.0\n\n' for name, url in urls.items())
        + f'[events]\nendpoint = "ipc://{tmp}/events"\nmode = "frame"\n\n'  # tcp would need the run's CURVE keys
        + '[output]\ndir = ""\nprogress = false\n')
    log = EventLog(f"ipc://{tmp}/events")
    service_log = tmp / "service.log"
    with service_log.open("w") as output:
        service = subprocess.Popen([sys.executable, "-m", "vidtrack", "run", str(config)], cwd=tmp,
                                   env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=output, stderr=subprocess.STDOUT)
    try:
        for name in servers:
            log.wait_for(0, name, "frame", timeout_s=120, count=25)
        yield Live(servers, log, service_log)
        assert service.poll() is None, "the service ended during the outages"
    finally:
        service.send_signal(signal.SIGTERM)
        try:
            service.wait(timeout=60)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait()
        log.close()
        for server in servers.values():
            server.resume()
            server.stop()
    print(service_log.read_text(errors="replace")[-3000:])


def _ride_out(live: Live, name: str, fault: str, outage_s: float) -> None:
    """Stop or pause server ``name`` for ``outage_s`` and check what the promise says."""
    servers, log = live.servers, live.log
    mark = len(log.events)
    live_tracks = {e["track_id"] for _, e in log.since(mark - 200 if mark > 200 else 0, name, "track.started")}
    began = time.monotonic()
    (servers[name].stop if fault == "stop" else servers[name].pause)()
    time.sleep(outage_s)
    (servers[name].start if fault == "stop" else servers[name].resume)()
    back = time.monotonic()
    try:
        (_, resumed), = log.wait_for(mark, name, "stream.resumed", timeout_s=30)
        log.wait_for(mark, name, "frame", timeout_s=20, count=len(log.since(mark, name, "frame")) + 25)
        _check_ride_out(live, name, outage_s, mark, live_tracks, began, back, resumed)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_around_the_gap(live, name, mark, began)}\n"
                             f"--- the service's last lines:\n{live.output_tail()}") from None


def _check_ride_out(live: Live, name: str, outage_s: float, mark: int, live_tracks: set, began: float,
                    back: float, resumed: dict) -> None:
    servers, log = live.servers, live.log
    ours = log.since(mark, name)
    kinds = [e["type"] for _, e in ours]
    assert "stream.ended" not in [e["type"] for _, e in log.since(mark)]
    assert kinds.count("stream.stalled") == 1 and kinds.count("stream.resumed") == 1
    assert kinds.index("stream.stalled") < kinds.index("stream.resumed")
    # the gap is the one the grabber saw between frames: the outage, less what the client had
    # buffered but not yet decoded when the server went (up to ~2 s on a loaded 2-core machine),
    # plus the time to reconnect (backoff capped at 1 s, open timeout 2 s)
    assert outage_s - 3.0 <= resumed["seconds"] <= outage_s + 8.0, resumed
    frame_times = [t for t, e in log.since(0, name, "frame")]  # the last frame before may precede the mark
    at = [t for t, e in ours if e["type"] == "stream.resumed"][0]
    seen = min(t for t in frame_times if t > at) - max(t for t in frame_times if t < at)
    assert abs(seen - resumed["seconds"]) < 2.0, (seen, resumed)  # what a subscriber saw, too
    # the tracks of the stalled stream were ended, the stream is tracked afresh after the gap
    at_stall, at_resume = kinds.index("stream.stalled"), kinds.index("stream.resumed")
    ended = [e for _, e in ours[at_stall:at_resume] if e["type"] == "track.ended"]
    assert all(e["reason"] == "stream stalled" for e in ended)
    assert not [k for k in kinds[at_stall:at_resume] if k in ("frame", "track.started", "track.updated")]
    after = [e for _, e in ours[at_resume + 1:]]
    assert sum(e["type"] == "frame" for e in after) >= 25
    assert all(e["frame"] > resumed["frame"] for e in after)
    new_ids = {e["track_id"] for e in after if e["type"] == "track.started"}
    if live_tracks and new_ids:
        assert min(new_ids) > max(live_tracks)  # ids go on counting, never reused
    # the other streams were tracked all along, without a stall
    for other in servers.keys() - {name}:
        theirs = log.since(mark, other)
        assert not [e for _, e in theirs if e["type"] == "stream.stalled"], other
        # and kept being tracked: at least a frame a second on average (a 2-core machine running
        # other work may delay a few frames by more than stall_seconds at the subscriber, which
        # is not a stall: the grabber reported none)
        during = [t for t, e in theirs if e["type"] == "frame" and began <= t <= back]
        assert len(during) >= outage_s, (other, len(during))


def _around_the_gap(live: Live, name: str, mark: int, began: float) -> str:
    """The frames of ``name`` on either side of its gap after event ``mark`` (the server went
    at ``began``): frame, arrival here and capture-to-arrival latency, so that a failure says
    whether frames came late out of the grabber or late through the pipeline."""
    log = live.log
    resumed = [t for t, _ in log.since(mark, name, "stream.resumed")]
    frames = log.since(0, name, "frame")
    if not resumed or not frames:
        return f"{name}: {len(resumed)} stream.resumed and {len(frames)} frames since the start"
    before = [(t, e) for t, e in frames if t < resumed[0]][-3:]
    after = [(t, e) for t, e in frames if t > resumed[0]][:5]
    rows = [f"  frame {e['frame']}: arrived {t - began:+.2f} s, {log.latency(t, e):.2f} s after capture"
            for t, e in before + after]
    return "\n".join([f"{name}: stream.resumed arrived {resumed[0] - began:.2f} s after the server went; "
                      "frames around it (arrival after the server went, latency from capture):",
                      *rows])


@pytest.mark.parametrize("name", ["rtsp", "mjpeg", "mpegts"])
@pytest.mark.parametrize("fault", ["stop", "sigstop"])
def test_a_ten_second_outage_is_ridden_out(live, name, fault):
    _ride_out(live, name, fault, 10.0)


def test_tracks_of_a_stalled_stream_end_and_new_ones_start(live):
    """The MJPEG camera shows a generated scene with objects: its tracks end at the stall
    and new ones, with new ids, start after it."""
    log = live.log
    mark = len(log.events)
    _ride_out(live, "mjpeg", "stop", 4.0)
    kinds = [(e["type"], e.get("reason")) for _, e in log.since(mark, "mjpeg")]
    stalled = kinds.index(("stream.stalled", None))
    assert ("track.ended", "stream stalled") in kinds[stalled:]
    assert ("track.started", None) in kinds[kinds.index(("stream.resumed", None)):]


@pytest.mark.parametrize("name", ["rtsp", "mjpeg", "mpegts"])
def test_a_sixty_second_outage_is_ridden_out(live, name):
    _ride_out(live, name, "stop", 60.0)


def test_the_outages_did_not_flood_the_service_log(live):
    """Runs after the outages above: FFmpeg's own line per refused connect (two a second
    while a server was down) is off in the grabbers (workers.sources.quiet_native_logs), and
    what the service logged of ten outages is a few lines each."""
    output = live.service_log.read_text(errors="replace")
    assert "Connection refused" not in output and "[tcp @" not in output
    assert len(output) < 20_000, live.output_tail(80)
