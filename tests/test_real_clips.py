"""`vidtrack track` on the real clips in ../shared/data/videos runs to the end and writes every output.

All three clips run in one service (three grabbers, one detector, one tracker), which also
shows several streams sharing the detector's batches.
"""
from __future__ import annotations

import json

import cv2
import pytest

from pipeline.service import Service
from tests.conftest import require
from vidtrack.commands.track import build_config
from base.paths import DEFAULT_DETECTOR

CLIPS = {"towncentre-1080p.mp4": 302, "vtest.avi": 795, "TUD-Campus.mp4": 71}


@pytest.mark.skipif(not DEFAULT_DETECTOR.exists(), reason=f"shipped model missing: {DEFAULT_DETECTOR}")
def test_track_real_clips_to_the_end(shared_data, tmp_path):
    paths = [require(shared_data / "videos" / name) for name in CLIPS]
    config = build_config(str(paths[0]), out=str(tmp_path / "out"))
    extra = [build_config(str(p)).sources[0] for p in paths[1:]]
    config.sources += extra
    config.output.progress = False
    config.events.endpoint = "ipc://" + str(tmp_path / "events")
    summary = Service(config).run()
    assert not summary.errors
    out = tmp_path / "out"
    for source, frames in zip(config.sources, CLIPS.values()):
        stream = summary.streams[source.id]
        assert stream.frames_tracked == frames and stream.reason == "eof", stream
        video = cv2.VideoCapture(str(out / f"{source.id}.annotated.mp4"))
        assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == frames
        events = [json.loads(line) for line in (out / f"{source.id}.events.jsonl").read_text().splitlines()]
        assert events[0]["type"] == "stream.started" and events[-1]["type"] == "stream.ended"
        assert (out / f"{source.id}.mot.txt").exists()
    assert summary.detector["batches"] < summary.frames  # frames of several streams share batches
