"""Output sinks on their own: the annotated video (its own thread, real encoding) and a failed
sink left out of its stream without stopping the others."""
from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest

from workers.affinity import allowed_cpus
from pipeline.sinks import StreamSinks, VideoSink
from tracker import TrackSnapshot, TrackState
from base.errors import SourceError

SIZE = (160, 120)  # w, h


def _clip(path, frames: int = 20):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, SIZE)
    for _ in range(frames):
        writer.write(np.full((SIZE[1], SIZE[0], 3), 128, np.uint8))
    writer.release()
    return path


def _snapshot(box=(40, 30, 100, 90), state=TrackState.CONFIRMED):
    return TrackSnapshot(7, 0, np.array(box, np.float32), 0.9, np.zeros(2, np.float32), state, 0, 5, 5)


def _frames(path):
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            return frames
        frames.append(image)


def test_video_sink_writes_every_source_frame_and_draws_the_tracked_ones(tmp_path):
    source = _clip(tmp_path / "in.mp4")
    sink = VideoSink(tmp_path / "out.mp4", str(source), class_names=["person"], cpus=allowed_cpus()[:1])
    assert sorted(os.sched_getaffinity(sink._thread.native_id)) == allowed_cpus()[:1]
    for frame in (0, 1, 5, 6):  # 2-4 were never tracked (dropped): written as they are
        sink.write(frame, [_snapshot()], [])
    sink.close()
    frames = _frames(tmp_path / "out.mp4")
    assert len(frames) == 7  # frames after the last tracked one are not written
    edge = (slice(28, 33), slice(40, 100))  # the box's top edge, 2 px thick
    assert np.abs(frames[5][edge].astype(int) - 128).mean() > 40  # drawn
    assert np.abs(frames[3][edge].astype(int) - 128).mean() < 10  # untracked frame left as it is


def test_video_sink_raises_opening_errors_on_the_callers_thread(tmp_path):
    with pytest.raises(SourceError, match="re-read"):
        VideoSink(tmp_path / "out.mp4", str(tmp_path / "missing.mp4"))
    (tmp_path / "taken.mp4").mkdir()  # a folder where the file should go
    with pytest.raises(OSError, match="cannot write"):
        VideoSink(tmp_path / "taken.mp4", str(_clip(tmp_path / "in.mp4")))


def test_an_error_on_the_video_thread_is_raised_by_close(tmp_path):
    sink = VideoSink(tmp_path / "out.mp4", str(_clip(tmp_path / "in.mp4")))
    sink.write(0, [_snapshot(box=(1, 2))], [])  # a box without four numbers
    with pytest.raises(ValueError):
        sink.close()


def test_a_failed_sink_is_left_out_and_the_others_go_on(tmp_path):
    sinks = StreamSinks(tmp_path / "out", "s", str(tmp_path / "missing.mp4"), live=False, video=True)
    assert len(sinks.errors) == 1
    assert sinks.errors[0].startswith("annotated video output cannot be opened, left out: SourceError") \
        and "re-read" in sinks.errors[0]
    sinks.write_frame(0, [_snapshot()], [])
    sinks.write_events([{"type": "track.started", "track_id": 7}])
    sinks.close()
    assert (tmp_path / "out" / "s.mot.txt").read_text().startswith("1,7,40.00,30.00,60.00,60.00")
    lines = (tmp_path / "out" / "s.events.jsonl").read_text().splitlines()
    assert [json.loads(line)["type"] for line in lines] == ["track.started"]


def test_a_sink_that_fails_while_writing_is_dropped_with_its_error(tmp_path):
    sinks = StreamSinks(tmp_path / "out", "s", str(_clip(tmp_path / "in.mp4")), live=False, video=True)
    assert not sinks.errors and len(sinks.frame_sinks) == 2
    sinks.write_frame(0, [_snapshot(box=(1, 2))], [])  # fails on the video thread (the MOT sink first)
    sinks.close()
    assert len(sinks.errors) == 2  # MOT: at once; video: when it is finished
    assert sinks.errors[0].startswith("MOT txt output failed, left out: ValueError")
    assert sinks.errors[1].startswith("annotated video output cannot be finished, left out: ValueError")


def test_video_sink_with_cpus_it_cannot_use_raises_instead_of_hanging(tmp_path):
    with pytest.raises((ValueError, OverflowError, OSError)):
        VideoSink(tmp_path / "out.mp4", str(_clip(tmp_path / "in.mp4")), cpus=[-1])
