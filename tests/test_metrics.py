"""/metrics and /healthz of a real running service, ``vidtrack status`` against it, and the
run summary's per-stage counts: forged messages sent to the tracker's real socket, a detector
killed with SIGKILL mid-run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import zmq

from base.errors import ConfigError
from base.paths import DEFAULT_DETECTOR
from pipeline.config import Config, SourceConfig, config_from_dict
from pipeline.metrics import ServiceMetrics
from pipeline.report import format_summary
from pipeline.service import Service
from vidtrack.commands.demo import free_tcp_port
from vidtrack.commands.status import samples
from vidtrack.synthetic import SceneConfig, write_scene
from workers.meter import StageMeter

REPO = Path(__file__).resolve().parents[1]
FRAMES = 600
STREAMS = ("left", "right")
FORGED = 3

needs_model = pytest.mark.skipif(not DEFAULT_DETECTOR.exists(), reason=f"shipped model missing: {DEFAULT_DETECTOR}")


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except urllib.error.URLError:  # not listening (yet, or any more)
        return 0, b""


def metric(port: int, name: str, **labels) -> float:
    """The value of sample ``name`` with ``labels`` (0 when absent)."""
    text = get(port, "/metrics")[1].decode()
    return sum(v for got, v in samples(text).get(name, []) if all(got.get(k) == w for k, w in labels.items()))


def wait_for(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def vidtrack_status(port: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vidtrack", "status", "--endpoint", f"127.0.0.1:{port}"],
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=60)


def scenario(service: Service, port: int) -> dict:
    """What a scraper sees during the run, step by step."""
    seen: dict = {}
    wait_for(lambda: get(port, "/healthz")[0] == 200, 120, "every stage up")
    seen["health_up"] = json.loads(get(port, "/healthz")[1])
    def frames() -> dict:
        return {s: metric(port, "vidtrack_frames_out_total", stage="tracker", stream=s) for s in STREAMS}

    def frames_of_every_stream() -> dict | None:
        tracked = frames()
        return tracked if all(tracked.values()) else None

    seen["frames_1"] = wait_for(frames_of_every_stream, 60, "frames tracked")
    time.sleep(1.0)
    seen["frames_2"] = frames()
    forger = zmq.Context.instance().socket(zmq.PUSH)  # a stranger on the tracker's real detections socket
    forger.linger = 1000
    forger.connect(service.endpoints.detections)
    for i in range(FORGED):
        forger.send_multipart([b"\x00forged" + bytes([i]) * 40, os.urandom(64)])
    forger.close()
    seen["bad"] = wait_for(lambda: (n := metric(port, "vidtrack_bad_messages_total", stage="tracker")) >= FORGED and n,
                           10, "the forged messages counted")
    seen["bad_reasons"] = {labels["reason"]: v for labels, v in
                           samples(get(port, "/metrics")[1].decode())["vidtrack_bad_messages_total"]}
    seen["status"] = vidtrack_status(port)
    os.kill(service._children["detector-0"].pid, signal.SIGKILL)
    seen["health_down"] = wait_for(lambda: (r := get(port, "/healthz"))[0] == 503 and r, 5, "/healthz 503")
    seen["restarts"] = wait_for(lambda: metric(port, "vidtrack_restarts_total", process="detector-0"), 10,
                                "the restart counted")
    seen["health_again"] = wait_for(lambda: get(port, "/healthz")[0] == 200, 120, "/healthz 200 after the restart")
    return seen


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("metrics")
    scene = write_scene(root / "scene", SceneConfig(num_frames=FRAMES, width=320, height=180, seed=5))
    config = Config(sources=[SourceConfig(url=str(scene / "video.mp4"), id=s) for s in STREAMS])
    config.events.endpoint = f"tcp://127.0.0.1:{free_tcp_port()}"
    port = free_tcp_port()
    config.metrics.endpoint = f"127.0.0.1:{port}"
    config.output.dir = str(root / "out")
    config.output.progress = False
    service = Service(config)
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(summary=service.run()), daemon=True)
    thread.start()
    try:
        seen = scenario(service, port)
    finally:
        thread.join(180)
    assert not thread.is_alive(), "the service did not end"
    seen["status_after"] = vidtrack_status(port)
    return {"seen": seen, "summary": result["summary"], "port": port}


@needs_model
@pytest.mark.faults
def test_metrics_count_frames_per_stream_during_the_run(run):
    before, after = run["seen"]["frames_1"], run["seen"]["frames_2"]
    assert all(after[s] > before[s] > 0 for s in STREAMS), (before, after)


@needs_model
@pytest.mark.faults
def test_forged_messages_on_a_real_socket_are_counted_per_stage_and_reason(run):
    assert run["seen"]["bad_reasons"] == {"malformed": FORGED}


@needs_model
@pytest.mark.faults
def test_healthz_is_200_then_503_after_a_child_is_killed(run):
    seen = run["seen"]
    assert seen["health_up"]["status"] == "ok"
    assert set(seen["health_up"]["stages"]) == {"tracker", "detector-0", "grabber-left", "grabber-right"}
    body = json.loads(seen["health_down"][1])
    assert body["status"] == "unavailable" and body["stages"]["detector-0"] in ("starting", "exited (-9)")
    assert body["stages"]["tracker"] == "running"
    assert seen["restarts"] == 1 and seen["health_again"]


@needs_model
@pytest.mark.faults
def test_vidtrack_status_prints_a_running_service_and_fails_without_one(run):
    status = run["seen"]["status"]
    assert status.returncode == 0, status.stderr
    out = status.stdout
    assert ": ok" in out.splitlines()[0]
    for word in ("detector-0", "grabber-left", "left", "right", "tracker", "malformed", "mean ms"):
        assert word in out, out
    after = run["seen"]["status_after"]
    assert after.returncode == 3 and "cannot reach" in after.stderr


@needs_model
@pytest.mark.faults
def test_the_summary_shows_every_stage_with_the_trackers_bad_messages(run):
    summary = run["summary"]
    text = format_summary(summary)
    assert f"{FORGED} bad messages (malformed {FORGED})" in text.split("tracker:")[1].splitlines()[0], text
    assert "grabbers: " in text and "detector: " in text and "restarts: detector-0 1" in text
    stages = summary.stages
    assert stages["grabber"]["frames_out"] >= 2 * FRAMES  # every frame sent (a re-send would count again)
    tracker = stages["tracker"]
    assert tracker["frames_out"] == sum(s.frames_tracked for s in summary.streams.values())
    assert tracker["frames_out"] + tracker.get("skipped", 0) == 2 * FRAMES  # a killed detector's frames: skipped


def test_totals_survive_a_restarted_child_and_render_as_prometheus_text():
    metrics = ServiceMetrics()
    for _ in range(2):  # a child, then its restart: each counts from zero
        meter = StageMeter()
        meter.count("frames_out", "cam1", 5)
        meter.count("bad_messages", "malformed")
        meter.observe("frame", 0.003)
        metrics.add("tracker", meter.flush())
    text = samples(__import__("prometheus_client").generate_latest(metrics.registry).decode())
    assert text["vidtrack_frames_out_total"] == [({"stage": "tracker", "stream": "cam1"}, 10.0)]
    assert text["vidtrack_bad_messages_total"] == [({"stage": "tracker", "reason": "malformed"}, 2.0)]
    assert ({"stage": "tracker", "kind": "frame", "le": "0.005"}, 2.0) in text["vidtrack_stage_latency_seconds_bucket"]
    assert metrics.stage_counts() == {"tracker": {"frames_out": 10, "bad_messages": {"malformed": 2}}}


@pytest.mark.parametrize("table, problem", [
    ({"endpoint": "9560"}, "metrics.endpoint: must be HOST:PORT"),
    ({"endpoint": "127.0.0.1:70000"}, "metrics.endpoint: port must be at most 65535"),
    ({"endpoint": "0.0.0.0:9560"}, "metrics.endpoint: refusing to bind"),
    ({"endpoint": 9560}, "metrics.endpoint: expected a string"),
    ({"port": 1}, "metrics.port: unknown key"),
])
def test_the_metrics_table_is_validated(table, problem):
    with pytest.raises(ConfigError, match=problem):
        config_from_dict({"sources": [{"url": "x.mp4"}], "metrics": table})


def test_metrics_beyond_loopback_need_allow_remote_and_off_is_empty_or_port_0():
    config = config_from_dict({"sources": [{"url": "x.mp4"}], "metrics": {"endpoint": "0.0.0.0:9560"},
                               "transport": {"allow_remote": True}})
    assert config.metrics.endpoint == "0.0.0.0:9560"
    for off in ("", "127.0.0.1:0"):
        assert config_from_dict({"sources": [{"url": "x.mp4"}], "metrics": {"endpoint": off}}).metrics.endpoint == off


def test_a_metrics_port_in_use_stops_the_start_with_the_key_named_and_leaves_nothing(tmp_path):
    import socket
    import tempfile

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    config = Config(sources=[SourceConfig(url=str(tmp_path / "x.mp4"), id="x")])
    config.metrics.endpoint = f"127.0.0.1:{taken.getsockname()[1]}"
    config.output.dir = ""
    folders = set(Path(tempfile.gettempdir()).glob("vt-*"))
    service = Service(config)
    try:
        with pytest.raises(ConfigError, match="metrics.endpoint: cannot listen on 127.0.0.1"):
            service.run()
    finally:
        taken.close()
    assert service._children == {}  # nothing started
    assert set(Path(tempfile.gettempdir()).glob("vt-*")) == folders
