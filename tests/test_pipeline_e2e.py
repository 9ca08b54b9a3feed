"""The whole service as separate processes over real ZeroMQ sockets, on a generated scene.

Uses the shipped detector (models/detector-synthetic.keras) and the colour-histogram embedder.
"""
from __future__ import annotations

import json
from collections import defaultdict

import jsonschema
import numpy as np
import pytest

from pipeline.config import Config, SourceConfig
from wire.events import load_schema
from pipeline.service import Service
from pipeline.subscriber import EventCollector
from vidtrack.commands.demo import free_tcp_port
from vidtrack.evaluation import evaluate_mot
from base.mot import read_mot
from base.paths import DEFAULT_DETECTOR
from vidtrack.synthetic import SceneConfig, write_scene

FRAMES = 80

pytestmark = pytest.mark.skipif(not DEFAULT_DETECTOR.exists(), reason=f"shipped model missing: {DEFAULT_DETECTOR}")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One service run: a good scene plus a missing file, events collected by a subscriber."""
    root = tmp_path_factory.mktemp("e2e")
    scene = write_scene(root / "scene", SceneConfig(num_frames=FRAMES, seed=4242))
    config = Config(sources=[SourceConfig(url=str(scene / "video.mp4"), id="scene"),
                             SourceConfig(url=str(root / "missing.mp4"), id="broken")])
    config.events.endpoint = f"tcp://127.0.0.1:{free_tcp_port()}"
    config.events.mode = "frame"
    config.output.dir = str(root / "out")
    config.output.video = True
    config.output.progress = False
    service = Service(config)
    collector = EventCollector(config.events.endpoint, service.endpoints.security)
    collector.start()
    summary = service.run()
    collector.close()
    return {"root": root, "scene": scene, "summary": summary, "events": collector.events, "out": root / "out",
            "ring_prefix": service.ring_prefix}


def test_every_frame_arrives_exactly_once_and_in_order(run):
    frames = [e["frame"] for e in run["events"] if e["type"] == "frame" and e["stream"] == "scene"]
    assert frames == list(range(FRAMES))
    stream = run["summary"].streams["scene"]
    assert stream.frames_tracked == FRAMES and stream.reason == "eof" and stream.dropped == 0
    summary = run["summary"]  # the tracker's batched progress reports still time the run
    assert summary.first_frame_at < summary.last_frame_at and summary.steady_fps > 0


def test_frames_went_through_shared_memory_and_nothing_is_left_behind(run):
    import os

    from wire import frame_ring

    if not frame_ring.available():
        pytest.skip("no writable /dev/shm: frames went through the socket")
    assert run["summary"].detector["ring_frames"] == FRAMES
    assert not [e for e in os.listdir(frame_ring.SHM_DIR) if e.startswith(run["ring_prefix"])]


def test_a_broken_source_is_reported_and_the_other_stream_still_runs(run):
    broken = run["summary"].streams["broken"]
    assert "not found" in broken.error and broken.frames_tracked == 0
    ended = [e for e in run["events"] if e["type"] == "stream.ended" and e["stream"] == "broken"]
    assert ended and ended[0]["reason"].startswith("error")


def test_events_follow_the_schema_and_cover_every_confirmed_track(run):
    schema = load_schema()
    for event in run["events"]:
        jsonschema.validate(event, schema)
    started = {e["track_id"] for e in run["events"] if e["type"] == "track.started" and e["stream"] == "scene"}
    ended = {e["track_id"] for e in run["events"] if e["type"] == "track.ended" and e["stream"] == "scene"}
    in_frames = {t["track_id"] for e in run["events"] if e["type"] == "frame" and e["stream"] == "scene"
                 for t in e["tracks"]}
    mot_ids = set(read_mot(run["out"] / "scene.mot.txt")[:, 1].astype(int))
    assert mot_ids, "no confirmed tracks at all"
    assert mot_ids == in_frames == started == ended
    # the JSON Lines file holds the same events the subscriber got
    lines = [json.loads(line) for line in (run["out"] / "scene.events.jsonl").read_text().splitlines()]
    assert [e for e in run["events"] if e["stream"] == "scene"] == lines


def test_track_ids_are_stable_boxes_follow_the_objects(run):
    boxes = defaultdict(list)
    for e in run["events"]:
        if e["type"] == "frame" and e["stream"] == "scene":
            for t in e["tracks"]:
                boxes[t["track_id"]].append(t["box"])
    longest = max(boxes.values(), key=len)
    assert len(longest) >= 20
    steps = np.abs(np.diff(np.array(longest), axis=0)).max(axis=1)
    assert np.median(steps) < 15  # a tracked box moves smoothly, a few pixels per frame


def test_outputs_exist_and_tracks_score_on_ground_truth(run):
    out = run["out"]
    video = out / "scene.annotated.mp4"
    assert video.stat().st_size > 10_000
    metrics = evaluate_mot(run["scene"] / "gt" / "gt.txt", out / "scene.mot.txt")
    print(f"\nend-to-end on a generated scene: HOTA {metrics['HOTA']:.3f} MOTA {metrics['MOTA']:.3f} "
          f"IDF1 {metrics['IDF1']:.3f} IDSW {metrics['IDSW']}")
    assert metrics["HOTA"] > 0.4 and metrics["MOTA"] > 0.4 and metrics["IDF1"] > 0.4


def test_detector_runs_on_cores_of_its_own(run):
    """With the default ``detector.pin_cpus`` every child reports its CPUs; on a machine with
    two or more the detector's and the grabbers' + tracker's sets are disjoint."""
    from workers.affinity import allowed_cpus

    cpus = run["summary"].cpus
    assert {"detector-0", "grabber-scene", "tracker"} <= set(cpus)
    if len(allowed_cpus()) < 2:
        pytest.skip("one CPU: nothing to split")
    assert not set(cpus["detector-0"]) & set(cpus["grabber-scene"])
    assert set(cpus["grabber-scene"]) == set(cpus["tracker"])


def test_pin_cpus_false_plans_nothing():
    config = Config(sources=[SourceConfig(url="x.mp4", id="a")])
    config.detector.pin_cpus = False
    service = Service(config)
    service.endpoints.cleanup()
    assert service.cpu_plan is None


def test_the_supervisor_adds_up_batched_progress_of_several_streams():
    config = Config(sources=[SourceConfig(url="a.mp4", id="a"), SourceConfig(url="b.mp4", id="b")])
    service = Service(config)
    service.endpoints.cleanup()
    from pipeline.service import StreamSummary

    service.summary.streams = {s: StreamSummary(s, f"{s}.mp4") for s in ("a", "b")}
    for stream, count, first, last in (("a", 4, 10.0, 10.3), ("b", 2, 10.1, 10.2), ("a", 3, 10.4, 10.6),
                                       ("b", 5, 10.3, 11.0)):
        service._on_report({"stage": "tracker", "event": "frames", "stream": stream, "count": count,
                            "first_at": first, "last_at": last})
    summary = service.summary
    assert summary.streams["a"].frames_tracked == 7 and summary.streams["b"].frames_tracked == 7
    assert (summary.first_frame_at, summary.last_frame_at) == (10.0, 11.0)
    assert summary.steady_fps == pytest.approx(13 / 1.0)


def test_the_supervisor_records_a_failed_sink_of_one_stream():
    config = Config(sources=[SourceConfig(url="a.mp4", id="a")])
    service = Service(config)
    service.endpoints.cleanup()
    from pipeline.service import StreamSummary

    service.summary.streams = {"a": StreamSummary("a", "a.mp4")}
    service._on_report({"stage": "tracker", "event": "error", "stream": "a",
                        "message": "annotated video output failed, left out: OSError: disk full"})
    assert service.summary.errors == ["a: annotated video output failed, left out: OSError: disk full"]
    service._on_report({"stage": "tracker", "event": "frames", "stream": "a", "count": 2,
                        "first_at": 1.0, "last_at": 1.1})
    assert service.summary.streams["a"].frames_tracked == 2
