"""Appearance in the tracker: the fused (BoT-SORT) and weighted (Deep OC-SORT) associations
never do worse than motion alone on generated crossings where DeepSORT's cascade does, and galleries learn only from
trusted matches (high score, unoccluded)."""
import numpy as np
import pytest

from base.errors import ConfigError
from base.types import Detections
from tracker import Tracker, TrackerConfig


def _score(tmp_path, seed: int, **config) -> dict:
    """HOTA / IDF1 / IDSW of the tracker on a generated scene (bench.tracker.make_synthetic:
    people, cars and balls crossing; noisy detections with a noisy id embedding each)."""
    from bench.tracker import make_synthetic
    from base.mot import read_feature_detections, write_mot
    from vidtrack.evaluation import evaluate_mot
    from workers.offline import track_sequence

    gt, _, npy = make_synthetic(tmp_path, seed)
    rows, _ = track_sequence(read_feature_detections(npy), TrackerConfig(**config), 250)
    out = tmp_path / f"out-{seed}.txt"
    write_mot(out, rows)
    return evaluate_mot(gt, out)


@pytest.mark.parametrize("association", ["fused", "weighted"])
def test_fused_appearance_helps_on_a_crossing_and_never_scores_below_motion(tmp_path, association):
    motion, fused = _score(tmp_path, 4, appearance=False), _score(tmp_path, 4, association=association)
    assert fused["IDF1"] >= motion["IDF1"] + 0.05 and fused["IDSW"] < motion["IDSW"]
    assert fused["HOTA"] >= motion["HOTA"]


def test_cascade_scores_below_motion_where_fused_does_not(tmp_path):
    """Seed 3: the cosine-only cascade trusts noisy embeddings across crossings and swaps ids;
    the fused association only lets appearance pick among boxes that overlap a prediction."""
    motion = _score(tmp_path, 3, appearance=False)
    cascade = _score(tmp_path, 3, association="cascade")
    fused = _score(tmp_path, 3, association="fused")
    assert cascade["IDF1"] < motion["IDF1"] - 0.05 and cascade["IDSW"] > motion["IDSW"]
    assert fused["IDF1"] >= motion["IDF1"] and fused["IDSW"] <= motion["IDSW"]
    assert fused["HOTA"] >= motion["HOTA"]


def _dets(boxes, scores, embs):
    e = np.asarray(embs, np.float32)
    return Detections(np.asarray(boxes, float), scores, [0] * len(boxes), e / np.linalg.norm(e, axis=1, keepdims=True))


E0, E1, E2 = np.eye(4)[0], np.eye(4)[1], np.eye(4)[2]


@pytest.mark.parametrize("association", ["fused", "cascade"])
def test_low_score_round_does_not_update_the_gallery(association):
    t = Tracker(TrackerConfig(init_s=0, association=association, embedding_ema=0.5))
    for f in range(3):
        t.update(_dets([[100 + 2 * f, 50, 140 + 2 * f, 150]], [0.9], [E0]), f)
    (s,) = t.update(_dets([[106, 50, 146, 150]], [0.3], [E1]), 3)  # matched in the low-score round
    assert s.track_id == 1 and s.time_since_update == 0
    np.testing.assert_allclose(t.table.appearance.vectors[0], E0, atol=1e-6)
    t.update(_dets([[108, 50, 148, 150]], [0.9], [E1]), 4)  # a high-score match does update it
    assert t.table.appearance.vectors[0] @ E1 > 0.5


@pytest.mark.parametrize("association", ["fused", "cascade"])
def test_an_occluded_detection_does_not_update_the_gallery(association):
    cfg = TrackerConfig(init_s=0, association=association, embedding_ema=0.5, appearance_occlusion_iou=0.5)
    t = Tracker(cfg)
    t.update(_dets([[100, 50, 140, 150]], [0.9], [E0]), 0)
    # track 1's detection now overlaps a new one by IoU 0.6: neither embedding is trusted
    s = t.update(_dets([[100, 50, 140, 150], [110, 50, 150, 150]], [0.9, 0.9], [E1, E2]), 1)
    assert sorted((x.track_id, x.time_since_update) for x in s) == [(1, 0), (2, 0)]
    bank = t.table.appearance
    np.testing.assert_allclose(bank.vectors[0], E0, atol=1e-6)
    assert not bank.has[1], "a track born occluded starts with an empty gallery"
    s = t.update(_dets([[111, 50, 151, 150]], [0.9], [E2]), 2)  # track 2 seen alone: trusted
    assert [x.track_id for x in s if x.time_since_update == 0] == [2]
    assert bank.has[1] and bank.vectors[1] @ E2 > 0.99


def test_appearance_settings_are_validated():
    assert TrackerConfig().association == "fused"
    with pytest.raises(ConfigError, match="tracker.association"):
        TrackerConfig.from_dict({"association": "deepsort"})
    with pytest.raises(ConfigError, match="tracker.appearance_occlusion_iou"):
        TrackerConfig(appearance_occlusion_iou=1.5)
    with pytest.raises(ConfigError, match="tracker.appearance_iou_gate"):
        TrackerConfig(appearance_iou_gate=-0.1)
    with pytest.raises(ConfigError, match="tracker.appearance_threshold"):
        TrackerConfig(appearance_threshold=3.0)


@pytest.mark.parametrize("isolation, swapped", [(1.0, True), (0.1, False)])
def test_overlapping_detections_leave_the_choice_to_geometry_below_the_isolation_iou(isolation, swapped):
    """Two overlapping tracks (A: E0, B: E1) meet two overlapping detections whose embeddings
    look like the other track's (boxes holding parts of both people): with every detection's
    appearance in use the fused cost swaps them; with ``appearance_isolation_iou`` below their
    overlap the IoU decides."""
    t = Tracker(TrackerConfig(init_s=0, embedding_ema=0.5, appearance_occlusion_iou=1.0,
                              appearance_isolation_iou=isolation))
    for f in range(3):
        t.update(_dets([[100, 50, 140, 150], [108, 50, 148, 150]], [0.9, 0.9], [E0, E1]), f)
    s = t.update(_dets([[101, 50, 141, 150], [107, 50, 147, 150]], [0.9, 0.9], [E1, E0]), 3)
    ids = {round(float(x.box[0])): x.track_id for x in s if x.time_since_update == 0}
    assert len(ids) == 2
    first = min(ids)  # the track that took the detection at x = 101
    assert (ids[first] == 2) is swapped


def _at(angle: float) -> np.ndarray:
    """A unit embedding at ``angle`` radians in the E0-E1 plane (cosine distance to another:
    1 - cos of the angle between them)."""
    return np.cos(angle) * E0 + np.sin(angle) * E1


def _taker(config: TrackerConfig, boxes, embs, det_boxes, det_embs) -> tuple[str, Tracker]:
    """Tracks A, B, ... (``boxes`` from left to right, with ``embs``) seen for three frames,
    then one frame of detections: which track ("A", "B", ...) took ``det_boxes[0]``, and the
    tracker."""
    t = Tracker(config)
    for f in range(3):
        t.update(_dets(boxes, [0.9] * len(boxes), embs), f)
    ids = [x.track_id for x in sorted(t.snapshots(), key=lambda x: float(x.box[0]))]
    s = t.update(_dets(det_boxes, [0.9] * len(det_boxes), det_embs), 3)
    taker = min((x for x in s if x.time_since_update == 0), key=lambda x: abs(float(x.box[0]) - det_boxes[0][0]))
    return "ABCDEFGH"[ids.index(taker.track_id)], t


LOOK_ALIKE = ([[100, 50, 140, 150], [112, 50, 152, 150]], [_at(0.0), _at(0.3)], [[111, 50, 151, 150]], [_at(0.12)])
"""Tracks A (x 100) and B (x 112) 0.3 rad apart; a detection on B's box nearer A's embedding."""


@pytest.mark.parametrize("ratio, to_a", [(1.0, True), (0.3, False)])
def test_an_embedding_that_finds_both_tracks_alike_leaves_the_choice_to_geometry_below_the_ratio(ratio, to_a):
    """Tracks A (x 100) and B (x 112) look alike (embeddings 0.3 rad apart). A detection on
    B's box (IoU .95 with B, .57 with A) has an embedding a little nearer A's (cosine
    distances .007 and .016): min(IoU cost, cosine / 2) gives it to A; with
    ``appearance_ratio`` 0.3 neither distance is below 0.3 times its rival's, and the IoU
    gives it to B."""
    cfg = TrackerConfig(init_s=0, embedding_ema=0.5, appearance_occlusion_iou=1.0, appearance_ratio=ratio)
    assert _taker(cfg, *LOOK_ALIKE)[0] == ("A" if to_a else "B")


@pytest.mark.parametrize("association, to_a", [("fused", True), ("weighted", False)])
def test_deep_oc_sort_weighting_leaves_alike_rivals_to_geometry(association, to_a):
    """The look-alike case above: Deep OC-SORT's adaptive weight of the detection falls to
    1 - (.984 / .993 - .5) / .5 = .02 (its two tracks are about as similar), so the bonus is
    about .01 and the IoU gives the detection to B; BoT-SORT's min(IoU cost, cosine / 2)
    gives it to A."""
    cfg = TrackerConfig(init_s=0, embedding_ema=0.5, appearance_occlusion_iou=1.0, association=association)
    assert _taker(cfg, *LOOK_ALIKE)[0] == ("A" if to_a else "B")


@pytest.mark.parametrize("weight, to_b", [(0.0, False), (0.75, True)])
def test_deep_oc_sort_weighting_lets_a_telling_embedding_tip_the_geometry(weight, to_b):
    """Tracks A (E0, x 100) and B (E1, x 120); a detection at x 108 overlaps A more (IoU .67
    against .54) but carries B's embedding: similarities 0 and 1, so its weight is 1 and B's
    bonus of ``appearance_weight`` outweighs the IoU difference; at weight 0 the IoU decides."""
    cfg = TrackerConfig(init_s=0, embedding_ema=0.5, appearance_occlusion_iou=1.0, association="weighted",
                        appearance_weight=weight)
    taker, _ = _taker(cfg, [[100, 50, 140, 150], [120, 50, 160, 150]], [E0, E1], [[108, 50, 148, 150]], [E1])
    assert taker == ("B" if to_b else "A")


def test_deep_oc_sort_weights():
    """Row and column weights of a similarity matrix (tracks x detections): a track whose two
    best detections are alike gets weight ~0, a clear one 1, an empty row 0; a lone column 1."""
    from tracker.association import _discrimination
    sim = np.array([[0.9, 0.0], [0.9, 0.85], [0.0, 0.0]])
    np.testing.assert_allclose(_discrimination(sim, 1, 0.5), [1.0, 1 - (0.85 / 0.9 - 0.5) / 0.5, 0.0])
    np.testing.assert_allclose(_discrimination(sim, 0, 0.5), [0.0, 1.0])
    np.testing.assert_allclose(_discrimination(sim[:1], 0, 0.5), [1.0, 1.0])
    with pytest.raises(ConfigError, match="tracker.appearance_weight_bottom"):
        TrackerConfig(appearance_weight_bottom=1.0)


@pytest.mark.parametrize("units, to_a", [("cosine", True), ("stream", False)])
def test_appearance_in_stream_units_does_not_overrule_geometry_with_a_collapsed_embedder(units, to_a):
    """An embedder whose distances are all small (two different people .005 apart, as the
    shipped CNN on real footage): tracks A and B overlap, person C is far from both. A
    detection on B's box (IoU .95 with B, .57 with A) is .011 from A and .061 from B. In raw
    cosine units min(IoU cost, cosine / 2) gives it to A; in the stream's units (its typical
    distance between two people, about .012 by then) both distances are far above the
    threshold, and the IoU gives it to B."""
    cfg = TrackerConfig(init_s=0, embedding_ema=0.5, appearance_occlusion_iou=1.0, appearance_units=units)
    far = [400, 50, 440, 150]
    taker, t = _taker(cfg, [[100, 50, 140, 150], [112, 50, 152, 150], far], [_at(0.0), _at(0.2), _at(0.1)],
                      [[111, 50, 151, 150], far], [_at(-0.15), _at(0.1)])
    assert taker == ("A" if to_a else "B")
    if units == "stream":
        assert t.table.distance_scale.value == pytest.approx((3 * (1 - np.cos(0.1)) + 1 - np.cos(0.25)) / 4, rel=1e-4)


def test_distance_scale_is_the_running_mean_of_each_frames_median_over_boxes_apart():
    from tracker.nn_matching import DistanceScale
    scale = DistanceScale(min_weight=0.5)
    e = np.stack([_at(0.0), _at(0.5), _at(1.0)]).astype(np.float32)
    overlapping = np.array([[0, 0.3, 0.0], [0.3, 0, 0.0], [0.0, 0.0, 0]])  # 0 and 1 overlap: not a pair
    scale.observe(e, np.ones((3, 3)) - np.eye(3))  # every box overlaps: nothing learnt
    assert scale.value == 1.0 and scale.frames == 0
    scale.observe(e, overlapping)  # pairs (0, 2) and (1, 2): distances 1 - cos 1, 1 - cos .5
    first = np.median([1 - np.cos(1.0), 1 - np.cos(0.5)])
    assert scale.value == pytest.approx(first, rel=1e-5)
    scale.observe(e[:2], np.zeros((2, 2)))  # one pair, 1 - cos .5; weight max(1/2, .5)
    assert scale.value == pytest.approx(first + 0.5 * (1 - np.cos(0.5) - first), rel=1e-5)
    with pytest.raises(ConfigError, match="tracker.appearance_units"):
        TrackerConfig(appearance_units="pixels")
