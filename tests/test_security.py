"""Attacks of issue 15's "Security" list, tried for real against stages on loopback, each
repeated, each now refused and counted: forged messages on real sockets, strangers on real
tcp ports, a raw ZMTP peer announcing a 500 MB part, a JPEG that claims 6000x6000 pixels,
a video wider than the wire allows."""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import socket
import stat
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import zmq

from base.errors import ConfigError, SourceError
from base.paths import DEFAULT_DETECTOR
from base.types import Detections, Frame
from pipeline.sinks import SinkSettings, StreamSinks, UnsafePath, output_path
from tests.helpers import start_catching, write_test_video
from wire import frame_ring, messages
from wire.transport import STAGES, SUBSCRIBERS, Security, SocketFactory, generate_keys
from workers.detector_worker import DetectorStage, DetectorStageSpec
from workers.detector_config import DetectorConfig
from workers.grabber import Grabber, GrabberSpec, RewindRequest, SourceConfig
from workers.tracker_worker import EventsConfig, TrackerStage, TrackerStageSpec, tracker_main

pytestmark = pytest.mark.faults
REPEAT = 20
REPO = Path(__file__).resolve().parents[1]


def _forged(header: dict) -> list[bytes]:
    """A one-part control message with whatever header an attacker likes (encode would refuse it)."""
    return [json.dumps({"v": 1, **header}).encode()]


def _started(stream: str, source: str) -> list[bytes]:
    return _forged({"type": "stream.started", "stream": stream, "source": source, "width": 160, "height": 120,
                    "fps": 25.0, "live": False, "frames": 5, "classes": []})


def _detections(stream: str, seq: int) -> list:
    boxes = np.array([[10 + seq, 10, 40 + seq, 80]], np.float32)
    det = Detections(boxes, np.array([0.9], np.float32), np.array([0], np.int32))
    return messages.encode(messages.DetectionsMessage(stream, seq, seq, seq / 25.0, det))


def _stream(stream: str, frames: int, source: str = "x") -> list[list]:
    """What a detector sends for a whole stream of ``frames`` frames."""
    return ([_started(stream, source)] + [_detections(stream, i) for i in range(frames)]
            + [messages.encode(messages.StreamEnded(stream, frames))])


def _receive_all(sock: zmq.Socket, idle_s: float = 0.5) -> list:
    got = []
    while sock.poll(int(idle_s * 1000)):
        got.append(sock.recv_multipart())
    return got


# ------------------------------------------------------------ the tracker stage, on a thread
@pytest.fixture
def tracker(tmp_path):
    """A real TrackerStage (configured stream "cam", outputs in tmp/out with the annotated
    video, whose source the config names) on a thread; yields (stage, attacker PUSH, SUB, paths)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    video = write_test_video(tmp_path / "cam.avi", frames=5, size=(160, 120))
    other = write_test_video(tmp_path / "other.avi", frames=5, size=(96, 64))
    out = tmp_path / "out"
    spec = TrackerStageSpec(detections_endpoint=f"ipc://{run_dir}/d", events=EventsConfig(endpoint=f"ipc://{run_dir}/e"),
                            open_outputs=SinkSettings(str(out), video=True, sources={"cam": str(video)}),
                            expected_streams=["cam"], exit_when_done=False)
    stop = threading.Event()
    stage = TrackerStage(spec, stop)
    thread = threading.Thread(target=stage.run, daemon=True)
    thread.start()
    ctx = zmq.Context()
    push, sub = ctx.socket(zmq.PUSH), ctx.socket(zmq.SUB)
    push.connect(spec.detections_endpoint)
    sub.connect(spec.events_endpoint)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    time.sleep(0.3)  # the subscription reaches the PUB socket
    yield stage, push, sub, {"tmp": tmp_path, "out": out, "video": video, "other": other}
    stop.set()
    thread.join(5)
    ctx.destroy(linger=0)


def _wait_for_video_sinks(timeout_s: float = 10.0) -> None:
    """Until the annotated-video threads are done (the stage closes its sinks after the last events)."""
    deadline = time.monotonic() + timeout_s
    while any(t.name.startswith("video-sink") for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)


def test_a_forged_stream_id_that_escapes_writes_nothing_outside_the_output_dir(tracker):
    stage, push, sub, paths = tracker
    before = sorted(p.name for p in paths["tmp"].iterdir())
    for _ in range(REPEAT):  # ../escaped: refused on the wire; "escaped": valid, but not configured
        push.send_multipart(_started("../escaped", str(paths["other"])))
        push.send_multipart(_started("escaped", str(paths["other"])))
        push.send_multipart(_detections("escaped", 0))
    for parts in _stream("cam", 5, source=str(paths["other"])):  # the message names another video
        push.send_multipart(parts)
    events = _receive_all(sub)
    _wait_for_video_sinks()
    assert {json.loads(e[1])["stream"] for e in events} == {"cam"}
    assert stage.bad_messages == 3 * REPEAT and stage.foreign_messages == {"escaped": 2 * REPEAT}
    assert sorted(p.name for p in paths["tmp"].iterdir()) == sorted(before + ["out"])  # nothing beside out/
    assert not (paths["tmp"].parent / "escaped.mot.txt").exists()
    assert sorted(p.name for p in paths["out"].iterdir()) == ["cam.annotated.mp4", "cam.events.jsonl", "cam.mot.txt"]
    # the annotated video re-read the configured source (160x120), not the one the message named
    cap = cv2.VideoCapture(str(paths["out"] / "cam.annotated.mp4"))
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (160, 120)
    cap.release()


def test_detections_for_an_unconfigured_stream_are_not_published(tracker):
    stage, push, sub, _ = tracker
    for _ in range(REPEAT // 4):
        for parts in _stream("intruder", 4):
            push.send_multipart(parts)
    for parts in _stream("cam", 5):
        push.send_multipart(parts)
    events = [json.loads(e[1]) for e in _receive_all(sub)]
    assert events and all(e["stream"] == "cam" for e in events)
    assert [e["type"] for e in events][-1] == "stream.ended"
    assert stage.foreign_messages == {"intruder": REPEAT // 4 * 6}
    assert "intruder" not in stage.streams


def test_output_paths_stay_inside_the_output_dir_even_through_a_planted_link(tmp_path):
    out, outside = tmp_path / "out", tmp_path / "outside.txt"
    out.mkdir()
    for bad in ("../escaped", "..", "a/b", ""):
        with pytest.raises(UnsafePath):
            output_path(out, bad, "mot.txt")
    (out / "cam.events.jsonl").symlink_to(outside)  # someone with write access to out/ planted it
    sinks = StreamSinks(out, "cam", "x", live=True)
    sinks.write_events([{"type": "x"}])
    sinks.close()
    assert not outside.exists()
    assert any("events JSONL output cannot be opened" in e and "outside" in e for e in sinks.errors)
    assert (out / "cam.mot.txt").exists()  # the stream's other outputs go on


# ------------------------------------------------------------ the detector stage's frame sockets
class _ClassNames:  # all the receive loop asks of a detector
    class_names = ["a"]


def test_frames_on_another_streams_socket_are_dropped_and_counted(tmp_path):
    eps = [f"ipc://{tmp_path}/f0", f"ipc://{tmp_path}/f1"]
    ctx = zmq.Context()
    grabbers = [ctx.socket(zmq.PUSH) for _ in eps]
    for sock, ep in zip(grabbers, eps):
        sock.bind(ep)
    spec = DetectorStageSpec(eps, f"ipc://{tmp_path}/d", DetectorConfig(batch_size=16, batch_wait_ms=50),
                             frame_streams=["a", "b"])
    stage = DetectorStage(spec, _ClassNames(), None)
    try:
        assert all(sock.maxmsgsize == messages.MAX_FRAME_PART_BYTES for sock, _ in stage._pulls)
        image = np.zeros((8, 8, 3), np.uint8)
        for seq in range(REPEAT):  # grabber a's socket carries frames and control claiming stream b
            grabbers[0].send_multipart(messages.encode(messages.FrameMessage(Frame("b", seq, 0.0, image), seq)))
            grabbers[0].send_multipart(messages.encode(messages.StreamEnded("b", 0)))
        for seq in range(3):
            grabbers[0].send_multipart(messages.encode(messages.FrameMessage(Frame("a", seq, 0.0, image), seq)))
            grabbers[1].send_multipart(messages.encode(messages.FrameMessage(Frame("b", seq, 0.0, image), seq)))
        controls, frames = [], []
        deadline = time.monotonic() + 10
        while len(frames) < 6 and time.monotonic() < deadline:
            frames += [(f.stream_id, seq) for f, seq in stage._receive_batch(lambda c, p: controls.append(c))]
    finally:
        stage._factory.close()
        stage._rings.close()
        ctx.destroy(linger=0)
    assert sorted(frames) == [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1), ("b", 2)]
    assert controls == [] and stage.stats.foreign_messages == 2 * REPEAT == stage.stats.bad_messages


# ------------------------------------------------------------ keys and ZAP domains
def _transfers(server: zmq.Socket, client: zmq.Socket, server_sends: bool, tries: int = 10) -> int:
    sender, receiver = (server, client) if server_sends else (client, server)
    got = 0
    for _ in range(tries):
        try:
            sender.send_multipart([b"t", b"x"], flags=zmq.NOBLOCK)
        except zmq.Again:
            pass
        while receiver.poll(50):
            receiver.recv_multipart()
            got += 1
    return got


def test_a_subscriber_key_reads_events_but_cannot_pull_frames_or_push_detections(tmp_path):
    from vidtrack.commands.demo import free_tcp_port

    keys = generate_keys(tmp_path / "keys")
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    for secret in ("server", "client", "subscriber"):
        assert stat.S_IMODE((keys / f"{secret}.key_secret").stat().st_mode) == 0o600
    assert [p.name for p in (keys / "subscribers").iterdir()] == ["subscriber.key"]
    server = SocketFactory(Security(str(keys)))
    stage_client = SocketFactory(Security(str(keys)))
    subscriber = SocketFactory(Security(str(keys)), role="subscriber")
    try:
        def pair(kind_server, kind_client, domain, client):
            ep = f"tcp://127.0.0.1:{free_tcp_port()}"
            srv = server.bind(kind_server, ep, domain=domain)
            cli = client.connect(kind_client, ep)
            if kind_client == zmq.SUB:
                cli.setsockopt(zmq.SUBSCRIBE, b"")
            return srv, cli

        for _ in range(3):
            assert _transfers(*pair(zmq.PUSH, zmq.PULL, STAGES, subscriber), server_sends=True) == 0  # frames
            assert _transfers(*pair(zmq.PULL, zmq.PUSH, STAGES, subscriber), server_sends=False) == 0  # detections
            assert _transfers(*pair(zmq.PUB, zmq.SUB, SUBSCRIBERS, stage_client), server_sends=True) == 0
        assert _transfers(*pair(zmq.PUB, zmq.SUB, SUBSCRIBERS, subscriber), server_sends=True) > 0
        assert _transfers(*pair(zmq.PUSH, zmq.PULL, STAGES, stage_client), server_sends=True) > 0
        # every refused handshake is counted per socket kind (libzmq retries: at least once per attempt)
        assert server.authorised[STAGES].refused >= 6 and server.authorised[SUBSCRIBERS].refused >= 3
        with pytest.raises(ConfigError, match="security.keys_dir: refusing to bind"):
            SocketFactory().bind(zmq.PUSH, f"tcp://127.0.0.1:{free_tcp_port()}")  # tcp is never plain
    finally:
        for factory in (server, stage_client, subscriber):
            factory.close()


# ------------------------------------------------------------ the whole service over tcp
def _free_ports(n: int) -> int:
    """A base port with ``n`` free consecutive ports on loopback."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n > 65535:
            continue
        try:
            socks = [socket.socket() for _ in range(n)]
            for i, s in enumerate(socks):
                s.bind(("127.0.0.1", base + i))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free ports")


class _Strangers:
    """Sockets without the stages' key on the run's tcp ports, polled on a thread: PULLs on the
    frame port (no keys, unknown keys, the subscriber's key) and PUSHes of a forged end marker
    into the detections port; ``received`` counts what they got."""

    def __init__(self, frames_ep: str, detections_ep: str, keys_dir: str):
        self.ctx = zmq.Context()
        self.subscriber = SocketFactory(Security(keys_dir), context=self.ctx, role="subscriber")
        server_public = zmq.auth.load_certificate(Path(keys_dir) / "server.key")[0]
        plain = self.ctx.socket(zmq.PULL)
        plain.connect(frames_ep)
        unknown = self.ctx.socket(zmq.PULL)
        unknown.curve_publickey, unknown.curve_secretkey = zmq.curve_keypair()
        unknown.curve_serverkey = server_public
        unknown.connect(frames_ep)
        self.pulls = [plain, unknown, self.subscriber.connect(zmq.PULL, frames_ep)]
        self.pushes = [self.ctx.socket(zmq.PUSH), self.subscriber.connect(zmq.PUSH, detections_ep)]
        self.pushes[0].connect(detections_ep)
        self.received, self.sent = 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        ended = messages.encode(messages.StreamEnded("cam", 0, "forged"))  # would end the stream at once
        poller = zmq.Poller()
        for s in self.pulls:
            poller.register(s, zmq.POLLIN)
        while not self._stop.is_set():
            for s in self.pushes:
                try:
                    s.send_multipart(ended, flags=zmq.NOBLOCK)
                    self.sent += 1
                except zmq.Again:
                    pass
            for s, _ in poller.poll(50):
                s.recv_multipart()
                self.received += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.ctx.destroy(linger=0)


@pytest.mark.skipif(not DEFAULT_DETECTOR.exists(), reason=f"shipped model missing: {DEFAULT_DETECTOR}")
def test_strangers_on_the_tcp_ports_get_nothing_and_the_run_loses_no_frame(tmp_path):
    """The whole service over tcp without security.keys_dir: CURVE with the run's own keys.
    Strangers pull on the frame port and push forged end markers from before the first frame
    is sent; every frame is still tracked exactly once, nothing is skipped."""
    from pipeline.config import Config
    from pipeline.service import Service
    from pipeline.subscriber import EventCollector

    frames = 40
    base = _free_ports(3)
    config = Config(sources=[SourceConfig(url=str(write_test_video(tmp_path / "cam.avi", frames=frames)), id="cam")])
    config.transport.kind, config.transport.base_port = "tcp", base
    config.events.endpoint, config.events.mode = f"tcp://127.0.0.1:{base + 2}", "frame"
    config.output.dir, config.output.progress = str(tmp_path / "out"), False
    service = Service(config)
    keys = service.endpoints.keys_dir
    assert keys and stat.S_IMODE(Path(keys).parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((Path(keys) / "client.key_secret").stat().st_mode) == 0o600
    strangers = _Strangers(service.endpoints.frames[0], service.endpoints.detections, keys)
    collector = EventCollector(config.events.endpoint, service.endpoints.security)
    collector.start()
    cli = subprocess.Popen([sys.executable, "-m", "vidtrack", "subscribe", "--endpoint", config.events.endpoint,
                            "--keys", keys, "--type", "frame", "--count", "1", "--timeout", "60"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "PYTHONPATH": str(REPO)})
    # a subscriber that is still importing when the 40 frames go out sees none of them
    assert cli.stderr.readline().startswith("vidtrack subscribe: listening on")
    start = time.monotonic()
    try:
        summary = service.run()
    finally:
        elapsed = time.monotonic() - start
        strangers.close()
        collector.close()
        out, _ = cli.communicate(timeout=30)
    assert strangers.sent > 0 and strangers.received == 0
    assert summary.exit_code == 0 and summary.streams["cam"].frames_tracked == frames
    ended = [e for e in collector.events if e["type"] == "stream.ended"]
    assert ended and ended[0]["reason"] == "eof" and ended[0]["frames"] == frames and ended[0]["skipped"] == 0
    assert json.loads(out.splitlines()[0])["type"] == "frame"  # vidtrack subscribe --keys with the run's keys
    assert not Path(keys).exists()  # the run's keys went with its folder
    tracking_s = summary.last_frame_at - summary.first_frame_at  # from the first tracked frame to the last
    assert elapsed < 90 and tracking_s < 10, (elapsed, tracking_s)  # a stolen frame used to cost a 2 s wait
    print(f"run {elapsed:.1f} s, tracking {tracking_s:.2f} s")


# ------------------------------------------------------------ sizes before use
def _zmtp_greeting() -> bytes:
    return b"\xff" + b"\0" * 8 + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\0") + b"\x00" + b"\0" * 31


def _zmtp_ready(socket_type: bytes) -> bytes:
    body = b"\x05READY" + b"\x0bSocket-Type" + struct.pack(">I", len(socket_type)) + socket_type
    return b"\x04" + bytes([len(body)]) + body


def _announce_huge_part(path: str, size: int, limit: int) -> int:
    """Speak ZMTP 3.0 (NULL) to the unix socket ``path`` as a PUSH peer, announce one message part of
    ``size`` bytes and stream its bytes until the peer hangs up or ``limit`` were sent; returns how many."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(5)
    conn.connect(path)
    try:
        conn.sendall(_zmtp_greeting())
        greeting = b""
        while len(greeting) < 64:
            greeting += conn.recv(64 - len(greeting))
        conn.sendall(_zmtp_ready(b"PUSH"))
        conn.recv(256)  # the peer's READY
        conn.sendall(b"\x02" + struct.pack(">Q", size))
        sent, chunk = 0, b"\0" * (1 << 20)
        while sent < limit:
            conn.sendall(chunk)
            sent += len(chunk)
        return sent
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        return sent
    finally:
        conn.close()


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc for the tracker's peak memory")
def test_a_500mb_message_is_refused_without_being_read(tmp_path):
    """A raw ZMTP peer on the tracker process's detections socket announces a 500 MB part: the
    tracker hangs up after the part's length (ZMQ_MAXMSGSIZE) and keeps its memory; then a
    real stream still goes through."""
    spec = TrackerStageSpec(detections_endpoint=f"ipc://{tmp_path}/d", events=EventsConfig(endpoint=f"ipc://{tmp_path}/e"),
                            expected_streams=["cam"])
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    proc = ctx.Process(target=tracker_main, args=(spec, stop), daemon=True)
    proc.start()
    zctx = zmq.Context()
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "d").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        before = _peak_rss_mb(proc.pid)
        for _ in range(3):
            start = time.monotonic()
            sent = _announce_huge_part(str(tmp_path / "d"), 500_000_000, limit=200_000_000)
            assert sent < 50_000_000 and time.monotonic() - start < 5  # hung up after the part's length
        assert _peak_rss_mb(proc.pid) - before < 50
        push, sub = zctx.socket(zmq.PUSH), zctx.socket(zmq.SUB)
        sub.connect(spec.events_endpoint)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        push.connect(spec.detections_endpoint)
        time.sleep(0.3)
        for parts in _stream("cam", 5):
            push.send_multipart(parts)
        types = []
        while "stream.ended" not in types and sub.poll(10_000):
            types.append(json.loads(sub.recv_multipart()[1])["type"])
        assert "stream.ended" in types
        proc.join(20)  # it leaves by itself once its one configured stream ended
        assert proc.exitcode == 0
    finally:
        stop.set()
        proc.join(5)
        if proc.is_alive():
            proc.kill()
        zctx.destroy(linger=0)


_JPEG_PROBE = textwrap.dedent("""
    import json, resource, sys, time
    import cv2, numpy as np, zmq
    from wire import messages
    from workers.detector_config import DetectorConfig
    from workers.detector_worker import DetectorStage, DetectorStageSpec
    from base.types import Frame

    class ClassNames:
        class_names = ["a"]

    folder, repeat = sys.argv[1], int(sys.argv[2])
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.bind(f"ipc://{folder}/f")
    stage = DetectorStage(DetectorStageSpec([f"ipc://{folder}/f"], f"ipc://{folder}/d",
                                            DetectorConfig(batch_size=16, batch_wait_ms=20)), ClassNames(), None)
    image = np.full((120, 160, 3), 90, np.uint8)
    good = messages.encode(messages.FrameMessage(Frame("s", 0, 0.0, image), 0, "jpeg"))
    jpeg = bytearray(good[1])
    sof = next(i for i in range(2, len(jpeg) - 1) if jpeg[i] == 0xFF and jpeg[i + 1] == 0xC0)
    jpeg[sof + 5:sof + 9] = (6000).to_bytes(2, "big") * 2  # the JPEG now claims 6000x6000
    def batch():
        frames, deadline = [], time.monotonic() + 5
        while time.monotonic() < deadline and stage.stats.bad_messages + len(frames) < repeat:
            frames += stage._receive_batch()
        return frames
    push.send_multipart(good)
    frames = []
    while not frames:
        frames = stage._receive_batch()  # the decoder is loaded and warm
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(repeat):
        push.send_multipart([good[0], bytes(jpeg)])
    frames = batch()
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline
    print(json.dumps({"bad": stage.stats.bad_messages, "frames": len(frames), "grown_kb": grown}))
    stage._factory.close()
    ctx.destroy(linger=0)
""")


def test_a_jpeg_claiming_6000x6000_is_refused_without_allocating_it(tmp_path):
    """A fresh process (its peak memory is its own): frames whose JPEG header claims
    6000x6000 (108 MB decoded) under a 160x120 frame header, sent to a detector stage's frame
    socket, are refused from the header, and the peak memory does not grow."""
    run = subprocess.run([sys.executable, "-c", _JPEG_PROBE, str(tmp_path), str(REPEAT)], capture_output=True,
                         text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.splitlines()[-1])
    assert result["bad"] == REPEAT and result["frames"] == 0
    assert result["grown_kb"] < 20_000  # decoding one would take 108 MB


def test_jpeg_size_is_read_from_its_frame_header():
    ok, buf = cv2.imencode(".jpg", np.zeros((48, 64, 3), np.uint8))
    assert messages.jpeg_size(buf.tobytes()) == (48, 64, 3)
    for junk in (b"", b"\xff\xd8", b"\xff\xd8\xff\xda\x00\x02", b"not a jpeg at all", b"\xff\xd8\xff\xe0\x00\x00"):
        with pytest.raises(messages.ProtocolError):
            messages.jpeg_size(junk)


def test_a_video_wider_than_max_side_ends_its_stream_with_an_error_and_leaves_no_ring(tmp_path):
    path = tmp_path / "wide.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (messages.MAX_SIDE + 8, 16))
    assert writer.isOpened()
    for _ in range(3):
        writer.write(np.full((16, messages.MAX_SIDE + 8, 3), 80, np.uint8))
    writer.release()
    prefix = f"vidtrack-test-{os.getpid()}"
    for attempt in range(3):
        endpoint = f"ipc://{tmp_path}/f{attempt}"
        ctx = zmq.Context()
        pull = ctx.socket(zmq.PULL)
        pull.connect(endpoint)
        reports, release = [], threading.Event()  # set once the end marker is in, as the service does
        grabber = Grabber(GrabberSpec(SourceConfig(str(path), "wide"), endpoint, ring_slots=4, ring_prefix=prefix),
                          report=lambda **kw: reports.append(kw), release=release)
        start = time.monotonic()
        thread, errors = start_catching(grabber.run, SourceError)
        got = [messages.decode(p) for p in _receive_all(pull, 2.0)]
        release.set()
        thread.join(15)
        ctx.destroy(linger=0)
        assert not thread.is_alive() and time.monotonic() - start < 15
        assert errors and f"larger than the {messages.MAX_SIDE}-pixel limit" in str(errors[0])
        assert [r["event"] for r in reports] == ["error"]
        assert len(got) == 1 and isinstance(got[0], messages.StreamEnded) and got[0].reason.startswith("error")
        if frame_ring.available():
            assert not [e for e in os.listdir(frame_ring.SHM_DIR) if e.startswith(prefix)]


def test_ipc_sockets_live_in_a_private_folder_and_tcp_events_get_the_runs_keys(tmp_path):
    """Endpoints of an ipc run: socket files 0600 in a 0700 folder (no one else can connect);
    the tcp events socket gets keys made for the run in that folder; all removed."""
    from pipeline.config import config_from_dict
    from pipeline.service import Endpoints

    config = config_from_dict({"sources": [{"url": "a.mp4", "id": "a"}], "transport": {"kind": "ipc"}})
    endpoints = Endpoints(config)
    folder = Path(endpoints.detections[len("ipc://"):]).parent
    factory = SocketFactory(endpoints.security)
    try:
        factory.bind(zmq.PULL, endpoints.detections)
        factory.bind(zmq.PUSH, endpoints.frames[0])
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        for path in folder.iterdir():
            if path.is_socket():
                assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert Path(endpoints.keys_dir).parent == folder and endpoints.events.startswith("tcp://127.0.0.1:")
    finally:
        factory.close()
        endpoints.cleanup()
    assert not folder.exists()


def test_refused_curve_handshakes_reach_the_stage_metrics(tmp_path):
    """A stranger with a key of its own, refused by the tracker's detections and events
    sockets, shows up in the tracker's metrics report as bad messages, reason unauthorised_key."""
    from vidtrack.commands.demo import free_tcp_port

    keys = generate_keys(tmp_path / "keys")
    spec = TrackerStageSpec(detections_endpoint=f"tcp://127.0.0.1:{free_tcp_port()}",
                            events=EventsConfig(endpoint=f"tcp://127.0.0.1:{free_tcp_port()}"),
                            expected_streams=["cam"], exit_when_done=False, security=Security(str(keys)))
    reports, stop = [], threading.Event()
    stage = TrackerStage(spec, stop, report=lambda **kw: reports.append(kw))
    thread = threading.Thread(target=stage.run, daemon=True)
    thread.start()
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)  # knows the server's public key, presents a key of its own
    push.curve_publickey, push.curve_secretkey = zmq.curve_keypair()
    push.curve_serverkey = zmq.auth.load_certificate(keys / "server.key")[0]
    push.connect(spec.detections_endpoint)
    try:
        for _ in range(3):
            try:  # nothing takes it: the handshake is refused
                push.send_multipart(_detections("cam", 0), flags=zmq.NOBLOCK)
            except zmq.Again:
                pass
            time.sleep(0.3)

        def refused() -> int:
            return sum(r.get("counts", {}).get("bad_messages", {}).get("unauthorised_key", 0)
                       for r in reports if r.get("event") == "metrics")

        deadline = time.monotonic() + 10
        while refused() == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert refused() >= 1 and refused() == stage._factory.refused_clients()
        assert not [r for r in reports if r.get("event") == "frames"]  # nothing it sent was taken
    finally:
        stop.set()
        thread.join(5)
        ctx.destroy(linger=0)


def test_a_grabbers_resend_socket_takes_only_its_streams_requests_within_what_it_sent(tmp_path):
    """``vidtrack worker grabber``'s resend socket: forged, foreign, wrong-typed and
    out-of-range requests (asking to skip frames never sent) are counted and dropped; a valid
    one becomes a rewind."""
    from pipeline.standalone import ResendListener

    video = write_test_video(tmp_path / "v.avi", frames=5)
    grabber = Grabber(GrabberSpec(SourceConfig(str(video), "cam"), f"ipc://{tmp_path}/f"), rewind=RewindRequest())
    grabber.stats.sent = 100
    done = threading.Event()
    listener = ResendListener(Security(), f"ipc://{tmp_path}/resend", grabber, done).start()
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.connect(f"ipc://{tmp_path}/resend")
    try:
        for _ in range(REPEAT):
            push.send_multipart([b"\x00garbage"])
            push.send_multipart(messages.encode(messages.ResendRequest("other", 3)))
            push.send_multipart(messages.encode(messages.ResendRequest("cam", 101)))  # past what was sent
            push.send_multipart(messages.encode(messages.StreamStalled("cam", 1.0)))
        counted: dict[str, int] = {}
        deadline = time.monotonic() + 10
        while sum(counted.values()) < 4 * REPEAT and time.monotonic() < deadline:
            for reason, n in grabber.meter.flush()["counts"].get("bad_messages", {}).items():
                counted[reason] = counted.get(reason, 0) + n
            time.sleep(0.05)
        assert counted == {"malformed": REPEAT, "foreign": REPEAT, "out_of_range": REPEAT, "wrong_type": REPEAT}
        assert not grabber.rewind.pending()
        push.send_multipart(messages.encode(messages.ResendRequest("cam", 42)))
        deadline = time.monotonic() + 10
        while not grabber.rewind.pending() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert grabber.rewind.take() == (42, False)
    finally:
        done.set()
        listener.join()
        ctx.destroy(linger=0)
