"""MOT file I/O on real files and round trips; track-detections / eval-tracks CLI."""
import numpy as np
import pytest

from tests.conftest import require
from vidtrack.cli import main
from base.errors import VidtrackError
from base.mot import read_detections, read_feature_detections, read_mot, write_mot


def test_read_detections_converts_to_corners(shared_data):
    path = require(shared_data / "mot/sort-frcnn-det/TUD-Campus/det.txt")
    raw = read_mot(path)
    frames = read_detections(path)
    assert sum(len(d) for d in frames.values()) == len(raw)
    first = raw[raw[:, 0] == 1]
    d = frames[1]
    np.testing.assert_allclose(d.boxes[:, :2], first[:, 2:4], rtol=1e-6)
    np.testing.assert_allclose(d.boxes[:, 2:] - d.boxes[:, :2], first[:, 4:6], rtol=1e-5)
    assert d.embeddings.shape == (len(first), 0) and (d.class_ids == 0).all()
    assert 0.5 <= d.scores.min() and d.scores.max() <= 1.0


def test_read_feature_detections_normalises(shared_data):
    path = require(shared_data / "mot/deepsort-features/TUD-Campus.npy")
    frames = read_feature_detections(path)
    raw = np.load(path)
    assert sum(len(d) for d in frames.values()) == len(raw)
    e = frames[1].embeddings
    assert e.shape[1] == 128 and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)
    cos = (raw[raw[:, 0] == 1, 10:] @ raw[raw[:, 0] == 1, 10:].T)[0, 1]
    n = np.linalg.norm(raw[raw[:, 0] == 1, 10:], axis=1)
    assert float(e[0] @ e[1]) == pytest.approx(cos / n[0] / n[1], abs=1e-5)


def test_write_read_round_trip(tmp_path):
    rows = [(1, 3, 10.0, 20.0, 50.5, 120.25, 0.9), (2, 3, 12.0, 21.0, 52.0, 121.0, 0.8)]
    assert write_mot(tmp_path / "t.txt", rows) == 2
    back = read_mot(tmp_path / "t.txt")
    np.testing.assert_allclose(back[:, :6], [[1, 3, 10, 20, 40.5, 100.25], [2, 3, 12, 21, 40, 100]], atol=1e-2)
    assert (back[:, 7:] == -1).all()


def test_bad_file_errors(tmp_path):
    (tmp_path / "bad.txt").write_text("1,2,three,4,5,6\n")
    with pytest.raises(VidtrackError, match="bad.txt:1"):
        read_mot(tmp_path / "bad.txt")
    with pytest.raises(VidtrackError, match="not found"):
        read_mot(tmp_path / "none.txt")


def test_cli_track_then_eval(shared_data, tmp_path, capsys):
    seq = shared_data / "mot/TUD-Campus"
    det = require(shared_data / "mot/sort-frcnn-det/TUD-Campus/det.txt")
    gt = require(seq / "gt/gt.txt")
    out = tmp_path / "out.txt"
    assert main(["track-detections", str(det), "-o", str(out)]) == 0
    assert main(["eval-tracks", str(gt), str(out), "--json"]) == 0
    import json

    text = capsys.readouterr().out
    m = json.loads(text[text.index("{"):])
    assert 0.3 < m["HOTA"] < 1 and 0.3 < m["IDF1"] < 1 and m["IDSW"] >= 0
    # a config key error is one line, exit code 2
    (tmp_path / "c.toml").write_text("[tracker]\nmax_age_s = 'x'\n")
    assert main(["track-detections", str(det), "-o", str(out), "--config", str(tmp_path / "c.toml")]) == 2
    assert "tracker.max_age_s" in capsys.readouterr().err


def test_cli_with_features(shared_data, tmp_path):
    seq = shared_data / "mot/TUD-Stadtmitte"
    feats = require(shared_data / "mot/deepsort-features/TUD-Stadtmitte.npy")
    out = tmp_path / "out.txt"
    assert main(["track-detections", str(seq / "det/det.txt"), "--features", str(feats), "-o", str(out)]) == 0
    rows = read_mot(out)
    assert len(rows) > 100 and len(np.unique(rows[:, 1])) >= 5


def test_track_detections_takes_the_sequence_frame_rate_from_seqinfo_or_fps(tmp_path, capsys):
    """frameRate of the sequence's seqinfo.ini (MOT layout SEQ/det/det.txt, or SEQ/ next to
    sort-frcnn-det/SEQ/det.txt), --fps over it, 25 with a note when there is none; it changes
    the frame counts the tracker keeps a track for (max_age_s 2.4: 24 frames at 10 fps)."""
    from base.mot import read_seqinfo

    seq = tmp_path / "SEQ"
    (seq / "det").mkdir(parents=True)
    (seq / "seqinfo.ini").write_text("[Sequence]\nname=SEQ\nframeRate=10\nseqLength=40\n")
    assert read_seqinfo(seq / "seqinfo.ini") == {"name": "SEQ", "frameRate": "10", "seqLength": "40"}
    dets = "".join(f"{f},-1,{100 + 3 * f},50,40,100,0.9,-1,-1,-1\n" for f in range(1, 61) if not 11 <= f <= 36)
    for det in (seq / "det" / "det.txt", tmp_path / "sort-frcnn-det" / "SEQ" / "det.txt", tmp_path / "lone" / "det.txt"):
        det.parent.mkdir(parents=True, exist_ok=True)
        det.write_text(dets)
    out = tmp_path / "out.txt"

    def ids(det, *extra):
        assert main(["track-detections", str(det), "-o", str(out), *extra]) == 0
        return capsys.readouterr().out, {int(r[1]) for r in read_mot(out)}

    for det in (seq / "det" / "det.txt", tmp_path / "sort-frcnn-det" / "SEQ" / "det.txt"):
        text, found = ids(det)  # a 26-frame gap: the track is gone at 10 fps (24 frames of 2.4 s)
        assert f"frame rate 10 frames/s ({seq / 'seqinfo.ini'})" in text and found == {1, 2}
    text, found = ids(tmp_path / "lone" / "det.txt")
    assert "frame rate 25 frames/s (default: no seqinfo.ini" in text and found == {1}  # 60 frames at 25 fps
    text, found = ids(seq / "det" / "det.txt", "--fps", "25")
    assert "frame rate 25 frames/s (--fps)" in text and found == {1}
    (seq / "seqinfo.ini").write_text("[Sequence]\nframeRate=fast\n")
    assert main(["track-detections", str(seq / "det" / "det.txt"), "-o", str(out)]) == 2
    assert "frameRate must be a number above 0" in capsys.readouterr().err
