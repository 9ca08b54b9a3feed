"""Offline gap filling between two matched rows of the same track."""
import numpy as np

from tests.conftest import require
from tracker.interpolation import interpolate_gaps
from vidtrack.cli import main
from base.mot import read_mot


def test_fills_a_gap_linearly_and_only_inside_a_track():
    rows = [
        (1, 7, 0.0, 0.0, 10.0, 20.0, 0.9),
        (4, 7, 30.0, 3.0, 40.0, 23.0, 0.6),   # frames 2, 3 missing
        (2, 8, 100.0, 100.0, 110.0, 110.0, 0.8),  # track 8: one row, nothing to fill after it
    ]
    out = interpolate_gaps(rows, max_gap=5)
    assert [(r[0], r[1]) for r in out] == [(1, 7), (2, 7), (2, 8), (3, 7), (4, 7)]
    filled = {r[0]: r for r in out if r[1] == 7}
    np.testing.assert_allclose(filled[2][2:6], [10.0, 1.0, 20.0, 21.0])
    np.testing.assert_allclose(filled[3][2:6], [20.0, 2.0, 30.0, 22.0])
    assert filled[2][6] == filled[3][6] == 0.6  # the lower of the two scores


def test_gaps_longer_than_max_gap_stay_open():
    rows = [(1, 1, 0, 0, 10, 10, 1.0), (5, 1, 4, 0, 14, 10, 1.0), (7, 1, 6, 0, 16, 10, 1.0)]
    out = interpolate_gaps(rows, max_gap=2)  # 3 missing frames between 1 and 5: kept open
    assert [r[0] for r in out] == [1, 5, 6, 7]
    assert interpolate_gaps(rows, max_gap=0) == sorted(rows)
    assert interpolate_gaps([], max_gap=3) == []


def test_interpolation_raises_recall_on_a_real_sequence(shared_data, tmp_path, capsys):
    seq = shared_data / "mot/TUD-Campus"
    det = require(shared_data / "mot/sort-frcnn-det/TUD-Campus/det.txt")
    gt = require(seq / "gt/gt.txt")
    scores = {}
    for gap in (0, 20):
        out = tmp_path / f"g{gap}.txt"
        assert main(["track-detections", str(det), "-o", str(out), "--interpolate", str(gap)]) == 0
        capsys.readouterr()
        assert main(["eval-tracks", str(gt), str(out), "--json"]) == 0
        text = capsys.readouterr().out
        import json

        scores[gap] = (len(read_mot(out)), json.loads(text[text.index("{"):]))
    (n0, m0), (n20, m20) = scores[0], scores[20]
    assert n20 > n0
    assert m20["FN"] < m0["FN"] and m20["HOTA"] > m0["HOTA"]


def test_interpolate_flag_rejects_negative_gaps(tmp_path, capsys):
    det = tmp_path / "det.txt"
    det.write_text("1,-1,0,0,10,10,0.9,-1,-1,-1\n")
    try:
        main(["track-detections", str(det), "-o", str(tmp_path / "o.txt"), "--interpolate", "-3"])
    except SystemExit as exc:
        assert exc.code == 2
    assert "must be >= 0" in capsys.readouterr().err


def test_interpolation_measures_gaps_between_matched_rows_not_coasted_ones():
    """A track missing 4 frames: coasting reports 2 predicted frames; --interpolate 3 must not
    fill that 4-frame gap (the coasted rows stay), --interpolate 4 fills it with the straight
    line between the matched boxes."""
    from base.types import Detections
    from tracker import TrackerConfig
    from workers.offline import track_sequence

    frames = {f: Detections(np.array([[10.0 * f, 0, 10.0 * f + 40, 100]]), [0.9], [0])
              for f in range(1, 16) if not 6 <= f <= 9}
    cfg = TrackerConfig(init_s=0.08, coast_s=0.08)
    rows3, _ = track_sequence(frames, cfg, 15, interpolate=3)
    rows4, _ = track_sequence(frames, cfg, 15, interpolate=4)
    assert [r[0] for r in rows3] == [f for f in range(1, 16) if f not in (8, 9)]
    assert [r[0] for r in rows4] == list(range(1, 16))
    by_frame = {r[0]: r for r in rows4}
    a, b = by_frame[5], by_frame[10]  # the matched rows around the gap (filtered boxes)
    for f in range(6, 10):
        np.testing.assert_allclose(by_frame[f][2:6], np.add(a[2:6], (f - 5) / 5 * np.subtract(b[2:6], a[2:6])))
    coasted = {r[0]: r for r in rows3}
    assert coasted[6][2] != by_frame[6][2]  # with the 4-frame gap left open, frame 6 is the prediction
