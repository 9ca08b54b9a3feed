import jsonschema
import numpy as np
import pytest

from wire.events import EventBuilder, load_schema
from tracker import TrackSnapshot, TrackState


def snap(tid, state=TrackState.CONFIRMED, tsu=0):
    return TrackSnapshot(track_id=tid, class_id=0, box=np.array([1, 2, 30, 40], np.float32), score=0.9,
                         velocity=np.array([1.0, 0.0], np.float32), state=state, time_since_update=tsu,
                         hits=5, age=5)


def test_life_cycle_events():
    b = EventBuilder("s", ["person"])
    kinds = lambda events: [e["type"] for e in events]  # noqa: E731
    assert kinds(b.update(0, 0.0, [snap(1, TrackState.TENTATIVE)])) == []
    assert kinds(b.update(1, 0.04, [snap(1)])) == ["track.started", "track.updated"]
    assert kinds(b.update(2, 0.08, [snap(1, tsu=1)])) == ["track.lost"]
    assert kinds(b.update(3, 0.12, [snap(1, tsu=2)])) == []  # lost once, not every frame
    assert kinds(b.update(4, 0.16, [snap(1)])) == ["track.updated"]
    events = b.update(5, 0.2, [snap(1, TrackState.DELETED, 1)])
    assert kinds(events) == ["track.ended"] and events[0]["class_name"] == "person"
    # a tentative track that dies never produced events, so it produces no end either
    assert b.update(6, 0.24, [snap(2, TrackState.DELETED, 1)]) == []


def test_frame_mode_and_end_all_follow_schema():
    schema = load_schema()
    b = EventBuilder("s", mode="frame")
    events = b.update(0, 0.0, [snap(1), snap(2), snap(3, TrackState.TENTATIVE)])
    assert [e["type"] for e in events] == ["track.started", "track.started", "frame"]
    assert [t["track_id"] for t in events[-1]["tracks"]] == [1, 2]
    ends = b.end_all(0, 0.0, [snap(1), snap(2)])
    assert [e["reason"] for e in ends] == ["stream ended"] * 2
    streams = [b.stream_started(source="a.mp4", width=64, height=48, fps=25.0, live=False, frames=1),
               b.stream_stalled(0, 0.0, seconds=5.0),
               b.stream_resumed(0, 0.0, seconds=12.5),
               b.stream_ended(0, 0.0, frames=1, skipped=0, reason="eof", dropped=0, decode_errors=3)]
    for e in events + ends + streams:
        jsonschema.validate(e, schema)
    stalled_ends = b.end_all(0, 0.0, [snap(1)], reason="stream stalled")  # announced again below
    assert stalled_ends == []  # end_all forgot them: a track is ended once
    b.update(1, 0.04, [snap(1)])
    assert [e["reason"] for e in b.end_all(1, 0.04, [snap(1)], reason="stream stalled")] == ["stream stalled"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**b.stream_resumed(0, 0.0, seconds=1.0), "seconds": -1}, schema)
