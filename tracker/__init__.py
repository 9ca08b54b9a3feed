"""DeepSORT-style multi-object tracker: batched Kalman filter, appearance galleries,
Hungarian matching, ByteTrack / OC-SORT options. See :mod:`tracker.tracker`."""
from tracker.config import FrameLimits, TrackerConfig
from tracker.track import TrackSnapshot, TrackState
from tracker.tracker import DEFAULT_FRAME_RATE, Tracker

__all__ = ["DEFAULT_FRAME_RATE", "FrameLimits", "Tracker", "TrackerConfig", "TrackSnapshot", "TrackState"]
