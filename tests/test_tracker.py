"""Tracker behaviour on constructed scenes: identity through a bounce, occlusion and
max_age, frame gaps, classes, score rounds, config validation. Time constants are given in
seconds at the default 25 frames/s (0.08 s = 2 frames)."""
import numpy as np
import pytest

from base.types import Detections
from tracker import Tracker, TrackerConfig, TrackSnapshot, TrackState
from base.errors import ConfigError


def one(box, score=0.9, cls=0, emb=None):
    return Detections(np.array([box], float), [score], [cls], None if emb is None else np.array([emb]))


def bounce_scene(speed=4.0, occlusion=4, w=40, h=100, seed=1):
    """Two people walk towards each other, disappear behind each other (no detections)
    and come out having turned back. Their embeddings differ (unit vectors e0, e1)."""
    rng = np.random.default_rng(seed)
    ea, eb = np.eye(8)[0], np.eye(8)[1]
    xa, xb, va, vb = 100.0, 300.0, speed, -speed
    frames = []
    for _ in range(60):
        if abs(xa - xb) < 10 and va > 0:
            va, vb = -va, -vb
        xa, xb = xa + va, xb + vb
        if abs(xa - xb) < 2 * occlusion * speed:
            frames.append(Detections.empty(8))
            continue
        boxes = np.array([[xa, 50, xa + w, 50 + h], [xb, 50, xb + w, 50 + h]]) + rng.normal(0, 0.5, (2, 4))
        emb = np.stack([ea, eb]) + rng.normal(0, 0.05, (2, 8))
        frames.append(Detections(boxes, [0.9, 0.9], [0, 0], emb / np.linalg.norm(emb, axis=1, keepdims=True)))
    return frames


def left_right_ids(cfg):
    """Track ids (left object, right object) at the first and the last frame both are seen."""
    tracker, first, last = Tracker(cfg), None, None
    for i, d in enumerate(bounce_scene()):
        s = [x for x in tracker.update(d, i) if x.time_since_update == 0 and x.state == TrackState.CONFIRMED]
        if len(s) == 2:
            s.sort(key=lambda x: x.box[0])
            last = (s[0].track_id, s[1].track_id)
            first = first or last
    return first, last


def test_bounce_swaps_ids_without_appearance_and_the_cascade_keeps_them():
    first, last = left_right_ids(TrackerConfig(appearance=False))
    assert first == (1, 2)
    assert last == (2, 1), "constant-velocity motion alone should carry the ids across"
    first, last = left_right_ids(TrackerConfig(appearance=True, association="cascade"))
    assert first == last == (1, 2)
    # the fused association only refines IoU: after the hidden turn no detection overlaps
    # its own track's prediction, so it does what motion does (here: no better, no worse)
    assert left_right_ids(TrackerConfig(association="fused")) == ((1, 2), (2, 1))


def test_appearance_auto_off_without_embeddings():
    t = Tracker(TrackerConfig(appearance=True, init_s=0))
    for f in range(5):
        s = t.update(one([10 + 3 * f, 10, 50 + 3 * f, 90]), f)
    assert [x.track_id for x in s] == [1] and s[0].hits == 5


@pytest.mark.parametrize("kalman", ["batched", "filterpy"])
def test_occlusion_survives_max_age_minus_one_and_dies_at_max_age(kalman):
    max_age = 5

    def run(missing):
        t = Tracker(TrackerConfig(max_age_s=max_age / 25, init_s=0.08, kalman=kalman))
        x, f, events = 100.0, 0, []
        for _ in range(6):
            events.append(t.update(one([x, 50, x + 40, 150]), f))
            x, f = x + 2, f + 1
        for _ in range(missing):
            events.append(t.update(Detections.empty(), f))
            x, f = x + 2, f + 1
        events.append(t.update(one([x, 50, x + 40, 150]), f))
        return events

    ev = run(max_age - 1)
    assert [s.track_id for s in ev[-1] if s.time_since_update == 0] == [1]
    assert all(s.state != TrackState.DELETED for e in ev for s in e)
    ev = run(max_age)
    deleted = [(i, s.track_id) for i, e in enumerate(ev) for s in e if s.state == TrackState.DELETED]
    assert deleted == [(6 + max_age - 1, 1)], "deleted in the call where it reached max_age missed frames"
    assert [s.track_id for s in ev[-1]] == [2] and ev[-1][0].state == TrackState.TENTATIVE


def test_frame_gap_uses_real_dt():
    t = Tracker(TrackerConfig(init_s=0))
    for f in range(0, 20):  # 5 px / frame
        t.update(one([100 + 5 * f, 50, 140 + 5 * f, 150]), f)
    s = t.update(Detections.empty(), 30)[0]  # 11 frames later
    cx = (s.box[0] + s.box[2]) / 2
    assert cx == pytest.approx(120 + 5 * 30, abs=3.0)
    assert s.time_since_update == 11 and s.velocity[0] == pytest.approx(5.0, abs=0.5)
    with pytest.raises(ValueError):
        t.update(Detections.empty(), 30)


def test_gap_then_detection_is_matched_at_extrapolated_place():
    t = Tracker(TrackerConfig(init_s=0, max_age_s=1.2))
    for f in range(10):
        t.update(one([100 + 8 * f, 50, 140 + 8 * f, 150]), f)
    f = 20  # 10 frames dropped: the object moved 80 px more than one frame's worth
    s = t.update(one([100 + 8 * f, 50, 140 + 8 * f, 150]), f)
    assert [x.track_id for x in s] == [1] and s[0].time_since_update == 0


def test_class_aware_matching():
    t = Tracker(TrackerConfig(init_s=0))
    t.update(one([100, 50, 140, 150], cls=0), 0)
    s = t.update(one([101, 50, 141, 150], cls=2), 1)
    assert sorted((x.track_id, x.class_id, x.time_since_update) for x in s) == [(1, 0, 1), (2, 2, 0)]


def test_low_score_round_keeps_track_alive_only_when_enabled():
    def run(low):
        t = Tracker(TrackerConfig(init_s=0, high_score_threshold=0.6, low_score_threshold=low))
        for f in range(5):
            t.update(one([100 + 2 * f, 50, 140 + 2 * f, 150], 0.9), f)
        return t.update(one([110, 50, 150, 150], 0.3), 5)

    s = run(0.1)
    assert [(x.track_id, x.time_since_update) for x in s] == [(1, 0)]
    s = run(0.6)  # low == high: no second round, the 0.3 detection is dropped
    assert [(x.track_id, x.time_since_update) for x in s] == [(1, 1)]


def test_snapshot_fields_and_types():
    t = Tracker()
    s = t.update(one([10, 20, 50, 100], 0.75), 0)[0]
    assert isinstance(s, TrackSnapshot) and s.track_id == 1 and s.state == TrackState.TENTATIVE
    assert s.box.dtype == np.float32 and s.box.shape == (4,) and s.velocity.shape == (2,)
    np.testing.assert_allclose(s.box, [10, 20, 50, 100], atol=1e-3)
    assert s.score == pytest.approx(0.75) and s.hits == 1 and s.age == 0


@pytest.mark.parametrize("switch", [{"oru": True}, {"observation_recovery": True},
                                    {"matching_cascade": False}, {"embedding_ema": None}])
def test_switches_keep_ids_in_the_bounce_with_appearance(switch):
    first, last = left_right_ids(TrackerConfig(appearance=True, association="cascade", **switch))
    assert first == last == (1, 2)


def test_direction_history_origins_and_bonus():
    """OCM: origin = earliest observation in the last delta_t frames (else the last one);
    the bonus rewards detections along the track's direction, penalises those against it."""
    from tracker.direction import DirectionHistory

    h = DirectionHistory(delta_t=3)
    h.append(np.array([[0.0, 0.0]]), frame=0)
    for f in (1, 2, 3):
        h.observe(np.array([0]), np.array([[10.0 * f, 0.0]]), frame=f)
    np.testing.assert_allclose(h.direction[0], [1, 0], atol=1e-6)
    np.testing.assert_allclose(h.origins(np.array([0]), frame=4), [[10.0, 0.0]])  # frame 1's
    np.testing.assert_allclose(h.origins(np.array([0]), frame=20), [[30.0, 0.0]])  # none recent: the last
    dets = np.array([[50.0, 0.0], [0.0, 0.0], [10.0, 40.0]])  # ahead, behind, sideways (from frame 1's 10,0)
    bonus = h.bonus(np.array([0]), dets, np.array([1.0, 1.0, 0.5]), frame=4, weight=0.2)
    np.testing.assert_allclose(bonus, [[0.1, -0.1, 0.0]], atol=1e-4)  # arccos near +-1 is steep
    h.append(np.array([[5.0, 5.0]]), frame=4)  # a new track has no direction: no bonus
    assert np.all(h.bonus(np.array([1]), dets, np.ones(3), frame=5, weight=0.2) == 0)


def test_direction_term_keeps_ids_on_simple_motion_and_validates():
    first, last = left_right_ids(TrackerConfig(appearance=True, association="cascade", direction_weight=0.2))
    assert first == last == (1, 2)
    t = Tracker(TrackerConfig(init_s=0, direction_weight=0.2))
    for f in range(6):
        s = t.update(one([10 + 8 * f, 10, 50 + 8 * f, 90]), f)
    assert [x.track_id for x in s] == [1] and s[0].hits == 6
    with pytest.raises(ConfigError, match="tracker.direction_weight"):
        TrackerConfig(direction_weight=2.0)
    with pytest.raises(ConfigError, match="tracker.direction_delta_t"):
        TrackerConfig(direction_delta_t=0)


def test_config_from_dict_validates_and_names_the_key():
    cfg = TrackerConfig.from_dict({"max_age_s": 10, "max_cosine_distance": 1, "embedding_ema": None})
    assert cfg.max_age_s == 10.0 and cfg.max_cosine_distance == 1.0
    with pytest.raises(ConfigError, match="tracker.max_agee"):
        TrackerConfig.from_dict({"max_agee": 3})
    with pytest.raises(ConfigError, match="tracker.init_s"):
        TrackerConfig.from_dict({"init_s": "3"})
    with pytest.raises(ConfigError, match="tracker.gating"):
        TrackerConfig.from_dict({"gating": 1})
    with pytest.raises(ConfigError, match="tracker.kalman"):
        TrackerConfig.from_dict({"kalman": "gpu"})
    with pytest.raises(ConfigError, match="tracker.max_age_s: must be more than 0"):
        TrackerConfig.from_dict({"max_age_s": 0})


@pytest.mark.parametrize("oru", [True, False])
def test_batched_and_filterpy_trackers_agree_on_a_real_sequence(shared_data, oru):
    from tests.conftest import require
    from workers.offline import track_sequence
    from base.mot import read_detections

    frames = read_detections(require(shared_data / "mot/sort-frcnn-det/TUD-Campus/det.txt"))
    a, _ = track_sequence(frames, TrackerConfig(kalman="batched", oru=oru))
    b, _ = track_sequence(frames, TrackerConfig(kalman="filterpy", oru=oru))
    assert len(a) == len(b) > 200
    np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("coast", [0, 2])
def test_mot_rows_coast_a_confirmed_track_for_coast_frames(coast, tmp_path):
    from pipeline.sinks import MotSink
    from workers.offline import track_sequence

    frames, x = {}, 100.0
    for f in range(1, 21):
        if not 8 <= f <= 12:  # five frames without a detection
            frames[f] = one([x, 50, x + 40, 150])
        x += 3
    cfg = TrackerConfig(init_s=0.08, coast_s=coast / 25)
    rows, _ = track_sequence(frames, cfg, 20)
    assert {r[1] for r in rows} == {1}
    reported = [r[0] for r in rows]
    assert reported == [f for f in range(1, 21) if not 8 + coast <= f <= 12]
    coasted = [r for r in rows if 8 <= r[0] <= 12]
    for r in coasted:  # predicted boxes keep moving with the track
        np.testing.assert_allclose(r[2], 100.0 + 3 * (r[0] - 1), atol=1.5)

    # the service's MOT sink follows the same rule
    sink, t = MotSink(tmp_path / "s.mot.txt", coast), Tracker(cfg)
    for f in range(1, 21):
        sink.write(f - 1, t.update(frames.get(f, Detections.empty()), f), [])
    sink.close()
    written = [int(line.split(",")[0]) for line in (tmp_path / "s.mot.txt").read_text().splitlines()]
    assert written == [f for f in range(2, 21) if not 8 + coast <= f <= 12]  # no backfill online


def test_coast_validation_keeps_short_max_age_configs():
    assert TrackerConfig(max_age_s=0.04).coast_s == 0.08  # coasting is capped by deletion at max_age_s
    with pytest.raises(ConfigError, match="tracker.coast_s"):
        TrackerConfig(coast_s=-1)


def test_aspect_noise_reaches_the_kalman_store_and_is_validated():
    from tracker import kalman as K

    for kind in ("batched", "filterpy"):
        t = Tracker(TrackerConfig(kalman=kind, aspect_process_std=0.05, aspect_measurement_std=0.1))
        assert t.kf.aspect == K.DEEPSORT_ASPECT
    assert Tracker().kf.aspect == K.DEFAULT_ASPECT
    with pytest.raises(ConfigError, match="tracker.aspect_measurement_std"):
        TrackerConfig(aspect_measurement_std=0.0)


def test_track_states_are_an_enum_that_reads_as_its_names():
    import json

    from tracker import TrackState

    assert [s.value for s in TrackState] == ["tentative", "confirmed", "deleted"]
    assert TrackState.CONFIRMED == "confirmed" and f"{TrackState.DELETED}" == "deleted"
    assert json.dumps({"state": TrackState.TENTATIVE}) == '{"state": "tentative"}'
    tracker = Tracker(TrackerConfig(init_s=0.08))
    (s,) = tracker.update(Detections(np.array([[0, 0, 10, 20]], np.float32), np.array([0.9], np.float32),
                                     np.zeros(1, np.int32)), 0)
    assert s.state is TrackState.TENTATIVE
