"""DeepSORT-style multi-object tracker: batched Kalman filter, appearance galleries,
Hungarian matching, ByteTrack / OC-SORT options. See :mod:`tracker.tracker`."""
from tracker.config import TrackerConfig
from tracker.track import TrackSnapshot, TrackState
from tracker.tracker import Tracker

__all__ = ["Tracker", "TrackerConfig", "TrackSnapshot", "TrackState"]
