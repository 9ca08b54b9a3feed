"""A stage's metrics since its last report: counts per stream and reason, latency histograms
in fixed buckets, queue depths.

Each stage counts into a :class:`StageMeter` and hands :meth:`StageMeter.flush` to its
``report(...)`` at most every ``interval_s`` (a ``metrics`` report: plain dicts, picklable).
The counts are deltas, so the supervisor adds them up and a restarted child starts from zero
without the totals going back; queue depths are the latest values. Thread-safe: the
detector's prefetch thread and its network thread count into the same meter.
"""
from __future__ import annotations

import bisect
import threading
import time
from collections import Counter

# Upper bounds in seconds of the latency buckets (the last bucket, +Inf, is implied): from
# a tracker update (~1 ms) to a detector batch on a busy CPU (seconds).
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
REPORT_INTERVAL_S = 0.5  # a metrics report per stage at most twice a second
COUNTS = ("frames_in", "frames_out", "dropped", "skipped", "gap_resends", "decode_errors", "bad_messages")


class StageMeter:
    """Counts and latencies of one stage since the last :meth:`flush`."""

    def __init__(self, interval_s: float = REPORT_INTERVAL_S):
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._counts: dict[str, Counter] = {name: Counter() for name in COUNTS}
        self._totals: dict[tuple[str, str], int] = {}  # (count, key) -> the running total last seen (count_to)
        self._latency: dict[tuple[str, str], list] = {}  # (kind, stream) -> [bucket counts..., sum_s]
        self._depths: dict[tuple[str, str], int] = {}  # (queue, stream) -> items
        self._last_flush = time.monotonic()

    def count(self, name: str, key: str, n: int = 1) -> None:
        """Add ``n`` to count ``name`` (one of COUNTS) of ``key`` (a stream id, or a reason)."""
        if n:
            with self._lock:
                self._counts[name][key] += n

    def count_to(self, name: str, key: str, total: int) -> None:
        """Count ``name`` of ``key`` up to ``total``, a running total kept elsewhere (what it
        grew by since the last call for this name and key)."""
        with self._lock:
            last = self._totals.get((name, key), 0)
            self._totals[(name, key)] = total
        self.count(name, key, total - last)

    def observe(self, kind: str, seconds: float, stream: str = "") -> None:
        """One latency of ``kind`` (e.g. "frame", "capture_to_event") in seconds."""
        with self._lock:
            hist = self._latency.get((kind, stream))
            if hist is None:
                hist = self._latency[(kind, stream)] = [0] * (len(LATENCY_BUCKETS_S) + 1) + [0.0]
            hist[bisect.bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
            hist[-1] += seconds

    def depth(self, queue: str, value: int, stream: str = "") -> None:
        """The current depth of ``queue`` (items waiting in it), of ``stream`` where it is per stream."""
        with self._lock:
            self._depths[(queue, stream)] = int(value)

    def flush(self) -> dict:
        """Everything since the last flush, as a ``metrics`` report's fields; starts over."""
        with self._lock:
            counts = {name: dict(c) for name, c in self._counts.items() if c}
            latency = [[kind, stream, hist[:-1], hist[-1]] for (kind, stream), hist in self._latency.items()]
            depths = [[queue, stream, value] for (queue, stream), value in self._depths.items()]
            report = {"counts": counts, "latency": latency, "depths": depths}
            self._counts = {name: Counter() for name in COUNTS}
            self._latency = {}
            self._last_flush = time.monotonic()
        return report

    def due(self) -> bool:
        """Whether ``interval_s`` passed since the last flush."""
        return time.monotonic() - self._last_flush >= self.interval_s

    def report_if_due(self, report, force: bool = False) -> None:
        """Send a ``metrics`` report through ``report(**fields)`` if it is :meth:`due` (or ``force``)."""
        if force or self.due():
            report(event="metrics", **self.flush())
