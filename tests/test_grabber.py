"""Grabbers over real ZeroMQ sockets, reading real (small, generated) video files."""
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from wire import messages
from tests.helpers import decode_all, start_catching, write_test_video
from base.errors import SourceError
from workers.grabber import Grabber, GrabberSpec, SourceConfig
from workers.sources import VideoSource, source_kind

REPO = Path(__file__).resolve().parents[1]


def _receive_all(endpoint, timeout_s=20.0, delay_s=0.0):
    """Pull every message until stream.ended; returns (frames, controls)."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.PULL)
    sock.rcvhwm = 2
    sock.connect(endpoint)
    frames, controls = [], []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if not sock.poll(200):
                continue
            message = messages.decode(sock.recv_multipart())
            if isinstance(message, messages.FrameMessage):
                frames.append((message.frame, message.seq))
                if delay_s:
                    time.sleep(delay_s)  # a slow consumer
            else:
                controls.append(message)
                if isinstance(message, messages.StreamEnded):
                    break
    finally:
        sock.close(0)
    return frames, controls


def test_source_kinds():
    assert source_kind(0) == "camera" and source_kind("2") == "camera"
    assert source_kind("rtsp://127.0.0.1/x") == "network" and source_kind("http://h/a.mjpg") == "network"
    assert source_kind("clip.mp4") == "file"


def test_missing_file_gives_clear_error(tmp_path):
    with pytest.raises(SourceError, match="not found"):
        VideoSource(str(tmp_path / "nope.mp4"))


_OPEN_REFUSED_THREE_TIMES = """
import sys
from base.errors import SourceError
from workers.sources import VideoSource, quiet_native_logs
quiet_native_logs()
for _ in range(3):
    try:
        VideoSource(sys.argv[1], open_timeout_s=1.0)
    except SourceError as exc:
        print(exc)
"""


@pytest.mark.parametrize("user_level", [None, "16"])
def test_a_refused_camera_does_not_fill_stderr_unless_the_user_asks(user_level):
    """A grabber process quiets FFmpeg and OpenCV (a camera that is down made FFmpeg print two
    lines a second for as long as it was down); a level the user set wins. Real FFmpeg
    connects to a loopback port where nothing listens, in a process of its own."""
    from vidtrack.commands.demo import free_tcp_port

    env = {k: v for k, v in os.environ.items() if k not in ("OPENCV_FFMPEG_LOGLEVEL", "OPENCV_LOG_LEVEL")}
    if user_level is not None:
        env["OPENCV_FFMPEG_LOGLEVEL"] = user_level
    url = f"rtsp://127.0.0.1:{free_tcp_port()}/cam"
    run = subprocess.run([sys.executable, "-c", _OPEN_REFUSED_THREE_TIMES, url], capture_output=True, text=True,
                         timeout=60, env={**env, "PYTHONPATH": str(REPO)})
    lines = (run.stdout + run.stderr).splitlines()  # with a level set, OpenCV prints FFmpeg's lines on stdout
    errors = [line for line in lines if line.startswith(f"cannot open network source '{url}'")]
    assert len(errors) == 3
    if user_level is None:
        assert lines == errors
        assert all("OPENCV_FFMPEG_LOGLEVEL=16 prints FFmpeg's reason" in e for e in errors)
    else:
        assert sum("Connection refused" in line for line in lines) >= 3  # one per connect tried
        assert not any("OPENCV_FFMPEG_LOGLEVEL" in e for e in errors)


def test_opening_a_camera_that_does_not_answer_waits_timeout_seconds_once():
    """A loopback port that accepts the connection and never says a word: the open gives up
    after ``open_timeout_s``, not twice that (it once tried again without the decoder thread
    count, which FFmpeg takes anyway)."""
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        start = time.monotonic()
        with pytest.raises(SourceError, match="cannot open network source"):
            VideoSource(f"rtsp://127.0.0.1:{silent.getsockname()[1]}/cam", open_timeout_s=2.0)
        elapsed = time.monotonic() - start
    assert 1.5 < elapsed < 3.0, elapsed  # the timeout's own wait, and not a second one (4 s)


def test_decode_threads_set_and_frames_unchanged(tmp_path):
    import cv2

    video = write_test_video(tmp_path / "clip.avi", frames=12)
    one, default = VideoSource(str(video), decode_threads=1), VideoSource(str(video), decode_threads=0)
    assert one._cap.get(cv2.CAP_PROP_N_THREADS) == 1
    for _ in range(12):
        a, b = one.read(), default.read()
        np.testing.assert_array_equal(a[1], b[1])
    assert one.read() is None and default.read() is None


def test_unreadable_file_gives_clear_error(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    with pytest.raises(SourceError):
        source = VideoSource(str(bad))
        source.read()


def test_file_is_lossless_and_in_order_with_a_slow_consumer(tmp_path):
    video = write_test_video(tmp_path / "v.avi", frames=40)
    expected = decode_all(video)
    endpoint = f"ipc://{tmp_path}/f0"
    release = threading.Event()
    grabber = Grabber(GrabberSpec(SourceConfig(str(video), "s1"), endpoint, hwm=2), release=release)
    thread = threading.Thread(target=grabber.run)
    thread.start()
    frames, controls = _receive_all(endpoint, delay_s=0.005)
    release.set()
    thread.join(10)
    assert [c.TYPE for c in controls] == ["stream.started", "stream.ended"]
    assert controls[0].frames == 40 and controls[0].live is False
    assert controls[1].seq == 40 and controls[1].reason == "eof"
    assert [f.index for f, _ in frames] == list(range(40))
    assert [seq for _, seq in frames] == list(range(40))
    for (frame, _), image in zip(frames, expected):
        np.testing.assert_array_equal(frame.image, image)
    assert grabber.stats.dropped == 0
    # media timestamps from the file's frame rate
    assert frames[10][0].timestamp == pytest.approx(10 / 25.0)


def test_file_through_a_shared_memory_ring_is_lossless_and_exact(tmp_path):
    """ring_slots > 0: pixels go through /dev/shm, the message carries the slot; with a slow
    consumer that frees each slot only after reading it, every frame arrives once, exact."""
    from wire import frame_ring

    if not frame_ring.available():
        pytest.skip("no writable /dev/shm")
    video = write_test_video(tmp_path / "v.avi", frames=30)
    expected = decode_all(video)
    endpoint = f"ipc://{tmp_path}/f0"
    release = threading.Event()
    prefix = f"vidtrack-gtest{tmp_path.name[-8:]}"
    grabber = Grabber(GrabberSpec(SourceConfig(str(video), "s1"), endpoint, hwm=2, ring_slots=3, ring_prefix=prefix),
                      release=release)
    thread = threading.Thread(target=grabber.run)
    thread.start()
    reader = frame_ring.RingReader()
    sock = zmq.Context.instance().socket(zmq.PULL)
    sock.connect(endpoint)
    got = []
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if not sock.poll(200):
                continue
            parts = sock.recv_multipart()
            message = messages.decode(parts, reader)
            if isinstance(message, messages.FrameMessage):
                assert len(parts[1]) == 0 and message.encoding == "shm"  # pixels are in the ring, not the message
                got.append((message.frame.index, message.frame.image.copy()))
                time.sleep(0.005)
                reader.release_all()
            elif isinstance(message, messages.StreamEnded):
                break
    finally:
        release.set()
        thread.join(10)
        sock.close(0)
        reader.close()
    assert [i for i, _ in got] == list(range(30))
    for (_, image), ref in zip(got, expected):
        np.testing.assert_array_equal(image, ref)
    assert len(grabber._ring.rings) == 0  # closed: the ring file is gone
    assert frame_ring.cleanup(prefix) == 0


def test_live_source_drops_old_frames_instead_of_building_latency(tmp_path):
    """A file forced to 'live' is read as fast as it decodes; a slow consumer gets the newest frames."""
    video = write_test_video(tmp_path / "v.avi", frames=300)
    endpoint = f"ipc://{tmp_path}/f0"
    release = threading.Event()
    grabber = Grabber(GrabberSpec(SourceConfig(str(video), "live", live=True), endpoint, hwm=1), release=release)
    thread = threading.Thread(target=grabber.run)
    thread.start()
    frames, controls = _receive_all(endpoint, delay_s=0.02)
    release.set()
    thread.join(10)
    indices = [f.index for f, _ in frames]
    assert controls[-1].TYPE == "stream.ended"
    assert grabber.stats.dropped > 0 and controls[-1].dropped == grabber.stats.dropped
    assert len(frames) + grabber.stats.dropped == 300  # every captured frame is either sent or counted
    assert indices == sorted(indices) and len(set(indices)) == len(indices)
    assert [seq for _, seq in frames] == list(range(len(frames)))  # seq stays gap-free


def test_stop_ends_a_file_early_with_an_end_marker(tmp_path):
    video = write_test_video(tmp_path / "v.avi", frames=200)
    endpoint = f"ipc://{tmp_path}/f0"
    stop = threading.Event()
    release = threading.Event()
    grabber = Grabber(GrabberSpec(SourceConfig(str(video), "s"), endpoint, hwm=1), stop=stop, release=release)
    thread = threading.Thread(target=grabber.run)
    thread.start()
    threading.Timer(0.3, stop.set).start()
    frames, controls = _receive_all(endpoint, delay_s=0.01)
    release.set()
    thread.join(10)
    assert controls[-1].TYPE == "stream.ended" and controls[-1].reason == "stopped"
    assert controls[-1].seq == len(frames) < 200


def test_grabber_reports_missing_source_and_still_ends_stream(tmp_path):
    endpoint = f"ipc://{tmp_path}/f0"
    reports = []
    grabber = Grabber(GrabberSpec(SourceConfig(str(tmp_path / "missing.mp4"), "s"), endpoint),
                      report=lambda **kw: reports.append(kw))
    thread, errors = start_catching(grabber.run, SourceError)
    frames, controls = _receive_all(endpoint)
    thread.join(10)
    assert errors and "not found" in str(errors[0])
    assert reports[0]["event"] == "error"
    assert controls[-1].TYPE == "stream.ended" and controls[-1].reason.startswith("error")


def test_network_camera_is_live_reconnects_then_ends(tmp_path):
    """A real MJPEG-over-HTTP camera on loopback, read as a live source; when it goes offline
    the grabber tries to reconnect, then gives up with a clear reason."""
    from tests.mjpeg_server import MjpegCamera

    endpoint = f"ipc://{tmp_path}/f0"
    with MjpegCamera(frames=30, fps=100) as camera:
        release = threading.Event()
        grabber = Grabber(GrabberSpec(SourceConfig(camera.url, "cam", reconnect_attempts=2), endpoint, hwm=2), release=release)
        thread = threading.Thread(target=grabber.run)
        thread.start()
        frames, controls = _receive_all(endpoint, timeout_s=30)
        release.set()
        thread.join(10)
    assert controls[0].TYPE == "stream.started" and controls[0].live is True
    assert controls[-1].TYPE == "stream.ended"
    assert controls[-1].reason == "error: source stopped answering"
    assert grabber.stats.captured == 30
    assert len(frames) + grabber.stats.dropped == 30
    assert frames[0][0].image.shape == (120, 160, 3)


def test_read_into_a_given_array_decodes_in_place(tmp_path):
    video = write_test_video(tmp_path / "v.avi", frames=3)
    expected = decode_all(video)
    with VideoSource(str(video)) as src:
        buf = np.zeros_like(expected[0])
        _, image = src.read(out=buf)
        assert np.shares_memory(image, buf)
        np.testing.assert_array_equal(buf, expected[0])
        wrong = np.zeros((8, 8, 3), np.uint8)  # another size: a new array, the buffer untouched
        _, image = src.read(out=wrong)
        assert not np.shares_memory(image, wrong) and not wrong.any()
        np.testing.assert_array_equal(image, expected[1])


def test_file_frames_are_decoded_into_ring_slots_and_no_slot_leaks(tmp_path):
    """After the first frame (which sizes the ring by copy) every frame is decoded straight into
    its slot; end of file and a frame of another size leave no slot claimed."""
    from wire import frame_ring

    if not frame_ring.available():
        pytest.skip("no writable /dev/shm")
    video = write_test_video(tmp_path / "v.avi", frames=4)
    prefix = f"vidtrack-rtest{tmp_path.name[-8:]}"
    grabber = Grabber(GrabberSpec(SourceConfig(str(video), "s1"), f"ipc://{tmp_path}/f0", ring_slots=8, ring_prefix=prefix))
    try:
        with VideoSource(str(video)) as src:
            item, slot = grabber._read_into_ring(src, None)
            assert item is not None and slot is None  # first frame: read, then copied by put
            grabber._ring.put(item[1])
            item, slot = grabber._read_into_ring(src, item[1].shape)
            assert slot is not None
            ring = grabber._ring.rings[-1]
            np.testing.assert_array_equal(ring.view(slot[1], item[1].shape), item[1])
            busy = int((ring.states == 1).sum())
            item, slot = grabber._read_into_ring(src, (8, 8, 3))  # another size: copy path, slot freed
            assert item is not None and slot is None and int((ring.states == 1).sum()) == busy
            grabber._read_into_ring(src, item[1].shape)
            item, slot = grabber._read_into_ring(src, item[1].shape)  # end of file
            assert item is None and slot is None and int((ring.states == 1).sum()) == busy + 1
    finally:
        grabber.close()
    assert frame_ring.cleanup(prefix) == 0


def test_stall_watch_reports_one_stall_and_one_resume_per_outage():
    """Stalled after stall_s without a frame, once; a stray frame in the outage is no resume;
    resumed after confirm_s of frames, with the gap from the last frame before the stall."""
    from workers.grabber import StallWatch

    watch = StallWatch(2.0, now=0.0, confirm_s=0.5)
    assert watch.frame(0.04) is None and watch.idle(1.0) is None
    assert watch.idle(2.1) == pytest.approx(2.06) and watch.stalled
    assert watch.idle(5.0) is None  # once per outage
    assert watch.frame(6.0) is None  # a stray frame ...
    assert watch.idle(9.0) is None and watch.stalled  # ... then nothing again: still the same outage
    assert [watch.frame(t) for t in (12.0, 12.2, 12.4)] == [None, None, None]
    assert watch.frame(12.5) == pytest.approx(12.0 - 0.04) and not watch.stalled
    assert watch.idle(14.0) is None and watch.idle(14.6) == pytest.approx(2.1)  # the next outage


def test_reconnect_backoff_doubles_up_to_its_cap(tmp_path):
    grabber = Grabber(GrabberSpec(SourceConfig("rtsp://127.0.0.1:9/x", "s", reconnect_delay_seconds=0.25,
                                               reconnect_max_delay_seconds=3.0), f"ipc://{tmp_path}/f0"))
    try:
        assert [grabber.reconnect_delay(a) for a in (1, 2, 3, 4, 5, 10_000)] == [0.25, 0.5, 1.0, 2.0, 3.0, 3.0]
    finally:
        grabber.close()


def test_a_live_source_reconnects_for_ever_by_default():
    assert SourceConfig("rtsp://h/x").reconnect_attempts == 0  # 0 = for ever


def test_a_live_source_keeps_at_most_hwm_frames_in_flight_in_its_ring(tmp_path):
    """A detector that holds the ring slots of the frames it has (a slow batch): the live
    grabber sends no more than hwm frames ahead of it and drops (counts) the rest, instead of
    filling every slot and queueing seconds of frames."""
    from wire import frame_ring

    if not frame_ring.available():
        pytest.skip("no writable /dev/shm")
    video = write_test_video(tmp_path / "v.avi", frames=200)
    endpoint = f"ipc://{tmp_path}/f0"
    release = threading.Event()
    prefix = f"vidtrack-ltest{tmp_path.name[-8:]}"
    grabber = Grabber(GrabberSpec(SourceConfig(str(video), "cam", live=True), endpoint, hwm=3, ring_slots=28,
                                  ring_prefix=prefix), release=release)
    thread = threading.Thread(target=grabber.run)
    thread.start()
    reader = frame_ring.RingReader()
    sock = zmq.Context.instance().socket(zmq.PULL)
    sock.connect(endpoint)
    got, most_busy = 0, 0
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not sock.poll(200):
                continue
            message = messages.decode(sock.recv_multipart(), reader)
            if isinstance(message, messages.StreamEnded):
                break
            if isinstance(message, messages.FrameMessage):
                got += 1
                most_busy = max(most_busy, grabber._ring.busy())
                if got % 3 == 0:  # a batch of 3 done, a while later
                    time.sleep(0.05)
                    reader.release_all()
    finally:
        release.set()
        thread.join(10)
        sock.close(0)
        reader.close()
    assert most_busy <= 3
    assert grabber.stats.dropped > 0 and got + grabber.stats.dropped == 200
    assert frame_ring.cleanup(prefix) == 0


def test_large_frames_lower_the_frame_sockets_high_water_mark_and_lose_nothing(tmp_path):
    """Frames sent inline are queued up to transport.queue_mb of pixels, not only hwm frames."""
    video = write_test_video(tmp_path / "v.avi", frames=20)
    height, width = decode_all(video)[0].shape[:2]
    endpoint = f"ipc://{tmp_path}/f0"
    release = threading.Event()
    queue_bytes = 2 * width * height * 3 + 1  # room for two frames
    grabber = Grabber(GrabberSpec(SourceConfig(str(video), "s1"), endpoint, hwm=8, queue_bytes=queue_bytes),
                      release=release)
    thread = threading.Thread(target=grabber.run)
    thread.start()
    frames, controls = _receive_all(endpoint, delay_s=0.005)
    release.set()
    thread.join(10)
    assert grabber.hwm == 2
    assert [seq for _, seq in frames] == list(range(20)) and controls[-1].seq == 20
    small = Grabber(GrabberSpec(SourceConfig(str(video), "s2"), f"ipc://{tmp_path}/f1", hwm=8), release=release)
    small.run()  # released already: sends into the void and ends
    assert small.hwm == 8  # 64 MB of these frames is more than 8
