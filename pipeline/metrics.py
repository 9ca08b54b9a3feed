"""The service's metrics: totals of the stages' ``metrics`` reports (workers.meter), rendered
in the Prometheus text format by prometheus-client.

The children count deltas; :class:`ServiceMetrics` adds them up, so the totals never go back
when a child is restarted. It is a prometheus-client collector: ``/metrics`` renders the
totals at scrape time (no copy kept in prometheus-client). Exposed, all prefixed ``vidtrack_``:

- ``frames_in_total`` / ``frames_out_total`` {stage, stream}: grabber decoded / sent,
  detector received / detected, tracker accepted / tracked
- ``dropped_frames_total`` {stream} (live sources, newest frame wins),
  ``skipped_frames_total`` {stream} (given up by the tracker's reorder buffer),
  ``gap_resends_total`` {stream} (file frames lost without a stage dying, asked for again),
  ``decode_errors_total`` {stream}, ``bad_messages_total`` {stage, reason}
- ``queue_depth`` {stage, queue, stream}, ``restarts_total`` {process}, ``stage_up`` {process}
- ``stage_latency_seconds`` {stage, kind} histograms (grabber decode and camera_motion (its
  warp estimate), detector receipt to detections sent, tracker update),
  ``capture_to_event_seconds`` {stream} (live sources:
  their frame timestamps are capture times), ``stream_fps`` {stream} (tracked frames per
  second over the last ``FPS_WINDOW_S``)
"""
from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict, deque
from typing import Callable

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from workers.meter import COUNTS, LATENCY_BUCKETS_S

FPS_WINDOW_S = 5.0
STAGE_COUNTS = {  # count -> (metric name, help, labelled by stage)
    "frames_in": ("vidtrack_frames_in", "Frames a stage took in, per stream", True),
    "frames_out": ("vidtrack_frames_out", "Frames a stage passed on, per stream", True),
    "dropped": ("vidtrack_dropped_frames", "Live frames overwritten before they could be sent", False),
    "skipped": ("vidtrack_skipped_frames", "Frames the tracker gave up waiting for", False),
    "gap_resends": ("vidtrack_gap_resends", "Times the tracker asked again for a file frame lost without a stage dying",
                    False),
    "decode_errors": ("vidtrack_decode_errors", "Frames a source failed to decode", False),
}


class ServiceMetrics:
    """Totals of every stage's metrics reports; a prometheus-client collector. Thread-safe:
    the supervisor adds, the HTTP server's threads render."""

    def __init__(self, processes_up: Callable[[], dict[str, bool]] | None = None):
        self._processes_up = processes_up  # process name -> alive and ready, asked at each scrape
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], Counter] = defaultdict(Counter)  # (stage, count) -> key -> total
        self._latency: dict[tuple[str, str, str], list] = {}  # (stage, kind, stream) -> [buckets..., sum_s]
        self._depths: dict[tuple[str, str, str, str], int] = {}  # (stage, source, queue, stream) -> items
        self._restarts: Counter = Counter()
        self._fps_samples: dict[str, deque] = defaultdict(deque)  # stream -> (time, tracked so far)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    # ---- updates
    def add(self, stage: str, report: dict, source: str = "") -> None:
        """Add one ``metrics`` report of a ``stage`` ("grabber", "detector", "tracker");
        ``source`` tells the processes of one stage apart (their queue depths)."""
        now = time.monotonic()
        with self._lock:
            for name, per_key in (report.get("counts") or {}).items():
                if name in COUNTS and isinstance(per_key, dict):
                    self._counts[(stage, name)].update({str(k): int(v) for k, v in per_key.items()})
            for kind, stream, buckets, total_s in report.get("latency") or []:
                self._add_latency((stage, str(kind), str(stream)), buckets, float(total_s))
            for queue, stream, value in report.get("depths") or []:
                self._depths[(stage, source, str(queue), str(stream))] = int(value)
            if stage == "tracker":
                for stream in (report.get("counts") or {}).get("frames_out", {}):
                    self._fps_samples[stream].append((now, self._counts[("tracker", "frames_out")][stream]))

    def _add_latency(self, key: tuple, buckets: list, total_s: float) -> None:
        if len(buckets) != len(LATENCY_BUCKETS_S) + 1:
            return  # a child of another version: not ours to guess
        hist = self._latency.setdefault(key, [0] * len(buckets) + [0.0])
        for i, n in enumerate(buckets):
            hist[i] += int(n)
        hist[-1] += total_s

    def restarted(self, process: str) -> None:
        """The supervisor started ``process`` again."""
        with self._lock:
            self._restarts[process] += 1

    # ---- reading
    def stage_counts(self) -> dict[str, dict]:
        """stage -> {count: total over streams}, and ``bad_messages`` as {reason: total}: the run summary's."""
        with self._lock:
            stages: dict[str, dict] = {}
            for (stage, name), per_key in self._counts.items():
                total = dict(per_key) if name == "bad_messages" else sum(per_key.values())
                stages.setdefault(stage, {})[name] = total
            return stages

    def restarts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._restarts)

    def fps(self, stream: str, now: float | None = None) -> float:
        """Tracked frames per second of ``stream`` over the last FPS_WINDOW_S (0 when it stopped)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            samples = self._fps_samples.get(stream)
            if not samples:
                return 0.0
            while len(samples) > 1 and samples[1][0] <= now - FPS_WINDOW_S:
                samples.popleft()
            (t0, n0), (_, n1) = samples[0], samples[-1]
            return (n1 - n0) / max(now - t0, 1e-9) if n1 > n0 else 0.0

    # ---- prometheus-client
    def collect(self):
        """The metric families, rendered by prometheus-client at each scrape."""
        streams = list(self._fps_samples)
        fps = GaugeMetricFamily("vidtrack_stream_fps", f"Tracked frames per second over the last {FPS_WINDOW_S:g} s",
                                labels=["stream"])
        for stream in streams:
            fps.add_metric([stream], self.fps(stream))
        up = self._processes_up() if self._processes_up is not None else {}
        with self._lock:
            yield from self._count_families()
            yield from self._latency_families()
            yield self._gauge_family("vidtrack_queue_depth", "Items waiting in a stage's queue",
                                     ["stage", "queue", "stream"], self._summed_depths())
            restarts = CounterMetricFamily("vidtrack_restarts", "Times the supervisor restarted a process",
                                           labels=["process"])
            for process, n in self._restarts.items():
                restarts.add_metric([process], n)
            yield restarts
            yield self._gauge_family("vidtrack_stage_up", "1 while a process is alive and ready, else 0",
                                     ["process"], {(p,): int(is_up) for p, is_up in up.items()})
        yield fps

    def _count_families(self):
        for name, (metric, doc, by_stage) in STAGE_COUNTS.items():
            family = CounterMetricFamily(metric, doc, labels=["stage", "stream"] if by_stage else ["stream"])
            for (stage, count), per_key in sorted(self._counts.items()):
                if count == name:
                    for stream, n in sorted(per_key.items()):
                        family.add_metric([stage, stream] if by_stage else [stream], n)
            yield family
        bad = CounterMetricFamily("vidtrack_bad_messages", "Messages dropped by a stage, per reason",
                                  labels=["stage", "reason"])
        for (stage, count), per_key in sorted(self._counts.items()):
            if count == "bad_messages":
                for reason, n in sorted(per_key.items()):
                    bad.add_metric([stage, reason], n)
        yield bad

    def _latency_families(self):
        stage_hist: dict[tuple, list] = {}
        capture = HistogramMetricFamily("vidtrack_capture_to_event_seconds",
                                        "Capture time of a live frame to its events published", labels=["stream"])
        stage_family = HistogramMetricFamily("vidtrack_stage_latency_seconds",
                                             "Time a stage spends on one frame", labels=["stage", "kind"])
        for (stage, kind, stream), hist in sorted(self._latency.items()):
            if kind == "capture_to_event":
                capture.add_metric([stream], _buckets(hist), hist[-1])
                continue
            total = stage_hist.setdefault((stage, kind), [0] * len(hist))
            for i, v in enumerate(hist):
                total[i] += v
        for labels, hist in sorted(stage_hist.items()):
            stage_family.add_metric(list(labels), _buckets(hist), hist[-1])
        yield stage_family
        yield capture

    def _summed_depths(self) -> dict[tuple, int]:
        summed: Counter = Counter()
        for (stage, _, queue, stream), value in self._depths.items():
            summed[(stage, queue, stream)] += value
        return summed

    @staticmethod
    def _gauge_family(name: str, doc: str, labels: list[str], values: dict) -> GaugeMetricFamily:
        family = GaugeMetricFamily(name, doc, labels=labels)
        for key, value in sorted(values.items()):
            family.add_metric(list(key), value)
        return family


def _buckets(hist: list) -> list[tuple[str, int]]:
    """Cumulative (upper bound, count) pairs of a [counts per bucket..., sum] list."""
    cumulative, total = [], 0
    for bound, n in zip([*map(str, LATENCY_BUCKETS_S), "+Inf"], hist[:-1]):
        total += n
        cumulative.append((bound, total))
    return cumulative
