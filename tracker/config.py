"""Tracker settings: one dataclass, every knob with a default, validated ``from_dict``."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional

from base.errors import ConfigError


@dataclass
class TrackerConfig:
    """All tracker knobs. Frames are frame-index units; distances as named.

    max_age: a confirmed track is deleted after this many frames without a match.
    n_init: matched frames before a track is confirmed.
    max_cosine_distance: appearance match ceiling (1 - cosine similarity, 0..2).
    max_iou_distance: IoU-round ceiling (1 - IoU) in the motion mode.
    secondary_iou_distance: ceiling of the IoU round after the appearance round (appearance mode).
    gallery_budget: embeddings kept per track (nearest-neighbour gallery).
    embedding_ema: alpha for an EMA gallery (one vector) instead of the budgeted one; None = off.
    gating: Mahalanobis gating of the appearance costs (chi2 0.95, 4 dof).
    iou_gating: the same gate on the IoU rounds too.
    gating_position_only: gate on cx, cy only (2 dof).
    kalman: "batched" (numpy, all tracks) or "filterpy" (reference, one filter per track).
    aspect_process_std, aspect_measurement_std: the Kalman filter's std of the box aspect
        ratio w/h, per frame of motion and per detection (DeepSORT: 0.01 and 0.1; see
        tracker.kalman.AspectNoise).
    appearance: use embeddings when detections carry them (auto-off when D == 0).
    matching_cascade: DeepSORT cascade by time since update (False = one global assignment).
    high_score_threshold: detections at or above it are matched first and may start tracks.
    low_score_threshold: detections in [low, high) get a ByteTrack-style second round with
        confirmed tracks; below low they are dropped. low >= high disables the round.
    low_round_max_iou_distance: IoU ceiling of that second round.
    new_track_threshold: min score to start a track (None = high_score_threshold).
    observation_recovery: OC-SORT's OCR, a last IoU round between unmatched tracks' last
        observed boxes and the remaining detections.
    oru: OC-SORT's observation-centric re-update: after a gap, re-run the filter from the
        last observation along a linearly interpolated virtual trajectory.
    iou_rescue_max_age: in the appearance mode, tracks missed for at most this many frames
        also enter the IoU round (DeepSORT: 1).
    class_aware: only match detections of the track's class.
    fuse_score: IoU rounds use 1 - IoU * score (ByteTrack's score fusion) as the cost.
    low_round_tentative: the low-score round also considers tentative tracks.
    direction_weight: OC-SORT's observation-centric momentum (OCM): in the IoU round of
        high-score detections, subtract weight * score * (pi/2 - angle) / pi from the cost,
        where angle is between the track's recent direction of motion and the direction from
        its observation ``direction_delta_t`` frames back to the detection (0 = off;
        OC-SORT uses 0.2). Pairs are still accepted on the IoU cost alone.
    direction_delta_t: frames back for that direction (OC-SORT: 3).
    coast_frames: what is reported, not how tracks are matched: a confirmed track stays in
        MOT output (service files, ``track-detections``) for up to this many frames after its
        last matched detection, with its Kalman-predicted box (0 = matched frames only, the
        DeepSORT/SORT convention). Events still say when a track was last matched. Coasting
        raises recall and HOTA/IDF1 and costs some MOTA (predicted boxes of objects that left).

    Defaults were chosen for the three MOT15 benchmark sequences and two generated scenes
    (bench/tracker.py prints the ablation): ByteTrack-style score split 0.7 / 0.1,
    score-fused IoU with a 0.8 ceiling, no gate on IoU rounds, two frames of coasting in the
    output; equal process and measurement noise on the aspect ratio (DeepSORT's 0.01 / 0.1
    makes box shapes lag the detections); OC-SORT's OCM off (it lifts KITTI-17 but costs TUD-Campus more) and ORU off (it
    moves HOTA and IDF1 by at most 0.002 on those five and costs about a third of the update
    rate, since every track re-found after a missed frame re-runs its filter); with
    appearance: DeepSORT cascade, EMA 0.9 embeddings, cosine ceiling 0.3.
    """

    max_age: int = 30
    n_init: int = 3
    max_cosine_distance: float = 0.3
    max_iou_distance: float = 0.8
    secondary_iou_distance: float = 0.7
    gallery_budget: int = 100
    embedding_ema: Optional[float] = 0.9
    gating: bool = True
    iou_gating: bool = False
    gating_position_only: bool = False
    kalman: str = "batched"
    aspect_process_std: float = 0.05
    aspect_measurement_std: float = 0.05
    appearance: bool = True
    matching_cascade: bool = True
    high_score_threshold: float = 0.7
    low_score_threshold: float = 0.1
    low_round_max_iou_distance: float = 0.5
    new_track_threshold: Optional[float] = None
    observation_recovery: bool = False
    oru: bool = False
    iou_rescue_max_age: int = 1
    class_aware: bool = True
    fuse_score: bool = True
    low_round_tentative: bool = False
    direction_weight: float = 0.0
    direction_delta_t: int = 3
    coast_frames: int = 2

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def bad(key: str, why: str) -> ConfigError:
            return ConfigError(f"tracker.{key}: {why} (got {getattr(self, key)!r})")

        if self.max_age < 1:
            raise bad("max_age", "must be >= 1 frame")
        if self.n_init < 1:
            raise bad("n_init", "must be >= 1")
        if self.gallery_budget < 1:
            raise bad("gallery_budget", "must be >= 1")
        if self.kalman not in ("batched", "filterpy"):
            raise bad("kalman", 'must be "batched" or "filterpy"')
        if not 0.0 <= self.max_cosine_distance <= 2.0:
            raise bad("max_cosine_distance", "must be in 0..2")
        for key in ("max_iou_distance", "secondary_iou_distance", "low_round_max_iou_distance"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise bad(key, "must be in 0..1")
        if self.embedding_ema is not None and not 0.0 <= self.embedding_ema < 1.0:
            raise bad("embedding_ema", "must be in [0, 1) or None")
        if not 0.0 <= self.direction_weight <= 1.0:
            raise bad("direction_weight", "must be in 0..1")
        if self.direction_delta_t < 1:
            raise bad("direction_delta_t", "must be >= 1 frame")
        if self.coast_frames < 0:
            raise bad("coast_frames", "must be >= 0 frames (tracks are deleted at max_age anyway)")
        for key in ("aspect_process_std", "aspect_measurement_std"):
            if not 0.0 < getattr(self, key) <= 10.0:
                raise bad(key, "must be in (0, 10]")
        if self.iou_rescue_max_age < 1:
            raise bad("iou_rescue_max_age", "must be >= 1")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrackerConfig":
        """Build from a plain dict (e.g. the ``[tracker]`` table of config.toml).

        Unknown keys and wrong types raise ConfigError naming the key."""
        if not isinstance(d, dict):
            raise ConfigError(f"tracker: expected a table, got {type(d).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {}
        for key, value in d.items():
            if key not in fields:
                raise ConfigError(f"tracker.{key}: unknown key (known: {', '.join(fields)})")
            kwargs[key] = _check_type(key, fields[key].type, value)
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_type(key: str, typ: Any, value: Any) -> Any:
    t = str(typ)
    optional = t.startswith("Optional")
    if value is None:
        if optional:
            return None
        raise ConfigError(f"tracker.{key}: must not be empty")
    base = t.removeprefix("Optional[").removesuffix("]")
    if base == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"tracker.{key}: expected true/false, got {value!r}")
    elif base == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"tracker.{key}: expected an integer, got {value!r}")
    elif base == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"tracker.{key}: expected a number, got {value!r}")
        value = float(value)
    elif base == "str":
        if not isinstance(value, str):
            raise ConfigError(f"tracker.{key}: expected a string, got {value!r}")
    return value
