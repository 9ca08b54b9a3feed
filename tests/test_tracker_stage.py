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


def _started(frames: int) -> messages.StreamStarted:
    return messages.StreamStarted("s", source="x", width=200, height=100, fps=25.0, live=False, frames=frames)


def _detections(frame: int) -> Detections:
    boxes = np.array([[10 + frame, 10, 40 + frame, 80]], np.float32)
    return Detections(boxes, np.array([0.9], np.float32), np.array([0], np.int32))


def _feed(stage, frames: int) -> None:
    stage._handle(messages.encode(_started(frames)))
    for i in range(frames):
        msg = messages.DetectionsMessage("s", i, i, i / 25.0, _detections(i))
        stage._handle([bytes(memoryview(p)) for p in messages.encode(msg)])
    stage._handle(messages.encode(messages.StreamEnded("s", frames, "eof")))


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
        stage._handle(messages.encode(_started(10)))
        for i in range(10):
            clock[0] = 0.1 * i
            msg = messages.DetectionsMessage("s", i, i, i / 25.0, _detections(i))
            stage._handle([bytes(memoryview(p)) for p in messages.encode(msg)])
        stage._handle(messages.encode(messages.StreamEnded("s", 10, "eof")))
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
        stage._handle(messages.encode(_started(0)))
        for i in range(2):
            msg = messages.DetectionsMessage("s", i, i, i / 25.0, _detections(i))
            stage._handle([bytes(memoryview(p)) for p in messages.encode(msg)])
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


def _stage_bare(tmp_path):
    spec = TrackerStageSpec(detections_endpoint=f"ipc://{tmp_path}/det", events=EventsConfig(endpoint=f"ipc://{tmp_path}/ev"),
                            expected_streams=["s"], reorder_timeout_s=1.0)
    return TrackerStage(spec)


@pytest.mark.parametrize("change", [
    {"frame": 5},  # an extra key once reached EventBuilder.stream_event(**fields): TypeError
    {"dropped": "x"},  # once int(fields["dropped"]): ValueError
])
def test_forged_control_fields_are_counted_drops_and_the_stream_goes_on(tmp_path, change):
    import json

    kind = messages.StreamStarted if "frame" in change else messages.StreamEnded
    good = _started(3) if kind is messages.StreamStarted else messages.StreamEnded("s", 3, "eof")
    header = {**json.loads(messages.encode(good)[0]), **change}
    stage = _stage_bare(tmp_path)
    try:
        stage._handle([json.dumps(header).encode()])
        assert stage.bad_messages == 1
        _feed(stage, 3)
    finally:
        stage._factory.close()
    assert stage.done() and stage.streams["s"].frames == 3


def test_a_huge_seq_gap_is_given_up_at_once(tmp_path, monkeypatch):
    """A frame of a live stream that never comes before seq 2**62 - 1 is skipped in one step,
    not 2**62 (a file stream waits for it: the supervisor has it sent again)."""
    clock = [0.0]
    monkeypatch.setattr(tracker_stage.time, "monotonic", lambda: clock[0])
    stage = _stage_bare(tmp_path)
    try:
        stage._handle(messages.encode(messages.StreamStarted("s", source="rtsp://cam", width=200, height=100,
                                                             fps=25.0, live=True)))
        far = messages.DetectionsMessage("s", 2**62 - 1, 5, 0.2, _detections(5))
        stage._handle(messages.encode(far))
        clock[0] = 2.0
        stage._drain(stage.streams["s"])
    finally:
        stage._factory.close()
    state = stage.streams["s"]
    assert state.frames == 1 and state.skipped == 2**62 - 1 and state.next_seq == 2**62


def test_detections_the_tracker_cannot_follow_are_counted_drops(tmp_path):
    """Valid messages alone, but a frame index that does not increase or an embedding size
    that changes would make the tracker raise: they are dropped."""
    stage = _stage_bare(tmp_path)
    try:
        stage._handle(messages.encode(_started(5)))
        sent = [(0, 4, 2), (1, 4, 2), (2, 3, 2), (3, 6, 3), (4, 7, 2)]  # (seq, index, embedding size)
        for seq, index, dim in sent:
            det = _detections(index)
            det.embeddings = np.ones((1, dim), np.float32) / np.sqrt(dim)
            stage._handle(messages.encode(messages.DetectionsMessage("s", seq, index, index / 25.0, det)))
    finally:
        stage._factory.close()
    state = stage.streams["s"]
    assert state.frames == 2 and state.last_frame == 7 and stage.bad_messages == 3


def test_the_stage_meter_counts_frames_bad_messages_per_reason_and_live_capture_to_event_latency(tmp_path):
    import time

    stage = _stage(tmp_path, [])
    try:
        started = messages.StreamStarted("s", source="rtsp://cam", width=200, height=100, fps=25.0, live=True, frames=0)
        stage._handle(messages.encode(started))
        captured = time.time() - 0.2  # a live frame's timestamp is its capture time
        for i in range(3):
            msg = messages.DetectionsMessage("s", i, i, captured, _detections(i))
            stage._handle([bytes(memoryview(p)) for p in messages.encode(msg)])
        stage._handle([b"not a message"])
        stage._handle([bytes(memoryview(p)) for p in messages.encode(msg)])  # seq 2 again: a copy, as a
        # rewound grabber sends after a detector died, so dropped without counting as a bad message
    finally:
        stage._factory.close()
    flushed = stage.meter.flush()
    assert flushed["counts"] == {"frames_in": {"s": 3}, "frames_out": {"s": 3},
                                 "bad_messages": {"malformed": 1}}
    latency = {(kind, stream): (sum(buckets), total) for kind, stream, buckets, total in flushed["latency"]}
    count, total = latency[("capture_to_event", "s")]
    assert count == 3 and 0.6 <= total < 3.0
    assert latency[("frame", "")][0] == 3


def test_each_stream_is_tracked_at_its_own_frame_rate_and_restored_at_it(tmp_path):
    """Detections that come before stream.started wait for it; the tracker that takes them
    counts in the stream's fps (7.5: 2.4 s is 18 frames), and a restored stage's tracker too.
    A source reporting an RTSP clock rate is tracked at the default 25."""
    from dataclasses import replace

    (tmp_path / "ck").mkdir()
    spec = TrackerStageSpec(detections_endpoint=f"ipc://{tmp_path}/det", events=EventsConfig(endpoint=f"ipc://{tmp_path}/ev"),
                            expected_streams=["s"], checkpoint_dir=str(tmp_path / "ck"), checkpoint_frames=2)
    stage = TrackerStage(spec)
    try:
        for i in range(3):
            stage._handle(messages.encode(messages.DetectionsMessage("s", i, i, i / 7.5, _detections(i))))
        assert stage.streams["s"].frames == 0
        stage._handle(messages.encode(messages.StreamStarted("s", source="x", width=200, height=100, fps=7.5,
                                                             live=False, frames=10)))
        state = stage.streams["s"]
        assert state.frames == 3 and state.tracker.frame_rate == 7.5 and state.tracker.limits.max_age == 18
    finally:
        stage._factory.close()
    restored = TrackerStage(replace(spec, restore=True, detections_endpoint=f"ipc://{tmp_path}/det2",
                                    events=EventsConfig(endpoint=f"ipc://{tmp_path}/ev2")))
    try:
        restored._restore()
        state = restored.streams["s"]
        assert state.next_seq == 2 and state.tracker.frame_rate == 7.5 and state.tracker.limits.max_age == 18
    finally:
        restored._factory.close()
    assert tracker_stage.stream_frame_rate(90000.0, "cam") == 25.0 and tracker_stage.stream_frame_rate(12.5) == 12.5


@pytest.mark.parametrize("compensated", [True, False], ids=["with-warp", "without"])
def test_the_stage_moves_its_tracks_by_each_messages_camera_warp(tmp_path, compensated):
    # at frame 5 the camera turns: the object jumps 60 px left in the image; the grabber's warp says so
    stage = _stage_bare(tmp_path)
    try:
        stage._handle(messages.encode(_started(10)))
        for i in range(10):
            jump = -60.0 if i >= 5 else 0.0
            det = _detections(i)
            det = Detections(det.boxes + np.float32([jump, 0, jump, 0]), det.scores, det.class_ids)
            warp = np.array([[1, 0, -60.0 if i == 5 and compensated else 0.0], [0, 1, 0]], np.float32)
            msg = messages.DetectionsMessage("s", i, i, i / 25.0, det, warp)
            stage._handle([bytes(memoryview(p)) for p in messages.encode(msg)])
        tracker = stage._stream("s").tracker
        ids = sorted(t.track_id for t in tracker.tracks if t.time_since_update == 0)
    finally:
        stage._factory.close()
    assert ids == ([1] if compensated else [2])
