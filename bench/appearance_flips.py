"""Where appearance changes the tracker's decisions, and whether the changes are right.

With the "fused" association (the default), appearance only lowers the IoU-round cost of
close look-alike pairs (:func:`tracker.association.fuse_appearance`). This bench runs
vidtrack as ``vidtrack track-detections --frames`` does on every pool sequence
(bench/sequences.py: the shipped embedder's vectors, camera motion from the frames) and, in
every frame, solves the IoU round twice on the same tracks: on the fused cost and on the IoU
cost alone. A *flip* is a pair the fused assignment makes that the IoU one does not; it is
judged by the ground truth: right when the detection's GT identity (IoU >= 0.5) is the one
the track had in its last reported frame before, wrong when it is another, unknown when
either has none. The IoU pairs a flip displaced are judged the same way.

    .venv/bin/python bench/appearance_flips.py [--only NAME ...] [--units cosine stream]

Prints per sequence and units: flips, right / wrong / unknown, the displaced IoU pairs
right / wrong, HOTA / IDF1 with appearance on and off (same vectors and warps); then the
cosine distances of the right and the wrong flips (median, range), in the run's units.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tracker.association as association  # noqa: E402
from base.geometry import iou_matrix  # noqa: E402
from base.mot import read_feature_detections, write_mot  # noqa: E402
from bench.sequences import build_pool  # noqa: E402
from detector.training.reid_data import read_mot_boxes  # noqa: E402
from tracker import TrackerConfig  # noqa: E402
from vidtrack.evaluation import evaluate_mot  # noqa: E402
from workers.offline import track_sequence  # noqa: E402

LOOKBACK = 15  # frames back for a track's last GT identity


class FlipRecorder:
    """Wraps ``fuse_appearance``: per call, the pairs the fused assignment makes and the IoU
    one does not (flips), and the IoU pairs they displaced, as (frame, track id, box float[4],
    cosine in the run's units)."""

    def __init__(self) -> None:
        self.flips: list[tuple] = []
        self.displaced: list[tuple] = []
        self._inner = association.fuse_appearance

    def __enter__(self) -> "FlipRecorder":
        association.fuse_appearance = self._record
        return self

    def __exit__(self, *exc) -> None:
        association.fuse_appearance = self._inner

    def _record(self, table, ctx, cfg, rows, dets, cost):
        fused = self._inner(table, ctx, cfg, rows, dets, cost)
        if fused is cost:
            return fused
        by_iou, by_fused = (self._pairs(c, ctx, cfg, rows, dets) for c in (cost, fused))
        ids, boxes = table.columns.track_id, ctx.detections.boxes
        scale = float(table.distance_scale.value) if cfg.appearance_units == "stream" else 1.0
        for r, c in by_fused - by_iou:
            cosine = float(table.appearance.pair_distance(np.array([r]), ctx.detections.embeddings[c:c + 1])[0])
            self.flips.append((ctx.frame, int(ids[r]), boxes[c].copy(), cosine / scale))
        for r, c in by_iou - by_fused:
            self.displaced.append((ctx.frame, int(ids[r]), boxes[c].copy(), np.nan))
        return fused

    @staticmethod
    def _pairs(cost, ctx, cfg, rows, dets) -> set[tuple[int, int]]:
        """The (track row, detection) pairs the IoU round's assignment makes on ``cost``."""
        return set(map(tuple, association._assign(cost, ctx.iou_infeasible, rows, dets, cfg.max_iou_distance).tolist()))


class Identities:
    """GT identities: of a box in a frame (IoU >= 0.5 with a counted GT box), and of a track
    before a frame (its last reported box's, within :data:`LOOKBACK` frames)."""

    def __init__(self, gt_path: Path, rows: list[tuple]):
        gt = read_mot_boxes(gt_path, classes=None)
        self.gt = {int(f): (gt.ids[gt.frames == f], gt.boxes[gt.frames == f]) for f in np.unique(gt.frames)}
        self.track = {(r[0], r[1]): self.of_box(r[0], np.array(r[2:6])) for r in rows}

    def of_box(self, frame: int, box: np.ndarray) -> int:
        ids, boxes = self.gt.get(frame, (None, None))
        if ids is None:
            return -1
        iou = iou_matrix(np.asarray(box, np.float32)[None], boxes)[0]
        k = int(iou.argmax())
        return int(ids[k]) if iou[k] >= 0.5 else -1

    def of_track_before(self, frame: int, track_id: int) -> int:
        for back in range(1, LOOKBACK + 1):
            g = self.track.get((frame - back, track_id), -1)
            if g >= 0:
                return g
        return -1

    def judge(self, pairs: list[tuple]) -> tuple[list[int], list[float], list[float]]:
        """[right, wrong, unknown] counts and the cosines of the right and the wrong pairs."""
        right, wrong, unknown = [], [], []
        for frame, track_id, box, cosine in pairs:
            t, d = self.of_track_before(frame, track_id), self.of_box(frame, box)
            (unknown if t < 0 or d < 0 else right if t == d else wrong).append(cosine)
        return [len(right), len(wrong), len(unknown)], right, wrong


def scores(seq, rows) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "res.txt"
        write_mot(out, rows)
        m = evaluate_mot(seq.gt, out)
    return m["HOTA"], m["IDF1"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", help="pool sequences whose name contains one of these")
    ap.add_argument("--units", nargs="*", default=["cosine", "stream"], choices=["cosine", "stream"])
    args = ap.parse_args()
    print(f"{'sequence':<22}{'units':<8}{'flips':>6}{'right':>6}{'wrong':>6}{'unkn':>5}"
          f"{'displ. right':>13}{'wrong':>6}   HOTA/IDF1 on   off")
    cosines = {u: ([], []) for u in args.units}
    for seq in build_pool(only=args.only, log=lambda *a: None):
        frames, warps = read_feature_detections(seq.npy), seq.warps()
        off, _ = track_sequence(frames, TrackerConfig(appearance=False), seq.n_frames, frame_rate=seq.fps, warps=warps)
        for units in args.units:
            with FlipRecorder() as rec:
                rows, _ = track_sequence(frames, TrackerConfig(appearance_units=units), seq.n_frames,
                                         frame_rate=seq.fps, warps=warps)
            ids = Identities(seq.gt, rows)
            (fr, fw, fu), right, wrong = ids.judge(rec.flips)
            (dr, dw, _), _, _ = ids.judge(rec.displaced)
            cosines[units][0].extend(right)
            cosines[units][1].extend(wrong)
            on_s, off_s = scores(seq, rows), scores(seq, off)
            print(f"{seq.name:<22}{units:<8}{len(rec.flips):>6}{fr:>6}{fw:>6}{fu:>5}{dr:>13}{dw:>6}"
                  f"   {on_s[0]:.3f}/{on_s[1]:.3f} {off_s[0]:.3f}/{off_s[1]:.3f}")
    for units, (right, wrong) in cosines.items():
        for name, c in (("right", right), ("wrong", wrong)):
            if c:
                print(f"{units} cosine of the {name} flips: n {len(c)}, median {np.median(c):.4f}, "
                      f"range {min(c):.4f}..{max(c):.4f}")


if __name__ == "__main__":
    main()
