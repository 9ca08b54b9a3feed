"""A corrupt region in a file is skipped: the stream goes on to the file's real end and the
frames that did not decode are counted (``decode_errors`` in ``stream.ended``).

The file: an H.264 mp4 made by ffmpeg (290 frames) with 300 KB of random bytes written into
its middle; ffprobe's count of the frames it decodes is the reference.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from base.paths import DEFAULT_DETECTOR
from tests.test_grabber import _receive_all
from workers.grabber import Grabber, GrabberSpec, SourceConfig
from workers.sources import VideoSource

REPO = Path(__file__).resolve().parents[1]
FRAMES = 290
pytestmark = [pytest.mark.faults,
              pytest.mark.skipif(shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
                                 reason="ffmpeg/ffprobe not installed (apt-get install ffmpeg)")]


@pytest.fixture(scope="module")
def corrupt(tmp_path_factory) -> tuple[Path, int]:
    """(the corrupt mp4, frames ffprobe decodes of it)."""
    folder = tmp_path_factory.mktemp("corrupt")
    clean = folder / "clean.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
                    "-frames:v", str(FRAMES), "-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p", str(clean)],
                   check=True, timeout=60)
    data = bytearray(clean.read_bytes())
    blob = np.random.default_rng(1).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    start = len(data) // 2 - len(blob) // 2
    data[start:start + len(blob)] = blob
    bad = folder / "bad.mp4"
    bad.write_bytes(bytes(data))
    probe = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                            "stream=nb_read_frames", "-of", "csv=p=0", str(bad)],
                           capture_output=True, text=True, timeout=60)
    decodable = int(probe.stdout.strip().strip(","))
    assert 0.3 * FRAMES < decodable < FRAMES  # the damage is real, and not the whole file
    return bad, decodable


def test_the_source_reads_past_the_corrupt_region_to_the_real_end(corrupt):
    bad, decodable = corrupt
    with VideoSource(str(bad)) as source:
        timestamps = []
        while (item := source.read()) is not None:
            timestamps.append(item[0])
    assert abs(len(timestamps) - decodable) <= 0.05 * decodable
    assert source.decode_errors >= FRAMES - decodable - 0.05 * decodable
    assert len(timestamps) + source.decode_errors <= FRAMES
    # media time counts the skipped frames: the last frame is near the file's end
    assert timestamps[-1] == pytest.approx((FRAMES - 1) / 25.0, abs=0.5)
    assert max(np.diff(timestamps)) > 1.0  # the gap where the damage was


def test_the_grabber_sends_every_decodable_frame_and_counts_the_rest(corrupt, tmp_path):
    bad, decodable = corrupt
    endpoint = f"ipc://{tmp_path}/f0"
    release = threading.Event()
    grabber = Grabber(GrabberSpec(SourceConfig(str(bad), "bad"), endpoint, hwm=4), release=release)
    thread = threading.Thread(target=grabber.run)
    thread.start()
    frames, controls = _receive_all(endpoint, timeout_s=60)
    release.set()
    thread.join(10)
    ended = controls[-1]
    assert ended.TYPE == "stream.ended" and ended.reason == "eof"
    assert abs(len(frames) - decodable) <= 0.05 * decodable
    assert ended.decode_errors == grabber.stats.decode_errors > 0
    assert [f.index for f, _ in frames] == list(range(len(frames)))  # frame numbers stay gap-free


@pytest.mark.skipif(not DEFAULT_DETECTOR.exists(), reason=f"shipped model missing: {DEFAULT_DETECTOR}")
def test_vidtrack_track_tracks_the_frames_after_the_damage(corrupt, tmp_path):
    bad, decodable = corrupt
    proc = subprocess.run([sys.executable, "-m", "vidtrack", "track", str(bad), "-o", str(tmp_path / "out")],
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    events = [json.loads(line) for path in (tmp_path / "out").glob("*.events.jsonl")
              for line in path.read_text().splitlines()]
    ended = [e for e in events if e["type"] == "stream.ended"]
    assert len(ended) == 1
    assert ended[0]["reason"] == "eof" and ended[0]["decode_errors"] > 0
    assert abs(ended[0]["frames"] - decodable) <= 0.05 * decodable  # not 109 of 290: up to the real end


def _decode_all(path: Path) -> list[tuple[float, np.ndarray]]:
    with VideoSource(str(path)) as source:
        frames = []
        while (item := source.read()) is not None:
            frames.append(item)
    return frames


@pytest.mark.parametrize("name", ["clean.mp4", "bad.mp4"])
def test_a_seek_lands_on_the_frame_a_read_from_the_start_gives_and_decodes_few(corrupt, name):
    """A rewound grabber seeks its file: after reading it once, seeking to frame k gives the
    k-th decodable frame and its timestamp, bit for bit, decoding at most one mark interval
    (of a clean file: the damaged region's undecodable frames are passed over too); on the
    damaged file decodable frames are counted as they were the first time."""
    path = corrupt[0].parent / name
    expected = _decode_all(path)
    with VideoSource(str(path)) as source:
        while source.read() is not None:
            pass
        for target in (len(expected) - 7, len(expected) // 2 + 3, 40, 5, 0):
            before = source.frames_decoded
            source.seek(target)
            decoded = source.frames_decoded - before
            timestamp, image = source.read()
            assert timestamp == expected[target][0], (name, target)
            np.testing.assert_array_equal(image, expected[target][1])
            if name == "clean.mp4":
                assert decoded <= 32 + 1, (name, target, decoded)
    if name == "clean.mp4":
        assert source.seek_misses == 0  # libx264 with B-frames: the container seek is exact
