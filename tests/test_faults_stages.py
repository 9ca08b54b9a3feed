"""Stage processes killed for real (SIGKILL) while the service runs a generated file: every
frame still appears once, in order, with the same track ids as an undisturbed run; deaths
are noticed within a second; past its restart budget a stage ends the stream or the run
with a clear error and exit code 1. Plus the end-of-stream cases that used to hang."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from base.paths import DEFAULT_DETECTOR
from base.types import Detections
from pipeline.supervision import RestartBudget, SupervisionConfig, describe_exit
from vidtrack.commands.demo import free_tcp_port
from vidtrack.synthetic import SceneConfig, write_scene
from wire import messages
from workers.grabber import Grabber, GrabberSpec, RewindRequest, SourceConfig
from workers import tracker_worker
from workers.tracker_worker import EventsConfig, TrackerStage, TrackerStageSpec

REPO = Path(__file__).resolve().parents[1]
FRAMES = 600
needs_model = pytest.mark.skipif(not DEFAULT_DETECTOR.exists(), reason=f"shipped model missing: {DEFAULT_DETECTOR}")


# ---------------------------------------------------------------- a service run as a user starts it
class Run:
    """``vidtrack run`` of a config in a subprocess; its output lines with their arrival times."""

    def __init__(self, config: Path):
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen([sys.executable, "-m", "vidtrack", "run", str(config)], env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=1)
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line))

    def output(self) -> str:
        return "".join(line for _, line in self.lines)

    def wait(self, timeout: float) -> int:
        """The run's exit code; a run still going after ``timeout`` s is killed and fails with its output."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            self._reader.join(5)
            raise AssertionError(f"the run did not end within {timeout} s:\n{self.output()}") from None
        self._reader.join(5)
        return code

    def child(self, title: str) -> int:
        """The pid of the child process that calls itself ``title`` (e.g. "vidtrack: tracker")."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                    cmdline = (entry / "cmdline").read_bytes().split(b"\0")[0].decode()
                except (OSError, IndexError, ValueError):
                    continue
                if ppid == self.proc.pid and cmdline == title:
                    return int(entry.name)
            time.sleep(0.05)
        raise AssertionError(f"no child {title!r}:\n{self.output()}")

    def line_after(self, since: float, text: str, timeout: float = 5.0) -> float:
        """Seconds from ``since`` until an output line containing ``text`` arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, line in list(self.lines):
                if at >= since and text in line:
                    return at - since
            time.sleep(0.02)
        raise AssertionError(f"no line {text!r} within {timeout} s:\n{self.output()}")

    def kill(self, title: str, name: str) -> float:
        """SIGKILL the child ``title``; returns how long the supervisor took to log its death."""
        pid = self.child(title)
        at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        return self.line_after(at, f"{name} died (killed by SIGKILL)")


def _config(tmp_path: Path, sources: list[tuple[Path, str]], extra: str = "") -> Path:
    text = "".join(f'[[sources]]\nurl = "{video}"\nid = "{sid}"\n' for video, sid in sources)
    text += f'[events]\nendpoint = "tcp://127.0.0.1:{free_tcp_port()}"\n'
    text += f'[output]\ndir = "{tmp_path / "out"}"\nprogress = false\n' + extra
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


def _progress(jsonl: Path) -> int:
    """The frame of the last complete event line written so far (-1 before any)."""
    try:
        lines = jsonl.read_bytes().split(b"\n")[:-1]
    except OSError:
        return -1
    for line in reversed(lines):
        try:
            return int(json.loads(line)["frame"])
        except ValueError:
            continue
    return -1


def _wait_for_frame(run: Run, jsonl: Path, frame: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while _progress(jsonl) < frame:
        assert run.proc.poll() is None, f"the run ended before frame {frame}:\n{run.output()}"
        assert time.monotonic() < deadline, f"no frame {frame} within {timeout} s:\n{run.output()}"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    return write_scene(tmp_path_factory.mktemp("scene"), SceneConfig(num_frames=FRAMES, width=320, height=180,
                                                                     seed=7)) / "video.mp4"


@pytest.fixture(scope="module")
def undisturbed(scene, tmp_path_factory) -> tuple[str, list[dict]]:
    """The MOT text and the events of a run that nothing disturbed."""
    if not DEFAULT_DETECTOR.exists():
        pytest.skip(f"shipped model missing: {DEFAULT_DETECTOR}")
    tmp = tmp_path_factory.mktemp("undisturbed")
    run = Run(_config(tmp, [(scene, "s")]))
    assert run.wait(120) == 0, run.output()
    return (tmp / "out" / "s.mot.txt").read_text(), _events(tmp / "out" / "s.events.jsonl")


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _assert_every_frame_once(events: list[dict]) -> None:
    frames = [e["frame"] for e in events]
    assert frames == sorted(frames), "events out of order"
    assert [e["type"] for e in events].count("stream.started") == 1
    ended = [e for e in events if e["type"] == "stream.ended"]
    assert len(ended) == 1 and ended[0]["frames"] == FRAMES and ended[0]["skipped"] == 0, ended


# ---------------------------------------------------------------- every stage killed, nothing lost
@needs_model
@pytest.mark.faults
def test_grabber_detector_and_tracker_killed_repeatedly_lose_no_frame(scene, undisturbed, tmp_path):
    rng = random.Random(15)
    kills = [("vidtrack: grabber s", "grabber-s"), ("vidtrack: tracker", "tracker"),
             ("vidtrack: detector-0", "detector-0"), ("vidtrack: grabber s", "grabber-s"),
             ("vidtrack: tracker", "tracker")]
    points = sorted(rng.sample(range(40, FRAMES - 60), len(kills)))
    # checkpoints every 50 frames: a killed tracker goes back up to 49 frames
    run = Run(_config(tmp_path, [(scene, "s")], "[supervision]\ncheckpoint_frames = 50\nbackoff_s = 0.2\n"))
    jsonl = tmp_path / "out" / "s.events.jsonl"
    noticed = []
    for (title, name), point in zip(kills, points):
        _wait_for_frame(run, jsonl, point)
        noticed.append(run.kill(title, name))
    assert run.wait(120) == 0, run.output()
    assert max(noticed) < 1.0, noticed  # each death logged within a second of the kill
    output = run.output()
    assert output.count("restarting it in") == len(kills), output
    mot, events = undisturbed
    got = _events(jsonl)
    _assert_every_frame_once(got)
    assert (tmp_path / "out" / "s.mot.txt").read_text() == mot  # same rows, same track ids
    assert got == events


@needs_model
@pytest.mark.faults
def test_two_detector_workers_lose_no_first_frames(scene, undisturbed, tmp_path):
    run = Run(_config(tmp_path, [(scene, "s")], "[detector]\nworkers = 2\n"))
    assert run.wait(180) == 0, run.output()
    mot, events = undisturbed
    _assert_every_frame_once(_events(tmp_path / "out" / "s.events.jsonl"))
    assert (tmp_path / "out" / "s.mot.txt").read_text() == mot


# ---------------------------------------------------------------- past the budget
@needs_model
@pytest.mark.faults
def test_stages_killed_past_their_budget_end_the_stream_then_the_run_with_exit_code_one(scene, tmp_path):
    other = write_scene(tmp_path / "other", SceneConfig(num_frames=1500, width=320, height=180, seed=9))
    config = _config(tmp_path, [(scene, "a"), (other / "video.mp4", "b")],
                     "[supervision]\nrestart_budget = 1\nbudget_recovery_s = 3600\nbackoff_s = 0.1\n")
    run = Run(config)
    a_events, b_events = tmp_path / "out" / "a.events.jsonl", tmp_path / "out" / "b.events.jsonl"
    _wait_for_frame(run, a_events, 20)
    run.kill("vidtrack: grabber a", "grabber-a")  # restarted: budget 1 -> 0
    _wait_for_frame(run, a_events, 60)
    run.kill("vidtrack: grabber a", "grabber-a")  # past the budget: stream a is given up
    run.line_after(0, "grabber-a died (killed by SIGKILL) more often than supervision.restart_budget allows")
    deadline = time.monotonic() + 30
    while '"stream.ended"' not in a_events.read_text():
        assert time.monotonic() < deadline, run.output()
        time.sleep(0.05)
    ended = _events(a_events)[-1]
    assert ended["type"] == "stream.ended" and "given up" in ended["reason"], ended
    progress_b = _progress(b_events)
    _wait_for_frame(run, b_events, progress_b + 30)  # the other stream goes on
    run.kill("vidtrack: tracker", "tracker")
    _wait_for_frame(run, b_events, _progress(b_events) + 30)
    run.kill("vidtrack: tracker", "tracker")  # past the budget: the run stops
    assert run.wait(60) == 1, run.output()
    output = run.output()
    assert "tracker died (killed by SIGKILL) more often than supervision.restart_budget allows; the run stops" \
        in output
    assert "frames tracked" in output  # the summary is printed


# ---------------------------------------------------------------- end of stream: nothing hangs
def _tracker(tmp_path, reports, timeout_s: float = 0.3) -> TrackerStage:
    spec = TrackerStageSpec(detections_endpoint=f"ipc://{tmp_path}/det",
                            events=EventsConfig(endpoint=f"ipc://{tmp_path}/ev"), expected_streams=["s"],
                            reorder_timeout_s=timeout_s)
    return TrackerStage(spec, report=lambda **kw: reports.append(kw))


def _detections_message(seq: int) -> messages.DetectionsMessage:
    boxes = np.array([[10 + seq, 10, 40 + seq, 80]], np.float32)
    det = Detections(boxes, np.array([0.9], np.float32), np.array([0], np.int32))
    return messages.DetectionsMessage("s", seq, seq, seq / 25.0, det)


class RunningTracker:
    """A tracker stage running on a thread, fed through a real PUSH socket."""

    def __init__(self, stage: TrackerStage):
        self.stage = stage
        stage.stop = threading.Event()
        self.push = zmq.Context.instance().socket(zmq.PUSH)
        self.push.connect(stage.spec.detections_endpoint)
        self.thread = threading.Thread(target=stage.run, daemon=True)
        self.thread.start()

    def send(self, *messages_) -> None:
        for message in messages_:
            self.push.send_multipart(messages.encode(message))

    def join(self, timeout: float) -> bool:
        """Wait for the stage to leave by itself (every stream ended); whether it did."""
        self.thread.join(timeout)
        done = not self.thread.is_alive()
        self.stage.stop.set()
        self.thread.join(5)
        self.push.close(0)
        return done


@pytest.mark.faults
def test_a_live_stream_whose_last_frame_was_lost_still_ends(tmp_path):
    reports = []
    tracker = RunningTracker(_tracker(tmp_path, reports))
    started = messages.StreamStarted("s", source="rtsp://cam", width=200, height=100, fps=25.0, live=True)
    tracker.send(started, *[_detections_message(i) for i in range(5)])
    tracker.send(messages.StreamEnded("s", 6, "eof"))  # frame 5 never arrives
    assert tracker.join(5), "the tracker waited for ever for the lost last frame"
    ended = [r for r in reports if r.get("event") == "stream.ended"]
    assert ended and ended[0]["frames"] == 5
    assert tracker.stage.streams["s"].skipped == 1


@pytest.mark.faults
def test_a_file_stream_waits_for_a_missing_frame_and_holds_detections_until_it_started(tmp_path):
    reports = []
    tracker = RunningTracker(_tracker(tmp_path, reports))
    started = messages.StreamStarted("s", source="v.mp4", width=200, height=100, fps=25.0, live=False)
    # detections before the stream.started (another detector forwarded it), frame 3 late
    tracker.send(*[_detections_message(i) for i in (0, 1, 2, 4)])
    tracker.send(started, messages.StreamEnded("s", 5, "eof"))
    time.sleep(1.5)  # far past the reorder timeout: a file waits
    state = tracker.stage.streams["s"]
    assert state.next_seq == 3 and not state.ended
    tracker.send(_detections_message(3), _detections_message(3), started)  # sent again, and a copy
    assert tracker.join(5)
    assert state.ended and state.frames == 5 and state.skipped == 0
    assert [r["event"] for r in reports].count("stream.started") == 1  # the repeat was ignored


def _unix_socket_paths(pid: int) -> list[str]:
    """Paths of the unix sockets process ``pid`` has open (its bound ipc endpoints)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            link = os.readlink(fd)
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    rows = [line.split() for line in Path("/proc/net/unix").read_text().splitlines()[1:]]
    return [row[7] for row in rows if len(row) >= 8 and row[6] in inodes]


@pytest.mark.faults
def test_a_file_frame_lost_without_a_death_is_asked_for_again_and_given_up_only_after_the_asks(tmp_path):
    reports = []
    tracker = RunningTracker(_tracker(tmp_path, reports, timeout_s=0.05))
    started = messages.StreamStarted("s", source="v.mp4", width=200, height=100, fps=25.0, live=False)
    tracker.send(started, *[_detections_message(i) for i in (0, 1, 2, 4, 5)])
    deadline = time.monotonic() + 5
    while not [r for r in reports if r.get("event") == "gap"] and time.monotonic() < deadline:
        time.sleep(0.01)
    gaps = [r for r in reports if r.get("event") == "gap"]
    assert gaps and gaps[0]["stream"] == "s" and gaps[0]["next_seq"] == 3
    tracker.send(_detections_message(3))  # what the rewound grabber sends again
    # frame 6 is lost for good: asked for GAP_RESENDS times, the waits doubling, then given up
    tracker.send(*[_detections_message(i) for i in (7, 8)], messages.StreamEnded("s", 9, "eof"))
    assert tracker.join(15), "the tracker waited for ever for a frame nobody sends again"
    state = tracker.stage.streams["s"]
    assert state.ended and state.frames == 8 and state.skipped == 1
    asks = [r for r in reports if r.get("event") == "gap"]
    assert [r["next_seq"] for r in asks] == [3] * (len(asks) - tracker_worker.GAP_RESENDS) + \
        [6] * tracker_worker.GAP_RESENDS
    assert "given up" not in str(asks)


@needs_model
@pytest.mark.faults
def test_frames_stolen_from_a_frame_socket_are_sent_again_and_none_is_lost(scene, undisturbed, tmp_path):
    run = Run(_config(tmp_path, [(scene, "s")]))
    jsonl = tmp_path / "out" / "s.events.jsonl"
    _wait_for_frame(run, jsonl, 100)
    (endpoint,) = {path for path in _unix_socket_paths(run.child("vidtrack: grabber s")) if path.endswith("/f0")}
    thief = zmq.Context.instance().socket(zmq.PULL)
    thief.rcvhwm = 1
    thief.connect(f"ipc://{endpoint}")
    stolen = 0
    deadline = time.monotonic() + 10
    while stolen < 3 and time.monotonic() < deadline:
        if thief.poll(50):
            thief.recv_multipart()
            stolen += 1
    thief.close(0)  # whatever the grabber had queued for it is lost too
    assert stolen == 3
    assert run.wait(180) == 0, run.output()
    output = run.output()
    assert "missing without a stage dying; asking for it again" in output
    assert "lost frames asked for again" in output
    mot, events = undisturbed
    got = _events(jsonl)
    _assert_every_frame_once(got)
    assert (tmp_path / "out" / "s.mot.txt").read_text() == mot
    assert got == events


def _pull(endpoint: str) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.PULL)
    sock.connect(endpoint)
    return sock


def _receive(sock: zmq.Socket, until_ended: bool = True, timeout_s: float = 30.0) -> list:
    got = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if sock.poll(100):
            message = messages.decode(sock.recv_multipart())
            got.append(message)
            if until_ended and isinstance(message, messages.StreamEnded):
                return got
    return got


@pytest.mark.faults
def test_a_file_end_marker_waits_for_a_detector_that_loads_slowly(tmp_path):
    video = write_scene(tmp_path / "scene", SceneConfig(num_frames=8, width=160, height=96, seed=3)) / "video.mp4"
    release = threading.Event()
    spec = GrabberSpec(SourceConfig(url=str(video), id="s"), endpoint=f"ipc://{tmp_path}/f")
    grabber = Grabber(spec, release=release)
    thread = threading.Thread(target=grabber.run, daemon=True)
    thread.start()
    time.sleep(12)  # longer than the old 10 s timeout of the end marker
    sock = _pull(spec.endpoint)
    got = _receive(sock)
    release.set()
    thread.join(10)
    sock.close(0)
    assert isinstance(got[0], messages.StreamStarted)
    assert [m.seq for m in got if isinstance(m, messages.FrameMessage)] == list(range(8))
    assert isinstance(got[-1], messages.StreamEnded) and got[-1].seq == 8


@pytest.mark.faults
def test_a_rewound_file_grabber_sends_the_same_frames_again_with_their_seq(tmp_path):
    video = write_scene(tmp_path / "scene", SceneConfig(num_frames=12, width=160, height=96, seed=4,
                                                        camera_pan=(3.0, 0.0))) / "video.mp4"
    release, rewind = threading.Event(), RewindRequest()
    spec = GrabberSpec(SourceConfig(url=str(video), id="s"), endpoint=f"ipc://{tmp_path}/f")
    sock = _pull(spec.endpoint)
    grabber = Grabber(spec, release=release, rewind=rewind)
    thread = threading.Thread(target=grabber.run, daemon=True)
    thread.start()
    first = _receive(sock)
    rewind.request(7)  # after its end marker, while it waits to be released
    again = _receive(sock)
    release.set()
    thread.join(10)
    sock.close(0)
    frames = {m.seq: m.frame for m in first if isinstance(m, messages.FrameMessage)}
    resent = [m for m in again if isinstance(m, messages.FrameMessage)]
    assert isinstance(again[0], messages.StreamStarted) and isinstance(again[-1], messages.StreamEnded)
    assert [m.seq for m in resent] == list(range(7, 12))
    for m in resent:
        assert m.frame.index == m.seq
        assert m.frame.timestamp == frames[m.seq].timestamp
        assert np.array_equal(m.frame.image, frames[m.seq].image)
    # the camera motion of the frames sent again is what was sent the first time (the grabber
    # replays the frames since the estimator's last corner detection): a rewind changes no output
    warps = {m.seq: m.warp for m in first if isinstance(m, messages.FrameMessage)}
    assert np.array_equal(warps[0], np.eye(2, 3)) and not np.array_equal(warps[7], np.eye(2, 3))
    for m in resent:
        np.testing.assert_array_equal(m.warp, warps[m.seq])


# ---------------------------------------------------------------- the restart budget
def test_restart_budget_backs_off_exponentially_up_to_a_cap_and_recovers_over_time():
    now = [0.0]
    budget = RestartBudget(SupervisionConfig(restart_budget=3, budget_recovery_s=10.0, backoff_s=0.5,
                                             backoff_max_s=1.5), clock=lambda: now[0])
    assert [budget.next_delay(0.1) for _ in range(3)] == [0.5, 1.0, 1.5]
    assert budget.next_delay(0.1) is None  # spent
    now[0] = 10.0
    assert budget.left == 1  # one restart back per budget_recovery_s
    assert budget.next_delay(5.0) == 0.5  # up longer than the cap: the backoff starts over
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL" and describe_exit(1) == "exit code 1"


@pytest.mark.faults
def test_a_file_stream_whose_last_frames_and_end_marker_were_lost_is_asked_for_again(tmp_path):
    """Nothing buffered and no end marker: the tracker would wait for ever. After
    SILENCE_ASKS reorder timeouts of silence it asks for the frames from next_seq, the waits
    doubling; what is sent again ends the stream with nothing skipped."""
    reports = []
    tracker = RunningTracker(_tracker(tmp_path, reports, timeout_s=0.05))
    started = messages.StreamStarted("s", source="v.mp4", width=200, height=100, fps=25.0, live=False)
    tracker.send(started, *[_detections_message(i) for i in range(3)])  # 3, 4 and the end marker lost
    deadline = time.monotonic() + 5
    while len([r for r in reports if r.get("event") == "gap"]) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    asks = [r for r in reports if r.get("event") == "gap"]
    assert len(asks) >= 3 and {r["next_seq"] for r in asks} == {3}
    tracker.send(*[_detections_message(i) for i in (3, 4)], messages.StreamEnded("s", 5, "eof"))
    assert tracker.join(5)
    state = tracker.stage.streams["s"]
    assert state.ended and state.frames == 5 and state.skipped == 0
