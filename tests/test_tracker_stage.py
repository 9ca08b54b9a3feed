"""The tracker stage on its own: messages handed to it in-process, real sockets bound."""
from __future__ import annotations

import numpy as np
import pytest

from base.types import Detections
from wire import messages
from workers import tracker_worker as tracker_stage
from pipeline.sinks import SinkSettings
from workers.tracker_worker import EventsConfig, TrackerStage, TrackerStageSpec


def _stage(tmp_path, reports):
    spec = TrackerStageSpec(detections_endpoint=f"ipc://{tmp_path}/det",
                            events=EventsConfig(endpoint=f"ipc://{tmp_path}/ev"),
                            expected_streams=["s"])
    return TrackerStage(spec, report=lambda **kw: reports.append(kw))


def _detections(frame: int) -> Detections:
    boxes = np.array([[10 + frame, 10, 40 + frame, 80]], np.float32)
    return Detections(boxes, np.array([0.9], np.float32), np.array([0], np.int32))


def _feed(stage, frames: int) -> None:
    stage._handle(messages.encode_control("stream.started", "s", source="x", width=200, height=100, frames=frames))
    for i in range(frames):
        msg = messages.DetectionsMessage("s", i, i, i / 25.0, 200, 100, _detections(i))
        stage._handle([bytes(memoryview(p)) for p in messages.encode_detections(msg)])
    stage._handle(messages.encode_control("stream.ended", "s", seq=frames, reason="eof"))


def test_tracked_frames_are_reported_in_batches_and_all_before_the_stream_ends(tmp_path, monkeypatch):
    monkeypatch.setattr(tracker_stage, "PROGRESS_INTERVAL_S", 3600.0)
    reports = []
    stage = _stage(tmp_path, reports)
    try:
        _feed(stage, 30)
    finally:
        stage._factory.close()
    kinds = [r["event"] for r in reports]
    assert kinds == ["stream.started", "frames", "stream.ended"]
    progress = reports[1]
    assert progress["stream"] == "s" and progress["count"] == 30
    assert progress["first_at"] <= progress["last_at"]
    assert stage.done()


def test_progress_is_reported_once_the_interval_has_passed(tmp_path, monkeypatch):
    """One frame every 0.1 s with reports due after 0.25 s: a report every 4th frame (its
    first frame 0.3 s before), the rest when the stream ends."""
    clock = [0.0]
    monkeypatch.setattr(tracker_stage.time, "monotonic", lambda: clock[0])
    reports = []
    stage = _stage(tmp_path, reports)
    try:
        stage._handle(messages.encode_control("stream.started", "s", source="x", width=200, height=100, frames=10))
        for i in range(10):
            clock[0] = 0.1 * i
            msg = messages.DetectionsMessage("s", i, i, i / 25.0, 200, 100, _detections(i))
            stage._handle([bytes(memoryview(p)) for p in messages.encode_detections(msg)])
        stage._handle(messages.encode_control("stream.ended", "s", seq=10, reason="eof"))
    finally:
        stage._factory.close()
    progress = [(r["count"], r["first_at"], r["last_at"]) for r in reports if r["event"] == "frames"]
    assert [c for c, _, _ in progress] == [4, 4, 2]
    assert progress[0][1:] == pytest.approx((0.0, 0.3)) and progress[2][1:] == pytest.approx((0.8, 0.9))


def test_a_stream_that_goes_quiet_still_reports_its_last_frames(tmp_path, monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(tracker_stage.time, "monotonic", lambda: clock[0])
    reports = []
    stage = _stage(tmp_path, reports)
    try:
        stage._handle(messages.encode_control("stream.started", "s", source="x", width=200, height=100))
        for i in range(2):
            msg = messages.DetectionsMessage("s", i, i, i / 25.0, 200, 100, _detections(i))
            stage._handle([bytes(memoryview(p)) for p in messages.encode_detections(msg)])
        state = stage.streams["s"]
        stage._report_progress_if_due(state, 0.1)  # what run() does on every idle pass
        assert not [r for r in reports if r["event"] == "frames"]
        stage._report_progress_if_due(state, 1.0)
    finally:
        stage._factory.close()
    assert [r["count"] for r in reports if r["event"] == "frames"] == [2]


def test_a_sink_that_cannot_open_is_reported_and_the_stream_goes_on(tmp_path, monkeypatch):
    """The annotated video needs to re-read its source; a source it cannot read costs that
    output only: the stage reports the error and tracks, publishes and writes the rest."""
    monkeypatch.setattr(tracker_stage, "PROGRESS_INTERVAL_S", 3600.0)  # one progress report
    reports = []
    spec = TrackerStageSpec(detections_endpoint=f"ipc://{tmp_path}/det",
                            events=EventsConfig(endpoint=f"ipc://{tmp_path}/ev"),
                            expected_streams=["s"],
                            open_outputs=SinkSettings(str(tmp_path / "out"), video=True))
    stage = TrackerStage(spec, report=lambda **kw: reports.append(kw))
    try:
        _feed(stage, 10)  # its source "x" is not a file
    finally:
        stage._factory.close()
    errors = [r for r in reports if r["event"] == "error"]
    assert len(errors) == 1 and errors[0]["stream"] == "s" and "annotated video" in errors[0]["message"]
    assert [r["event"] for r in reports if r["event"] != "error"] == ["stream.started", "frames", "stream.ended"]
    assert stage.done()
    assert len((tmp_path / "out" / "s.mot.txt").read_text().splitlines()) >= 5
    assert (tmp_path / "out" / "s.events.jsonl").read_text().count("stream.ended") == 1
